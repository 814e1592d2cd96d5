//! The API described: `/openapi.json`, an OpenAPI 3.1 document, and `/docs`, a Swagger UI
//! page to read it and try requests. The page's scripts and styles are compiled into the
//! binary, so it works on a machine with no internet access.
//!
//! ## Why the document is generated from the router
//! Routes are registered through utoipa-axum's `routes!` (see [`super::router`]), which
//! takes each handler together with its `#[utoipa::path]` description. A route cannot be
//! served without being described, and its path and method in the document are the ones
//! the router matches, so the two cannot drift apart the way a hand-kept file would.

mod rate_limits;
mod security;

use axum::Router;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Where the docs page is served.
pub const DOCS_PATH: &str = "/docs";

/// The whole document: the operations the router collected in `paths`, plus what the API
/// is, its groups of operations, who may call each (`security`) and the 429 of the rate
/// limits on those they apply to (`rate_limits`).
pub fn document(mut paths: OpenApi) -> OpenApi {
    paths.info = InfoBuilder::new()
        .title("DeployStack API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Upload sites, follow their builds, manage their deployments and projects. Every \
             answer under `/api` is JSON; errors are `{\"error\": {\"code\", \"message\"}}` with the status \
             that fits. docs/api.md in the repository walks through the API with curl.",
        ))
        .build();
    paths.tags = Some(vec![
        TagBuilder::new()
            .name("deployments")
            .description(Some(
                "Uploads and the deployments they become: status, build logs, cancel, delete.",
            ))
            .build(),
        TagBuilder::new()
            .name("files")
            .description(Some(
                "Content-addressed uploads: ask which files (by sha256) the server lacks, send                  only those, then create the deployment from a JSON manifest of them.",
            ))
            .build(),
        TagBuilder::new()
            .name("projects")
            .description(Some(
                "Projects: production and previews, promote and rollback, the whole document \
                 as desired state, environment variables and custom domains.",
            ))
            .build(),
        TagBuilder::new()
            .name("tokens")
            .description(Some(
                "API tokens: `Authorization: Bearer <token>`, with the scopes read, deploy or \
                 admin, optionally limited to projects. Missing or invalid: 401; valid but not \
                 allowed: 403 (docs/security.md).",
            ))
            .build(),
        TagBuilder::new()
            .name("operations")
            .description(Some(
                "For load balancers and monitoring: liveness, readiness, metrics.",
            ))
            .build(),
    ]);
    rate_limits::describe(security::describe(paths))
}

/// `/openapi.json` and the `/docs` page (`/docs` redirects to `/docs/`).
pub fn router(document: OpenApi) -> Router<AppState> {
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, document).into()
}
