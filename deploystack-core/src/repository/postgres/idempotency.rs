//! [`IdempotencyKeys`] on PostgreSQL: one row per (scope, key); see the migration
//! `0006_idempotency_keys.sql` for its life cycle. Times come from the database's clock, so
//! every node agrees on when a lock or a record runs out.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{PostgresRepository, db, interval};
use crate::model::ContentHash;
use crate::repository::RepositoryError;
use crate::repository::idempotency::{IdempotencyKeys, Reservation, StoredAnswer, headers_to_json};
use crate::repository::rows;

/// Take the key when no live record holds it: a new row, or over a row that expired or
/// whose reservation's lock ran out. `RETURNING` yields a row only when this took it; the
/// conflict check and the update are one atomic statement, so of concurrent callers only
/// one takes the key.
const RESERVE: &str = "INSERT INTO idempotency_keys (scope, key, token, created_at, locked_until) \
     VALUES ($1, $2, $3, now(), now() + $4) \
     ON CONFLICT (scope, key) DO UPDATE SET token = excluded.token, \
         created_at = excluded.created_at, locked_until = excluded.locked_until, \
         fingerprint = NULL, status = NULL, headers = NULL, body = NULL \
     WHERE idempotency_keys.created_at < now() - $5 \
        OR (idempotency_keys.fingerprint IS NULL AND idempotency_keys.locked_until <= now()) \
     RETURNING token";

#[async_trait]
impl IdempotencyKeys for PostgresRepository {
    async fn reserve_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        lock: Duration,
        ttl: Duration,
    ) -> Result<Reservation, RepositoryError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        // The row that refused the insert may be released before it is read; the next round
        // then takes the key. Two rounds are enough unless someone reserves and releases
        // the same key in between, which only another retry of this request would do.
        for _ in 0..3 {
            let taken = sqlx::query(RESERVE)
                .bind(scope)
                .bind(key)
                .bind(&token)
                .bind(interval(lock))
                .bind(interval(ttl))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            if taken.is_some() {
                return Ok(Reservation::Fresh { token });
            }
            let row = sqlx::query(
                "SELECT fingerprint, status::bigint AS status, headers, body FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            let Some(row) = row else { continue };
            return rows::idempotency_state(&row);
        }
        Ok(Reservation::InProgress)
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
            "UPDATE idempotency_keys SET fingerprint = $4, status = $5, headers = $6, body = $7, \
                 locked_until = NULL \
             WHERE scope = $1 AND key = $2 AND token = $3 AND fingerprint IS NULL",
        )
        .bind(scope)
        .bind(key)
        .bind(token)
        .bind(fingerprint.to_string())
        .bind(i32::from(answer.status))
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
             WHERE scope = $1 AND key = $2 AND token = $3 AND fingerprint IS NULL",
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
        let purged = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(purged.rows_affected())
    }
}
