//! Projects: `GET /v9/projects[/{idOrName}]`, `POST /v1/projects` (what `vercel deploy`
//! sends for a new folder), `DELETE /projects/{id}` and the git link the CLI asks for in a
//! repository (answered with the project as it is: we build what the CLI uploads).
//!
//! A project's `id` is its name. Its settings map onto our build settings: `buildCommand`,
//! `installCommand`, `outputDirectory`, `rootDirectory`, and `framework` when it names one
//! of our build strategies (another framework slug is left to detection, which knows the
//! same frameworks by their files).

use axum::Json;
use axum::extract::{Path, Query, State};
use deploystack_core::model::{BuildSettings, NewProject, PageRequest, Retention};
use deploystack_core::services::projects::{self, ProjectError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire::{self, AnyJson, not_found, pagination, project_object};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::projects::project_error;
use crate::state::AppState;

/// Vercel's project settings, as `POST /v1/projects` and a deployment's `projectSettings`
/// (and `vercel.json`, spread at the top of a deployment) spell them. Other fields are
/// ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// A framework slug (`vite`, `nextjs`, …), `null` for "Other".
    #[serde(default)]
    pub framework: Option<String>,
    /// The build command.
    #[serde(default)]
    pub build_command: Option<String>,
    /// The install command.
    #[serde(default)]
    pub install_command: Option<String>,
    /// The folder the build writes.
    #[serde(default)]
    pub output_directory: Option<String>,
    /// The project's folder inside the upload.
    #[serde(default)]
    pub root_directory: Option<String>,
}

impl Settings {
    /// Our build settings: blank values are "detect"; a framework none of our strategies is
    /// called is left to detection.
    pub fn to_build_settings(&self, state: &AppState) -> BuildSettings {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let known = state.services.strategies.names();
        BuildSettings {
            framework: given(&self.framework).filter(|name| known.iter().any(|k| k == name)),
            root_directory: given(&self.root_directory)
                .map(|dir| {
                    dir.trim_start_matches("./")
                        .trim_end_matches('/')
                        .to_owned()
                })
                .filter(|dir| !dir.is_empty() && dir != "."),
            install_command: given(&self.install_command),
            build_command: given(&self.build_command),
            output_directory: given(&self.output_directory),
        }
    }
}

/// `POST /v1/projects`: `{name, …settings}`.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    /// The project's name.
    pub name: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: Settings,
}

/// `GET /v9/projects/{idOrName}`: 404 for a name no project has (or can have: `vercel rm
/// <url>` asks for the URL as a project).
pub async fn get(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    Ok(Json(project_object(&state, &project, true).await))
}

/// Query of `GET /v9/projects`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Page size (1–100, default 20).
    pub limit: Option<String>,
    /// `pagination.next` of the previous page.
    pub until: Option<String>,
}

/// `GET /v9/projects?limit=&until=`: in name order; `pagination.next` is our cursor.
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = wire::page_size(query.limit.as_deref());
    let page = projects::list(
        &state.services,
        &PageRequest {
            limit,
            cursor: query.until.filter(|until| !until.is_empty()),
        },
    )
    .await
    .map_err(|err| match err {
        ProjectError::Invalid { .. } => {
            ApiError::bad_request("bad_request", "until is not a value this API returned")
        }
        other => project_error(other),
    })?;
    let mut projects = Vec::with_capacity(page.items.len());
    for project in &page.items {
        projects.push(project_object(&state, project, true).await);
    }
    Ok(Json(json!({
        "pagination": pagination(projects.len(), page.next_cursor.map(Value::from)),
        "projects": projects,
    })))
}

/// `POST /v1/projects` (and `/v9/projects`): create a project, as `vercel deploy` does for
/// a new folder. Needs only the `deploy` scope, as an upload naming a new project does
/// (`middleware::auth::rules`); 409 `conflict` if the name is taken.
pub async fn create(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    AnyJson(body): AnyJson<CreateBody>,
) -> Result<Json<Value>, ApiError> {
    let name = crate::routes::projects::parse_name(&body.name, "name")?;
    access.check_project(Some(&name))?;
    let project = projects::create(
        &state.services,
        NewProject {
            name,
            build_settings: body.settings.to_build_settings(&state),
            retention: Retention::default(),
        },
        caller.by(),
    )
    .await
    .map_err(|err| match err {
        ProjectError::NameTaken(name) => ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            format!("a project named {name} already exists"),
        ),
        other => project_error(other),
    })?;
    Ok(Json(project_object(&state, &project, false).await))
}

/// `DELETE /projects/{id}` (and `/v9/projects/{id}`): the project and everything it has,
/// as `DELETE /api/v1/projects/{name}` (`admin`).
pub async fn delete(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = wire::project_name(&id)?;
    access.check_project(Some(&name))?;
    projects::delete(&state.services, &name, caller.by())
        .await
        .map_err(|err| match err {
            ProjectError::NotFound(_) => not_found("project"),
            other => project_error(other),
        })?;
    Ok(Json(json!({})))
}

/// `POST|DELETE /v9/projects/{id}/link`: the CLI connects a git repository after linking a
/// folder that has one. We build what the CLI uploads, so there is nothing to connect: the
/// project as it is, so the CLI prints no error.
pub async fn link(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    Ok(Json(project_object(&state, &project, false).await))
}
