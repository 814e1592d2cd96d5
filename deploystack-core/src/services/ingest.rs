//! Ingest: turn an uploaded archive into a `QUEUED` deployment.
//!
//! Order matters, so that nothing accepted is ever lost: validate (reject before storing
//! anything), store the source, commit the row, then enqueue. If the enqueue fails the row is
//! still `QUEUED` and the reconciler enqueues it later.

use std::path::Path;

use crate::events::{Event, emit_best_effort};
use crate::model::{Deployment, DeploymentId, NewDeployment, ProjectName, Target};
use crate::queue::Job;
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::services::archive::{self, ArchiveError};
use crate::storage::StorageError;

/// Options of an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// The project the deployment belongs to, if any.
    pub project: Option<ProjectName>,
    /// Production or preview.
    pub target: Target,
}

/// Why an upload was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The archive is not acceptable; the message says why (the user's problem).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The source could not be stored.
    #[error("cannot store the upload: {0}")]
    Storage(#[from] StorageError),
    /// The deployment could not be recorded.
    #[error("cannot record the deployment: {0}")]
    Repository(#[from] RepositoryError),
    /// Validation could not run.
    #[error("archive validation did not finish: {0}")]
    Internal(String),
}

/// The storage key of a deployment's uploaded source.
pub fn source_key(id: &DeploymentId) -> String {
    format!("sources/{id}.zip")
}

/// Validate the zip at `archive_path`, store it, record a `QUEUED` deployment and enqueue its
/// build. The caller still owns (and removes) the file.
pub async fn accept_upload(
    services: &Services,
    archive_path: &Path,
    options: UploadOptions,
) -> Result<Deployment, IngestError> {
    let limits = services.config.archive_limits();
    let path = archive_path.to_owned();
    // Reading the central directory is blocking file I/O; keep it off the async workers.
    tokio::task::spawn_blocking(move || archive::inspect(&path, &limits))
        .await
        .map_err(|err| IngestError::Internal(err.to_string()))??;

    let id = DeploymentId::random();
    let key = source_key(&id);
    services.storage.put_file(&key, archive_path).await?;
    let new = NewDeployment {
        id,
        project: options.project,
        target: options.target,
        source_key: key.clone(),
    };
    let deployment = match services.repository.create_deployment(&new).await {
        Ok(deployment) => deployment,
        Err(err) => {
            // Nothing references the source yet; do not leave it behind.
            if let Err(cleanup) = services.storage.delete(&key).await {
                tracing::warn!(%id, error = %cleanup, "could not remove the source of a failed upload");
            }
            return Err(err.into());
        }
    };
    if let Err(err) = services.queue.enqueue(&Job { deployment_id: id }).await {
        // The row is committed; the reconciler will enqueue it. The upload is accepted.
        tracing::warn!(%id, error = %err, "enqueue failed; the reconciler will retry");
    }
    emit_best_effort(
        services.events.as_ref(),
        Event::DeploymentCreated { deployment_id: id },
    )
    .await;
    Ok(deployment)
}
