//! [`PostgresRepository`]: the `Repository` port on a PostgreSQL server, through sqlx.
//!
//! # Why PostgreSQL?
//! It is the cluster's source of truth: many HTTP nodes and workers, on many machines, share
//! one database that does transactions, row locks and its own clock. Switching from SQLite is
//! configuration only (`DEPLOYSTACK_DATABASE_URL=postgres://…`); the behaviour is the same, as
//! both adapters pass `crate::testing::repository::run_all`.
//!
//! # Concurrency
//! Every transaction runs at PostgreSQL's default isolation, READ COMMITTED, where each
//! statement sees what was committed before it started. What makes the flows correct across
//! processes is row locks, not snapshots:
//! - Compare-and-set operations (claim, and every call fenced by an attempt) are single
//!   `UPDATE … WHERE … RETURNING` statements. Two of them on one deployment queue on its row
//!   lock, and the second re-checks its `WHERE` against the row the first committed, so two
//!   workers can never both claim, and a stale attempt can never publish after a takeover.
//! - `delete_deployment` reads the status it cancels under `FOR NO KEY UPDATE` (the lock an
//!   `UPDATE` takes), so no claim slips in between the read and the write.
//! - The blob-collection protocol locks `blobs` rows. `touch_blobs` and `publish` upsert the
//!   rows of their blobs, which locks them in hash order (no deadlock between two builds
//!   sharing blobs), and refuse with `BlobBusy` when the locked row is being collected. A
//!   publish inserts its files only while it holds those locks. The collector locks its
//!   candidates with `FOR UPDATE SKIP LOCKED` (it never waits for a build and skips rows a
//!   build holds), then, in a second statement that sees everything committed by then,
//!   marks those still unreferenced. A blob is therefore either claimed by the collector or
//!   referenced by a committed manifest, never both, whatever the clocks say.
//!
//! # Clock
//! Every timestamp the repository writes (creation, leases, `last_used_at`, claims) is the
//! server's `now()`, so nodes whose clocks drift still agree on which lease has expired. The
//! cutoffs callers pass in (`unused_since`, `older_than`) are their own clock's: they are
//! coarse (seconds to hours), so a small drift only moves them a little.
//!
//! # Pool
//! Up to 10 connections per process: plenty for short statements, and nine processes fit
//! under PostgreSQL's default `max_connections` of 100 (a larger cluster raises it). A caller
//! waits at most 5 s for a connection, and so does [`PostgresRepository::connect`] for the
//! first, which makes an unreachable server a quick [`RepositoryError::Unavailable`] instead
//! of a hang.
//!
//! # Migrations
//! The SQL under `migrations/postgres/` is embedded in the binary and applied on
//! [`PostgresRepository::connect`] by sqlx's [`Migrator`], which first takes a session-level
//! advisory lock keyed on the database name (`pg_advisory_lock`). Processes starting at once
//! queue on it; the next one in finds the migrations applied and does nothing. Each migration
//! runs in its own transaction together with its bookkeeping row, so a crash never leaves one
//! half-applied.
//!
//! # Lists as parameters
//! Manifests can hold thousands of files. Lists are bound as PostgreSQL arrays, one per
//! column, and expanded with `unnest`, so every statement is static SQL and a whole manifest
//! is inserted in one statement and one round trip.
//!
//! # Text
//! PostgreSQL `text` cannot hold NUL characters, while build output can. Log lines and error
//! messages are stored with each NUL replaced by U+FFFD (the replacement character), so a
//! stray byte in a build's output cannot make its log unwritable.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::types::PgInterval;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Row, SqlSafeStr};
use time::OffsetDateTime;

mod domains;
mod env;
mod idempotency;
mod projects;
mod tokens;

use super::rows::{self, Columns, size_to_db};
use super::{
    Claim, DeploymentRepository, FileRepository, LogRepository, PublishedBuild, Repository,
    RepositoryError,
};
use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, DeploymentStatus,
    EncodedVariant, FileEntry, LogLine, NewDeployment, Page, PageRequest, ProjectName,
    StoredLogLine,
};

