//! The subset of Vercel's REST API that the official `vercel` CLI (48.x) needs to deploy to
//! and manage a DeployStack server: `vercel --api http://HOST --token T deploy`, `ls`,
//! `inspect`, `logs`, `rm`, `promote`, `rollback`, `env add|ls|rm`, `domains add|ls|inspect`.
//! Every route maps the Vercel wire onto our own services (`deploystack_core::services`);
//! nothing Vercel-specific enters core. `docs/vercel.md` tells users how to point the CLI
//! here and what does not work.
//!
//! - [`user`]: who the caller is (`/v2/user`) and the one team (`/v1/teams`, `/teams/{id}`).
//! - [`projects`]: projects (`/v9/projects…`, create, delete).
//! - [`deployments`]: create from a manifest (`POST /v13/deployments`), get by id or host,
//!   list, remove.
//! - [`files`]: `POST /v2/files`, one file's bytes named by their SHA-1.
//! - [`events`]: the build log as a stream of JSON lines, and the runtime-log stub.
//! - [`env`](mod@env): a project's environment variables and `env pull`.
//! - [`domains`]: custom domains (`POST /projects/{name}/alias`, `/v5/domains`, …).
//! - [`promote`]: promote and rollback, and `lastAliasRequest`.
//! - [`wire`]: the objects as the CLI reads them (deployment, project, team), and errors.
//!
//! # Wire rules (from running the CLI 48.12.1, see `docs/vercel.md`)
//! - Only on the platform host: `crate::dispatch` sends only platform-host requests to the
//!   router, so a deployment's, project's or custom domain's host never answers these paths.
//! - Paths may come with a doubled slash (`--api http://host/` sends `//v13/deployments`):
//!   [`tolerate_doubled_slashes`] collapses them before routing.
//! - Every answer is `Content-Type: application/json` (the CLI reads a 2xx body only when it
//!   says so), errors as `{"error": {"code", "message"}}`; the two log streams are
//!   newline-delimited JSON (`application/x-ndjson`).
//! - Bodies are JSON whatever their content type: `domains add` sends `text/plain`.
//! - Unknown query parameters are ignored (`teamId`, `source`, `skipAutoDetectionConfirmation`).
//! - Unknown projects and deployments are 404, never 400: `vercel rm <url>` asks for a
//!   project named after the URL and must be told there is none.
//! - A bad or missing token is 403, not 401 (`crate::middleware::auth`): the CLI reports 403
//!   as "the token is not valid" and has no handling for 401. Our own API keeps 401.
//! - Rate limits apply as to our API (`crate::middleware::rate_limit`); 429 `rate_limited`.
//! - `POST /v2/files` answers exactly 200 on success: the CLI treats any other 2xx as an error.
//! - A deployment's `aliasAssigned` is true exactly when it is `READY` (previews too), or the
//!   CLI waits forever after the build.
//!
//! # The account model
//! Vercel's "northstar" model: the caller is a user whose default team is this server,
//! `team_deploystack`, which `/v1/teams` lists and `/teams/{id}` answers. Every project is
//! the team's; `teamId` on any request is accepted and ignored. A project's `id` is its name
//! (our projects have no other id), so the `.vercel/project.json` the CLI writes names it.

pub mod deployments;
pub mod domains;
pub mod env;
pub mod events;
pub mod files;
pub mod projects;
pub mod promote;
pub mod user;
pub mod wire;

#[cfg(test)]
mod wire_tests;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};

use crate::state::AppState;

/// The unversioned first path segments of routes here; the rest start with a version,
/// `v<number>`. Our own API lives under `/api`, sites under `/<deployment-id>`: none of these
/// collide.
const UNVERSIONED: [&str; 3] = ["now", "teams", "projects"];

