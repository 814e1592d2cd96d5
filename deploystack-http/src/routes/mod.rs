//! The router: one module per area of the HTTP surface.
//!
//! - [`upload`]: `POST /deploy` and `POST /api/v1/deployments` — streaming zip uploads.
//! - [`deployments`]: the deployments API (get, list, logs, delete).
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: `/metrics` for Prometheus — cache hit rates, queue depth.
//! - [`site`]: everything else — serving deployed sites at `/<deployment-id>/…`.

pub mod deployments;
pub mod health;
pub mod metrics;
pub mod site;
pub mod upload;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{get, post};

use crate::state::AppState;

/// Whether a platform request is one of the upload routes below, which stream their body
/// under their own time limit rather than the request timeout; kept beside the routes so the
/// two lists cannot drift apart.
pub fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/deploy" | "/api/v1/deployments")
}

/// The whole HTTP surface of the platform host (deployment hosts never reach it).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/deploy", post(upload::upload))
        .route(
            "/api/v1/deployments",
            post(upload::upload).get(deployments::list),
        )
        .route(
            "/api/v1/deployments/{id}",
            get(deployments::get).delete(deployments::delete),
        )
        .route("/api/v1/deployments/{id}/logs", get(deployments::logs))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(site::serve)
        // Uploads enforce their own streaming limit (413 mid-stream, temp file removed).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}
