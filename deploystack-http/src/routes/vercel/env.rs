//! A project's environment variables: `GET|POST /v10/projects/{id}/env`,
//! `DELETE /v10/projects/{id}/env/{envId}`, `GET /v3/env/pull/{id}[/{target}[/{branch}]]`
//! (`vercel env pull`, and the link step of a first deploy) and the custom-environment list
//! `env` asks for (always empty: we have production, preview and development only).
//!
//! Our variables are Vercel's: a key, a value, targets among `production`, `preview` and
//! `development`, and a type `plain`, `encrypted` or `sensitive` with the same rules of who
//! reads the value back (`services::env`). A list shows `value` only for `plain` variables
//! (or `encrypted` ones with `decrypt=true`), `""` otherwise, which the CLI shows as
//! "Encrypted". Branch-specific variables (`gitBranch`) and custom environments are
//! refused: DeployStack deploys folders, not branches.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use deploystack_core::model::{EnvTarget, EnvVarId, EnvVarType};
use deploystack_core::services::env::{self, DesiredEnvVar, EnvError, EnvVarPatch, ProjectEnvVar};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{self, AnyJson, ms, not_found};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::env::env_error;
use crate::state::AppState;

/// One value or several (`target` may be either; a create body may be one variable or a
/// list).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One.
    One(T),
    /// Several.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

/// A variable to create, as the CLI sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewVar {
    /// Its name.
    pub key: String,
    /// Its value (the CLI sends stdin's first chunk verbatim).
    #[serde(default)]
    pub value: String,
    /// `encrypted` (the CLI's default), `sensitive` or `plain`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Where it applies.
    pub target: OneOrMany<String>,
    /// A git branch: not supported.
    #[serde(default)]
    pub git_branch: Option<String>,
    /// Custom environments: not supported.
    #[serde(default)]
    pub custom_environment_ids: Option<Vec<String>>,
}

/// A variable as the CLI lists it.
fn env_object(var: &ProjectEnvVar) -> Value {
    json!({
        "id": var.id.to_string(),
        "key": var.key,
        "value": var.value.clone().unwrap_or_default(),
        "type": var.kind.as_str(),
        "target": var.targets.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "gitBranch": null,
        "configurationId": null,
        "decrypted": var.value.is_some() && var.kind != EnvVarType::Plain,
        "createdAt": ms(var.created_at),
        "updatedAt": ms(var.updated_at),
    })
}

fn target_of(raw: &str) -> Result<EnvTarget, ApiError> {
    match raw {
        "production" => Ok(EnvTarget::Production),
        "preview" => Ok(EnvTarget::Preview),
        "development" => Ok(EnvTarget::Development),
        other => Err(ApiError::bad_request(
            "bad_request",
            format!(
                "target {other:?}: DeployStack has production, preview and development only, no custom environments"
            ),
        )),
    }
}

/// `GET /v10/projects/{id}/env?target=&decrypt=`: every variable (of `target`), by key.
pub async fn list(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let decrypt = query
        .get("decrypt")
        .is_some_and(|v| v == "true" || v == "1");
    let target = query
        .get("target")
        .filter(|t| !t.is_empty())
        .map(|t| target_of(t))
        .transpose()?;
    let vars = env::list(&state.services, &project.name, decrypt)
        .await
        .map_err(vercel_env_error)?;
    let envs: Vec<Value> = vars
        .iter()
        .filter(|var| target.is_none_or(|t| var.targets.contains(&t)))
        .map(env_object)
        .collect();
    Ok(Json(json!({"envs": envs})))
}

/// `POST /v10/projects/{id}/env[?upsert=true]`: one variable or a list; with `upsert`, a
/// variable of the same key and an overlapping target is changed instead. 201 with
/// `{created, failed}`.
pub async fn create(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    AnyJson(body): AnyJson<OneOrMany<NewVar>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let upsert = query.get("upsert").is_some_and(|v| v == "true" || v == "1");
    let mut created = Vec::new();
    for var in body.into_vec() {
        if var.git_branch.as_deref().is_some_and(|b| !b.is_empty()) {
            return Err(ApiError::bad_request(
                "bad_request",
                "DeployStack has no branch-specific variables: add it to preview for every branch",
            ));
        }
        if var
            .custom_environment_ids
            .as_ref()
            .is_some_and(|ids| !ids.is_empty())
        {
            return Err(ApiError::bad_request(
                "bad_request",
                "DeployStack has no custom environments: use production, preview or development",
            ));
        }
        let kind = match var.kind.as_deref() {
            None | Some("encrypted") => EnvVarType::Encrypted,
            Some("sensitive") => EnvVarType::Sensitive,
            Some("plain") => EnvVarType::Plain,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "bad_request",
                    format!(
                        "type {other:?}: DeployStack variables are plain, encrypted or sensitive"
                    ),
                ));
            }
        };
        let targets = var
            .target
            .into_vec()
            .iter()
            .map(|t| target_of(t))
            .collect::<Result<Vec<_>, _>>()?;
        let desired = DesiredEnvVar {
            key: var.key,
            value: var.value,
            targets,
            kind,
        };
        let made =
            match env::create(&state.services, &project.name, desired.clone(), caller.by()).await {
                Err(EnvError::Conflict { .. }) if upsert => {
                    upsert_existing(&state, &project.name, desired, caller.by()).await?
                }
                other => other.map_err(vercel_env_error)?,
            };
        created.push(env_object(&made));
    }
    let first = created.first().cloned().unwrap_or(Value::Null);
    Ok((
        StatusCode::CREATED,
        Json(json!({"created": first, "createdMany": created, "failed": []})),
    ))
}

