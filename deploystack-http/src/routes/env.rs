//! A project's environment variables: `GET|POST /api/v1/projects/{name}/env` and
//! `GET|PATCH|DELETE /api/v1/projects/{name}/env/{id}`.
//!
//! Handlers parse and answer; the rules (who sees which value, the conflict rule, the
//! sensitive rule) live in `deploystack_core::services::env`. An answer carries `value` only
//! when the variable's type lets this read show it: `plain` always, `encrypted` with
//! `?decrypt=true`, `sensitive` never — the field is then absent, not empty, so a client
//! cannot mistake a hidden value for an empty one.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use deploystack_core::model::{EnvTarget, EnvVarId, EnvVarType, ProjectName};
use deploystack_core::services::env::{self, DesiredEnvVar, EnvError, EnvVarPatch, ProjectEnvVar};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::projects::{bad_body, path_name};
use crate::state::AppState;

/// `POST …/env`: one variable.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvBody {
    /// Its name: letters, digits and `_`, not starting with a digit; not `PATH`, `HOME` or
    /// `DEPLOYSTACK_*`.
    #[schema(example = "API_URL")]
    pub key: String,
    /// Its value, at most 64 KiB.
    pub value: String,
    /// Where it applies: a non-empty subset of `production`, `preview`, `development`.
    pub targets: Vec<EnvTarget>,
    /// `plain` (always shown), `encrypted` (the default: shown with `?decrypt=true`) or
    /// `sensitive` (never shown again).
    #[serde(rename = "type", default)]
    pub kind: EnvVarType,
}

/// `PATCH …/env/{id}`: what it gives is replaced, the rest kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvBody {
    /// A new value.
    #[serde(default)]
    pub value: Option<String>,
    /// New targets.
    #[serde(default)]
    pub targets: Option<Vec<EnvTarget>>,
    /// A new type; a `sensitive` variable changes to another type only with a new `value`.
    #[serde(rename = "type", default)]
    pub kind: Option<EnvVarType>,
}

/// `?decrypt=true` shows the values of `encrypted` variables too.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnvReadQuery {
    /// Show `encrypted` values (never `sensitive` ones).
    pub decrypt: Option<bool>,
}

/// A variable as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectEnvVarView {
    /// Its id.
    #[schema(value_type = String, example = "6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f")]
    pub id: EnvVarId,
    /// Its name.
    pub key: String,
    /// Its value; absent when its type hides it from this read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where it applies.
    pub targets: Vec<EnvTarget>,
    /// `plain`, `encrypted` or `sensitive`.
    #[serde(rename = "type")]
    pub kind: EnvVarType,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<ProjectEnvVar> for ProjectEnvVarView {
    fn from(var: ProjectEnvVar) -> Self {
        Self {
            id: var.id,
            key: var.key,
            value: var.value,
            targets: var.targets,
            kind: var.kind,
            created_at: var.created_at,
            updated_at: var.updated_at,
        }
    }
}

/// Every variable of a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvVarListView {
    /// By key.
    pub env: Vec<ProjectEnvVarView>,
}

/// `GET /api/v1/projects/{name}/env?decrypt=`: every variable, by key.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}/env",
    tag = "projects",
    summary = "List a project's environment variables",
    params(("name" = String, Path, description = "The project's name"), EnvReadQuery),
    responses(
        (status = 200, description = "Every variable, by key; `value` only where its type allows", body = EnvVarListView),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<EnvReadQuery>, QueryRejection>,
) -> Result<Json<EnvVarListView>, ApiError> {
    let name = path_name(&raw)?;
    let decrypt = decrypt(query)?;
    let vars = env::list(&state.services, &name, decrypt)
        .await
        .map_err(env_error)?;
    Ok(Json(EnvVarListView {
        env: vars.into_iter().map(ProjectEnvVarView::from).collect(),
    }))
}

