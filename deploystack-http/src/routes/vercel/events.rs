//! The build log as the CLI reads it — `GET /v3/now/deployments/{id}/events` — and the
//! runtime-log stub `GET /v1/projects/{project}/deployments/{id}/runtime-logs`.
//!
//! # The build log
//! Newline-delimited JSON, one object per line of our build log:
//! `{"type": "stdout"|"stderr", "created": <ms>, "date": <ms>, "text", "level", "id",
//! "serial", "deploymentId"}` (`stderr` lines are `level: "error"`). With `follow=1` (what
//! `vercel deploy` and `inspect --logs --wait` send) the answer stays open and lines are
//! added as the worker stores them (read through `crate::routes::log_tail`, as our own
//! followed log is), and it closes once the build has ended and its last lines are in. Without `follow` (`inspect --logs` sends `follow=` empty) it sends what
//! there is and closes at once. A failed build ends with a line holding its error message
//! at level `error`: after a failure the CLI prints the log up to that line.
//!
//! # Runtime logs
//! DeployStack keeps no per-request log of a deployment (its access log goes to the
//! server's own log), so `vercel logs` gets one line saying so, and the stream closes
//! (which the CLI takes as the end, exit 0).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deploystack_core::model::{
    Deployment, DeploymentId, DeploymentStatus, LogStream, StoredLogLine,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::wire::{self, ms};
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::log_tail::{LogTail, Tailed};
use crate::state::AppState;

/// The content type of both streams.
const NDJSON: HeaderValue = HeaderValue::from_static("application/x-ndjson");

/// `GET /v3/now/deployments/{id}/events?follow=1|`: see the module docs.
pub async fn build_log(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let deployment = wire::deployment(&state, &access, &id).await?;
    let follow = query
        .get("follow")
        .is_some_and(|value| value == "1" || value == "true");
    let id = deployment.id;
    let tail = LogTail::new(state, id, 0, follow);
    let lines = futures_util::stream::unfold(tail, move |mut tail| async move {
        let line = match tail.next().await? {
            Tailed::Line(stored) => encode(&id, &stored),
            Tailed::End(deployment) => failure(&deployment)?,
        };
        Some((Ok::<_, Infallible>(line), tail))
    });
    Ok(ndjson(Body::from_stream(lines)))
}

fn ndjson(body: Body) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, NDJSON);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The line a failed build's stream ends with, holding its error; `None` for any other end.
fn failure(deployment: &Deployment) -> Option<Bytes> {
    if deployment.status != DeploymentStatus::Error {
        return None;
    }
    let message = deployment
        .error
        .as_ref()
        .map_or("the build failed".to_owned(), |e| {
            format!("{}: {}", e.code, e.message)
        });
    Some(line_of(json!({
        "type": "stderr",
        "created": ms(deployment.updated_at),
        "date": ms(deployment.updated_at),
        "text": message,
        "level": "error",
        "deploymentId": deployment.id.to_string(),
    })))
}

/// One stored log line as the CLI reads it.
fn encode(id: &DeploymentId, stored: &StoredLogLine) -> Bytes {
    let line = &stored.line;
    let (kind, level) = match line.stream {
        LogStream::Stderr => ("stderr", "error"),
        LogStream::Stdout | LogStream::System => ("stdout", "info"),
    };
    let at = ms(line.at);
    line_of(json!({
        "type": kind,
        "created": at,
        "date": at,
        "text": line.message,
        "level": level,
        "id": stored.seq.to_string(),
        "serial": stored.seq.to_string(),
        "deploymentId": id.to_string(),
    }))
}

fn line_of(value: Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// `GET /v1/projects/{project}/deployments/{id}/runtime-logs`: see the module docs. The
/// CLI asks only for `READY` deployments.
pub async fn runtime_logs(
    State(state): State<AppState>,
    access: Access,
    Path((_project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let deployment = wire::deployment(&state, &access, &id).await?;
    let now = ms(OffsetDateTime::now_utc());
    let line = line_of(json!({
        "rowId": format!("{}-0", deployment.id),
        "level": "info",
        "source": "static",
        "domain": wire::deployment_host(&state, &deployment.id),
        "requestMethod": "",
        "requestPath": "",
        "responseStatusCode": 0,
        "message": "DeployStack keeps no runtime logs per deployment: a static deployment's requests are in the server's access log (see docs/vercel.md)",
        "messageTruncated": false,
        "timestampInMs": now,
    }));
    Ok(ndjson(Body::from(line)))
}
