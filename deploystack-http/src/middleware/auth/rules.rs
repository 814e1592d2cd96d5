//! What each platform request needs: a scope, and the project it acts on — decided from the
//! method and the path alone, before the router, so one table covers every route and a route
//! added later falls under the rule of its place in the tree instead of being open.
//!
//! # The rules
//! - Open to everyone: `/healthz`, `/readyz`, `/openapi.json`, `/docs` (and its assets),
//!   and every non-API page of the platform host (`/`, the site 404s). Path-based sites
//!   (`/<deployment-id>/…`) never reach this layer; see `crate::dispatch`.
//! - `GET`, `HEAD` (and `OPTIONS`): `read`.
//! - `/api/v1/tokens…`, whatever the method: `admin`, on every project.
//! - `GET /api/v1/whoami`: `read`, on nothing — any valid token may ask who it is, one
//!   limited to projects included.
//! - `POST /api/v1/projects` (create) and `DELETE /api/v1/projects/{name}`: `admin`.
//! - `PUT /api/v1/projects/{name}` (desired state): `deploy` on the project if it exists;
//!   creating it needs `admin`, or a token limited to projects that names it (whoever made
//!   that token already granted the name).
//! - Every other write under `/api/v1/projects/{name}` (settings, promote, rollback,
//!   variables, domains): `deploy` on that project.
//! - Writes under `/api/v1/deployments/{id}` (cancel, delete): `deploy` on the deployment's
//!   project, looked up.
//! - Uploads (`POST /api/v1/deployments`, `POST /deploy`): `deploy`; the project is in the
//!   form, so the upload handler checks it against the token (`Access::check_project`).
//! - Listings across projects (`GET /api/v1/deployments`, `GET /api/v1/projects`) and
//!   `/metrics`: `read` with a token not limited to projects. A limited token is refused
//!   rather than shown a filtered list, so no page silently omits rows; it reads its
//!   projects through `/api/v1/projects/{name}/…`.
//! - Anything else under `/api` (a path no route has): `read` for reads, `deploy` for
//!   writes, so an unknown path answers 401 before it answers 404.
//! - The `vercel` CLI's routes (`crate::routes::vercel`), by the rule of our equivalent
//!   route: reads `read`; writes `deploy` on their project (variables, domains, promote,
//!   rollback, deployments); deleting a project `admin`. Who the caller is (`/v2/user`, the
//!   team) needs any valid token. Creating a project (`POST /v1/projects`) needs `deploy`,
//!   as an upload that names a new project does: it is the first step of `vercel deploy`.
//!   Where the project is in the body or query, or behind a host name, the handler checks
//!   it ([`Target::Named`]); listings across projects need a token for every project.

use axum::http::Method;
use deploystack_core::model::{DeploymentId, ProjectName, Scope};

/// What a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone may ask.
    Open,
    /// A scope, on a target.
    Scope(Scope, Target),
}

/// What a request acts on, for tokens limited to projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Everything, or the platform as a whole: only tokens for every project.
    Everything,
    /// One project, named in the path.
    Project(ProjectName),
    /// A project's desired state, which may create it (see the module docs).
    DesiredProject(ProjectName),
    /// A deployment: its project decides.
    Deployment(DeploymentId),
    /// An upload: the handler checks the project in the form.
    Upload,
    /// A path no route has; no project.
    Nothing,
    /// A project the request names in its body or query, or reaches through a deployment's
    /// host or a domain (the `vercel` CLI's routes): the handler checks it
    /// (`Access::check_project`).
    Named,
    /// The caller itself and its account (the `vercel` CLI's user and team look-ups): any
    /// valid token.
    Account,
}

/// What `method` on `path` (a platform path) needs.
pub fn need(method: &Method, path: &str) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let scope = if read { Scope::Read } else { Scope::Deploy };
    match path {
        "/healthz" | "/readyz" | "/openapi.json" | "/docs" => return Need::Open,
        "/metrics" => return Need::Scope(Scope::Read, Target::Everything),
        "/deploy" if !read => return Need::Scope(Scope::Deploy, Target::Upload),
        _ => {}
    }
    if path.starts_with("/docs/") {
        return Need::Open;
    }
    if crate::routes::vercel::is_vercel_path(path) {
        return vercel(method, path, scope);
    }
    let rest = match path.strip_prefix("/api") {
        Some(rest) if crate::routes::is_api_path(path) => rest,
        // The platform's own pages and the site fallback: nothing to protect.
        _ => return Need::Open,
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["v1", "tokens", ..] => Need::Scope(Scope::Admin, Target::Everything),
        ["v1", "whoami"] => Need::Scope(Scope::Read, Target::Nothing),
        ["v1", "projects"] if read => Need::Scope(Scope::Read, Target::Everything),
        ["v1", "projects"] => Need::Scope(Scope::Admin, Target::Everything),
        ["v1", "projects", name, rest @ ..] => match name.parse::<ProjectName>() {
            Ok(name) => match (rest, method) {
                ([], &Method::DELETE) => Need::Scope(Scope::Admin, Target::Project(name)),
                ([], &Method::PUT) => Need::Scope(Scope::Deploy, Target::DesiredProject(name)),
                _ => Need::Scope(scope, Target::Project(name)),
            },
            // Not a name any project can have: the handler answers 404.
            Err(_) => Need::Scope(scope, Target::Nothing),
        },
        // Blobs belong to no project (they are shared): any token that may deploy.
        ["v1", "files", ..] => Need::Scope(Scope::Deploy, Target::Upload),
        ["v1", "deployments"] if read => Need::Scope(Scope::Read, Target::Everything),
        ["v1", "deployments"] => Need::Scope(Scope::Deploy, Target::Upload),
        ["v1", "deployments", id, ..] => match id.parse::<DeploymentId>() {
            Ok(id) => Need::Scope(scope, Target::Deployment(id)),
            Err(_) => Need::Scope(scope, Target::Nothing),
        },
        _ => Need::Scope(scope, Target::Nothing),
    }
}