/// `POST /api/v1/projects/{name}/env` → 201.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/env",
    tag = "projects",
    summary = "Create an environment variable",
    description = "Honours `Idempotency-Key`: a retry with the same key and body answers the first answer again.",
    params(("name" = String, Path, description = "The project's name")),
    request_body = CreateEnvBody,
    responses(
        (status = 201, description = "Created; `value` only for `plain`", body = ProjectEnvVarView),
        (status = 400, description = "`invalid_body`: not JSON", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`env_conflict`: the key already has a variable for one of these targets (`field`: `key`)", body = ErrorBody),
        (status = 422, description = "`invalid_env` or `invalid_body`, naming the `field`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<CreateEnvBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let name = path_name(&raw)?;
    let Json(body) = body.map_err(bad_body)?;
    let var = env::create(
        &state.services,
        &name,
        DesiredEnvVar {
            key: body.key,
            value: body.value,
            targets: body.targets,
            kind: body.kind,
        },
        caller.by(),
    )
    .await
    .map_err(env_error)?;
    Ok((StatusCode::CREATED, Json(ProjectEnvVarView::from(var))))
}

/// `GET /api/v1/projects/{name}/env/{id}?decrypt=`.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}/env/{id}",
    tag = "projects",
    summary = "Get an environment variable",
    params(
        ("name" = String, Path, description = "The project's name"),
        ("id" = String, Path, description = "The variable's id"),
        EnvReadQuery,
    ),
    responses(
        (status = 200, description = "The variable; `value` only where its type allows", body = ProjectEnvVarView),
        (status = 404, description = "`project_not_found` or `env_not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path((raw, id)): Path<(String, String)>,
    query: Result<Query<EnvReadQuery>, QueryRejection>,
) -> Result<Json<ProjectEnvVarView>, ApiError> {
    let name = path_name(&raw)?;
    let id = path_id(&id)?;
    let decrypt = decrypt(query)?;
    let var = env::get(&state.services, &name, &id, decrypt)
        .await
        .map_err(env_error)?;
    Ok(Json(var.into()))
}

/// `PATCH /api/v1/projects/{name}/env/{id}`.
#[utoipa::path(
    patch,
    path = "/v1/projects/{name}/env/{id}",
    tag = "projects",
    summary = "Change an environment variable",
    params(
        ("name" = String, Path, description = "The project's name"),
        ("id" = String, Path, description = "The variable's id"),
    ),
    request_body = UpdateEnvBody,
    responses(
        (status = 200, description = "The variable as changed", body = ProjectEnvVarView),
        (status = 404, description = "`project_not_found` or `env_not_found`", body = ErrorBody),
        (status = 409, description = "`env_conflict`: the new targets collide with another variable of the key (`field`: `targets`)", body = ErrorBody),
        (status = 422, description = "`invalid_env` (a `sensitive` variable made readable without a new value: `field` `type`) or `invalid_body`", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
    body: Result<Json<UpdateEnvBody>, JsonRejection>,
) -> Result<Json<ProjectEnvVarView>, ApiError> {
    let name = path_name(&raw)?;
    let id = path_id(&id)?;
    let Json(body) = body.map_err(bad_body)?;
    let var = env::update(
        &state.services,
        &name,
        &id,
        EnvVarPatch {
            value: body.value,
            targets: body.targets,
            kind: body.kind,
        },
        caller.by(),
    )
    .await
    .map_err(env_error)?;
    Ok(Json(var.into()))
}

/// `DELETE /api/v1/projects/{name}/env/{id}` → 204; a repeat answers 404.
#[utoipa::path(
    delete,
    path = "/v1/projects/{name}/env/{id}",
    tag = "projects",
    summary = "Delete an environment variable",
    description = "A repeated delete answers 404 `env_not_found` and changes nothing, as deletes of projects and deployments do.",
    params(
        ("name" = String, Path, description = "The project's name"),
        ("id" = String, Path, description = "The variable's id"),
    ),
    responses(
        (status = 204, description = "Deleted; the next build no longer receives it"),
        (status = 404, description = "`project_not_found` or `env_not_found`", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&raw)?;
    let id = path_id(&id)?;
    env::delete(&state.services, &name, &id, caller.by())
        .await
        .map_err(env_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn decrypt(query: Result<Query<EnvReadQuery>, QueryRejection>) -> Result<bool, ApiError> {
    let Query(query) = query.map_err(|err| {
        ApiError::bad_request("invalid_query", err.body_text()).with_field("decrypt")
    })?;
    Ok(query.decrypt.unwrap_or(false))
}

/// An id in the path: one that cannot be a variable's is simply not found.
fn path_id(raw: &str) -> Result<EnvVarId, ApiError> {
    raw.parse().map_err(|_| not_found(raw))
}

fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "env_not_found",
        format!("this project has no environment variable with id {id}"),
    )
}

/// The API's answer to a refusal of the variables service.
pub(crate) fn env_error(err: EnvError) -> ApiError {
    match err {
        EnvError::ProjectNotFound(name) => project_not_found(&name),
        EnvError::NotFound(id) => not_found(id),
        EnvError::Invalid { field, message } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_env",
            format!("{field}: {message}"),
        )
        .with_field(field),
        EnvError::Conflict { field, message } => ApiError::new(
            StatusCode::CONFLICT,
            "env_conflict",
            format!("{field}: {message}"),
        )
        .with_field(field),
        EnvError::Repository(err) => err.into(),
        other => ApiError::internal(other),
    }
}

fn project_not_found(name: &ProjectName) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "project_not_found",
        format!("no project named {name}"),
    )
}
