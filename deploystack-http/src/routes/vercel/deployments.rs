//! Deployments: `POST /v13/deployments` (create from a manifest of SHA-1s, or rebuild another
//! deployment for production), `GET /v13/deployments/{idOrHost}`, `GET /v6/deployments`,
//! `DELETE /now/deployments/{id}` and the two small look-ups `inspect` and `rm` make.
//!
//! # Creating one
//! The body lists every file as `{file, size, mode, sha}`, `sha` its SHA-1. Each SHA-1 is
//! mapped to the sha256 our blobs are named by, through the records `POST /v2/files` keeps
//! (`super::files`); if any is unknown, the answer is 400 `missing_files` listing the SHA-1s
//! to upload, and the CLI sends the same body again once it has uploaded them. Then
//! `services::manifest::accept_manifest` checks and records the deployment, as our own
//! manifest upload does: the project is `name` (created if new), `target` is `production`
//! or a preview, `projectSettings` (and the `vercel.json` keys the CLI spreads at the top)
//! are the build settings.
//!
//! Which variables go where: our upload has one kind of per-deployment variable, given to
//! the build (`env=NAME=value`), and a static site has no runtime to give others to. So
//! both Vercel's `env` (runtime) and `build.env` (build time) become the deployment's build
//! variables, `build.env` winning for a name in both; they come over the project's own
//! variables, as an upload's do.
//!
//! With `deploymentId` instead of files — what `vercel promote` sends for a preview — the
//! answer is a new deployment built from that one's stored source, for `target`
//! (`services::manifest::redeploy`).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use deploystack_core::model::{ContentHash, EnvVar, PageRequest, Target};
use deploystack_core::services::deployments as deployment_service;
use deploystack_core::services::ingest::{IngestError, UploadOptions};
use deploystack_core::services::manifest::{self, ManifestEntry};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::files::{is_sha1, sha256_of};
use super::projects::Settings;
use super::wire::{self, AnyJson, deployment_answer, pagination};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::state::AppState;

/// How many SHA-1 records are read at once while mapping a manifest.
const LOOKUPS_IN_FLIGHT: usize = 32;
/// Most deployments `GET /v6/deployments` reads looking for one project's (pages of 100).
const LIST_SCAN: usize = 5_000;

/// One file of the manifest.
#[derive(Debug, Deserialize)]
pub struct FileRef {
    /// Its path, relative to the deployed folder.
    pub file: String,
    /// Lowercase hex SHA-1 of its bytes.
    #[serde(default)]
    pub sha: Option<String>,
    /// Its size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Its `lstat` mode, decimal (`33188` = `0o100644`).
    #[serde(default)]
    pub mode: u32,
}

/// `build` of the body.
#[derive(Debug, Default, Deserialize)]
pub struct Build {
    /// Build-time variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The body of `POST /v13/deployments`; every other field (`meta`, `gitMetadata`, the rest
/// of `vercel.json`) is ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    /// The project's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `production`, else a preview.
    #[serde(default)]
    pub target: Option<String>,
    /// The files.
    #[serde(default)]
    pub files: Option<Vec<FileRef>>,
    /// Rebuild this deployment instead (promote of a preview).
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Runtime variables (build variables here; see the module docs).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Build-time variables.
    #[serde(default)]
    pub build: Build,
    /// The project's settings as the CLI detected them.
    #[serde(default)]
    pub project_settings: Option<Settings>,
    /// `vercel.json`'s settings, spread at the top of the body.
    #[serde(flatten)]
    pub top: Settings,
}

