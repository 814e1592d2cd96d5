//! API tokens: `POST /api/v1/tokens` (the secret is in the answer, once),
//! `GET /api/v1/tokens` (never a secret) and `DELETE /api/v1/tokens/{id}` (revoke).
//!
//! Every route here needs the `admin` scope on every project (`middleware::auth::rules`).
//! The rules of a token live in `deploystack_core::services::tokens`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use deploystack_core::model::{ApiToken, ProjectName, Scope, TokenId};
use deploystack_core::repository::RepositoryError;
use deploystack_core::services::tokens::{self, TokenError, TokenRequest};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::routes::projects::bad_body;
use crate::state::AppState;

/// `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// What to call it, for people (`ci`, `alice laptop`).
    #[schema(example = "ci")]
    pub name: String,
    /// At least one of `read`, `deploy`, `admin` (each includes the ones before it).
    pub scopes: Vec<Scope>,
    /// The projects it is limited to; leave it out for every project.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub projects: Option<Vec<ProjectName>>,
    /// Its lifetime: seconds (`86400`) or a number with a unit (`"30d"`, `"12h"`); leave it
    /// out for a token that lives until revoked.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "30d")]
    pub expires_in: Option<Lifetime>,
}

/// A lifetime, as a number of seconds or a text with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Lifetime {
    /// Seconds.
    Seconds(u64),
    /// `90s`, `15m`, `12h`, `30d`, `52w`.
    Text(String),
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id, for `DELETE /api/v1/tokens/{id}`.
    #[schema(value_type = String, example = "6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f")]
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The projects it is limited to; `null`: every project.
    #[schema(value_type = Option<Vec<String>>)]
    pub projects: Option<Vec<ProjectName>>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it stops working; `null`: never.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used, to the minute; `null`: never.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<ApiToken> for TokenView {
    fn from(token: ApiToken) -> Self {
        Self {
            id: token.id,
            name: token.name,
            scopes: token.scopes,
            projects: token.projects,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// A new token: its record and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenView {
    /// The secret: send it as `Authorization: Bearer <token>`. It is not stored and cannot
    /// be shown again.
    #[schema(example = "ds_3f9a…")]
    pub token: String,
    /// The record.
    #[serde(flatten)]
    pub record: TokenView,
}

/// Every token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenListView {
    /// Oldest first.
    pub tokens: Vec<TokenView>,
}

/// `POST /api/v1/tokens` → 201 with the secret.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    summary = "Make an API token",
    description = "Needs the admin scope. The answer's `token` is the secret, shown this once.",
    request_body = CreateTokenBody,
    responses(
        (status = 201, description = "Made; `token` is the secret", body = CreatedTokenView),
        (status = 400, description = "`invalid_body`: not JSON", body = ErrorBody),
        (status = 401, description = "`token_required`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` or `project_not_allowed`", body = ErrorBody),
        (status = 422, description = "`invalid_token_request` or `invalid_body`, naming the `field`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateTokenBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(bad_body)?;
    let expires_in = match body.expires_in {
        None => None,
        Some(Lifetime::Seconds(seconds)) => Some(std::time::Duration::from_secs(seconds)),
        Some(Lifetime::Text(text)) => Some(tokens::parse_lifetime(&text).map_err(|message| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_token_request",
                format!("expires_in: {message}"),
            )
            .with_field("expires_in")
        })?),
    };
    let request = TokenRequest {
        name: body.name,
        scopes: body.scopes,
        projects: body.projects,
        expires_in,
    };
    let (token, secret) = tokens::create(state.services.repository.as_ref(), request)
        .await
        .map_err(token_error)?;
    let location = format!("/api/v1/tokens/{}", token.id);
    let view = CreatedTokenView {
        token: secret.expose().to_owned(),
        record: token.into(),
    };
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            // The secret must not be kept by any cache on the way.
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(view),
    ))
}

/// `GET /api/v1/tokens`.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    summary = "List API tokens",
    description = "Needs the admin scope. Never shows a secret.",
    responses(
        (status = 200, description = "Every token, oldest first", body = TokenListView),
        (status = 401, description = "`token_required`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` or `project_not_allowed`", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<TokenListView>, ApiError> {
    let tokens = state.services.repository.list_tokens().await?;
    Ok(Json(TokenListView {
        tokens: tokens.into_iter().map(TokenView::from).collect(),
    }))
}

/// `DELETE /api/v1/tokens/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "tokens",
    summary = "Revoke an API token",
    description = "Needs the admin scope. The token stops working at once, on every node.",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`token_required`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope` or `project_not_allowed`", body = ErrorBody),
        (status = 404, description = "`token_not_found`", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "token_not_found",
            "no token with this id",
        )
    };
    let id: TokenId = raw.parse().map_err(|_| not_found())?;
    match state.services.repository.revoke_token(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RepositoryError::NotFound) => Err(not_found()),
        Err(err) => Err(err.into()),
    }
}

fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Invalid { field, message } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_request",
            format!("{field}: {message}"),
        )
        .with_field(field),
        TokenError::Repository(err) => err.into(),
        other => ApiError::internal(other),
    }
}
