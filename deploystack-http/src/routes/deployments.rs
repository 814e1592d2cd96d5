//! The deployments API: `GET /api/v1/deployments[/{id}[/logs]]`, `POST …/{id}/cancel` and
//! `DELETE …/{id}`.
//!
//! # Following a build log
//! `GET …/{id}/logs?follow=true` answers `text/event-stream`: every stored line, then new
//! ones as the worker stores them (it does so every second while building), each as
//! `event: log` with the line as JSON and its sequence number as `id:`; then `event: end`
//! with the final status, and the stream closes. The lines are read through
//! [`LogTail`], which says how it polls and when it ends. A
//! client that reconnects with `Last-Event-ID` continues after that line.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use deploystack_core::model::{
    BuildSettings, Deployment, DeploymentError, DeploymentId, DeploymentStatus, LogLine,
    PageRequest, ProjectName, StoredLogLine, Target,
};
use deploystack_core::services::deployments;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// How often a followed log sends a comment when nothing else happens, so proxies and
/// clients keep an idle connection open.
pub const FOLLOW_KEEP_ALIVE: Duration = Duration::from_secs(15);

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::log_tail::{LogTail, Tailed};
use crate::state::AppState;

/// Links a client follows from a deployment.
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    /// The id, as `POST /deploy` clients expect it.
    pub deployment_id: DeploymentId,
    /// The same id, under the name most APIs use.
    pub id: DeploymentId,
    /// Where it is (or will be) served: its own host, `http://<id>.<base-domain>[:port]/`
    /// (on `POST /deploy`, the path-based address, as that route always answered).
    pub url: String,
    /// The path-based address on the platform's host, `<public-url>/<id>/`.
    pub path_url: String,
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
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last status change.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When it became `READY`.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ready_at: Option<OffsetDateTime>,
    /// The overrides of detection it was uploaded with (`{}`: detect everything).
    pub build_settings: BuildSettings,
    /// Its build's environment variables: names, and values of those not sensitive.
    pub env: Vec<EnvVarView>,
    /// Who created it: `token <name> (<id>)` for an upload made with a token, `api
    /// (<address>)` for a tokenless local one; `null` for deployments made without a caller
    /// (by the library) or before this was recorded.
    pub created_by: Option<String>,
    /// Links.
    pub links: Links,
}