/// `POST /v13/deployments`: see the module docs.
pub async fn create(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
    AnyJson(body): AnyJson<CreateBody>,
) -> Result<Json<Value>, ApiError> {
    if query
        .get("prebuilt")
        .is_some_and(|v| v == "1" || v == "true")
    {
        return Err(ApiError::bad_request(
            "bad_request",
            "DeployStack builds deployments itself: deploy without --prebuilt",
        ));
    }
    let target = match body.target.as_deref() {
        Some("production") => Target::Production,
        None | Some("preview" | "") => Target::Preview,
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_request",
                format!("target {other:?}: DeployStack has production and preview only"),
            ));
        }
    };
    if let Some(from) = &body.deployment_id {
        let from = wire::deployment(&state, &access, from).await?;
        let deployment = manifest::redeploy(&state.services, &from.id, target, caller.by())
            .await
            .map_err(ingest_error)?;
        return Ok(Json(deployment_answer(&state, &deployment).await));
    }
    let name = body.name.as_deref().unwrap_or_default();
    let project = crate::routes::projects::parse_name(name, "name")
        .map_err(|err| ApiError::bad_request("bad_request", err.message))?;
    access.check_project(Some(&project))?;
    let files = body.files.unwrap_or_default();
    let digests = match digests_of(&state, &files).await? {
        Ok(digests) => digests,
        Err(missing) => return Err(missing_files(missing)),
    };
    let entries: Vec<ManifestEntry> = files
        .iter()
        .map(|file| ManifestEntry {
            path: file.file.clone(),
            digest: digests[file.sha.as_deref().unwrap_or_default()],
            size: file.size,
            mode: file.mode,
        })
        .collect();
    let settings = body
        .project_settings
        .as_ref()
        .map(|settings| settings.to_build_settings(&state))
        .unwrap_or_default()
        .over(&body.top.to_build_settings(&state));
    let mut env: BTreeMap<String, String> = body.env;
    env.extend(body.build.env);
    let options = UploadOptions {
        project: Some(project),
        target,
        settings,
        env: env
            .into_iter()
            .map(|(name, value)| EnvVar {
                name,
                value,
                sensitive: false,
            })
            .collect(),
        by: caller.by().map(str::to_owned),
    };
    match manifest::accept_manifest(&state.services, entries, options).await {
        Ok(deployment) => Ok(Json(deployment_answer(&state, &deployment).await)),
        // A blob went (collected) between its upload and now: ask for it again by SHA-1.
        Err(IngestError::MissingBlobs(gone)) => {
            let missing = digests
                .iter()
                .filter(|(_, digest)| gone.contains(digest))
                .map(|(sha1, _)| sha1.clone())
                .collect();
            Err(missing_files(missing))
        }
        Err(err) => Err(ingest_error(err)),
    }
}

/// The sha256 of every SHA-1 of `files`, or the SHA-1s no upload has recorded.
async fn digests_of(
    state: &AppState,
    files: &[FileRef],
) -> Result<Result<HashMap<String, ContentHash>, Vec<String>>, ApiError> {
    let mut wanted: Vec<String> = Vec::new();
    for file in files {
        let sha = file.sha.as_deref().unwrap_or_default();
        if !is_sha1(sha) {
            return Err(ApiError::bad_request(
                "bad_request",
                format!(
                    "files: {:?} has no sha (the lowercase hex SHA-1 of its bytes)",
                    file.file
                ),
            ));
        }
        wanted.push(sha.to_owned());
    }
    wanted.sort_unstable();
    wanted.dedup();
    let found: Vec<(String, Option<ContentHash>)> = futures_util::stream::iter(wanted)
        .map(|sha| async move {
            let digest = sha256_of(state, &sha).await?;
            Ok::<_, ApiError>((sha, digest))
        })
        .buffered(LOOKUPS_IN_FLIGHT)
        .try_collect()
        .await?;
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, digest)| digest.is_none())
        .map(|(sha, _)| sha.clone())
        .collect();
    if !missing.is_empty() {
        return Ok(Err(missing));
    }
    Ok(Ok(found
        .into_iter()
        .filter_map(|(sha, digest)| digest.map(|digest| (sha, digest)))
        .collect()))
}

/// 400 `missing_files`: upload these (by SHA-1) and send the body again.
fn missing_files(missing: Vec<String>) -> ApiError {
    ApiError::bad_request("missing_files", "Missing files").with_missing(missing)
}

/// The answer to a deployment ingest refused, as the CLI reads it: our upload's answers
/// (`routes::upload`), but a source that is gone says what to do with the CLI, and a full
/// queue is the code the CLI knows.
fn ingest_error(err: IngestError) -> ApiError {
    match err {
        IngestError::SourceGone(_) => ApiError::bad_request(
            "bad_request",
            "this deployment was uploaded as a zip, whose source is not kept after its build: deploy the folder again with --prod instead",
        ),
        err @ IngestError::TooManyQueued { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "builds_rate_limited",
            err.to_string(),
        ),
        other => crate::routes::upload::ingest_error(other),
    }
}