/// What a route of the `vercel` CLI's API needs (see the module docs); `scope` is the one
/// of the method.
fn vercel(method: &Method, path: &str, scope: Scope) -> Need {
    let segments = crate::routes::vercel::segments(path);
    let project = |raw: &str| match raw.parse::<ProjectName>() {
        Ok(name) => Target::Project(name),
        // Not a name any project can have: the handler answers 404.
        Err(_) => Target::Nothing,
    };
    let deployment = |raw: &str| match raw.parse::<DeploymentId>() {
        Ok(id) => Target::Deployment(id),
        // A host: the handler finds the deployment and checks its project.
        Err(_) => Target::Named,
    };
    match segments.as_slice() {
        ["v2", "user"] | ["v1", "teams"] | ["teams", _] | ["v1", "registrar", ..] => {
            Need::Scope(Scope::Read, Target::Account)
        }
        ["v9", "projects"] if scope == Scope::Read => Need::Scope(scope, Target::Everything),
        ["v1" | "v9", "projects"] => Need::Scope(Scope::Deploy, Target::Named),
        ["v9", "projects", name] | ["projects", name] if *method == Method::DELETE => {
            Need::Scope(Scope::Admin, project(name))
        }
        ["v1" | "v9" | "v10", "projects", name, ..]
        | ["projects", name, ..]
        | ["v3", "env", "pull", name, ..] => Need::Scope(scope, project(name)),
        ["v6" | "v13", "deployments"] => Need::Scope(scope, Target::Named),
        ["v2", "files"] | ["v2", "now", "files"] => Need::Scope(Scope::Deploy, Target::Named),
        ["v5", "domains"] => Need::Scope(scope, Target::Everything),
        ["v4" | "v5" | "v6", "domains", _, ..] => Need::Scope(scope, Target::Named),
        ["v2" | "v11" | "v13" | "now", "deployments", id, ..]
        | ["v3", "now", "deployments", id, ..]
        | ["v3", "deployments", id, ..] => Need::Scope(scope, deployment(id)),
        _ => Need::Scope(scope, Target::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str) -> ProjectName {
        name.parse().unwrap()
    }

    #[test]
    fn open_routes_need_nothing() {
        for path in [
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/docs",
            "/docs/index.css",
            "/",
            "/apis",
        ] {
            assert_eq!(need(&Method::GET, path), Need::Open, "{path}");
        }
        assert_eq!(need(&Method::GET, "/deploy"), Need::Open);
    }

    #[test]
    fn reads_need_read_and_writes_deploy_on_their_project() {
        assert_eq!(
            need(&Method::GET, "/api/v1/projects/site/env"),
            Need::Scope(Scope::Read, Target::Project(project("site")))
        );
        for (method, path) in [
            (Method::POST, "/api/v1/projects/site/promote"),
            (Method::POST, "/api/v1/projects/site/rollback"),
            (Method::POST, "/api/v1/projects/site/env"),
            (Method::PATCH, "/api/v1/projects/site/env/x"),
            (Method::DELETE, "/api/v1/projects/site/domains/a.example"),
            (Method::PATCH, "/api/v1/projects/site"),
        ] {
            assert_eq!(
                need(&method, path),
                Need::Scope(Scope::Deploy, Target::Project(project("site"))),
                "{method} {path}"
            );
        }
        let id = DeploymentId::random();
        assert_eq!(
            need(&Method::POST, &format!("/api/v1/deployments/{id}/cancel")),
            Need::Scope(Scope::Deploy, Target::Deployment(id))
        );
        assert_eq!(
            need(&Method::POST, "/api/v1/deployments"),
            Need::Scope(Scope::Deploy, Target::Upload)
        );
        assert_eq!(
            need(&Method::POST, "/deploy"),
            Need::Scope(Scope::Deploy, Target::Upload)
        );
    }

    #[test]
    fn the_vercel_routes_need_the_scope_of_our_equivalents() {
        let id = DeploymentId::random();
        for (method, path, need_) in [
            (
                Method::GET,
                "/v2/user",
                Need::Scope(Scope::Read, Target::Account),
            ),
            (
                Method::GET,
                "/teams/team_x",
                Need::Scope(Scope::Read, Target::Account),
            ),
            (
                Method::GET,
                "/v9/projects/site",
                Need::Scope(Scope::Read, Target::Project(project("site"))),
            ),
            (
                Method::GET,
                "/v9/projects/https%3A%2F%2Fa.example",
                Need::Scope(Scope::Read, Target::Nothing),
            ),
            (
                Method::POST,
                "/v1/projects",
                Need::Scope(Scope::Deploy, Target::Named),
            ),
            (
                Method::GET,
                "/v9/projects",
                Need::Scope(Scope::Read, Target::Everything),
            ),
            (
                Method::DELETE,
                "/projects/site",
                Need::Scope(Scope::Admin, Target::Project(project("site"))),
            ),
            (
                Method::DELETE,
                "/projects/site/alias",
                Need::Scope(Scope::Deploy, Target::Project(project("site"))),
            ),
            (
                Method::POST,
                "/v10/projects/site/env",
                Need::Scope(Scope::Deploy, Target::Project(project("site"))),
            ),
            (
                Method::POST,
                "/v9/projects/site/rollback/x",
                Need::Scope(Scope::Deploy, Target::Project(project("site"))),
            ),
            (
                Method::GET,
                "/v3/env/pull/site/production",
                Need::Scope(Scope::Read, Target::Project(project("site"))),
            ),
            (
                Method::POST,
                "//v13/deployments",
                Need::Scope(Scope::Deploy, Target::Named),
            ),
            (
                Method::POST,
                "/v2/files",
                Need::Scope(Scope::Deploy, Target::Named),
            ),
            (
                Method::GET,
                "/v6/deployments",
                Need::Scope(Scope::Read, Target::Named),
            ),
            (
                Method::GET,
                &format!("/v13/deployments/{id}"),
                Need::Scope(Scope::Read, Target::Deployment(id)),
            ),
            (
                Method::GET,
                "/v13/deployments/a.localhost",
                Need::Scope(Scope::Read, Target::Named),
            ),
            (
                Method::DELETE,
                &format!("/now/deployments/{id}"),
                Need::Scope(Scope::Deploy, Target::Deployment(id)),
            ),
            (
                Method::GET,
                &format!("/v3/now/deployments/{id}/events"),
                Need::Scope(Scope::Read, Target::Deployment(id)),
            ),
            (
                Method::GET,
                "/v5/domains",
                Need::Scope(Scope::Read, Target::Everything),
            ),
            (
                Method::GET,
                "/v4/domains/a.example/config",
                Need::Scope(Scope::Read, Target::Named),
            ),
        ] {
            assert_eq!(need(&method, path), need_, "{method} {path}");
        }
    }

    #[test]
    fn tokens_and_project_life_need_admin() {
        for (method, path) in [
            (Method::GET, "/api/v1/tokens"),
            (Method::POST, "/api/v1/tokens"),
            (Method::DELETE, "/api/v1/tokens/abc"),
            (Method::POST, "/api/v1/projects"),
        ] {
            assert_eq!(
                need(&method, path),
                Need::Scope(Scope::Admin, Target::Everything),
                "{method} {path}"
            );
        }
        assert_eq!(
            need(&Method::DELETE, "/api/v1/projects/site"),
            Need::Scope(Scope::Admin, Target::Project(project("site")))
        );
        assert_eq!(
            need(&Method::PUT, "/api/v1/projects/site"),
            Need::Scope(Scope::Deploy, Target::DesiredProject(project("site")))
        );
    }

    #[test]
    fn whoami_needs_any_valid_token_whatever_its_projects() {
        assert_eq!(
            need(&Method::GET, "/api/v1/whoami"),
            Need::Scope(Scope::Read, Target::Nothing)
        );
    }

    #[test]
    fn listings_and_metrics_span_every_project_and_unknown_paths_are_closed() {
        for path in ["/api/v1/deployments", "/api/v1/projects", "/metrics"] {
            assert_eq!(
                need(&Method::GET, path),
                Need::Scope(Scope::Read, Target::Everything),
                "{path}"
            );
        }
        assert_eq!(
            need(&Method::DELETE, "/api/v2/anything"),
            Need::Scope(Scope::Deploy, Target::Nothing)
        );
        assert_eq!(
            need(&Method::GET, "/api"),
            Need::Scope(Scope::Read, Target::Nothing)
        );
    }
}
