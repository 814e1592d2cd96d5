//! Who may do what: the one layer that authenticates API tokens and authorizes every
//! platform request, before any handler (and before `idempotency`, so a replayed answer is
//! never handed to a caller who may not see it).
//!
//! For each request: [`rules::need`] says what it needs (a scope, on a target) from the
//! method and path; a bearer token, if sent, is looked up (`services::tokens::find`, never
//! cached, so a revoke holds at once on every node); without one, `auth = local` lets
//! same-site requests from this machine through ([`local`]). The decision lands on the
//! request as [`Access`], which the upload handler checks its form's project against and
//! [`Caller`](crate::caller::Caller) names in the history.
//!
//! # Answers
//! - No token where one is needed, or one that is unknown (never made, mistyped, revoked)
//!   or expired: 401 with `WWW-Authenticate: Bearer`, codes `token_required`,
//!   `invalid_token`, `token_expired`.
//! - A valid token without the scope or the project, or a tokenless request the local rule
//!   refuses (foreign `Host`, cross-site): 403, codes `insufficient_scope`,
//!   `project_not_allowed`, `foreign_host`, `cross_site`.
//! - On the `vercel` CLI's routes (`crate::routes::vercel`) every refusal is 403, with the
//!   same codes: the CLI reports 403 as "the token is not valid" and knows nothing of 401.
//!
//! # Why in the router and not the outer stack
//! Only the platform host reaches the router (`crate::dispatch`): deployment hosts and
//! path-based sites are tenants' pages, served without tokens, and never act on the API.

pub mod local;
pub mod rules;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deploystack_core::config::AuthMode;
use deploystack_core::model::{ApiToken, ProjectName, Scope};
use deploystack_core::repository::RepositoryError;
use deploystack_core::services::tokens::{self, Presented};

use self::rules::{Need, Target};
use crate::caller::Peer;
use crate::error::ApiError;
use crate::state::AppState;

/// What the layer decided about a request, for handlers: the token it came with, if any.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The token; `None`: a tokenless request the local rule let through (or an open one).
    pub token: Option<Arc<ApiToken>>,
}

impl Access {
    /// Whether the request may act on `project` (`None`: a deployment of no project, which
    /// only a token for every project may make).
    pub fn check_project(&self, project: Option<&ProjectName>) -> Result<(), ApiError> {
        match (&self.token, project) {
            (Some(token), Some(project)) if !token.allows(project) => {
                Err(not_allowed(token, Some(project)))
            }
            (Some(token), None) if token.projects.is_some() => Err(not_allowed(token, None)),
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Access>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The layer's function: see the module docs.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if crate::routes::vercel::is_vercel_path(request.uri().path()) {
        let mut response = decide(state, request, next).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            *response.status_mut() = StatusCode::FORBIDDEN;
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
        }
        return response;
    }
    decide(state, request, next).await
}

