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
    let rest = match path.strip_prefix("/api") {
        Some(rest) if crate::routes::is_api_path(path) => rest,
        // The platform's own pages and the site fallback: nothing to protect.
        _ => return Need::Open,
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["v1", "tokens", ..] => Need::Scope(Scope::Admin, Target::Everything),
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
        ["v1", "deployments"] if read => Need::Scope(Scope::Read, Target::Everything),
        ["v1", "deployments"] => Need::Scope(Scope::Deploy, Target::Upload),
        ["v1", "deployments", id, ..] => match id.parse::<DeploymentId>() {
            Ok(id) => Need::Scope(scope, Target::Deployment(id)),
            Err(_) => Need::Scope(scope, Target::Nothing),
        },
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
