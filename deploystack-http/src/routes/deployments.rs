//! The deployments API: `GET /api/v1/deployments[/{id}[/logs]]` and `DELETE …/{id}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use deploystack_core::model::{
    Deployment, DeploymentError, DeploymentId, DeploymentStatus, LogLine, PageRequest, ProjectName,
    Target,
};
use deploystack_core::services::deployments;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;

/// Links a client follows from a deployment.
#[derive(Debug, Serialize)]
pub struct Links {
    /// This resource.
    #[serde(rename = "self")]
    pub self_: String,
    /// Its build log.
    pub logs: String,
    /// Where it is served.
    pub url: String,
}

/// A deployment as the API shows it: what a client needs, nothing internal (storage keys and
/// lease bookkeeping stay inside).
#[derive(Debug, Serialize)]
pub struct DeploymentView {
    /// The id, as `POST /deploy` clients expect it.
    pub deployment_id: DeploymentId,
    /// The same id, under the name most APIs use.
    pub id: DeploymentId,
    /// Where it is (or will be) served.
    pub url: String,
    /// The API resource to poll for its status.
    pub status_url: String,
    /// `QUEUED`, `BUILDING`, `READY`, `ERROR` or `CANCELED`.
    pub status: DeploymentStatus,
    /// The project, if any.
    pub project: Option<ProjectName>,
    /// `preview` or `production`.
    pub target: Target,
    /// How many build attempts were started.
    pub attempt: i64,
    /// Why it failed, when `status` is `ERROR`.
    pub error: Option<DeploymentError>,
    /// Files published.
    pub file_count: i64,
    /// Bytes published.
    pub total_bytes: i64,
    /// When it was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last status change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it became `READY`.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    /// Links.
    pub links: Links,
}

impl DeploymentView {
    /// The view of `deployment` under the state's public URL.
    pub fn new(state: &AppState, deployment: Deployment) -> Self {
        let id = deployment.id;
        let status_url = state.status_url(&id);
        Self {
            deployment_id: id,
            id,
            url: state.deployment_url(&id),
            links: Links {
                self_: status_url.clone(),
                logs: format!("{status_url}/logs"),
                url: state.deployment_url(&id),
            },
            status_url,
            status: deployment.status,
            project: deployment.project,
            target: deployment.target,
            attempt: deployment.attempt,
            error: deployment.error,
            file_count: deployment.file_count,
            total_bytes: deployment.total_bytes,
            created_at: deployment.created_at,
            updated_at: deployment.updated_at,
            ready_at: deployment.ready_at,
        }
    }
}

pub(crate) fn parse_id(raw: &str) -> Result<DeploymentId, ApiError> {
    raw.parse()
        .map_err(|err: deploystack_core::model::InvalidId| {
            ApiError::bad_request("invalid_deployment_id", err.to_string())
        })
}

async fn live(state: &AppState, raw: &str) -> Result<Deployment, ApiError> {
    let id = parse_id(raw)?;
    let deployment = state.services.repository.get_deployment(&id).await?;
    if deployment.deleted_at.is_some() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "deployment_deleted",
            "this deployment was deleted",
        ));
    }
    Ok(deployment)
}

/// `GET /api/v1/deployments/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let deployment = live(&state, &raw).await?;
    Ok(Json(DeploymentView::new(&state, deployment)))
}

/// Query of the list endpoint.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of deployments.
#[derive(Debug, Serialize)]
pub struct ListView {
    /// Newest first.
    pub deployments: Vec<DeploymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/deployments?limit=&cursor=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListView>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("invalid_query", err.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit must be between 1 and 100",
        ));
    }
    let page = state
        .services
        .repository
        .list_deployments(&PageRequest {
            limit,
            cursor: query.cursor,
        })
        .await
        .map_err(|err| match err {
            deploystack_core::repository::RepositoryError::Conflict(_) => {
                ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned")
            }
            other => other.into(),
        })?;
    Ok(Json(ListView {
        deployments: page
            .items
            .into_iter()
            .map(|d| DeploymentView::new(&state, d))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The build log of a deployment.
#[derive(Debug, Serialize)]
pub struct LogsView {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its status, so a client knows whether more lines may come.
    pub status: DeploymentStatus,
    /// Every line of every attempt, in order.
    pub lines: Vec<LogLine>,
}

/// `GET /api/v1/deployments/{id}/logs`.
pub async fn logs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<LogsView>, ApiError> {
    let deployment = live(&state, &raw).await?;
    let lines = state.services.repository.logs(&deployment.id).await?;
    Ok(Json(LogsView {
        deployment_id: deployment.id,
        status: deployment.status,
        lines,
    }))
}

/// `DELETE /api/v1/deployments/{id}`: stops serving at once; blobs nothing else references
/// are collected once the grace period has passed.
pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let deployment = live(&state, &raw).await?;
    let before = deployments::delete(&state.services, &deployment.id).await?;
    // Collect right away too: with a zero grace period the blobs go now.
    let services = state.services.clone();
    tokio::spawn(async move {
        if let Err(err) = deployments::collect_garbage(&services, 1000).await {
            tracing::warn!(error = %err, "blob collection after delete failed");
        }
    });
    Ok(Json(serde_json::json!({
        "deployment_id": before.id,
        "deleted": true,
        "previous_status": before.status,
    })))
}
