//! The API tokens aggregate of the [`Repository`](super::Repository) port: each token's
//! name, scopes, projects, expiry and the hash of its secret — never the secret.
//!
//! # Contract
//! - `find_token` looks a token up by the hash of its secret and reads the database every
//!   time: adapters and decorators must never answer it from a cache, so a revoked token
//!   stops working on every node the moment `revoke_token` returns.
//! - `revoke_token` deletes the row: a revoked token is indistinguishable from one that
//!   never existed. The history keeps the id and name it recorded at the time.
//! - Expiry is the caller's to check (`ApiToken::is_expired`); the repository returns
//!   expired tokens so listings can show them.
//! - `touch_token` moves `last_used_at` forward only when it is at least `granularity`
//!   older than now, so many nodes touching the same token write at most once per
//!   `granularity` between them.

use std::time::Duration;

use async_trait::async_trait;

use super::RepositoryError;
use crate::model::{ApiToken, NewToken, TokenHash, TokenId};

/// API tokens.
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Store a new token. `Conflict` if its id or hash is taken (a collision of 128 or
    /// 256 random bits: in practice, never).
    async fn create_token(&self, new: &NewToken) -> Result<ApiToken, RepositoryError>;

    /// Every token, oldest first.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, RepositoryError>;

    /// The token whose secret hashes to `hash`. `NotFound` if none (never stored, or
    /// revoked). Never cached; see the module docs.
    async fn find_token(&self, hash: &TokenHash) -> Result<ApiToken, RepositoryError>;

    /// Revoke (delete) a token. `NotFound` if unknown (a repeated revoke).
    async fn revoke_token(&self, id: &TokenId) -> Result<(), RepositoryError>;

    /// Record a use of the token now, unless one within `granularity` is recorded already.
    /// An unknown token is no error (it may have been revoked meanwhile).
    async fn touch_token(&self, id: &TokenId, granularity: Duration)
    -> Result<(), RepositoryError>;
}
