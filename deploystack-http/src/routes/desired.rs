//! `PUT /api/v1/projects/{name}`: a project's whole document, applied as desired state.
//!
//! The rules (what a missing field means, the order parts are applied in, what `changes`
//! lists) live in `deploystack_core::services::desired`; this handler parses the document
//! and answers with the project and the changes made: 201 when the document created the
//! project, 200 otherwise — with an empty `changes` when it already matched.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use deploystack_core::model::{BuildSettings, Change, ProtectionRequest, Retention};
use deploystack_core::services::desired::{self, DesiredError, DesiredProject};
use deploystack_core::services::domains::{self, DomainInput};
use deploystack_core::services::env::DesiredEnvVar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::domains::domain_error;
use crate::routes::env::{CreateEnvBody, env_error};
use crate::routes::projects::{ProjectView, bad_body, parse_name, project_error};
use crate::state::AppState;

/// The whole document of a project. A field left out means its empty value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectDocument {
    /// Overrides of detection (left out: detect everything).
    #[serde(default)]
    pub build_settings: BuildSettings,
    /// What to keep of its previews (left out: keep everything).
    #[serde(default)]
    pub retention: Retention,
    /// Every environment variable of the project (left out: none).
    #[serde(default)]
    #[schema(value_type = Vec<CreateEnvBody>)]
    pub env: Vec<DesiredEnvVar>,
    /// Who may visit its deployments (left out: `{"mode": "none"}`). The password is compared
    /// with the stored hash, so the same document twice changes nothing.
    #[serde(default)]
    pub protection: ProtectionRequest,
    /// Every custom domain of the project (left out: none), `{name, redirect?,
    /// redirect_status?}`.
    #[serde(default)]
    pub domains: Vec<DomainInput>,
}

/// The answer: the project as it is now and what the apply changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedView {
    /// The project after the apply.
    pub project: ProjectView,
    /// Every change made, in order; empty when the project already matched the document.
    pub changes: Vec<Change>,
}

/// `PUT /api/v1/projects/{name}` → 201 (created) or 200.
#[utoipa::path(
    put,
    path = "/v1/projects/{name}",
    tag = "projects",
    summary = "Apply a project's whole document (desired state)",
    description = "Creates the project if it does not exist, changes what differs, removes what the document no longer lists, and answers with `changes`, the list of changes made. Applying the same document twice changes nothing and answers an empty `changes`. A field left out means its empty value. Everything is checked before anything is written.",
    params(("name" = String, Path, description = "The project's name")),
    request_body = ProjectDocument,
    responses(
        (status = 200, description = "The project existed; `changes` lists what changed", body = AppliedView),
        (status = 201, description = "The document created the project", body = AppliedView),
        (status = 400, description = "`invalid_body`: not JSON", body = ErrorBody),
        (status = 409, description = "`domain_taken`: another project has a domain of the document", body = ErrorBody),
        (status = 422, description = "`invalid_project_name`, `invalid_project`, `invalid_env`, `invalid_domain`, `redirect_cycle` or `invalid_body`: `error.field` names the field", body = ErrorBody),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<ProjectDocument>, JsonRejection>,
) -> Result<(StatusCode, Json<AppliedView>), ApiError> {
    let name = parse_name(&raw, "name")?;
    let Json(document) = body.map_err(bad_body)?;
    let domains = domains::parse_inputs(&document.domains).map_err(domain_error)?;
    let applied = desired::apply(
        &state.services,
        &name,
        DesiredProject {
            build_settings: document.build_settings,
            retention: document.retention,
            env: document.env,
            protection: document.protection,
            domains,
        },
        caller.by(),
    )
    .await
    .map_err(|err| match err {
        DesiredError::Project(err) => project_error(err),
        DesiredError::Env(err) => env_error(err),
        DesiredError::Domain(err) => domain_error(err),
        other => ApiError::internal(other),
    })?;
    let status = if applied.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(AppliedView {
            project: ProjectView::new(&state, applied.project)
                .with_bypass_secret(applied.bypass_secret),
            changes: applied.changes,
        }),
    ))
}
