//! [`IdempotencyKeys`] on SQLite: one row per (scope, key); see the migration
//! `0006_idempotency_keys.sql` for its life cycle.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{SqliteRepository, db, expiry, now_ms, to_ms};
use crate::model::ContentHash;
use crate::repository::RepositoryError;
use crate::repository::idempotency::{IdempotencyKeys, Reservation, StoredAnswer, headers_to_json};
use crate::repository::rows;

/// Take the key when no live record holds it: a new row, or over a row that expired or
/// whose reservation's lock ran out. `RETURNING` yields a row only when this took it.
const RESERVE: &str = "INSERT INTO idempotency_keys (scope, key, token, created_at, locked_until) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (scope, key) DO UPDATE SET token = excluded.token, \
         created_at = excluded.created_at, locked_until = excluded.locked_until, \
         fingerprint = NULL, status = NULL, headers = NULL, body = NULL \
     WHERE idempotency_keys.created_at < ?6 \
        OR (idempotency_keys.fingerprint IS NULL AND idempotency_keys.locked_until <= ?4) \
     RETURNING token";

#[async_trait]
impl IdempotencyKeys for SqliteRepository {
    async fn reserve_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        lock: Duration,
        ttl: Duration,
    ) -> Result<Reservation, RepositoryError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let expired_before = now.saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        let taken = sqlx::query(RESERVE)
            .bind(scope)
            .bind(key)
            .bind(&token)
            .bind(now)
            .bind(expiry(now, lock))
            .bind(expired_before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let reservation = if taken.is_some() {
            Reservation::Fresh { token }
        } else {
            // The write lock is held, so the row that refused us is still there.
            let row = sqlx::query(
                "SELECT fingerprint, status, headers, body FROM idempotency_keys \
                 WHERE scope = ?1 AND key = ?2",
            )
            .bind(scope)
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            rows::idempotency_state(&row)?
        };
        tx.commit().await.map_err(db)?;
        Ok(reservation)
    }

    async fn complete_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
        fingerprint: &ContentHash,
        answer: &StoredAnswer,
    ) -> Result<(), RepositoryError> {
        let done = sqlx::query(
            "UPDATE idempotency_keys SET fingerprint = ?4, status = ?5, headers = ?6, body = ?7, \
                 locked_until = NULL \
             WHERE scope = ?1 AND key = ?2 AND token = ?3 AND fingerprint IS NULL",
        )
        .bind(scope)
        .bind(key)
        .bind(token)
        .bind(fingerprint.to_string())
        .bind(i64::from(answer.status))
        .bind(headers_to_json(&answer.headers)?)
        .bind(&answer.body)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RepositoryError::LeaseLost);
        }
        Ok(())
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        token: &str,
    ) -> Result<(), RepositoryError> {
        sqlx::query(
            "DELETE FROM idempotency_keys \
             WHERE scope = ?1 AND key = ?2 AND token = ?3 AND fingerprint IS NULL",
        )
        .bind(scope)
        .bind(key)
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn purge_idempotency_keys(&self, before: OffsetDateTime) -> Result<u64, RepositoryError> {
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(purged.rows_affected())
    }
}
