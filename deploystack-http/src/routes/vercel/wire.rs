//! The objects as the `vercel` CLI reads them — a deployment, a project, the team — and what
//! every handler here shares: a JSON body whatever its content type, look-ups by id or host
//! that answer 404 (never 400), and times in milliseconds.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use deploystack_core::domains::DomainName;
use deploystack_core::model::{
    Deployment, DeploymentId, DeploymentStatus, Project, ProjectName, Target,
};
use deploystack_core::repository::RepositoryError;
use deploystack_core::services::hosts::HostName;
use deploystack_core::services::projects;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::state::AppState;

/// The one team of the "northstar" account model (see the module docs of `super`). The CLI
/// tells teams from users by the `team_` prefix.
pub const TEAM_ID: &str = "team_deploystack";
/// The team's slug: the CLI's name for the scope.
pub const TEAM_SLUG: &str = "deploystack";
/// Largest JSON body taken: a manifest of many thousand files.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// A JSON body, whatever its `Content-Type` (`vercel domains add` sends `text/plain`); an
/// empty body reads as `{}`.
#[derive(Debug)]
pub struct AnyJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AnyJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|_| {
                ApiError::bad_request(
                    "bad_request",
                    format!("the body broke off or is larger than {MAX_JSON_BYTES} bytes"),
                )
            })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(AnyJson).map_err(|err| {
            ApiError::bad_request(
                "bad_request",
                format!("the body is not the JSON expected: {err}"),
            )
        })
    }
}

/// Milliseconds since the epoch, Vercel's time format.
pub fn ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// 404 `not_found`, what the CLI expects for anything unknown.
pub fn not_found(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{what} not found"),
    )
}

/// The base domain deployments get hosts under (`localhost` if the setting is unusable, as
/// `AppState` spells URLs).
pub fn base_domain(state: &AppState) -> String {
    state
        .services
        .config
        .base_domain()
        .map_or_else(|_| "localhost".to_owned(), |base| base.as_str().to_owned())
}

/// A deployment's `url` for the CLI: the bare host of its own address, `<id>.<base-domain>`
/// (the CLI prints `https://` in front and hands it back as a look-up key).
pub fn deployment_host(state: &AppState, id: &DeploymentId) -> String {
    format!("{id}.{}", base_domain(state))
}

/// A project's production host, `<name>.<base-domain>`.
pub fn project_host(state: &AppState, name: &ProjectName) -> String {
    format!("{name}.{}", base_domain(state))
}

/// A project named in a path: one that cannot exist is not found.
pub fn project_name(raw: &str) -> Result<ProjectName, ApiError> {
    raw.parse().map_err(|_| not_found("project"))
}

/// The project named `raw`, if the token may see it.
pub async fn project(state: &AppState, access: &Access, raw: &str) -> Result<Project, ApiError> {
    let name = project_name(raw)?;
    access.check_project(Some(&name))?;
    projects::get(&state.services, &name)
        .await
        .map_err(|err| match err {
            projects::ProjectError::NotFound(_) => not_found("project"),
            other => crate::routes::projects::project_error(other),
        })
}

/// The live deployment `raw` names — its id, its own host (`<id>.<base-domain>`, a port and
/// a scheme or path tolerated), its project's host or a custom domain (both meaning the
/// project's production) — if the token may see it. Deleted or unknown: 404.
pub async fn deployment(
    state: &AppState,
    access: &Access,
    raw: &str,
) -> Result<Deployment, ApiError> {
    let id = resolve(state, raw)
        .await?
        .ok_or_else(|| not_found("deployment"))?;
    let deployment = match state.services.repository.get_deployment(&id).await {
        Ok(deployment) => deployment,
        Err(RepositoryError::NotFound) => return Err(not_found("deployment")),
        Err(err) => return Err(err.into()),
    };
    if deployment.deleted_at.is_some() {
        return Err(not_found("deployment"));
    }
    access.check_project(deployment.project.as_ref())?;
    Ok(deployment)
}

