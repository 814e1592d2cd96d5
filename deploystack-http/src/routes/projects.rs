//! The projects API: `POST|GET /api/v1/projects`, `GET|PATCH|DELETE /api/v1/projects/{name}`,
//! `POST …/{name}/promote`, `POST …/{name}/rollback` and `GET …/{name}/production`.
//!
//! Handlers parse and answer; the rules live in `deploystack_core::services::projects`.
//! Every refusal names the field it is about (`error.field`) when there is one, so a client
//! driving the API from another system can point at the input to fix.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use deploystack_core::model::{
    BuildSettings, DeploymentId, NewProject, PageRequest, ProductionChange, Project, ProjectName,
    ProjectUpdate, ProtectionMode, ProtectionRequest, Retention,
};
use deploystack_core::services::projects::{self, ProjectError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::deployments::ListQuery;
use crate::state::AppState;

/// `POST /api/v1/projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectBody {
    /// The name: a DNS-safe slug, also its host label.
    pub name: String,
    /// Overrides of detection its deployments inherit.
    #[serde(default)]
    pub build_settings: Option<BuildSettings>,
    /// What to keep of its previews.
    #[serde(default)]
    pub retention: Option<Retention>,
}

/// `PATCH /api/v1/projects/{name}`: what it gives is replaced, the rest kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectBody {
    /// New build settings (replacing the old ones whole).
    #[serde(default)]
    pub build_settings: Option<BuildSettings>,
    /// A new retention policy (replacing the old one whole).
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Who may visit its deployments: `{mode, password}`, `mode` one of `none`, `previews`,
    /// `all`; a password (8 to 256 characters) unless `none`. The same protection again
    /// changes nothing.
    #[serde(default)]
    pub protection: Option<ProtectionRequest>,
}

/// `POST …/promote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// The deployment to make production.
    pub deployment_id: String,
}

/// `POST …/rollback`; an empty body rolls back to the previous production deployment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The deployment to roll back to.
    #[serde(default)]
    pub deployment_id: Option<String>,
}

/// Production as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductionView {
    /// The deployment served at the project's host.
    pub deployment_id: DeploymentId,
    /// When it became production.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
    /// Whether a rollback pinned it (new production deployments wait for a promote).
    pub pinned: bool,
    /// Where the deployment itself is served.
    pub deployment_url: String,
}

/// A project's protection as the API shows it: never the password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectionView {
    /// `none`, `previews` (deployment hosts ask for the password, production at the
    /// project's host and custom domains does not) or `all`.
    pub mode: ProtectionMode,
    /// Whether a password is set.
    pub password_set: bool,
    /// The secret automation sends in `x-deploystack-protection-bypass` to skip the login;
    /// only in the answer that turned protection on (only its hash is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_secret: Option<String>,
}