/// What [`guard`] decides, with our API's statuses.
async fn decide(state: AppState, mut request: Request, next: Next) -> Response {
    let need = rules::need(request.method(), request.uri().path());
    let Need::Scope(scope, target) = need else {
        return next.run(request).await;
    };
    let token = match bearer(request.headers()) {
        Ok(None) => None,
        Ok(Some(presented)) => {
            match tokens::find(state.services.repository.as_ref(), presented).await {
                Ok(Presented::Valid(token)) => Some(token),
                Ok(Presented::Expired) => {
                    return unauthorized("token_expired", "this token has expired; make a new one");
                }
                Ok(Presented::Unknown) => {
                    return unauthorized(
                        "invalid_token",
                        "this token is not valid (mistyped, or revoked)",
                    );
                }
                Err(err) => return ApiError::from(err).into_response(),
            }
        }
        Err(()) => {
            return unauthorized(
                "invalid_token",
                "the Authorization header must read `Bearer <token>`",
            );
        }
    };
    let access = match token {
        Some(token) => match authorize(&state, &token, scope, &target).await {
            Ok(()) => Access {
                token: Some(Arc::new(token)),
            },
            Err(err) => return err.into_response(),
        },
        None => {
            if state.auth == AuthMode::Required {
                return unauthorized(
                    "token_required",
                    "this request needs a token: send Authorization: Bearer <token> (make one with `deploystack-server token create`)",
                );
            }
            let peer = request.extensions().get::<Peer>().map(|peer| peer.0.ip());
            let trust_peer = state.auth == AuthMode::LocalUnsafe;
            if let Err(refusal) = local::check(peer.filter(|_| !trust_peer), request.headers()) {
                return match refusal {
                    local::Refusal::RemotePeer => unauthorized("token_required", refusal.message()),
                    local::Refusal::ForeignHost => {
                        forbidden("foreign_host", refusal.message()).into_response()
                    }
                    local::Refusal::CrossSite => {
                        forbidden("cross_site", refusal.message()).into_response()
                    }
                };
            }
            Access::default()
        }
    };
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// Whether `token` may do `scope` on `target`.
async fn authorize(
    state: &AppState,
    token: &ApiToken,
    scope: Scope,
    target: &Target,
) -> Result<(), ApiError> {
    if !token.has(scope) {
        return Err(forbidden(
            "insufficient_scope",
            format!(
                "this needs a token with the {scope} scope; token {} has {}",
                token.name,
                scopes(token)
            ),
        ));
    }
    match target {
        Target::Everything if token.projects.is_some() => Err(not_allowed(token, None)),
        Target::Project(project) if !token.allows(project) => {
            Err(not_allowed(token, Some(project)))
        }
        Target::DesiredProject(project) => {
            if !token.allows(project) {
                return Err(not_allowed(token, Some(project)));
            }
            // Creating a project is an admin's, unless the token names it (see `rules`).
            if token.projects.is_some() || token.has(Scope::Admin) {
                return Ok(());
            }
            match state.services.repository.get_project(project).await {
                Ok(_) => Ok(()),
                Err(RepositoryError::NotFound) => Err(forbidden(
                    "insufficient_scope",
                    format!(
                        "project {project} does not exist, and creating a project needs the admin scope (or a token limited to {project})"
                    ),
                )),
                Err(err) => Err(err.into()),
            }
        }
        Target::Deployment(id) if token.projects.is_some() => {
            match state.services.repository.get_deployment(id).await {
                Ok(deployment) => Access {
                    token: Some(Arc::new(token.clone())),
                }
                .check_project(deployment.project.as_ref()),
                // Let the handler say it does not exist.
                Err(RepositoryError::NotFound) => Ok(()),
                Err(err) => Err(err.into()),
            }
        }
        _ => Ok(()),
    }
}

/// The token of `Authorization: Bearer <token>`: `Ok(None)` without the header, `Err` for
/// one of another form.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    let (scheme, token) = text.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(());
    }
    Ok(Some(token))
}

fn scopes(token: &ApiToken) -> String {
    let names: Vec<&str> = token.scopes.iter().map(|scope| scope.as_str()).collect();
    names.join(", ")
}

fn not_allowed(token: &ApiToken, project: Option<&ProjectName>) -> ApiError {
    let limited = token
        .projects
        .as_ref()
        .map(|projects| {
            projects
                .iter()
                .map(ProjectName::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let message = match project {
        Some(project) => format!(
            "token {} is limited to the projects {limited}, not {project}",
            token.name
        ),
        None => format!(
            "token {} is limited to the projects {limited}; this request spans every project (or none): use a project's own routes, /api/v1/projects/<name>/…",
            token.name
        ),
    };
    forbidden("project_not_allowed", message)
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// 401 with the challenge RFC 6750 asks for.
fn unauthorized(code: &'static str, message: impl Into<String>) -> Response {
    let challenge = match code {
        "token_required" => HeaderValue::from_static("Bearer realm=\"deploystack\""),
        _ => HeaderValue::from_static("Bearer realm=\"deploystack\", error=\"invalid_token\""),
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_tokens_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Ok(None));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer ds_abc"),
        );
        assert_eq!(bearer(&headers), Ok(Some("ds_abc")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  ds_abc "),
        );
        assert_eq!(bearer(&headers), Ok(Some("ds_abc")));
        for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "ds_abc"] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(bearer(&headers), Err(()), "{bad}");
        }
    }
}
