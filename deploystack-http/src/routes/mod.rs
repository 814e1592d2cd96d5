//! The router: one module per area of the HTTP surface.
//!
//! - [`upload`]: `POST /deploy` and `POST /api/v1/deployments` — streaming zip uploads (and,
//!   with a JSON body, [`manifest`]: a deployment from blobs uploaded before).
//! - [`files`]: content-addressed uploads — which blobs are missing, and one blob's bytes.
//! - [`deployments`]: the deployments API (get, list, cancel, delete; logs, as JSON or
//!   followed live as server-sent events).
//! - [`projects`]: the projects API (create, list, get, change, delete; promote, rollback and
//!   the history of production).
//! - [`desired`]: `PUT /api/v1/projects/{name}`, a project's whole document as desired state.
//! - [`domains`]: custom domains of projects (add, list, get, verify, remove).
//! - [`env`](mod@env): a project's environment variables (values sealed at rest; who sees which).
//! - [`tokens`]: API tokens (make, list, revoke); who may do what is
//!   `crate::middleware::auth`. [`whoami`]: who the server takes the caller for.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: `/metrics` for Prometheus — cache hit rates, queue depth.
//! - [`docs`]: `/openapi.json`, generated from the handlers as they are registered below,
//!   and the `/docs` page.
//! - [`vercel`]: the subset of Vercel's REST API the `vercel` CLI needs, mapped onto our
//!   services; not part of our API (nor of `/openapi.json`).
//! - [`site`]: everything else — serving deployed sites at `/<deployment-id>/…`.
//!
//! ## Why the API has a router of its own
//! Every answer under `/api` is JSON, errors included, so an API client never has to parse a
//! text page: a path no API route matches (dot segments included, which the router takes
//! literally) is a JSON 404 `not_found` instead of falling through to the site handler, and a
//! route asked with a method it does not take is a JSON 405 `method_not_allowed`, with the
//! `Allow` header the router adds.

pub mod deployments;
pub mod desired;
pub mod docs;
pub mod domains;
pub mod env;
pub mod files;
pub mod health;
pub mod log_tail;
pub mod manifest;
pub mod metrics;
pub mod projects;
pub mod site;
pub mod tokens;
pub mod upload;
pub mod vercel;
pub mod whoami;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::routing::any;
use deploystack_core::model::DeploymentId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::middleware::{auth, headers, idempotency, rate_limit};
use crate::state::AppState;

/// Whether a platform request is one of the upload routes below, which stream their body
/// under their own time limit rather than the request timeout and are the `deploys` class of
/// the rate limits (every route that creates a deployment, the `vercel` CLI's too); kept
/// beside the routes so the lists cannot drift apart.
pub fn is_upload(method: &Method, path: &str) -> bool {
    (method == Method::POST && matches!(path, "/deploy" | "/api/v1/deployments"))
        || vercel::creates_deployment(method, path)
}

/// Whether a platform request is one of the blob routes of [`files`], or the `vercel` CLI's
/// file upload: not counted against the rate limits (see [`files`]) and left to their own
/// time limits rather than the request timeout.
pub fn is_blob_upload(method: &Method, path: &str) -> bool {
    path == "/api/v1/files"
        || path.starts_with("/api/v1/files/")
        || vercel::receives_file(method, path)
}

/// Whether a platform request path is under `/api`, where every answer is JSON.
pub fn is_api_path(path: &str) -> bool {
    path.strip_prefix("/api")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
    let (api, api_paths) = api().split_for_parts();
    let api = api
        .fallback(api_not_found)
        // After the routes: it applies to those registered before it.
        .method_not_allowed_fallback(api_method_not_allowed);
    let (platform, platform_paths) = OpenApiRouter::new()
        .routes(routes!(upload::deploy))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .split_for_parts();
    let document = docs::document(platform_paths.nest("/api", api_paths));
    platform
        .nest("/api", api)
        // The nested router takes `/api` and `/api/<something>`; its fallback never sees
        // `/api/` itself.
        .route("/api/", any(api_not_found))
        .merge(docs::router(document))
        // Outside the document: not our API, but wrapped by the same layers below.
        .merge(vercel::router())
        // A retried POST with an Idempotency-Key gets the first answer.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        ))
        .fallback(fallback)
        // How often a caller may: inside auth (a caller is known by its token), outside
        // idempotency (a refused request takes no key).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::guard,
        ))
        // Who may do what: around every route and the fallback, outside idempotency.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        // Refusals included: the platform's security headers on every answer.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::platform,
        ))
        // Uploads enforce their own streaming limit (413 mid-stream, temp file removed).
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The routes under `/api`, each registered with its description (see [`docs`]). Handlers
/// sharing a path go into one `routes!`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload::upload, deployments::list))
        .routes(routes!(deployments::get, deployments::delete))
        .routes(routes!(deployments::logs))
        .routes(routes!(deployments::cancel))
        .routes(routes!(files::missing))
        .routes(routes!(files::put))
        .routes(routes!(files::put_batch))
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(
            projects::get,
            projects::update,
            desired::put,
            projects::delete
        ))
        .routes(routes!(projects::promote))
        .routes(routes!(projects::rollback))
        .routes(routes!(projects::production))
        .routes(routes!(projects::rotate_bypass))
        .routes(routes!(domains::list, domains::create))
        .routes(routes!(domains::get, domains::delete))
        .routes(routes!(domains::verify))
        .routes(routes!(env::list, env::create))
        .routes(routes!(env::get, env::update, env::delete))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(whoami::whoami))
}

/// What no route matched: a site path, or a JSON 404 for a path of the `vercel` CLI's API
/// (which reads every error as JSON).
async fn fallback(
    state: axum::extract::State<AppState>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if vercel::is_vercel_path(uri.path()) {
        return vercel::wire::not_found("route").into_response();
    }
    site::serve(state, method, uri, headers).await
}

async fn api_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no API route has this path; the routes are listed in docs/api.md",
    )
}

async fn api_method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this API route does not take this method; the Allow header lists those it takes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_api_and_its_prefix_alone_is_not() {
        for path in ["/api", "/api/", "/api/v1/deployments", "/api/../etc"] {
            assert!(is_api_path(path), "{path}");
        }
        for path in ["/apis", "/", "/deploy", "/x/api/v1"] {
            assert!(!is_api_path(path), "{path}");
        }
    }

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