/// Connections per process (see the module docs).
const POOL_SIZE: u32 = 10;
/// How long a caller, or `connect`, waits for a connection before reporting `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest lease recorded; a longer one means "until released", and clamping it keeps
/// `now() + lease` inside PostgreSQL's timestamp range.
const MAX_LEASE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The embedded migrations, in order.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "routing".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0002_routing.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "encodings".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0003_encodings.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "build settings".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0004_build_settings.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "projects".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0005_projects.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "idempotency keys".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0006_idempotency_keys.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "env vars".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0007_env_vars.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            8,
            "domains".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0008_domains.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            9,
            "production actor".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0009_production_actor.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            10,
            "tokens".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0010_tokens.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            11,
            "protection".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0011_protection.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            12,
            "created by".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0012_created_by.sql").into_sql_str(),
            false,
        ),
    ])
});

/// The columns of a deployment, in the order `rows::deployment` reads them by name.
macro_rules! deployment_columns {
    () => {
        "id, project, target, status, source_key, attempt, lease_owner, lease_expires_at, \
         error_code, error_message, file_count, total_bytes, created_at, updated_at, ready_at, \
         deleted_at, routing, build_settings, build_env, created_by"
    };
}

/// The fence of every call made with an attempt: `$1` is the id, `$2` the attempt.
macro_rules! fenced {
    () => {
        " WHERE id = $1 AND attempt = $2 AND status = 'BUILDING' AND deleted_at IS NULL "
    };
}

/// `$1` id, `$2` project, `$3` target, `$4` source key, `$5` settings, `$6` variables.
const INSERT_DEPLOYMENT: &str = concat!(
    "INSERT INTO deployments (id, project, target, status, source_key, created_at, updated_at, \
     build_settings, build_env, created_by) VALUES ($1, $2, $3, 'QUEUED', $4, now(), now(), $5, $6, \
     $7) \
     RETURNING ",
    deployment_columns!()
);

const SELECT_DEPLOYMENT: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE id = $1"
);

const LIST_FIRST_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $1"
);

const LIST_NEXT_PAGE: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE deleted_at IS NULL AND (created_at, id) < ($2, $3) \
     ORDER BY created_at DESC, id DESC LIMIT $1"
);

/// `$1` id, `$2` worker, `$3` lease. A concurrent claim waits on the row lock, then re-checks
/// this `WHERE` against the committed row and finds it taken.
const CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'BUILDING', attempt = attempt + 1, lease_owner = $2, \
     lease_expires_at = now() + $3, updated_at = now() \
     WHERE id = $1 AND deleted_at IS NULL \
     AND (status = 'QUEUED' OR (status = 'BUILDING' AND lease_expires_at < now())) \
     RETURNING ",
    deployment_columns!()
);

/// `$1` id: the attempts a claim takes over from are over.
const ABANDON_BUILDS: &str = "UPDATE builds SET finished_at = now(), outcome = 'lost' \
     WHERE deployment_id = $1 AND finished_at IS NULL";

/// `$1` id, `$2` attempt, `$3` worker.
const START_BUILD: &str = "INSERT INTO builds (deployment_id, attempt, worker, started_at) \
     VALUES ($1, $2, $3, now())";

/// `$1` id, `$2` attempt, `$3` outcome, `$4` strategy (kept if NULL).
const FINISH_BUILD: &str = "UPDATE builds SET finished_at = now(), outcome = $3, \
     strategy = COALESCE($4, strategy) WHERE deployment_id = $1 AND attempt = $2";

/// `$3` lease.
const RENEW_LEASE: &str = concat!(
    "UPDATE deployments SET lease_expires_at = now() + $3",
    fenced!()
);

const RELEASE_CLAIM: &str = concat!(
    "UPDATE deployments SET status = 'QUEUED', lease_owner = NULL, lease_expires_at = NULL, \
     updated_at = now()",
    fenced!()
);

