//! Who is calling: the connection's peer, kept on each request so a handler can say who did
//! something — the history of production records it as `by` on every promote and rollback.
//!
//! The server puts the peer's address on every request ([`Peer`]); handlers take a
//! [`Caller`], which describes the caller in words an operator reads in the history: the
//! token a request was authorized with (`token ci (<id>)`, see `middleware::auth`), else
//! the peer's address (`api (127.0.0.1)`, a tokenless local request). A request that did
//! not come through the server (a test driving the router directly) has no peer and is
//! described as `api`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use deploystack_core::model::ApiToken;

use crate::middleware::auth::Access;

/// The address of the connection a request came on, as the server accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Who made a request, in words: `api (127.0.0.1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(String);

impl Caller {
    /// The description the history keeps.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The description as the services take it (`by`), to be kept in the history and the
    /// events.
    pub fn by(&self) -> Option<&str> {
        Some(&self.0)
    }

    /// The caller of a request made with `token`: `token <name> (<id>)`.
    pub fn from_token(token: &ApiToken) -> Self {
        Self(format!("token {} ({})", token.name, token.id))
    }

    /// The caller of a tokenless request that came on a connection from `peer` (if known).
    pub fn from_peer(peer: Option<Peer>) -> Self {
        match peer {
            Some(Peer(address)) => Self(format!("api ({})", address.ip().to_canonical())),
            None => Self("api".to_owned()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts
            .extensions
            .get::<Access>()
            .and_then(|access| access.token.as_ref())
        {
            return Ok(Self::from_token(token));
        }
        Ok(Self::from_peer(parts.extensions.get::<Peer>().copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_described_by_their_address_without_the_port() {
        let v4 = Peer("127.0.0.1:50123".parse().unwrap());
        assert_eq!(Caller::from_peer(Some(v4)).as_str(), "api (127.0.0.1)");
        let mapped = Peer("[::ffff:10.0.0.7]:443".parse().unwrap());
        assert_eq!(Caller::from_peer(Some(mapped)).as_str(), "api (10.0.0.7)");
        let v6 = Peer("[::1]:8000".parse().unwrap());
        assert_eq!(Caller::from_peer(Some(v6)).as_str(), "api (::1)");
        assert_eq!(Caller::from_peer(None).as_str(), "api");
    }

    #[test]
    fn a_token_names_the_caller_by_name_and_id() {
        use deploystack_core::model::{Scope, TokenHash, TokenId};
        let token = ApiToken {
            id: "6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f"
                .parse::<TokenId>()
                .unwrap(),
            name: "ci".into(),
            scopes: vec![Scope::Deploy],
            projects: None,
            hash: TokenHash::of("ds_x"),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            last_used_at: None,
        };
        assert_eq!(
            Caller::from_token(&token).as_str(),
            "token ci (6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f)"
        );
    }
}
