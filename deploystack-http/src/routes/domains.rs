//! The custom domains API: `GET|POST /api/v1/projects/{name}/domains`,
//! `GET|DELETE …/domains/{domain}` and `POST …/domains/{domain}/verify`.
//!
//! Handlers parse and answer; the rules (names, reserved names, uniqueness, redirects as a
//! DAG, verification) live in `deploystack_core::services::domains`. A new domain answers
//! with the TXT record that verifies it; every refusal names its field when there is one.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use deploystack_core::domains::{Readiness, VerificationRecord, VerifyOutcome};
use deploystack_core::model::ProjectName;
use deploystack_core::services::domains::{
    self, CheckReport, DomainError, DomainInput, DomainState,
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::routes::projects::{bad_body, path_name};
use crate::state::AppState;

/// The DNS record that verifies a domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationView {
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// Where to publish it: `_deploystack.<domain>`.
    pub name: String,
    /// What it must hold: the domain's token.
    pub value: String,
}

/// What an on-demand verification found.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    /// `verified`, `record_missing`, `other_value` or `lookup_failed`.
    pub result: &'static str,
    /// What was expected, what was found, what to do next.
    pub message: String,
    /// The values of the TXT records found at the record's name, when none was the token.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub found: Vec<String>,
}

/// A custom domain as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    /// The domain, ASCII (internationalised names in punycode).
    pub name: String,
    /// The project it belongs to.
    pub project: ProjectName,
    /// Where it is served once active.
    pub url: String,
    /// Whether its TXT record was found. Only verified domains serve.
    pub verified: bool,
    /// When it was verified.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<OffsetDateTime>,
    /// `pending_verification` (its record was not found yet), `waiting` (verified, but it
    /// redirects through a domain that is not: see `waiting_for`) or `active` (it serves the
    /// project's production, or redirects).
    pub status: &'static str,
    /// The first domain along its redirects that is not verified yet, when `waiting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The record to publish.
    pub verification: VerificationView,
    /// The domain of the same project it redirects to, if any.
    pub redirect: Option<String>,
    /// The redirect's status (301, 302, 307 or 308); only with `redirect`.
    pub redirect_status: Option<u16>,
    /// How many times its record was looked up.
    pub check_attempts: u32,
    /// When the record is looked up again in the background, while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_check_at: Option<OffsetDateTime>,
    /// When it was added.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When its redirect or verification last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// What the look-up of `POST …/verify` found; only in its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckView>,
}

impl DomainView {
    fn new(state: &AppState, domain_state: DomainState) -> Self {
        let DomainState { domain, readiness } = domain_state;
        let record = VerificationRecord::new(&domain.name, &domain.token);
        let (status, waiting_for) = match readiness {
            Readiness::Unverified => ("pending_verification", None),
            Readiness::WaitingFor(first) => ("waiting", Some(first.to_string())),
            Readiness::Ready => ("active", None),
        };
        Self {
            url: format!("{}/", state.origin_of(domain.name.as_str())),
            name: domain.name.to_string(),
            project: domain.project,
            verified: domain.verified_at.is_some(),
            verified_at: domain.verified_at,
            status,
            waiting_for,
            verification: VerificationView {
                record_type: record.record_type,
                name: record.name,
                value: record.value,
            },
            redirect: domain.redirect.map(String::from),
            redirect_status: domain.redirect_status.map(|s| s.code()),
            check_attempts: domain.check_attempts,
            next_check_at: domain.next_check_at,
            created_at: domain.created_at,
            updated_at: domain.updated_at,
            check: None,
        }
    }
}

/// A project's domains.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainListView {
    /// In name order.
    pub domains: Vec<DomainView>,
}