/// `$3` file count, `$4` total bytes.
const PUBLISH: &str = concat!(
    "UPDATE deployments SET status = 'READY', file_count = $3, total_bytes = $4, \
     ready_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, \
     routing = $5",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `$3` error code, `$4` error message.
const FAIL: &str = concat!(
    "UPDATE deployments SET status = 'ERROR', error_code = $3, error_message = $4, \
     updated_at = now(), lease_owner = NULL, lease_expires_at = NULL",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `$1` id: the state `DELETE` changes, locked until the transaction ends.
const LOCK_FOR_DELETE: &str =
    "SELECT status, attempt FROM deployments WHERE id = $1 FOR NO KEY UPDATE";

/// `$1` id. Written so that a second call changes nothing.
const DELETE: &str = concat!(
    "UPDATE deployments SET \
     status = CASE WHEN status IN ('QUEUED', 'BUILDING') THEN 'CANCELED' ELSE status END, \
     updated_at = CASE WHEN deleted_at IS NULL THEN now() ELSE updated_at END, \
     deleted_at = COALESCE(deleted_at, now()), lease_owner = NULL, lease_expires_at = NULL \
     WHERE id = $1 RETURNING ",
    deployment_columns!()
);

/// `$1` id: the state a cancel changes, locked until the transaction ends.
const LOCK_FOR_CANCEL: &str =
    "SELECT status, attempt FROM deployments WHERE id = $1 FOR NO KEY UPDATE";

/// `$1` id: the compare-and-set of a cancel.
const CANCEL: &str = concat!(
    "UPDATE deployments SET status = 'CANCELED', updated_at = now(), lease_owner = NULL, \
     lease_expires_at = NULL \
     WHERE id = $1 AND deleted_at IS NULL AND status IN ('QUEUED', 'BUILDING') RETURNING ",
    deployment_columns!()
);

/// `$1` id, `$2` after, `$3` limit.
const LOGS_AFTER: &str = "SELECT id, attempt, at, stream, message FROM build_logs \
     WHERE deployment_id = $1 AND id > $2 ORDER BY id LIMIT $3";

/// `$1` id, then one array per column: `$2` paths, `$3` hashes, `$4` sizes, `$5` types.
const INSERT_FILES: &str = "INSERT INTO files (deployment_id, path, sha256, size, content_type) \
     SELECT $1, m.path, m.sha256, m.size, m.content_type \
     FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[]) \
     AS m (path, sha256, size, content_type)";

/// `$1` id, then one array per column: `$2` paths, `$3` encodings, `$4` hashes, `$5` sizes.
const INSERT_ENCODINGS: &str = "INSERT INTO file_encodings \
     (deployment_id, path, encoding, sha256, size) \
     SELECT $1, v.path, v.encoding, v.sha256, v.size \
     FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) \
     AS v (path, encoding, sha256, size)";

/// A file and its variants, one row per variant (or one with NULL variant columns). Callers
/// add the `WHERE` and order by path then encoding, so a file's rows are adjacent.
macro_rules! files_with_encodings {
    () => {
        "SELECT f.path, f.sha256, f.size, f.content_type, e.encoding, \
         e.sha256 AS encoded_sha256, e.size AS encoded_size FROM files AS f \
         LEFT JOIN file_encodings AS e \
         ON e.deployment_id = f.deployment_id AND e.path = f.path "
    };
}

/// `$1` hashes: variants recorded for files with these contents, one file's set per
/// content (the first by deployment and path).
const KNOWN_ENCODINGS: &str = "SELECT f.sha256 AS source, f.deployment_id, f.path, \
     e.encoding, e.sha256, e.size FROM files AS f JOIN file_encodings AS e \
     ON e.deployment_id = f.deployment_id AND e.path = f.path \
     WHERE f.sha256 = ANY($1::text[]) \
     ORDER BY f.sha256, f.deployment_id, f.path, e.encoding";

/// `$1` hashes, `$2` sizes. Inserts or refreshes each blob once (a manifest may name one
/// twice, which `ON CONFLICT` refuses within a statement), in hash order so that concurrent
/// upserts lock shared rows in the same order. Every row is locked and returned as it is
/// now, so the caller sees a collector's claim committed a moment ago.
const UPSERT_BLOBS: &str = "INSERT INTO blobs AS b (sha256, size, last_used_at) \
     SELECT DISTINCT ON (n.sha256) n.sha256, n.size, now() \
     FROM unnest($1::text[], $2::bigint[]) AS n (sha256, size) ORDER BY n.sha256 \
     ON CONFLICT (sha256) DO UPDATE SET last_used_at = excluded.last_used_at \
     RETURNING b.sha256, b.collecting_since";

/// `$1` unused since, `$2` limit: the candidates, locked. `SKIP LOCKED` passes over blobs a
/// build is touching or publishing right now, so the collector never waits for a build.
const LOCK_UNREFERENCED_BLOBS: &str = "SELECT b.sha256 FROM blobs AS b \
     WHERE b.last_used_at < $1 AND (b.collecting_since IS NULL OR b.collecting_since < $1) \
     AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM file_encodings AS e WHERE e.sha256 = b.sha256) \
     ORDER BY b.last_used_at LIMIT $2 FOR UPDATE SKIP LOCKED";

/// `$1` hashes locked by `LOCK_UNREFERENCED_BLOBS`. A new statement sees every manifest
/// committed before it, and none can be committed later: a publish must lock these rows
/// first.
const MARK_COLLECTING: &str = "UPDATE blobs AS b SET collecting_since = now() \
     WHERE b.sha256 = ANY($1::text[]) \
     AND NOT EXISTS (SELECT 1 FROM files AS f WHERE f.sha256 = b.sha256) \
     AND NOT EXISTS (SELECT 1 FROM file_encodings AS e WHERE e.sha256 = b.sha256) \
     RETURNING b.sha256";

/// `$1` hashes.
const FORGET_BLOBS: &str =
    "DELETE FROM blobs WHERE collecting_since IS NOT NULL AND sha256 = ANY($1::text[])";

/// `$1` id, then one array per column: `$2` attempts, `$3` times, `$4` streams, `$5`
/// messages. The identity column follows `ORDER BY`, so lines keep the order of the batch.
const APPEND_LOG: &str = "INSERT INTO build_logs (deployment_id, attempt, at, stream, message) \
     SELECT $1, l.attempt, l.at, l.stream, l.message \
     FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) \
     WITH ORDINALITY AS l (attempt, at, stream, message, n) ORDER BY l.n";

/// Live deployments of a project with a status (the index `deployments_by_project` narrows
/// the rows to the project's).
const COUNT_BY_PROJECT_AND_STATUS: &str = "SELECT COUNT(*) FROM deployments \
     WHERE project = $1 AND status = $2 AND deleted_at IS NULL";

/// `$1` older than, `$2` limit.
const STALLED: &str = "SELECT id FROM deployments WHERE deleted_at IS NULL \
     AND ((status = 'QUEUED' AND updated_at < $1) \
     OR (status = 'BUILDING' AND lease_expires_at < now())) \
     ORDER BY updated_at LIMIT $2";

/// The `Repository` on PostgreSQL. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    /// Connections to one database, shared by every clone; see the module docs for its size.
    pool: PgPool,
}

impl PostgresRepository {
    /// Connect to the database at `url` and apply the embedded migrations.
    ///
    /// `url` is `postgres://user:password@host:port/database` (or `postgresql://…`), with any
    /// of the parameters sqlx understands (`sslmode`, `host` for a Unix socket, …). The
    /// database must exist. An unreachable server is `Unavailable` within a few seconds.
    pub async fn connect(url: &str) -> Result<Self, RepositoryError> {
        // The URL may hold a password: errors name the server, never the URL.
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| RepositoryError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if options.get_application_name().is_none() {
            // So an operator can tell DeployStack's sessions apart in `pg_stat_activity`.
            options = options.application_name("deploystack");
        }
        let server = describe(&options);

        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| match e {
                // sqlx retries a refused connection until the timeout and then says only that
                // it timed out; say what that means.
                sqlx::Error::PoolTimedOut => RepositoryError::Unavailable(format!(
                    "could not connect to PostgreSQL at {server} within {} s: is the server \
                     running and reachable?",
                    ACQUIRE_TIMEOUT.as_secs()
                )),
                e => RepositoryError::Unavailable(format!(
                    "could not connect to PostgreSQL at {server}: {e}"
                )),
            })?;

        if let Err(e) = MIGRATOR.run(&pool).await {
            // Closing ends the migrating session at once, and with it the advisory lock, so
            // a process starting next is not kept waiting on a connection being dropped.
            pool.close().await;
            return Err(RepositoryError::Unavailable(format!(
                "could not migrate the PostgreSQL database at {server}: {e}"
            )));
        }
        Ok(Self { pool })
    }
}

