//! The router: one module per area of the HTTP surface.
//!
//! - [`upload`]: `POST /deploy` and `POST /api/v1/deployments` — streaming zip uploads.
//! - [`deployments`]: the deployments API (get, list, cancel, delete; logs, as JSON or
//!   followed live as server-sent events).
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
use deploystack_core::model::DeploymentId;

use crate::state::AppState;

/// Whether a platform request is one of the upload routes below, which stream their body
/// under their own time limit rather than the request timeout; kept beside the routes so the
/// two lists cannot drift apart.
pub fn is_upload(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/deploy" | "/api/v1/deployments")
}

/// Whether a platform request path is a site path, `/<deployment-id>` or below: no route
/// above starts with a deployment id, so the router would hand it to [`site::serve`] anyway.
/// `crate::dispatch` uses this to skip the router on the serving hot path.
pub fn is_site_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|first| first.parse::<DeploymentId>().is_ok())
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
        .route("/api/v1/deployments/{id}/cancel", post(deployments::cancel))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(site::serve)
        // Uploads enforce their own streaming limit (413 mid-stream, temp file removed).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_a_deployment_id_are_site_paths() {
        let id = "0123456789abcdef0123456789abcdef";
        for path in [format!("/{id}"), format!("/{id}/"), format!("/{id}/a/b.js")] {
            assert!(is_site_path(&path), "{path}");
        }
        for path in [
            "/",
            "/deploy",
            "/api/v1/deployments",
            "/metrics",
            "/0123",
            "",
        ] {
            assert!(!is_site_path(path), "{path}");
        }
    }
}
