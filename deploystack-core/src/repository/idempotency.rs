//! Idempotency keys: a create request retried with the same `Idempotency-Key` gets the
//! answer of the first attempt instead of making a second resource.
//!
//! The systems that drive the API retry: after a timeout they cannot know whether the first
//! request made a deployment or a project, so they send it again. Stripe's and the IETF
//! draft's answer is a key the client picks per logical request; the server keeps each key's
//! answer for a day (see `deploystack-http`'s `middleware::idempotency` for the HTTP rules).
//!
//! # Contract
//! - A key is scoped: the same key sent to two different endpoints names two requests.
//! - [`IdempotencyKeys::reserve_idempotency_key`] is a compare-and-set: of any number of
//!   concurrent callers with the same scope and key, exactly one gets
//!   [`Reservation::Fresh`] and runs the request; the others see it
//!   [`Reservation::InProgress`] until it completes, then its [`Reservation::Completed`]
//!   answer.
//! - Only the holder's `token` can complete or release a reservation, so a request that
//!   outlived its lock (and was taken over by a retry) cannot overwrite the retry's answer.
//! - A record older than its `ttl` counts as absent, and so does a reservation whose lock
//!   expired without completing (its request crashed): the next caller gets it fresh.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::RepositoryError;
use crate::model::ContentHash;

/// How long a key's answer is kept and replayed (the and Stripe's 24 hours).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a reservation may stay in progress before a retry may take it over: longer than
/// any request runs (uploads are cut at ten minutes).
pub const IDEMPOTENCY_LOCK: Duration = Duration::from_secs(15 * 60);

/// The answer kept for a key: enough to send the same response again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// Its HTTP status.
    pub status: u16,
    /// The headers that describe the body or the resource (`content-type`, `location`).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// What [`IdempotencyKeys::reserve_idempotency_key`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// No live record: the caller holds the key now and runs the request, then completes
    /// or releases it with this token.
    Fresh {
        /// Proof of holding the reservation.
        token: String,
    },
    /// Another request with this key is running.
    InProgress,
    /// A request with this key completed: its fingerprint (to tell a retry from a different
    /// request reusing the key) and its answer.
    Completed {
        /// Hash of the first request (method, path, query, body).
        fingerprint: ContentHash,
        /// What it was answered.
        answer: StoredAnswer,
    },
}

/// Where the answers of idempotent requests are kept. Part of the
/// [`Repository`](super::Repository), so every node of a cluster sees the same keys.
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Reserve `key` in `scope` (e.g. `POST /api/v1/projects`) for a request, unless a live
    /// record has it. A reservation is locked for `lock`; records live for `ttl` from their
    /// reservation.
    async fn reserve_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        lock: Duration,
        ttl: Duration,
    ) -> Result<Reservation, RepositoryError>;

    /// Record the answer of the request holding `token`. `LeaseLost` if the reservation is
    /// no longer that token's (it expired and was taken over, or was released).
    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        fingerprint: &ContentHash,
        answer: &StoredAnswer,
    ) -> Result<(), RepositoryError>;

    /// Drop the reservation `token` holds, so a retry runs the request again (the request
    /// failed in a way worth retrying, or its answer is not worth keeping). Does nothing
    /// when the reservation is no longer that token's.
    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
    ) -> Result<(), RepositoryError>;

    /// Delete the records reserved before `before` (expired ones); how many went.
    async fn purge_idempotency_keys(&self, before: OffsetDateTime) -> Result<u64, RepositoryError>;
}

/// The `headers` column's text: the kept headers as a JSON array of pairs.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) fn headers_to_json(headers: &[(String, String)]) -> Result<String, RepositoryError> {
    serde_json::to_string(headers)
        .map_err(|e| RepositoryError::Unavailable(format!("could not encode headers: {e}")))
}