/// A project as the API shows it. Later additions (`env`, `domains`) are fields of their own.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    /// Its name.
    pub name: ProjectName,
    /// Where its production is served: `http://<name>.<base-domain>[:port]/`.
    pub url: String,
    /// Overrides of detection its deployments inherit.
    pub build_settings: BuildSettings,
    /// What is kept of its previews.
    pub retention: Retention,
    /// Its production; `null` until one is assigned.
    pub production: Option<ProductionView>,
    /// Who may visit its deployments.
    pub protection: ProtectionView,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl ProjectView {
    pub(crate) fn new(state: &AppState, project: Project) -> Self {
        Self {
            url: state.host_url(project.name.as_str()),
            production: project.production.map(|p| ProductionView {
                deployment_url: state.deployment_url(&p.deployment_id),
                deployment_id: p.deployment_id,
                since: p.since,
                pinned: p.pinned,
            }),
            protection: ProtectionView {
                mode: project.protection.mode,
                password_set: project.protection.password_set(),
                bypass_secret: None,
            },
            name: project.name,
            build_settings: project.build_settings,
            retention: project.retention,
            created_at: project.created_at,
            updated_at: project.updated_at,
        }
    }

    /// The view, with the bypass secret an update just made (if it made one).
    pub(crate) fn with_bypass_secret(mut self, secret: Option<String>) -> Self {
        self.protection.bypass_secret = secret;
        self
    }
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectListView {
    /// In name order.
    pub projects: Vec<ProjectView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The history of production.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductionHistoryView {
    /// The project.
    pub project: ProjectName,
    /// Production now, if any.
    pub production: Option<ProductionView>,
    /// Every assignment, newest first: `{from, to, at, reason}`.
    pub history: Vec<ProductionChange>,
}

/// `POST /api/v1/projects` → 201.
#[utoipa::path(
    post,
    path = "/v1/projects",
    tag = "projects",
    summary = "Create a project",
    request_body = CreateProjectBody,
    responses(
        (status = 201, description = "The project, without production", body = ProjectView),
        (status = 400, description = "`invalid_body`: not JSON", body = ErrorBody),
        (status = 409, description = "`project_exists`: the name is taken", body = ErrorBody),
        (status = 422, description = "`invalid_project_name`, `invalid_project` or `invalid_body`: `error.field` names the field", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateProjectBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(bad_body)?;
    let name = parse_name(&body.name, "name")?;
    let project = projects::create(
        &state.services,
        NewProject {
            name,
            build_settings: body.build_settings.unwrap_or_default(),
            retention: body.retention.unwrap_or_default(),
        },
        caller.by(),
    )
    .await
    .map_err(project_error)?;
    Ok((StatusCode::CREATED, Json(ProjectView::new(&state, project))))
}

/// `GET /api/v1/projects?limit=&cursor=`: in name order.
#[utoipa::path(
    get,
    path = "/v1/projects",
    tag = "projects",
    summary = "List projects in name order",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of projects", body = ProjectListView),
        (status = 400, description = "`invalid_query` or `invalid_cursor`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ProjectListView>, ApiError> {
    let Query(query) =
        query.map_err(|err| ApiError::bad_request("invalid_query", err.body_text()))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "limit must be between 1 and 100")
                .with_field("limit"),
        );
    }
    let page = projects::list(
        &state.services,
        &PageRequest {
            limit,
            cursor: query.cursor,
        },
    )
    .await
    .map_err(|err| match err {
        ProjectError::Invalid { .. } => {
            ApiError::bad_request("invalid_cursor", "the cursor is not one this API returned")
                .with_field("cursor")
        }
        other => project_error(other),
    })?;
    Ok(Json(ProjectListView {
        projects: page
            .items
            .into_iter()
            .map(|p| ProjectView::new(&state, p))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /api/v1/projects/{name}`.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}",
    tag = "projects",
    summary = "Get a project",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let name = path_name(&raw)?;
    let project = projects::get(&state.services, &name)
        .await
        .map_err(project_error)?;
    Ok(Json(ProjectView::new(&state, project)))
}

/// `PATCH /api/v1/projects/{name}`.
#[utoipa::path(
    patch,
    path = "/v1/projects/{name}",
    tag = "projects",
    summary = "Change some of a project's settings",
    description = "Each field given replaces the old value whole; fields left out are kept.",
    params(("name" = String, Path, description = "The project's name")),
    request_body = UpdateProjectBody,
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 400, description = "`invalid_body`: not JSON", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_project` or `invalid_body`: `error.field` names the field", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<UpdateProjectBody>, JsonRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let name = path_name(&raw)?;
    let Json(body) = body.map_err(bad_body)?;
    let updated = projects::update_with_protection(
        &state.services,
        &name,
        ProjectUpdate {
            build_settings: body.build_settings,
            retention: body.retention,
            protection: None,
        },
        body.protection.as_ref(),
        caller.by(),
    )
    .await
    .map_err(project_error)?;
    Ok(Json(
        ProjectView::new(&state, updated.project).with_bypass_secret(updated.bypass_secret),
    ))
}

/// `DELETE /api/v1/projects/{name}` → 204. A repeat answers 404 and changes nothing.
#[utoipa::path(
    delete,
    path = "/v1/projects/{name}",
    tag = "projects",
    summary = "Delete a project and everything it has",
    description = "Its deployments (their URLs answer 410), production history, domains and variables. A repeat answers 404 and changes nothing.",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`project_not_found`: no such project (or already deleted)", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&raw)?;
    projects::delete(&state.services, &name, caller.by())
        .await
        .map_err(project_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/projects/{name}/promote {deployment_id}`.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/promote",
    tag = "projects",
    summary = "Make a READY deployment of the project production",
    description = "Any READY deployment of the project, a preview too, without a rebuild. Unpins production.",
    params(("name" = String, Path, description = "The project's name")),
    request_body = PromoteBody,
    responses(
        (status = 200, description = "The project with its new production", body = ProjectView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`deployment_not_eligible`: unknown, another project's, deleted or not READY", body = ErrorBody),
        (status = 422, description = "`invalid_deployment_id` or `invalid_body`", body = ErrorBody),
    )
)]
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<PromoteBody>, JsonRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let name = path_name(&raw)?;
    let Json(body) = body.map_err(bad_body)?;
    let id = parse_deployment(&body.deployment_id)?;
    let project = projects::promote(&state.services, &name, &id, caller.by())
        .await
        .map_err(project_error)?;
    Ok(Json(ProjectView::new(&state, project)))
}

/// `POST /api/v1/projects/{name}/rollback {deployment_id?}`.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/rollback",
    tag = "projects",
    summary = "Roll production back",
    description = "To the previous production deployment, or to the one named. Pins production: new production deployments wait for a promote.",
    params(("name" = String, Path, description = "The project's name")),
    request_body(content = Option<RollbackBody>, description = "Optional: `{deployment_id}`"),
    responses(
        (status = 200, description = "The project with its new production, pinned", body = ProjectView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`deployment_not_eligible` or `nothing_to_roll_back_to`", body = ErrorBody),
        (status = 422, description = "`invalid_deployment_id` or `invalid_body`", body = ErrorBody),
    )
)]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<RollbackBody>, JsonRejection>,
) -> Result<Json<ProjectView>, ApiError> {
    let name = path_name(&raw)?;
    let body = match body {
        Ok(Json(body)) => body,
        // No body at all: roll back to the previous production deployment.
        Err(JsonRejection::MissingJsonContentType(_)) => RollbackBody::default(),
        Err(other) => return Err(bad_body(other)),
    };
    let id = body
        .deployment_id
        .as_deref()
        .map(parse_deployment)
        .transpose()?;
    let project = projects::rollback(&state.services, &name, id.as_ref(), caller.by())
        .await
        .map_err(project_error)?;
    Ok(Json(ProjectView::new(&state, project)))
}

/// The answer of a bypass-secret rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BypassSecretView {
    /// The new secret for `x-deploystack-protection-bypass`; shown only here.
    pub bypass_secret: String,
}

/// `POST /api/v1/projects/{name}/protection/bypass`: a new bypass secret.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/protection/bypass",
    tag = "projects",
    summary = "Replace the protection bypass secret",
    description = "Makes a new secret for the `x-deploystack-protection-bypass` header and answers it once; the old one stops working at once.",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 200, description = "The new secret", body = BypassSecretView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`project_not_protected`: its protection mode is `none`", body = ErrorBody),
    )
)]
pub async fn rotate_bypass(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<BypassSecretView>, ApiError> {
    let name = path_name(&raw)?;
    let (_, bypass_secret) = projects::rotate_bypass(&state.services, &name, caller.by())
        .await
        .map_err(project_error)?;
    Ok(Json(BypassSecretView { bypass_secret }))
}

/// `GET /api/v1/projects/{name}/production`: production and its history.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}/production",
    tag = "projects",
    summary = "Production and the history of its assignments",
    params(("name" = String, Path, description = "The project's name")),
    responses(
        (status = 200, description = "Production now and every assignment, newest first", body = ProductionHistoryView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
pub async fn production(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ProductionHistoryView>, ApiError> {
    let name = path_name(&raw)?;
    let project = projects::get(&state.services, &name)
        .await
        .map_err(project_error)?;
    let history = projects::history(&state.services, &name)
        .await
        .map_err(project_error)?;
    let view = ProjectView::new(&state, project);
    Ok(Json(ProductionHistoryView {
        project: view.name,
        production: view.production,
        history,
    }))
}

pub(crate) fn parse_name(raw: &str, field: &'static str) -> Result<ProjectName, ApiError> {
    let name: ProjectName = raw
        .parse()
        .map_err(|err: deploystack_core::model::InvalidId| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_project_name",
                format!("{field}: {err}"),
            )
            .with_field(field)
        })?;
    projects::check_name(&name).map_err(project_error)?;
    Ok(name)
}

/// A name in the path: one that cannot be a project is simply not found.
pub(crate) fn path_name(raw: &str) -> Result<ProjectName, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "project_not_found",
            format!("no project named {raw:?}"),
        )
    })
}

fn parse_deployment(raw: &str) -> Result<DeploymentId, ApiError> {
    raw.parse()
        .map_err(|err: deploystack_core::model::InvalidId| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_deployment_id",
                format!("deployment_id: {err}"),
            )
            .with_field("deployment_id")
        })
}

/// A body that is not the JSON expected: 400, with serde's message (which names the field).
pub(crate) fn bad_body(rejection: JsonRejection) -> ApiError {
    let status = match rejection {
        JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = rejection.body_text();
    let field = field_of(&message);
    let error = ApiError::new(status, "invalid_body", message);
    match field {
        Some(field) => error.with_field(field),
        None => error,
    }
}

/// The field serde names in a message (``unknown field `x` `` or ``… at line 1 … `x` ``),
/// best effort.
fn field_of(message: &str) -> Option<String> {
    if let Some(rest) = message.split("field `").nth(1) {
        return rest.split('`').next().map(str::to_owned);
    }
    // axum puts its own sentence first: "Failed to deserialize … into the target type: ".
    let detail = message
        .split_once("target type: ")
        .map_or(message, |(_, detail)| detail);
    detail
        .split_once(": ")
        .map(|(path, _)| path.to_owned())
        .filter(|path| {
            !path.is_empty()
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']'))
        })
}

