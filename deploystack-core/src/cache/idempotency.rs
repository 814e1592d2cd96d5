//! Idempotency keys pass straight through the cache: a reservation is a compare-and-set that
//! must see every node's latest write, so nothing of it may be answered from a cache.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::CachedRepository;
use crate::model::ContentHash;
use crate::repository::{IdempotencyKeys, RepositoryError, Reservation, StoredAnswer};

#[async_trait]
impl IdempotencyKeys for CachedRepository {
    async fn reserve_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        lock: Duration,
        ttl: Duration,
    ) -> Result<Reservation, RepositoryError> {
        self.inner
            .reserve_idempotency_key(scope, key, lock, ttl)
            .await
    }

    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        fingerprint: &ContentHash,
        answer: &StoredAnswer,
    ) -> Result<(), RepositoryError> {
        self.inner
            .complete_idempotency_key(scope, key, token, fingerprint, answer)
            .await
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
    ) -> Result<(), RepositoryError> {
        self.inner.release_idempotency_key(scope, key, token).await
    }

    async fn purge_idempotency_keys(&self, before: OffsetDateTime) -> Result<u64, RepositoryError> {
        self.inner.purge_idempotency_keys(before).await
    }
}