/// `GET /api/v1/projects/{name}/domains`.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}/domains",
    tag = "domains",
    summary = "List a project's custom domains",
    params(("name" = ProjectName, Path, description = "The project")),
    responses(
        (status = 200, description = "Its domains, in name order", body = DomainListView),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<DomainListView>, ApiError> {
    let project = path_name(&raw)?;
    let domains = domains::list(&state.services, &project)
        .await
        .map_err(domain_error)?;
    Ok(Json(DomainListView {
        domains: domains
            .into_iter()
            .map(|d| DomainView::new(&state, d))
            .collect(),
    }))
}

/// `POST /api/v1/projects/{name}/domains` → 201.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/domains",
    tag = "domains",
    summary = "Add a custom domain",
    description = "Adds the domain unverified and answers the TXT record that verifies it (`verification`). The record is looked up in the background with backoff, or on demand with `POST …/verify`; only verified domains serve. With `redirect`, the domain redirects (default 308) to another domain of the project, keeping path and query, once both are verified. Honours `Idempotency-Key`.",
    params(("name" = ProjectName, Path, description = "The project")),
    request_body = DomainInput,
    responses(
        (status = 201, description = "The domain, unverified", body = DomainView),
        (status = 400, description = "`invalid_body`", body = ErrorBody),
        (status = 404, description = "`project_not_found`", body = ErrorBody),
        (status = 409, description = "`domain_taken`: this or another project has it", body = ErrorBody),
        (status = 422, description = "`invalid_domain`, `invalid_redirect_status`, `domain_reserved` (under the base domain), `unknown_redirect_target`, `redirect_cycle`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Json<DomainInput>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let project = path_name(&raw)?;
    let Json(body) = body.map_err(bad_body)?;
    let spec = domains::parse_input(&body, "").map_err(domain_error)?;
    let domain = domains::add(&state.services, &project, spec, caller.by())
        .await
        .map_err(domain_error)?;
    Ok((StatusCode::CREATED, Json(DomainView::new(&state, domain))))
}

/// `GET /api/v1/projects/{name}/domains/{domain}`.
#[utoipa::path(
    get,
    path = "/v1/projects/{name}/domains/{domain}",
    tag = "domains",
    summary = "Get a custom domain",
    params(
        ("name" = ProjectName, Path, description = "The project"),
        ("domain" = String, Path, description = "The domain"),
    ),
    responses(
        (status = 200, description = "The domain", body = DomainView),
        (status = 404, description = "`project_not_found` or `domain_not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path((raw, domain)): Path<(String, String)>,
) -> Result<Json<DomainView>, ApiError> {
    let project = path_name(&raw)?;
    let domain = domains::get(&state.services, &project, &domain)
        .await
        .map_err(domain_error)?;
    Ok(Json(DomainView::new(&state, domain)))
}

/// `POST /api/v1/projects/{name}/domains/{domain}/verify`.
#[utoipa::path(
    post,
    path = "/v1/projects/{name}/domains/{domain}/verify",
    tag = "domains",
    summary = "Look a domain's TXT record up now",
    description = "Answers the domain with `check`: what the look-up found and, when the record is missing or holds something else, what is expected. A verified domain stays verified and is answered without a look-up.",
    params(
        ("name" = ProjectName, Path, description = "The project"),
        ("domain" = String, Path, description = "The domain"),
    ),
    responses(
        (status = 200, description = "The domain and what the check found", body = DomainView),
        (status = 404, description = "`project_not_found` or `domain_not_found`", body = ErrorBody),
        (status = 503, description = "`dns_unavailable`: the resolver cannot be set up", body = ErrorBody),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, domain)): Path<(String, String)>,
) -> Result<Json<DomainView>, ApiError> {
    let project = path_name(&raw)?;
    let (domain, report) = domains::verify(&state.services, &project, &domain, caller.by())
        .await
        .map_err(domain_error)?;
    let mut view = DomainView::new(&state, domain);
    view.check = Some(check_view(report));
    Ok(Json(view))
}

/// `DELETE /api/v1/projects/{name}/domains/{domain}` → 204.
#[utoipa::path(
    delete,
    path = "/v1/projects/{name}/domains/{domain}",
    tag = "domains",
    summary = "Remove a custom domain",
    description = "It stops serving at once, on every node. Refused while other domains of the project redirect to it.",
    params(
        ("name" = ProjectName, Path, description = "The project"),
        ("domain" = String, Path, description = "The domain"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`project_not_found` or `domain_not_found`", body = ErrorBody),
        (status = 409, description = "`domain_in_use`: other domains redirect to it", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((raw, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project = path_name(&raw)?;
    domains::delete(&state.services, &project, &domain, caller.by())
        .await
        .map_err(domain_error)?;
    Ok(StatusCode::NO_CONTENT)
}

fn check_view(report: CheckReport) -> CheckView {
    CheckView {
        result: report.outcome.code(),
        found: match report.outcome {
            VerifyOutcome::OtherValue { found } => found,
            _ => Vec::new(),
        },
        message: report.message,
    }
}

/// The API's answer to a refusal of the domains service; public so that a desired-state
/// apply answers domain errors the same way.
pub fn domain_error(err: DomainError) -> ApiError {
    let status = match err {
        DomainError::Repository(err) => return err.into(),
        DomainError::Verifier(_) => return ApiError::unavailable(err),
        DomainError::ProjectNotFound(_) | DomainError::NotFound { .. } => StatusCode::NOT_FOUND,
        DomainError::Taken { .. } | DomainError::InUse { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let error = ApiError::new(status, err.code(), err.to_string());
    match err.field() {
        Some(field) => error.with_field(field.to_owned()),
        None => error,
    }
}