/// The API's answer to a refusal of the projects service.
pub(crate) fn project_error(err: ProjectError) -> ApiError {
    match err {
        ProjectError::NotFound(name) => ApiError::new(
            StatusCode::NOT_FOUND,
            "project_not_found",
            format!("no project named {name}"),
        ),
        ProjectError::NameTaken(name) => ApiError::new(
            StatusCode::CONFLICT,
            "project_exists",
            format!("name: a project named {name} already exists"),
        )
        .with_field("name"),
        ProjectError::Invalid { field, message } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_project",
            format!("{field}: {message}"),
        )
        .with_field(field),
        ProjectError::NotEligible(message) => ApiError::new(
            StatusCode::CONFLICT,
            "deployment_not_eligible",
            format!("deployment_id: {message}"),
        )
        .with_field("deployment_id"),
        ProjectError::NothingToRollBackTo(name) => ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_roll_back_to",
            format!(
                "project {name} has no earlier production deployment that is still served; name one with deployment_id"
            ),
        ),
        ProjectError::NotProtected(name) => ApiError::new(
            StatusCode::CONFLICT,
            "project_not_protected",
            format!(
                "project {name} is not protected, so it has no bypass secret; turn protection on with PATCH"
            ),
        ),
        ProjectError::Repository(err) => err.into(),
        other => ApiError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_of(
                "Failed to deserialize the JSON body into the target type: unknown field `nme`, expected one of `name`"
            ),
            Some("nme".into())
        );
        assert_eq!(
            field_of(
                "Failed to deserialize the JSON body into the target type: retention.keep_previews: invalid type: string \"x\", expected u32 at line 1 column 40"
            ),
            Some("retention.keep_previews".into())
        );
        assert_eq!(
            field_of("Expected request with `Content-Type: application/json`"),
            None
        );
    }
}
