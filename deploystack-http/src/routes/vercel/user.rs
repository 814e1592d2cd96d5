//! Who the caller is: `GET /v2/user` (asked by almost every command), the team list
//! `GET /v1/teams` (a 404 there aborts the first deploy) and `GET /teams/{id}`.
//!
//! The user is the token the request came with (its id and name); its default team is this
//! server's one team, [`TEAM_ID`]. A tokenless local request (`auth = local`) is the user
//! `local`.

use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

use super::wire::{TEAM_ID, not_found, pagination, team_object};
use crate::error::ApiError;
use crate::middleware::auth::Access;

/// The user's id and name: the token's, or `local`.
fn identity(access: &Access) -> (String, String) {
    match &access.token {
        Some(token) => (format!("user_{}", token.id), token.name.clone()),
        None => ("user_local".to_owned(), "local".to_owned()),
    }
}

/// `GET /v2/user`.
pub async fn user(access: Access) -> Json<Value> {
    let (id, name) = identity(&access);
    Json(json!({
        "user": {
            "id": id,
            "uid": id,
            "username": name,
            "name": name,
            // Reserved for documentation (RFC 2606): never a real address.
            "email": format!("{}@deploystack.invalid", name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")),
            "version": "northstar",
            "defaultTeamId": TEAM_ID,
            "avatar": null,
        }
    }))
}

/// `GET /v1/teams`: the one team.
pub async fn teams() -> Json<Value> {
    Json(json!({"teams": [team_object()], "pagination": pagination(1, None)}))
}

/// `GET /teams/{id}`: the team, by its id or slug (or the caller's own user id, which the
/// CLI asks for in a personal scope).
pub async fn team(access: Access, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (user, _) = identity(&access);
    if id == TEAM_ID || id == super::wire::TEAM_SLUG || id == user {
        Ok(Json(team_object()))
    } else {
        Err(not_found("team"))
    }
}
