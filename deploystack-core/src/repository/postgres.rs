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
    EncodedVariant, FileEntry, LogLine, ManifestEntry, NewDeployment, Page, PageRequest,
    ProjectName, StoredLogLine,
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
        Migration::new(
            13,
            "source files".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0013_source_files.sql").into_sql_str(),
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

/// `$1` id, `$2` attempt, `$3` outcome, `$4` strategy (kept if NULL).
const FINISH_BUILD: &str = "UPDATE builds SET finished_at = now(), outcome = $3, \
     strategy = COALESCE($4, strategy) WHERE deployment_id = $1 AND attempt = $2";

/// `$3` file count, `$4` total bytes.
const PUBLISH: &str = concat!(
    "UPDATE deployments SET status = 'READY', file_count = $3, total_bytes = $4, \
     ready_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL, \
     routing = $5",
    fenced!(),
    "RETURNING ",
    deployment_columns!()
);

/// `$1` id. Written so that a second call changes nothing.
const DELETE: &str = concat!(
    "UPDATE deployments SET \
     status = CASE WHEN status IN ('QUEUED', 'BUILDING') THEN 'CANCELED' ELSE status END, \
     updated_at = CASE WHEN deleted_at IS NULL THEN now() ELSE updated_at END, \
     deleted_at = COALESCE(deleted_at, now()), lease_owner = NULL, lease_expires_at = NULL \
     WHERE id = $1 RETURNING ",
    deployment_columns!()
);

/// `$1` id, then one array per column: `$2` paths, `$3` hashes, `$4` sizes, `$5` types.
const INSERT_FILES: &str = "INSERT INTO files (deployment_id, path, sha256, size, content_type) \
     SELECT $1, m.path, m.sha256, m.size, m.content_type \
     FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[]) \
     AS m (path, sha256, size, content_type)";

/// `$1` id, then one array per column: `$2` paths, `$3` hashes, `$4` sizes, `$5` modes.
const INSERT_SOURCE_FILES: &str = "INSERT INTO source_files \
     (deployment_id, path, sha256, size, mode) \
     SELECT $1, m.path, m.sha256, m.size, m.mode \
     FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) \
     AS m (path, sha256, size, mode)";

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
     AND NOT EXISTS (SELECT 1 FROM source_files AS s WHERE s.sha256 = b.sha256) \
     ORDER BY b.last_used_at LIMIT $2 FOR UPDATE SKIP LOCKED";

/// `$1` id, then one array per column: `$2` attempts, `$3` times, `$4` streams, `$5`
/// messages. The identity column follows `ORDER BY`, so lines keep the order of the batch.
const APPEND_LOG: &str = "INSERT INTO build_logs (deployment_id, attempt, at, stream, message) \
     SELECT $1, l.attempt, l.at, l.stream, l.message \
     FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) \
     WITH ORDINALITY AS l (attempt, at, stream, message, n) ORDER BY l.n";

mod deployments;
mod files;
mod logs;

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
impl Repository for PostgresRepository {
    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
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
