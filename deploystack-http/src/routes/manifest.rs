//! `POST /api/v1/deployments` with a JSON body: a deployment from a manifest of blobs
//! uploaded before (`routes::files`), instead of a zip. The route is the upload's
//! (`routes::upload` hands JSON bodies here), so the rate limits, idempotency keys, the
//! per-project queue cap and the answer (202 with the deployment) are the same.
//!
//! ```json
//! {"files": [{"path": "index.html", "digest": "<sha256>", "size": 12, "mode": 33188}],
//!  "project": "web", "target": "production",
//!  "settings": {"build_command": "npm run build"},
//!  "env": {"API_URL": "https://…"}, "sensitive_env": {"TOKEN": "…"}}
//! ```
//!
//! Blobs the server lacks are answered 400 `missing_blobs` with their digests in
//! `error.missing`: upload them and send the same body again.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use deploystack_core::model::{BuildSettings, ContentHash, EnvVar};
use deploystack_core::services::ingest::UploadOptions;
use deploystack_core::services::manifest::{self, ManifestEntry};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::deployments::DeploymentView;
use crate::routes::files::read_json_body;
use crate::routes::upload::{UploadFields, ingest_error, upload_options};
use crate::state::AppState;

/// A deployment from a manifest of uploaded blobs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestRequest {
    /// Every file of the deployment's source.
    pub files: Vec<ManifestFile>,
    /// The project it belongs to (created if new).
    pub project: Option<String>,
    /// `preview` (default) or `production`.
    pub target: Option<String>,
    /// Overrides of framework detection.
    #[serde(default)]
    pub settings: BuildSettings,
    /// Environment variables of the build.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Write-only variables: masked in logs, never shown again.
    #[serde(default)]
    pub sensitive_env: BTreeMap<String, String>,
}

/// One file of a manifest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative path, `/`-separated (`css/site.css`); the rules of zip entries apply.
    pub path: String,
    /// The sha256 of its bytes, lowercase hex: a blob uploaded before.
    #[schema(value_type = String)]
    pub digest: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// Its unix mode, e.g. 33188 (0o100644) or 33261 (0o100755, executable); default 0o100644.
    #[serde(default)]
    pub mode: u32,
}

/// Create the deployment a JSON manifest describes; `query` holds the upload's query
/// parameters (the body's fields win over them).
pub async fn create(
    state: &AppState,
    access: Access,
    caller: Caller,
    query: UploadFields,
    body: Body,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let body = read_json_body(body).await?;
    let request: ManifestRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(
            "invalid_manifest",
            format!("the manifest is not valid JSON of the documented shape: {err}"),
        )
    })?;
    let env = request
        .env
        .into_iter()
        .map(|(name, value)| (name, value, false))
        .chain(
            request
                .sensitive_env
                .into_iter()
                .map(|(name, value)| (name, value, true)),
        )
        .map(|(name, value, sensitive)| EnvVar {
            name,
            value,
            sensitive,
        })
        .collect();
    let fields = UploadFields {
        project: request.project,
        target: request.target,
        settings: request.settings,
        env,
    };
    let options = UploadOptions {
        by: caller.by().map(str::to_owned),
        ..upload_options(fields.over(query))?
    };
    access.check_project(options.project.as_ref())?;
    let files = request
        .files
        .into_iter()
        .map(|f| ManifestEntry {
            path: f.path,
            digest: f.digest,
            size: f.size,
            mode: f.mode,
        })
        .collect();
    let deployment = manifest::accept_manifest(&state.services, files, options)
        .await
        .map_err(ingest_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentView::new(state, deployment)),
    ))
}
