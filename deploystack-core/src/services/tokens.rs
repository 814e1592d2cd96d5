//! API tokens: making one (the secret is returned once, only its hash kept), and finding
//! the token a request presents.
//!
//! Both the HTTP API (`POST /api/v1/tokens`) and the server's `token create` command call
//! [`create`], so a token made either way is checked by the same rules. Who may do what with
//! a token is the HTTP layer's business (`deploystack-http`'s `middleware::auth`); this
//! module only knows what a token is.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{
    ApiToken, MAX_TOKEN_NAME, NewToken, ProjectName, Scope, TOKEN_PREFIX, TokenHash, TokenId,
    TokenSecret,
};
use crate::repository::{Repository, RepositoryError};

/// How often a token's `last_used_at` is written at most: precise enough to tell a token in
/// use from a forgotten one, and one write a minute per busy token instead of one per request.
pub const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// Longest lifetime a token may be given (ten years): far enough to mean "long-lived", near
/// enough that the expiry is a real date in every database.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

/// A token to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Its name, for people.
    pub name: String,
    /// Its scopes: at least one.
    pub scopes: Vec<Scope>,
    /// The projects it is limited to (`None`: every project). Names need not exist yet, so a
    /// token can be made for a project it will create with `PUT /api/v1/projects/{name}`.
    pub projects: Option<Vec<ProjectName>>,
    /// How long it lives; `None`: until revoked.
    pub expires_in: Option<Duration>,
}

/// Why a token could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A field of the request is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why, and what would be accepted.
        message: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> TokenError {
    TokenError::Invalid {
        field,
        message: message.into(),
    }
}

/// Make a token: check the request, store the hash, return the record and the secret (the
/// only time the secret exists outside its owner's hands).
pub async fn create(
    repository: &dyn Repository,
    request: TokenRequest,
) -> Result<(ApiToken, TokenSecret), TokenError> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("a token name is 1 to {MAX_TOKEN_NAME} bytes without control characters"),
        ));
    }
    let mut scopes = request.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(invalid(
            "scopes",
            "give at least one scope: read, deploy or admin",
        ));
    }
    let projects = request.projects.map(|mut projects| {
        projects.sort();
        projects.dedup();
        projects
    });
    if projects.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            "projects",
            "a token limited to no project could do nothing: leave projects out for every project",
        ));
    }
    let expires_at = match request.expires_in {
        None => None,
        Some(lifetime) if lifetime.is_zero() || lifetime > MAX_LIFETIME => {
            return Err(invalid(
                "expires_in",
                "a lifetime is between one second and ten years",
            ));
        }
        Some(lifetime) => Some(OffsetDateTime::now_utc() + lifetime),
    };
    let secret = TokenSecret::generate();
    let token = repository
        .create_token(&NewToken {
            id: TokenId::random(),
            name: name.to_owned(),
            scopes,
            projects,
            hash: secret.hash(),
            expires_at,
        })
        .await?;
    Ok((token, secret))
}

/// What [`find`] concluded about a presented secret.
#[derive(Debug)]
pub enum Presented {
    /// A live token.
    Valid(ApiToken),
    /// No token has this secret (never made, mistyped, or revoked).
    Unknown,
    /// The token's lifetime is over.
    Expired,
}

/// The token whose secret a request presented. Reads the repository every time (see the
/// contract of `TokenRepository::find_token`), and records the use at most once a minute.
pub async fn find(
    repository: &dyn Repository,
    presented: &str,
) -> Result<Presented, RepositoryError> {
    // Not ours by its shape: no need to ask the database.
    if !presented.starts_with(TOKEN_PREFIX)
        || presented.len() > 128
        || !presented
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(Presented::Unknown);
    }
    let hash = TokenHash::of(presented);
    let token = match repository.find_token(&hash).await {
        Ok(token) => token,
        Err(RepositoryError::NotFound) => return Ok(Presented::Unknown),
        Err(err) => return Err(err),
    };
    // The look-up was by an index on the hash; comparing again in constant time costs
    // nothing and keeps the equality decision free of early exits.
    if !token.hash.matches(&hash) {
        return Ok(Presented::Unknown);
    }
    if token.is_expired(OffsetDateTime::now_utc()) {
        return Ok(Presented::Expired);
    }
    if token
        .last_used_at
        .is_none_or(|at| OffsetDateTime::now_utc() - at >= LAST_USED_GRANULARITY)
    {
        // Best effort: a failed note of use must not fail the request.
        if let Err(err) = repository
            .touch_token(&token.id, LAST_USED_GRANULARITY)
            .await
        {
            tracing::warn!(token = %token.id, error = %err, "cannot record a token's use");
        }
    }
    Ok(Presented::Valid(token))
}

/// A lifetime as people write it: `3600` (seconds), `90s`, `15m`, `12h`, `30d`, `52w`.
pub fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a lifetime like 3600, 90s, 15m, 12h, 30d or 52w"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => {
            return Err(format!(
                "{text:?}: the unit is one of s, m, h, d, w (or none, for seconds)"
            ));
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_as_people_write_them() {
        assert_eq!(parse_lifetime("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_lifetime("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_lifetime("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_lifetime("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_lifetime("30y").is_err());
        assert!(parse_lifetime("d").is_err());
        assert!(parse_lifetime("").is_err());
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_made_token_is_found_by_its_secret_until_it_expires() {
        let repo = crate::repository::SqliteRepository::connect("sqlite::memory:")
            .await
            .unwrap();
        let request = TokenRequest {
            name: " ci ".into(),
            scopes: vec![Scope::Deploy, Scope::Read, Scope::Deploy],
            projects: None,
            expires_in: None,
        };
        let (token, secret) = create(&repo, request.clone()).await.unwrap();
        assert_eq!(token.name, "ci");
        assert_eq!(token.scopes, [Scope::Read, Scope::Deploy]);
        let Presented::Valid(found) = find(&repo, secret.expose()).await.unwrap() else {
            panic!("the token is valid");
        };
        assert_eq!(found.id, token.id);
        assert!(matches!(
            find(&repo, "ds_nope").await.unwrap(),
            Presented::Unknown
        ));
        assert!(matches!(
            find(&repo, "Bearer x y").await.unwrap(),
            Presented::Unknown
        ));

        let short = TokenRequest {
            expires_in: Some(Duration::from_secs(1)),
            ..request.clone()
        };
        let (_, secret) = create(&repo, short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(
            find(&repo, secret.expose()).await.unwrap(),
            Presented::Expired
        ));

        for bad in [
            TokenRequest {
                scopes: vec![],
                ..request.clone()
            },
            TokenRequest {
                name: "  ".into(),
                ..request.clone()
            },
            TokenRequest {
                projects: Some(vec![]),
                ..request.clone()
            },
        ] {
            assert!(matches!(
                create(&repo, bad).await,
                Err(TokenError::Invalid { .. })
            ));
        }
    }
}