/// The non-empty segments of `path`, so `//v13/deployments` reads as `/v13/deployments`.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Whether `path` (a platform path, doubled slashes allowed) belongs to the Vercel API here:
/// its requests get 403 rather than 401 for a bad token, JSON 404s and the API's limits.
pub fn is_vercel_path(path: &str) -> bool {
    path.split('/')
        .find(|s| !s.is_empty())
        .is_some_and(|first| {
            UNVERSIONED.contains(&first)
                || first
                    .strip_prefix('v')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Whether the request creates a deployment (`POST /v13/deployments`): the `deploys` class of
/// the rate limits, as our uploads.
pub fn creates_deployment(method: &Method, path: &str) -> bool {
    method == Method::POST && segments(path) == ["v13", "deployments"]
}

/// Whether the request streams a file's bytes (`POST /v2/files`): like our own blob upload it
/// is neither rate limited per file (a deploy sends hundreds at once) nor held to the request
/// timeout (a large file from a slow client); `blobs::max_blob_bytes` bounds it.
pub fn receives_file(method: &Method, path: &str) -> bool {
    method == Method::POST
        && matches!(
            segments(path).as_slice(),
            ["v2", "files"] | ["v2", "now", "files"]
        )
}

/// `uri` with runs of slashes in its path collapsed, when that path is one of ours (see the
/// module docs); any other path is left as it came, so the rest of the platform answers
/// exactly what it always did.
pub fn tolerate_doubled_slashes(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains("//") || !is_vercel_path(path) {
        return None;
    }
    let mut collapsed = String::with_capacity(path.len() + 1);
    for segment in segments(path) {
        collapsed.push('/');
        collapsed.push_str(segment);
    }
    if path.ends_with('/') {
        collapsed.push('/');
    }
    if let Some(query) = uri.query() {
        collapsed.push('?');
        collapsed.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = collapsed.parse().ok();
    Uri::from_parts(parts).ok()
}

/// The routes, merged into the platform's router by `crate::routes::router` (outside the
/// OpenAPI document: they are not part of our API).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/user", get(user::user))
        .route("/v1/teams", get(user::teams))
        .route("/teams/{id}", get(user::team))
        .route("/v9/projects", get(projects::list).post(projects::create))
        .route("/v1/projects", post(projects::create))
        .route(
            "/v9/projects/{id}",
            get(projects::get).delete(projects::delete),
        )
        .route("/projects/{id}", delete(projects::delete))
        .route(
            "/v9/projects/{id}/link",
            post(projects::link).delete(projects::link),
        )
        .route("/v13/deployments", post(deployments::create))
        .route(
            "/v13/deployments/{id}",
            get(deployments::get).delete(deployments::delete),
        )
        .route("/now/deployments/{id}", delete(deployments::delete))
        .route("/v6/deployments", get(deployments::list))
        .route("/v11/deployments/{id}/builds", get(deployments::builds))
        .route("/now/deployments/{id}/aliases", get(deployments::aliases))
        .route("/v2/deployments/{id}/aliases", get(deployments::aliases))
        .route("/v2/files", post(files::upload))
        .route("/v2/now/files", post(files::upload))
        .route("/v3/now/deployments/{id}/events", get(events::build_log))
        .route("/v3/deployments/{id}/events", get(events::build_log))
        .route("/v2/deployments/{id}/events", get(events::build_log))
        .route(
            "/v1/projects/{project}/deployments/{id}/runtime-logs",
            get(events::runtime_logs),
        )
        .route("/v10/projects/{id}/env", get(env::list).post(env::create))
        .route("/v10/projects/{id}/env/{env}", delete(env::delete))
        .route("/v9/projects/{id}/env/{env}", delete(env::delete))
        .route("/v3/env/pull/{id}", get(env::pull))
        .route("/v3/env/pull/{id}/{target}", get(env::pull_target))
        .route("/v3/env/pull/{id}/{target}/{branch}", get(env::pull_branch))
        .route(
            "/projects/{id}/custom-environments",
            get(env::custom_environments),
        )
        .route(
            "/v9/projects/{id}/custom-environments",
            get(env::custom_environments),
        )
        .route(
            "/projects/{id}/alias",
            post(domains::add).delete(domains::remove),
        )
        .route("/v5/domains", get(domains::list))
        .route("/v4/domains/{name}", get(domains::get))
        .route("/v5/domains/{name}", get(domains::get))
        .route("/v4/domains/{name}/config", get(domains::config))
        .route("/v6/domains/{name}/config", get(domains::config))
        .route(
            "/v1/registrar/domains/{name}/price",
            get(domains::registrar_price),
        )
        .route(
            "/v1/registrar/domains/{name}/availability",
            get(domains::registrar_availability),
        )
        .route(
            "/v10/projects/{id}/promote/{deployment}",
            post(promote::promote),
        )
        .route(
            "/v9/projects/{id}/rollback/{deployment}",
            post(promote::rollback),
        )
        .route(
            "/v1/projects/{id}/rollback/{deployment}",
            post(promote::rollback),
        )
        .route(
            "/v9/projects/{id}/promote/aliases",
            get(promote::failed_aliases),
        )
        .route(
            "/v9/projects/{id}/rollback/aliases",
            get(promote::failed_aliases),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_paths_are_recognised_with_doubled_slashes_and_others_are_not() {
        for path in [
            "/v2/user",
            "//v13/deployments",
            "/teams/team_deploystack",
            "/now/deployments/x",
            "/projects/site/alias",
        ] {
            assert!(is_vercel_path(path), "{path}");
        }
        for path in [
            "/",
            "/api/v1/deployments",
            "/deploy",
            "/v7x",
            "/0123456789abcdef0123456789abcdef/v2/user",
        ] {
            assert!(!is_vercel_path(path), "{path}");
        }
        assert!(creates_deployment(&Method::POST, "//v13/deployments"));
        assert!(!creates_deployment(&Method::GET, "/v13/deployments"));
        assert!(receives_file(&Method::POST, "/v2/files"));
        assert!(!receives_file(&Method::POST, "/v2/user"));
    }

    #[test]
    fn doubled_slashes_collapse_only_on_our_paths() {
        let uri: Uri = "//v13/deployments?teamId=team_x".parse().unwrap();
        assert_eq!(
            tolerate_doubled_slashes(&uri).unwrap(),
            "/v13/deployments?teamId=team_x"
        );
        let uri: Uri = "/v2//user".parse().unwrap();
        assert_eq!(tolerate_doubled_slashes(&uri).unwrap(), "/v2/user");
        for untouched in ["/v2/user", "//api/v1/deployments", "/a//b"] {
            let uri: Uri = untouched.parse().unwrap();
            assert!(tolerate_doubled_slashes(&uri).is_none(), "{untouched}");
        }
    }
}