#[async_trait]
impl DeploymentRepository for PostgresRepository {
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        let row = sqlx::query(INSERT_DEPLOYMENT)
            .bind(new.id.to_string())
            .bind(new.project.as_ref().map(|p| p.as_str().to_owned()))
            .bind(new.target.as_str())
            .bind(new.source_key.as_str())
            .bind(rows::settings_to_json(&new.settings)?)
            .bind(rows::env_to_json(&new.env)?)
            .bind(new.created_by.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        rows::deployment(&row)
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let row = sqlx::query(SELECT_DEPLOYMENT)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        rows::deployment(&row)
    }

    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError> {
        let limit = rows::page_limit(page);
        let fetch = i64::from(limit) + 1;
        let rows = match &page.cursor {
            None => {
                sqlx::query(LIST_FIRST_PAGE)
                    .bind(fetch)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(cursor) => {
                let (created_at, id) = decode_cursor(cursor)?;
                sqlx::query(LIST_NEXT_PAGE)
                    .bind(fetch)
                    .bind(created_at)
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db)?;

        let items = rows
            .iter()
            .map(rows::deployment)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows::page(items, limit, encode_cursor))
    }

    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(row) = sqlx::query(CLAIM)
            .bind(&id)
            .bind(worker)
            .bind(interval(lease))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let deployment = rows::deployment(&row)?;
        sqlx::query(ABANDON_BUILDS)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(START_BUILD)
            .bind(&id)
            .bind(deployment.attempt)
            .bind(worker)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(Claim {
            attempt: deployment.attempt,
            deployment,
        }))
    }

    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError> {
        let id = id.to_string();
        // One statement: no transaction needed, and deployments are never removed, so the
        // follow-up question "does it exist?" cannot be answered wrongly by a race.
        let done = sqlx::query(RENEW_LEASE)
            .bind(&id)
            .bind(attempt)
            .bind(interval(lease))
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&self.pool, &id).await);
        }
        Ok(())
    }

    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query(RELEASE_CLAIM)
            .bind(&id)
            .bind(attempt)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(fenced_out(&mut *tx, &id).await);
        }
        finish_build(&mut tx, &id, attempt, "released", None).await?;
        tx.commit().await.map_err(db)
    }

    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError> {
        let manifest = Manifest::new(&build.files)?;
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The fence goes first: a stale attempt must not even look at the blobs. It also
        // holds the deployment's row lock until commit, so a takeover waits for this publish
        // and then finds the deployment READY.
        let Some(row) = sqlx::query(PUBLISH)
            .bind(&id)
            .bind(attempt)
            .bind(manifest.file_count)
            .bind(manifest.total_bytes)
            .bind(rows::routing_to_json(build.routing.as_ref())?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut *tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        // A blob a collector holds may already be gone from storage: referencing it would
        // publish a broken file. The upsert locks the blobs' rows until the files below are
        // committed, and once they are, no collector can claim those blobs.
        // Files and variants in one upsert, so its hash order is the one lock order.
        let blob_hashes: Vec<String> = manifest
            .sha256
            .iter()
            .chain(&manifest.encoded_sha256)
            .cloned()
            .collect();
        let blob_sizes: Vec<i64> = manifest
            .sizes
            .iter()
            .chain(&manifest.encoded_sizes)
            .copied()
            .collect();
        use_blobs(&mut tx, &blob_hashes, &blob_sizes).await?;
        sqlx::query(INSERT_FILES)
            .bind(&id)
            .bind(&manifest.paths)
            .bind(&manifest.sha256)
            .bind(&manifest.sizes)
            .bind(&manifest.content_types)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if !manifest.encoded_paths.is_empty() {
            sqlx::query(INSERT_ENCODINGS)
                .bind(&id)
                .bind(&manifest.encoded_paths)
                .bind(&manifest.encodings)
                .bind(&manifest.encoded_sha256)
                .bind(&manifest.encoded_sizes)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        finish_build(&mut tx, &id, attempt, "ready", Some(&build.strategy)).await?;
        insert_log_lines(&mut *tx, &deployment.id, &build.log).await?;
        // Production moves with the publish, never a moment after it.
        projects::publish_hook(&mut tx, &deployment).await?;
        tx.commit().await.map_err(db)?;
        Ok(deployment)
    }

    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(row) = sqlx::query(FAIL)
            .bind(&id)
            .bind(attempt)
            .bind(without_nul(&error.code))
            .bind(without_nul(&error.message))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Err(fenced_out(&mut *tx, &id).await);
        };
        let deployment = rows::deployment(&row)?;
        finish_build(&mut tx, &id, attempt, "error", None).await?;
        tx.commit().await.map_err(db)?;
        Ok(deployment)
    }

    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let before = sqlx::query(LOCK_FOR_DELETE)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let was_building = get::<String>(&before, "status")? == DeploymentStatus::Building.as_str();
        let row = sqlx::query(DELETE)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if was_building {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, "canceled", None).await?;
        }
        sqlx::query("DELETE FROM files WHERE deployment_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows::deployment(&row)
    }

    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Locked first, like a delete, so no claim slips in between the read and the write.
        let before = sqlx::query(LOCK_FOR_CANCEL)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let Some(row) = sqlx::query(CANCEL)
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            // Final already, or deleted (which made a live one CANCELED).
            return Err(RepositoryError::Final(rows::parse(&before, "status")?));
        };
        if get::<String>(&before, "status")? == DeploymentStatus::Building.as_str() {
            let attempt = get::<i64>(&before, "attempt")?;
            finish_build(&mut tx, &id, attempt, "canceled", None).await?;
        }
        tx.commit().await.map_err(db)?;
        rows::deployment(&row)
    }

    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        sqlx::query(STALLED)
            .bind(older_than)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse::<DeploymentId>(row, "id"))
            .collect()
    }

    async fn count_deployments(
        &self,
        project: &ProjectName,
        status: DeploymentStatus,
    ) -> Result<u64, RepositoryError> {
        let count: i64 = sqlx::query_scalar(COUNT_BY_PROJECT_AND_STATUS)
            .bind(project.as_str())
            .bind(status.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl LogRepository for PostgresRepository {
    async fn append_log(
        &self,
        id: &DeploymentId,
        lines: &[LogLine],
    ) -> Result<(), RepositoryError> {
        if lines.is_empty() {
            return Ok(());
        }
        insert_log_lines(&self.pool, id, lines).await
    }

    async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError> {
        let rows = sqlx::query(
            "SELECT attempt, at, stream, message FROM build_logs \
             WHERE deployment_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::log_line).collect()
    }

    async fn logs_after(
        &self,
        id: &DeploymentId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredLogLine>, RepositoryError> {
        let rows = sqlx::query(LOGS_AFTER)
            .bind(id.to_string())
            .bind(after)
            .bind(i64::from(limit.clamp(1, super::MAX_LOG_BATCH)))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(rows::stored_log_line).collect()
    }
}

#[async_trait]
impl FileRepository for PostgresRepository {
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = $1 AND f.path = $2 ORDER BY e.encoding"
        ))
        .bind(id.to_string())
        .bind(path)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows::files(&rows)?.pop())
    }

    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        // `path` is COLLATE "C": byte order, the order Rust sorts strings in.
        let rows = sqlx::query(concat!(
            files_with_encodings!(),
            "WHERE f.deployment_id = $1 ORDER BY f.path, e.encoding"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows::files(&rows)
    }

    async fn known_encodings(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError> {
        let mut known = HashMap::new();
        if hashes.is_empty() {
            return Ok(known);
        }
        let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(KNOWN_ENCODINGS)
            .bind(&hashes)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        // Several files may share a content; take the variants of the first one only, so
        // the set is one file's, never a mix.
        let mut chosen: HashMap<ContentHash, (String, String)> = HashMap::new();
        for row in &rows {
            let source: ContentHash = rows::parse(row, "source")?;
            let owner = (
                get::<String>(row, "deployment_id")?,
                get::<String>(row, "path")?,
            );
            if chosen.entry(source).or_insert_with(|| owner.clone()) != &owner {
                continue;
            }
            known
                .entry(source)
                .or_insert_with(Vec::new)
                .push(rows::variant(row, "sha256", "size")?);
        }
        Ok(known)
    }

    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = blobs.iter().map(|blob| blob.sha256.to_string()).collect();
        let sizes = blobs
            .iter()
            .map(|blob| size_to_db(blob.size))
            .collect::<Result<Vec<_>, _>>()?;
        // A transaction so that a refusal refreshes none of the other blobs either.
        let mut tx = self.pool.begin().await.map_err(db)?;
        use_blobs(&mut tx, &hashes, &sizes).await?;
        tx.commit().await.map_err(db)
    }

    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Two statements in one transaction: the first statement's snapshot predates
        // publishes that commit while it runs, so it could find a blob unreferenced that a
        // manifest committed a moment ago references. Once the rows are locked, the second
        // statement looks again with a fresh snapshot.
        let mut tx = self.pool.begin().await.map_err(db)?;
        let candidates: Vec<String> = sqlx::query_scalar(LOCK_UNREFERENCED_BLOBS)
            .bind(unused_since)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let claimed = sqlx::query(MARK_COLLECTING)
            .bind(&candidates)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|row| rows::parse::<ContentHash>(row, "sha256"))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        sqlx::query(FORGET_BLOBS)
            .bind(&hashes)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl Repository for PostgresRepository {
    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// A manifest as the columns `INSERT_FILES` binds, with the counts `PUBLISH` records.
struct Manifest {
    paths: Vec<String>,
    sha256: Vec<String>,
    sizes: Vec<i64>,
    content_types: Vec<String>,
    /// The variants, one entry per variant, as `INSERT_ENCODINGS` binds them.
    encoded_paths: Vec<String>,
    encodings: Vec<String>,
    encoded_sha256: Vec<String>,
    encoded_sizes: Vec<i64>,
    file_count: i64,
    total_bytes: i64,
}

impl Manifest {
    fn new(files: &[FileEntry]) -> Result<Self, RepositoryError> {
        let too_large = || RepositoryError::Conflict("the manifest is too large".into());
        let sizes = files
            .iter()
            .map(|file| size_to_db(file.size))
            .collect::<Result<Vec<_>, _>>()?;
        let total_bytes = sizes
            .iter()
            .try_fold(0i64, |sum, size| sum.checked_add(*size))
            .ok_or_else(too_large)?;
        let variants: Vec<(&FileEntry, &EncodedVariant)> = files
            .iter()
            .flat_map(|file| file.encodings.iter().map(move |v| (file, v)))
            .collect();
        Ok(Self {
            encoded_paths: variants.iter().map(|(f, _)| f.path.clone()).collect(),
            encodings: variants
                .iter()
                .map(|(_, v)| v.encoding.as_str().to_owned())
                .collect(),
            encoded_sha256: variants.iter().map(|(_, v)| v.sha256.to_string()).collect(),
            encoded_sizes: variants
                .iter()
                .map(|(_, v)| size_to_db(v.size))
                .collect::<Result<Vec<_>, _>>()?,
            paths: files.iter().map(|file| file.path.clone()).collect(),
            sha256: files.iter().map(|file| file.sha256.to_string()).collect(),
            content_types: files.iter().map(|file| file.content_type.clone()).collect(),
            file_count: i64::try_from(files.len()).map_err(|_| too_large())?,
            total_bytes,
            sizes,
        })
    }
}

/// Insert or refresh the rows of these blobs, locking them until the transaction ends.
/// `BlobBusy` if a collector holds one of them; the caller's transaction must then roll back.
async fn use_blobs(
    conn: &mut PgConnection,
    hashes: &[String],
    sizes: &[i64],
) -> Result<(), RepositoryError> {
    if hashes.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(UPSERT_BLOBS)
        .bind(hashes)
        .bind(sizes)
        .fetch_all(conn)
        .await
        .map_err(db)?;
    for row in &rows {
        if get::<Option<OffsetDateTime>>(row, "collecting_since")?.is_some() {
            return Err(RepositoryError::BlobBusy(rows::parse(row, "sha256")?));
        }
    }
    Ok(())
}

/// Why a fenced statement matched no row: the deployment is unknown, or the attempt is no
/// longer the current `BUILDING` one.
async fn fenced_out<'e>(executor: impl PgExecutor<'e>, id: &str) -> RepositoryError {
    match sqlx::query("SELECT 1 FROM deployments WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await
    {
        Ok(Some(_)) => RepositoryError::LeaseLost,
        Ok(None) => RepositoryError::NotFound,
        Err(e) => db(e),
    }
}

/// Store `lines` in order with one statement, so a batch is atomic without a transaction
/// (and takes part in one when `executor` is a transaction).
async fn insert_log_lines<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: &DeploymentId,
    lines: &[LogLine],
) -> Result<(), RepositoryError> {
    if lines.is_empty() {
        return Ok(());
    }
    let attempts: Vec<i64> = lines.iter().map(|line| line.attempt).collect();
    let times: Vec<OffsetDateTime> = lines.iter().map(|line| line.at).collect();
    let streams: Vec<&str> = lines.iter().map(|line| line.stream.as_str()).collect();
    let messages: Vec<Cow<'_, str>> = lines
        .iter()
        .map(|line| without_nul(&line.message))
        .collect();
    let messages: Vec<&str> = messages.iter().map(AsRef::as_ref).collect();
    sqlx::query(APPEND_LOG)
        .bind(id.to_string())
        .bind(&attempts)
        .bind(&times)
        .bind(&streams)
        .bind(&messages)
        .execute(executor)
        .await
        .map_err(db)?;
    Ok(())
}

/// Close the build row of `attempt` with its outcome.
async fn finish_build(
    conn: &mut PgConnection,
    id: &str,
    attempt: i64,
    outcome: &str,
    strategy: Option<&str>,
) -> Result<(), RepositoryError> {
    sqlx::query(FINISH_BUILD)
        .bind(id)
        .bind(attempt)
        .bind(outcome)
        .bind(strategy)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Map a sqlx error to what a caller can act on. The server's own text stays in the
/// variant's message, which is for logs; HTTP handlers show generic text for these.
fn db(error: sqlx::Error) -> RepositoryError {
    rows::map_error(error, "postgres", |e| match e.code().as_deref() {
        // data_corrupted, index_corrupted: the server found damaged storage.
        Some("XX001" | "XX002") => Some(RepositoryError::Corrupt(e.to_string())),
        // disk_full: the server's disk has no room; retrying will not help.
        Some("53100") => Some(RepositoryError::Full(e.to_string())),
        _ => None,
    })
}

/// Where a connection goes, for messages: host and port (or socket) and database, never the
/// password.
fn describe(options: &PgConnectOptions) -> String {
    let server = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    match options.get_database() {
        Some(database) => format!("{server}/{database}"),
        None => server,
    }
}

/// A lease as a PostgreSQL interval, whole microseconds (its precision), clamped to
/// [`MAX_LEASE`].
fn interval(lease: Duration) -> PgInterval {
    let micros = lease.min(MAX_LEASE).as_micros();
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(micros).unwrap_or(i64::MAX),
    }
}

/// `text` as PostgreSQL can store it: NUL characters become U+FFFD.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Unix microseconds: the precision of `timestamptz`, so a cursor round-trips exactly.
fn to_micros(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1_000
}

/// The cursor after `last`: its (created_at, id), the listing's sort key.
fn encode_cursor(last: &Deployment) -> String {
    rows::encode_cursor(to_micros(last.created_at), &last.id.to_string())
}

/// A cursor's (created_at, id).
fn decode_cursor(cursor: &str) -> Result<(OffsetDateTime, DeploymentId), RepositoryError> {
    let (micros, id) = rows::decode_cursor(cursor)?;
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| RepositoryError::Conflict("invalid cursor".into()))?;
    Ok((created_at, id))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, RepositoryError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(db)
}

