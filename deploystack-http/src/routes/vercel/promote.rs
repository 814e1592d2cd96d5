//! Promote and rollback: `POST /v10/projects/{id}/promote/{deploymentId}` and
//! `POST /v9/projects/{id}/rollback/{deploymentId}` (also `/v1/…`, the REST docs' path).
//!
//! Both move production at once, inside the request, through `services::projects` — as our
//! own `POST /api/v1/projects/{name}/promote` and `/rollback` do (a rollback pins production
//! until the next promote, as on Vercel). The CLI then polls the project for
//! `lastAliasRequest` (see `super::wire::project_object`), which the history of production
//! answers as `succeeded` at once, so it finishes on its first poll.
//!
//! The CLI promotes a *preview* differently: it asks for a new production deployment built
//! from the preview's source (`POST /v13/deployments` with `deploymentId`, see
//! `super::deployments`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use deploystack_core::services::projects::{self, ProjectError};
use serde_json::{Value, json};

use super::wire::{self, not_found, pagination};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::middleware::auth::Access;
use crate::routes::projects::project_error;
use crate::state::AppState;

/// `POST /v10/projects/{id}/promote/{deploymentId}`: 201, production moved.
pub async fn promote(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path((id, deployment)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let deployment = wire::deployment(&state, &access, &deployment).await?;
    projects::promote(&state.services, &project.name, &deployment.id, caller.by())
        .await
        .map_err(refusal)?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// `POST /v9/projects/{id}/rollback/{deploymentId}`: 201, production moved back and pinned.
pub async fn rollback(
    State(state): State<AppState>,
    access: Access,
    caller: Caller,
    Path((id, deployment)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let project = wire::project(&state, &access, &id).await?;
    let deployment = wire::deployment(&state, &access, &deployment).await?;
    projects::rollback(
        &state.services,
        &project.name,
        Some(&deployment.id),
        caller.by(),
    )
    .await
    .map_err(refusal)?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

/// `GET /v9/projects/{id}/{promote,rollback}/aliases`: the aliases a failed move left
/// behind, which the CLI lists after a failure. A move here is one atomic change, so none.
pub async fn failed_aliases(
    State(state): State<AppState>,
    access: Access,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    wire::project(&state, &access, &id).await?;
    Ok(Json(
        json!({"aliases": [], "pagination": pagination(0, None)}),
    ))
}

fn refusal(err: ProjectError) -> ApiError {
    match err {
        ProjectError::NotFound(_) => not_found("project"),
        other => project_error(other),
    }
}