/// `GET /v13/deployments/{idOrHost}`: by id, by its own host, or by a project's host or
/// custom domain (its production); 404 `not_found` otherwise.
pub async fn get(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deployment = wire::deployment(&state, &access, &id).await?;
    Ok(Json(deployment_answer(&state, &deployment).await))
}

/// Query of `GET /v6/deployments`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only this project's.
    pub project_id: Option<String>,
    /// Page size (1–100, default 20).
    pub limit: Option<String>,
    /// Only those created before this time (ms): `pagination.next` of the previous page.
    pub until: Option<String>,
    /// `production` or `preview`.
    pub target: Option<String>,
    /// Comma-separated states (`READY,ERROR`).
    pub state: Option<String>,
}

/// `GET /v6/deployments?projectId=&limit=&until=&target=&state=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    access: Access,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let project = match query.project_id.as_deref().filter(|p| !p.is_empty()) {
        Some(raw) => Some(wire::project(&state, &access, raw).await?.name),
        None => {
            access.check_project(None)?;
            None
        }
    };
    let limit = wire::page_size(query.limit.as_deref()) as usize;
    let until = query.until.and_then(|until| until.parse::<i64>().ok());
    let target = query.target.filter(|t| !t.is_empty());
    let states: Option<Vec<String>> = query.state.filter(|s| !s.is_empty()).map(|s| {
        s.split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .collect()
    });
    let mut rows = Vec::new();
    let mut cursor = None;
    let mut scanned = 0;
    'pages: while scanned < LIST_SCAN {
        let page = state
            .services
            .repository
            .list_deployments(&PageRequest { limit: 100, cursor })
            .await?;
        scanned += page.items.len();
        for deployment in page.items {
            let keep = project
                .as_ref()
                .is_none_or(|p| deployment.project.as_ref() == Some(p))
                && until.is_none_or(|until| wire::ms(deployment.created_at) < until)
                && target
                    .as_deref()
                    .is_none_or(|t| deployment.target.as_str() == t)
                && states
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|s| s == deployment.status.as_str()));
            if keep {
                rows.push(deployment);
                if rows.len() == limit {
                    break 'pages;
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|d| Value::from(wire::ms(d.created_at))))
        .flatten();
    let mut deployments = Vec::with_capacity(rows.len());
    for deployment in &rows {
        deployments.push(deployment_answer(&state, deployment).await);
    }
    Ok(Json(json!({
        "pagination": pagination(deployments.len(), next),
        "deployments": deployments,
    })))
}

/// `DELETE /now/deployments/{id}` (and `/v13/deployments/{id}`): as `DELETE
/// /api/v1/deployments/{id}`. Exactly 200, which `vercel rm` requires.
pub async fn delete(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deployment = wire::deployment(&state, &access, &id).await?;
    deployment_service::delete(&state.services, &deployment.id, caller.by()).await?;
    // Collect right away too, as our own delete does.
    let services = state.services.clone();
    tokio::spawn(async move {
        if let Err(err) = deployment_service::collect_garbage(&services, 1000).await {
            tracing::warn!(error = %err, "blob collection after delete failed");
        }
    });
    Ok(Json(
        json!({"uid": deployment.id.to_string(), "state": "DELETED"}),
    ))
}

/// `GET /now/deployments/{id}/aliases`: where it is served besides its own host — its
/// project's addresses, when it is production. `rm` warns with them.
pub async fn aliases(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deployment = wire::deployment(&state, &access, &id).await?;
    let answer = deployment_answer(&state, &deployment).await;
    let created = answer["createdAt"].clone();
    let aliases: Vec<Value> = answer["alias"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|alias| {
            json!({
                "uid": alias,
                "alias": alias,
                "deploymentId": deployment.id.to_string(),
                "created": created,
                "createdAt": created,
            })
        })
        .collect();
    Ok(Json(json!({"aliases": aliases})))
}

/// `GET /v11/deployments/{id}/builds`: `inspect` lists a deployment's serverless builds;
/// ours have none.
pub async fn builds(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    wire::deployment(&state, &access, &id).await?;
    Ok(Json(json!({"builds": []})))
}