/// How this engine reads the model's columns; [`rows`] builds the model from them.
impl Columns for PgRow {
    fn text(&self, column: &str) -> Result<Option<String>, RepositoryError> {
        get(self, column)
    }

    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, RepositoryError> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<Option<i64>, RepositoryError> {
        get(self, column)
    }

    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, RepositoryError> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<Option<bool>, RepositoryError> {
        get(self, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = DeploymentId::random();
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000)
            .expect("a valid time");
        let cursor = format!("1700000000123456.{id}");
        assert_eq!(decode_cursor(&cursor).ok(), Some((at, id)));
        for bad in [
            "",
            ".",
            "12",
            "x.y",
            &format!("12.{id}x"),
            &format!("a.{id}"),
            &format!("{}.{id}", i64::MAX),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(RepositoryError::Conflict(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn leases_become_whole_microsecond_intervals_within_range() {
        assert_eq!(
            interval(Duration::from_nanos(1_500_999)).microseconds,
            1_500
        );
        assert_eq!(interval(Duration::ZERO).microseconds, 0);
        let forever = interval(Duration::MAX);
        assert_eq!(
            i128::from(forever.microseconds),
            i128::try_from(MAX_LEASE.as_micros()).expect("fits")
        );
        assert_eq!((forever.months, forever.days), (0, 0));
    }

    #[test]
    fn nul_characters_are_replaced_and_other_text_is_borrowed() {
        assert_eq!(without_nul("a\0b\0"), "a\u{FFFD}b\u{FFFD}");
        assert!(matches!(without_nul("plain ✓"), Cow::Borrowed("plain ✓")));
    }

    #[test]
    fn messages_name_the_server_but_never_the_password() {
        let options =
            PgConnectOptions::from_str("postgres://deploy:hunter2@db.internal:6543/deploystack")
                .expect("a valid URL");
        let described = describe(&options);
        assert_eq!(described, "db.internal:6543/deploystack");
        assert!(!described.contains("hunter2"));
    }
}