/// An environment variable as the API shows it. Sensitive values are write-only, as on
/// Vercel: given at upload, used by the build, never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvVarView {
    /// Its name.
    pub name: String,
    /// Whether its value is write-only.
    pub sensitive: bool,
    /// Its value; absent for sensitive variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
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
            path_url: state.path_url(&id),
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
            build_settings: deployment.settings,
            created_by: deployment.created_by,
            // Stored sealed (`services::env`): opened for the view, sensitive ones never.
            // A value whose key is gone is left out rather than shown sealed.
            env: deployment
                .env
                .into_iter()
                .map(|var| EnvVarView {
                    value: (!var.sensitive)
                        .then(|| {
                            deploystack_core::services::env::open_upload_value(
                                &state.services.keyring,
                                &var.value,
                            )
                            .ok()
                        })
                        .flatten(),
                    name: var.name,
                    sensitive: var.sensitive,
                })
                .collect(),
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
#[utoipa::path(
    get,
    path = "/v1/deployments/{id}",
    tag = "deployments",
    summary = "Get a deployment",
    params(("id" = DeploymentId, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment", body = DeploymentView),
        (status = 400, description = "`invalid_deployment_id`: not a deployment id", body = ErrorBody),
        (status = 404, description = "`deployment_not_found`", body = ErrorBody),
        (status = 410, description = "`deployment_deleted`: it was deleted", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let deployment = live(&state, &raw).await?;
    Ok(Json(DeploymentView::new(&state, deployment)))
}

/// Query of the list endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of deployments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListView {
    /// Newest first.
    pub deployments: Vec<DeploymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/deployments?limit=&cursor=`: newest first.
#[utoipa::path(
    get,
    path = "/v1/deployments",
    tag = "deployments",
    summary = "List deployments, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of live deployments", body = ListView),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = ErrorBody),
    )
)]
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
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsView {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its status, so a client knows whether more lines may come.
    pub status: DeploymentStatus,
    /// Every line of every attempt, in order.
    pub lines: Vec<LogLine>,
}

/// Query of the logs endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// `true` (or `1`) to stream the log as server-sent events until the build ends.
    pub follow: Option<String>,
}

/// `GET /api/v1/deployments/{id}/logs[?follow=true]`: the whole log as JSON, or followed
/// as server-sent events (see the module docs).
#[utoipa::path(
    get,
    path = "/v1/deployments/{id}/logs",
    tag = "deployments",
    summary = "Read or follow a build log",
    description = "The whole log as JSON; with `follow=true`, a `text/event-stream` of `log` events (each line as JSON, its sequence number as the event id) that ends with an `end` event carrying the final status. A client that reconnects with `Last-Event-ID` continues after that line.",
    params(
        ("id" = DeploymentId, Path, description = "The deployment's id"),
        LogsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "With `follow`: continue after this line"),
    ),
    responses(
        (status = 200, description = "The log", content(
            (LogsView = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "`invalid_deployment_id` or `invalid_query`", body = ErrorBody),
        (status = 404, description = "`deployment_not_found`", body = ErrorBody),
        (status = 410, description = "`deployment_deleted`", body = ErrorBody),
    )
)]
pub async fn logs(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("invalid_query", err.body_text()))?;
    let follow = match query.follow.as_deref() {
        None | Some("" | "false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("follow must be true or false, not {other:?}"),
            ));
        }
    };
    let deployment = live(&state, &raw).await?;
    if follow {
        // A reconnecting client continues after the last line it got.
        let after = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        return Ok(follow_logs(state, deployment.id, after).into_response());
    }
    let lines = state.services.repository.logs(&deployment.id).await?;
    Ok(Json(LogsView {
        deployment_id: deployment.id,
        status: deployment.status,
        lines,
    })
    .into_response())
}

/// The event stream of a followed log: stored lines, new lines, then `end`. It ends
/// without `end` on shutdown or when the repository fails: the client reconnects with
/// `Last-Event-ID`.
fn follow_logs(
    state: AppState,
    id: DeploymentId,
    after: i64,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let tail = LogTail::new(state, id, after, true);
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = match tail.next().await? {
            Tailed::Line(stored) => log_event(&stored),
            Tailed::End(deployment) => end_event(deployment.status),
        };
        Some((Ok(event), tail))
    });
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(FOLLOW_KEEP_ALIVE)
            .text("keep-alive"),
    )
}

fn log_event(stored: &StoredLogLine) -> SseEvent {
    let event = SseEvent::default().event("log").id(stored.seq.to_string());
    match event.json_data(&stored.line) {
        Ok(event) => event,
        // A log line always serializes; this keeps the stream honest if one ever did not.
        Err(_) => SseEvent::default().event("log").comment("unencodable line"),
    }
}

fn end_event(status: DeploymentStatus) -> SseEvent {
    SseEvent::default()
        .event("end")
        .data(serde_json::json!({ "status": status }).to_string())
}

/// `POST /api/v1/deployments/{id}/cancel`: stop a queued or running build. 200 with the
/// deployment, now `CANCELED`; 409 `deployment_final` if it is final already.
#[utoipa::path(
    post,
    path = "/v1/deployments/{id}/cancel",
    tag = "deployments",
    summary = "Cancel a queued or running build",
    params(("id" = DeploymentId, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment, now `CANCELED`", body = DeploymentView),
        (status = 400, description = "`invalid_deployment_id`", body = ErrorBody),
        (status = 404, description = "`deployment_not_found`", body = ErrorBody),
        (status = 409, description = "`deployment_final`: it is READY, ERROR or CANCELED already", body = ErrorBody),
        (status = 410, description = "`deployment_deleted`", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let deployment = live(&state, &raw).await?;
    if deployment.status.is_final() {
        return Err(ApiError::deployment_final(deployment.status));
    }
    let canceled = deployments::cancel(&state.services, &deployment.id, caller.by()).await?;
    Ok(Json(DeploymentView::new(&state, canceled)))
}

/// `DELETE /api/v1/deployments/{id}`: stops serving at once; blobs nothing else references
/// are collected once the grace period has passed.
#[utoipa::path(
    delete,
    path = "/v1/deployments/{id}",
    tag = "deployments",
    summary = "Delete a deployment",
    description = "Stops serving it at once (its URLs answer 410 afterwards) and cancels its build if it has not finished. Blobs no other deployment uses are collected after the grace period.",
    params(("id" = DeploymentId, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "Deleted", body = DeletedView),
        (status = 400, description = "`invalid_deployment_id`", body = ErrorBody),
        (status = 404, description = "`deployment_not_found`", body = ErrorBody),
        (status = 410, description = "`deployment_deleted`: deleted already", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<DeletedView>, ApiError> {
    let deployment = live(&state, &raw).await?;
    let before = deployments::delete(&state.services, &deployment.id, caller.by()).await?;
    // Collect right away too: with a zero grace period the blobs go now.
    let services = state.services.clone();
    tokio::spawn(async move {
        if let Err(err) = deployments::collect_garbage(&services, 1000).await {
            tracing::warn!(error = %err, "blob collection after delete failed");
        }
    });
    Ok(Json(DeletedView {
        deployment_id: before.id,
        deleted: true,
        previous_status: before.status,
    }))
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedView {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Always `true`.
    pub deleted: bool,
    /// Its status before the delete (`QUEUED` and `BUILDING` ones are now `CANCELED`).
    pub previous_status: DeploymentStatus,
}