/// Change the variable of `desired.key` that shares a target with it.
async fn upsert_existing(
    state: &AppState,
    project: &deploystack_core::model::ProjectName,
    desired: DesiredEnvVar,
    by: Option<&str>,
) -> Result<ProjectEnvVar, ApiError> {
    let vars = env::list(&state.services, project, false)
        .await
        .map_err(vercel_env_error)?;
    let existing = vars
        .iter()
        .find(|var| {
            var.key == desired.key && var.targets.iter().any(|t| desired.targets.contains(t))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "ENV_CONFLICT",
                "the variable changed meanwhile; try again",
            )
        })?;
    env::update(
        &state.services,
        project,
        &existing.id,
        EnvVarPatch {
            value: Some(desired.value),
            targets: Some(desired.targets),
            kind: Some(desired.kind),
        },
        by,
    )
    .await
    .map_err(vercel_env_error)
}

/// `DELETE /v10/projects/{id}/env/{envId}`: the variable as it was.
pub async fn delete(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path((id, env_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let env_id: EnvVarId = env_id
        .parse()
        .map_err(|_| not_found("environment variable"))?;
    let var = env::get(&state.services, &project.name, &env_id, false)
        .await
        .map_err(vercel_env_error)?;
    env::delete(&state.services, &project.name, &env_id, caller.by())
        .await
        .map_err(vercel_env_error)?;
    Ok(Json(env_object(&var)))
}

/// `GET /v3/env/pull/{id}`: the development variables.
pub async fn pull(
    state: State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    pulled(state, access, &id, "development").await
}

/// `GET /v3/env/pull/{id}/{target}`.
pub async fn pull_target(
    state: State<AppState>,
    access: Access,
    Path((id, target)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    pulled(state, access, &id, &target).await
}

/// `GET /v3/env/pull/{id}/{target}/{branch}`: the branch is ignored (no branch variables).
pub async fn pull_branch(
    state: State<AppState>,
    access: Access,
    Path((id, target, _branch)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    pulled(state, access, &id, &target).await
}

/// `{env: {KEY: value}}` of `target`, values opened; sensitive ones are never read back, so
/// they are left out. Needs `read`, as `?decrypt=true` on our API does.
async fn pulled(
    State(state): State<AppState>,
    access: Access,
    id: &str,
    target: &str,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, id).await?;
    let target = target_of(target)?;
    let vars = env::list(&state.services, &project.name, true)
        .await
        .map_err(vercel_env_error)?;
    let env: BTreeMap<String, String> = vars
        .into_iter()
        .filter(|var| var.targets.contains(&target))
        .filter_map(|var| var.value.map(|value| (var.key, value)))
        .collect();
    Ok(Json(json!({"env": env})))
}

/// `GET /projects/{id}/custom-environments`: none.
pub async fn custom_environments(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    wire::project(&state, &access, &id).await?;
    Ok(Json(json!({"environments": []})))
}

/// Our refusals with the codes the CLI knows (it prints their message as it is).
fn vercel_env_error(err: EnvError) -> ApiError {
    match err {
        EnvError::ProjectNotFound(_) => not_found("project"),
        EnvError::NotFound(_) => not_found("environment variable"),
        EnvError::Conflict { message, .. } => {
            ApiError::new(StatusCode::CONFLICT, "ENV_ALREADY_EXISTS", message)
        }
        EnvError::Invalid { field, message } if field == "key" => {
            ApiError::bad_request("INVALID_KEY", format!("{field}: {message}"))
        }
        EnvError::Invalid { field, message } => {
            ApiError::bad_request("bad_request", format!("{field}: {message}"))
        }
        other => env_error(other),
    }
}
