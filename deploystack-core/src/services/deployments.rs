//! Canceling and deleting deployments, and collecting the blobs nothing references any more.
//!
//! A delete stops serving at once (the row is marked deleted and its manifest dropped in one
//! step). Blobs are shared between deployments, so they are removed by a collector, which
//! deletes only blobs no file references and no build has used within the grace period —
//! a build that has just decided to reuse a stored blob never loses it.

use time::OffsetDateTime;

use crate::events::{Event, emit_best_effort};
use crate::model::{Deployment, DeploymentId};
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::storage::StorageError;

/// Why a garbage-collection pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Cancel a `QUEUED` or `BUILDING` deployment: it ends `CANCELED` at once, a worker building
/// it notices within about a second (see `pipeline`) and kills the build, and its source is
/// removed, since nothing will build it again. Returns the deployment as it now is;
/// [`RepositoryError::Final`] if it is final (or deleted) already. `by` says who asked (as
/// the history names callers); the `DeploymentCanceled` event carries it.
pub async fn cancel(
    services: &Services,
    id: &DeploymentId,
    by: Option<&str>,
) -> Result<Deployment, RepositoryError> {
    let before = services.repository.get_deployment(id).await?;
    let canceled = services.repository.cancel_deployment(id).await?;
    if let Err(err) = services.storage.delete(&canceled.source_key).await {
        tracing::warn!(%id, error = %err, "could not remove the source of a canceled deployment");
    }
    emit_best_effort(
        services.events.as_ref(),
        Event::DeploymentCanceled {
            deployment_id: *id,
            previous_status: before.status,
            by: by.map(str::to_owned),
        },
    )
    .await;
    Ok(canceled)
}

/// Delete a deployment: it stops being served at once, a queued or running build is canceled
/// (its worker's publish is fenced out), and its source is removed. Returns the deployment as
/// it was before the delete. `by` says who asked (`None`: retention, or the library).
pub async fn delete(
    services: &Services,
    id: &DeploymentId,
    by: Option<&str>,
) -> Result<Deployment, RepositoryError> {
    let before = services.repository.get_deployment(id).await?;
    let after = services.repository.delete_deployment(id).await?;
    if before.deleted_at.is_none() {
        if let Err(err) = services.storage.delete(&after.source_key).await {
            tracing::warn!(%id, error = %err, "could not remove the source of a deleted deployment");
        }
        emit_best_effort(
            services.events.as_ref(),
            Event::DeploymentDeleted {
                deployment_id: *id,
                previous_status: before.status,
                by: by.map(str::to_owned),
            },
        )
        .await;
    }
    Ok(before)
}

/// One garbage-collection pass: remove up to `limit` blobs that nothing references and that
/// were last used before the grace period. Returns how many were removed.
pub async fn collect_garbage(services: &Services, limit: u32) -> Result<usize, CollectError> {
    let cutoff = OffsetDateTime::now_utc() - services.config.blob_grace();
    let hashes = services
        .repository
        .claim_unreferenced_blobs(cutoff, limit)
        .await?;
    // Objects first, rows second: if we stop half-way the rows stay claimed, and the next
    // pass (after the grace period) deletes them again, which is harmless.
    for hash in &hashes {
        services.storage.delete(&hash.blob_key()).await?;
    }
    services.repository.forget_blobs(&hashes).await?;
    if !hashes.is_empty() {
        tracing::info!(removed = hashes.len(), "collected unreferenced blobs");
    }
    Ok(hashes.len())
}
