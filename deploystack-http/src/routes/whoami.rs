//! `GET /api/v1/whoami`: who the server takes the caller for — the token a request came
//! with (its name, scopes and projects, never its secret), or a tokenless local caller.
//!
//! Clients use it to check a token before saving it (`deploystack login`) and to show what
//! it may do (`deploystack whoami`). Every valid token may ask, a read-only one or one
//! limited to other projects included (`middleware::auth::rules`): the answer is about the
//! token itself.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::middleware::auth::Access;
use crate::routes::tokens::TokenView;

/// Who is calling.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoamiView {
    /// `token`: the request came with a valid token; `local`: without one, let in by the
    /// `local` rule (a request from this machine).
    #[schema(example = "token")]
    pub caller: &'static str,
    /// The token, when `caller` is `token`; `null` otherwise.
    pub token: Option<TokenView>,
}

/// `GET /api/v1/whoami`.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "tokens",
    summary = "Who the server takes the caller for",
    description = "The token the request came with (never its secret), or `local` for a tokenless request the local rule let in. Any valid token may ask.",
    responses(
        (status = 200, description = "The caller", body = WhoamiView),
        (status = 401, description = "`token_required`, `invalid_token` or `token_expired`", body = ErrorBody),
        (status = 403, description = "`foreign_host` or `cross_site`: a tokenless request the local rule refuses", body = ErrorBody),
    )
)]
pub async fn whoami(access: Access) -> Json<WhoamiView> {
    Json(match access.token {
        Some(token) => WhoamiView {
            caller: "token",
            token: Some(TokenView::from(token.as_ref().clone())),
        },
        None => WhoamiView {
            caller: "local",
            token: None,
        },
    })
}