/// Which deployment `raw` names; see [`deployment`].
async fn resolve(state: &AppState, raw: &str) -> Result<Option<DeploymentId>, ApiError> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .unwrap_or(raw);
    let raw = raw.split('/').next().unwrap_or_default();
    if let Ok(id) = raw.parse::<DeploymentId>() {
        return Ok(Some(id));
    }
    let Ok(host) = HostName::parse(raw) else {
        return Ok(None);
    };
    let base = state.services.config.base_domain().ok();
    if let Some(label) = base.as_ref().and_then(|base| host.under(base)) {
        if let Ok(id) = label.parse::<DeploymentId>() {
            return Ok(Some(id));
        }
        return match label.parse::<ProjectName>() {
            Ok(name) => production_of(state, &name).await,
            Err(_) => Ok(None),
        };
    }
    let Ok(domain) = DomainName::parse(host.as_str()) else {
        return Ok(None);
    };
    match state.services.repository.get_domain(&domain).await {
        Ok(domain) => production_of(state, &domain.project).await,
        Err(RepositoryError::NotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn production_of(
    state: &AppState,
    name: &ProjectName,
) -> Result<Option<DeploymentId>, ApiError> {
    match state.services.repository.get_project(name).await {
        Ok(project) => Ok(project.production.map(|p| p.deployment_id)),
        Err(RepositoryError::NotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Who made a deployment, as `ls` shows it in its "Username" column: the token's name of
/// `token <name> (<id>)`, else the first word of the history's description.
fn creator(deployment: &Deployment) -> String {
    let by = deployment.created_by.as_deref().unwrap_or("deploystack");
    let name = by.strip_prefix("token ").unwrap_or(by);
    name.split(" (").next().unwrap_or(name).to_owned()
}

/// The addresses a project's production answers at: its host and its custom domains.
pub async fn production_aliases(state: &AppState, name: &ProjectName) -> Vec<String> {
    let mut aliases = vec![project_host(state, name)];
    match state.services.repository.list_domains(name).await {
        Ok(domains) => aliases.extend(domains.into_iter().map(|d| d.name.to_string())),
        Err(err) => {
            tracing::warn!(project = %name, error = %err, "cannot list a project's domains")
        }
    }
    aliases
}

/// The deployment object of `GET /v13/deployments/{idOrHost}`. `aliases`: where it is
/// served besides its own host (its project's addresses, when it is production).
/// `aliasAssigned` is true exactly when it is `READY`: the CLI waits for it after the build
/// (previews too) and reports a failure if it comes without `READY`.
pub fn deployment_object(state: &AppState, deployment: &Deployment, aliases: &[String]) -> Value {
    let id = deployment.id.to_string();
    let status = deployment.status.as_str();
    let ready = deployment.status == DeploymentStatus::Ready;
    let created = ms(deployment.created_at);
    let creator = creator(deployment);
    let project = deployment.project.as_ref().map(ProjectName::as_str);
    let (error_code, error_message) = match (&deployment.error, deployment.status) {
        (Some(error), _) => (
            Some("BUILD_FAILED"),
            Some(format!("{}: {}", error.code, error.message)),
        ),
        (None, DeploymentStatus::Error) => (Some("BUILD_FAILED"), Some("the build failed".into())),
        _ => (None, None),
    };
    json!({
        "id": id,
        "uid": id,
        "url": deployment_host(state, &deployment.id),
        "name": project.unwrap_or(""),
        "projectId": project,
        "ownerId": TEAM_ID,
        "readyState": status,
        "state": status,
        "status": status,
        "aliasAssigned": ready,
        "aliasError": null,
        "target": match deployment.target {
            Target::Production => Some("production"),
            Target::Preview => None,
        },
        "createdAt": created,
        "created": created,
        "buildingAt": created,
        "ready": deployment.ready_at.map(ms),
        "creator": {"uid": creator, "username": creator},
        "inspectorUrl": state.status_url(&deployment.id),
        "alias": aliases,
        "version": 2,
        "type": "LAMBDAS",
        "meta": {},
        "public": false,
        "regions": [],
        "errorCode": error_code,
        "errorMessage": error_message,
    })
}

/// [`deployment_object`] of `deployment`, with its project's addresses when it is that
/// project's production.
pub async fn deployment_answer(state: &AppState, deployment: &Deployment) -> Value {
    let aliases = match &deployment.project {
        Some(name) => match production_of(state, name).await {
            Ok(Some(production)) if production == deployment.id => {
                production_aliases(state, name).await
            }
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    deployment_object(state, deployment, &aliases)
}

/// The project object of `GET /v9/projects/{idOrName}`. Its `id` is its name. With
/// `detail`, `targets.production` (what `domains inspect` searches for a domain) and
/// `lastAliasRequest` (what `promote` and `rollback` wait on) are filled in.
pub async fn project_object(state: &AppState, project: &Project, detail: bool) -> Value {
    let name = project.name.as_str();
    let settings = &project.build_settings;
    let mut object = json!({
        "id": name,
        "name": name,
        "accountId": TEAM_ID,
        "createdAt": ms(project.created_at),
        "updatedAt": ms(project.updated_at),
        "framework": settings.framework,
        "buildCommand": settings.build_command,
        "installCommand": settings.install_command,
        "outputDirectory": settings.output_directory,
        "rootDirectory": settings.root_directory,
        "devCommand": null,
        "commandForIgnoringBuildStep": null,
        "link": null,
        "latestDeployments": [],
        "targets": {},
        "alias": [],
        "lastAliasRequest": null,
        "rollingRelease": null,
        "env": [],
    });
    if !detail {
        return object;
    }
    if let Some(production) = &project.production {
        match state
            .services
            .repository
            .get_deployment(&production.deployment_id)
            .await
        {
            Ok(deployment) => {
                let aliases = production_aliases(state, &project.name).await;
                object["targets"]["production"] = deployment_object(state, &deployment, &aliases);
                object["alias"] = json!(aliases);
            }
            Err(err) => {
                tracing::warn!(project = name, error = %err, "cannot read a production deployment")
            }
        }
    }
    object["lastAliasRequest"] = last_alias_request(state, &project.name).await;
    object
}

/// The latest promote or rollback, as the CLI's wait loop reads it: done at once (they are
/// synchronous here), so `succeeded` at the time it happened.
async fn last_alias_request(state: &AppState, name: &ProjectName) -> Value {
    use deploystack_core::model::ProductionReason;
    let history = match projects::history(&state.services, name).await {
        Ok(history) => history,
        Err(err) => {
            tracing::warn!(project = %name, error = %err, "cannot read the history of production");
            return Value::Null;
        }
    };
    history
        .into_iter()
        .find(|change| {
            matches!(
                change.reason,
                ProductionReason::Promote | ProductionReason::Rollback
            )
        })
        .map_or(Value::Null, |change| {
            json!({
                "fromDeploymentId": change.from.map(|id| id.to_string()),
                "toDeploymentId": change.to.to_string(),
                "jobStatus": "succeeded",
                "requestedAt": ms(change.at),
                "type": change.reason.as_str(),
            })
        })
}

/// The team object of `/v1/teams` and `/teams/{id}`.
pub fn team_object() -> Value {
    json!({
        "id": TEAM_ID,
        "slug": TEAM_SLUG,
        "name": "DeployStack",
        "avatar": null,
        "createdAt": 0,
        "membership": {"role": "OWNER", "confirmed": true},
    })
}

/// `{count, next, prev}` of a listing; `next` is `null` on the last page (the CLI keeps
/// asking while it is not).
pub fn pagination(count: usize, next: Option<Value>) -> Value {
    json!({"count": count, "next": next, "prev": null})
}

/// The page size a listing's `limit` asks for: 1–100, 20 when absent or not a number.
pub fn page_size(limit: Option<&str>) -> u32 {
    limit
        .and_then(|limit| limit.parse::<u32>().ok())
        .unwrap_or(20)
        .clamp(1, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_milliseconds() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + time::Duration::milliseconds(123);
        assert_eq!(ms(at), 1_700_000_000_123);
    }
}
