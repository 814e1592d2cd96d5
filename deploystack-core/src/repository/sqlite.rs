//! [`SqliteRepository`]: the `Repository` port on a single SQLite file, through sqlx.
//!
//! # Why SQLite?
//! It is the embedded default: one process, one file under the data directory, nothing to
//! install or operate, and fast enough for a node serving thousands of deployments (the hot
//! serving path reads small indexed rows). A cluster switches to Postgres by configuration.
//!
//! # Concurrency
//! - The database runs in WAL mode: readers never block the writer nor each other, so the
//!   pool (8 connections) serves reads in parallel while one connection at a time writes.
//! - Every transaction that writes starts with `BEGIN IMMEDIATE`, taking the write lock up
//!   front. A deferred transaction that reads first and writes later could fail with
//!   `SQLITE_BUSY` when its snapshot is stale, without waiting; an immediate one simply queues.
//! - A writer that finds the lock taken waits up to the busy timeout (5 s) before giving up
//!   with [`RepositoryError::Unavailable`], which callers retry.
//! - `synchronous = NORMAL`: in WAL mode a commit survives a process crash; only the last
//!   transactions before a power cut may be lost, never the database's consistency.
//! - Compare-and-set operations (claim, fenced updates) are single `UPDATE … WHERE …
//!   RETURNING` statements inside those transactions, so two workers can never both win.
//! - Lease timestamps come from this process's clock (`OffsetDateTime::now_utc()`): a SQLite
//!   file is only ever opened by the processes of one machine, so they share that clock.
//!
//! # Migrations
//! The SQL under `migrations/sqlite/` is embedded in the binary and applied on
//! [`SqliteRepository::connect`] by sqlx's [`Migrator`] inside one `BEGIN IMMEDIATE`
//! transaction. Two processes starting at once therefore queue on the write lock: the second
//! finds the migrations applied and does nothing. (sqlx's own migration lock is a no-op on
//! SQLite, hence the explicit transaction.) Before that, switching a brand-new file to WAL is
//! the one step where SQLite fails at once instead of waiting, so opening retries it within
//! the busy timeout.
//!
//! # Lists as parameters
//! Manifests can hold thousands of files. Lists are bound as one JSON array and expanded with
//! SQLite's `json_each`, so every statement is static SQL and a whole manifest is inserted in
//! one statement.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqlSafeStr, SqliteConnection};
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

/// How long a writer waits for the write lock before reporting `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of a file database: readers run in parallel under WAL.
const POOL_SIZE: u32 = 8;
/// How long a caller waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded migrations, in order.
static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "initial".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0001_initial.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "routing".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0002_routing.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "encodings".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0003_encodings.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "build settings".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0004_build_settings.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "projects".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0005_projects.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "idempotency keys".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0006_idempotency_keys.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "env vars".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0007_env_vars.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            8,
            "domains".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0008_domains.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            9,
            "production actor".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0009_production_actor.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            10,
            "tokens".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0010_tokens.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            11,
            "protection".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0011_protection.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            12,
            "created by".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0012_created_by.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            13,
            "source files".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0013_source_files.sql").into_sql_str(),
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

/// The fence of every call made with an attempt: `?1` is the id, `?2` the attempt.
macro_rules! fenced {
    () => {
        " WHERE id = ?1 AND attempt = ?2 AND status = 'BUILDING' AND deleted_at IS NULL "
    };
}

/// `?1` id, `?2` attempt, `?3` now, `?4` outcome, `?5` strategy (kept if NULL).
const FINISH_BUILD: &str = "UPDATE builds SET finished_at = ?3, outcome = ?4, \
     strategy = COALESCE(?5, strategy) WHERE deployment_id = ?1 AND attempt = ?2";

/// `?1` id, `?2` now. Written so that a second call changes nothing.
const DELETE: &str = concat!(
    "UPDATE deployments SET \
     status = CASE WHEN status IN ('QUEUED', 'BUILDING') THEN 'CANCELED' ELSE status END, \
     updated_at = CASE WHEN deleted_at IS NULL THEN ?2 ELSE updated_at END, \
     deleted_at = COALESCE(deleted_at, ?2), lease_owner = NULL, lease_expires_at = NULL \
     WHERE id = ?1 RETURNING ",
    deployment_columns!()
);

/// `?1` id, `?2` JSON array of `ManifestRow`.
const INSERT_FILES: &str = "INSERT INTO files (deployment_id, path, sha256, size, content_type) \
     SELECT ?1, j.value ->> 'path', j.value ->> 'sha256', j.value ->> 'size', \
     j.value ->> 'content_type' FROM json_each(?2) AS j";

/// `?1` id, `?2` JSON array of `SourceFileRow`.
const INSERT_SOURCE_FILES: &str = "INSERT INTO source_files \
     (deployment_id, path, sha256, size, mode) \
     SELECT ?1, j.value ->> 'path', j.value ->> 'sha256', j.value ->> 'size', \
     j.value ->> 'mode' FROM json_each(?2) AS j";

/// `?1` id, `?2` JSON array of `EncodingRow`.
const INSERT_ENCODINGS: &str = "INSERT INTO file_encodings \
     (deployment_id, path, encoding, sha256, size) \
     SELECT ?1, j.value ->> 'path', j.value ->> 'encoding', j.value ->> 'sha256', \
     j.value ->> 'size' FROM json_each(?2) AS j";

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

/// `?1` JSON array of objects with a `sha256` key: one of them that a collector holds.
const FIND_COLLECTING: &str = "SELECT sha256 FROM blobs WHERE collecting_since IS NOT NULL \
     AND sha256 IN (SELECT j.value ->> 'sha256' FROM json_each(?1) AS j) LIMIT 1";

/// `?1` JSON array of `BlobRow`, `?2` now. (`WHERE true` lets SQLite parse `ON CONFLICT`
/// after a `SELECT`.)
const UPSERT_BLOBS: &str = "INSERT INTO blobs (sha256, size, last_used_at) \
     SELECT j.value ->> 'sha256', j.value ->> 'size', ?2 FROM json_each(?1) AS j WHERE true \
     ON CONFLICT (sha256) DO UPDATE SET last_used_at = excluded.last_used_at \
     WHERE collecting_since IS NULL";

mod deployments;
mod files;
mod logs;

/// The `Repository` on SQLite. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    /// Connections to one database; a single connection for an in-memory database, which
    /// lives exactly as long as its connection.
    pool: SqlitePool,
}

impl SqliteRepository {
    /// Open the database at `url`, creating the file (and its directory) if missing, and
    /// apply the embedded migrations.
    ///
    /// `url` is `sqlite://path/to/file.db` (relative to the working directory),
    /// `sqlite:///absolute/path.db`, or `sqlite::memory:` for a private in-memory database
    /// (each call gets its own, which is what tests want).
    pub async fn connect(url: &str) -> Result<Self, RepositoryError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| RepositoryError::Unavailable(format!("invalid SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let pool_options = if is_in_memory(url) {
            // One connection that never retires: the database dies with its last connection.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                create_dir(dir).await?;
            }
            SqlitePoolOptions::new().max_connections(POOL_SIZE)
        };
        let pool_options = pool_options.acquire_timeout(ACQUIRE_TIMEOUT);

        // Two processes opening a new file at once both switch it to WAL, and SQLite answers
        // the loser's `PRAGMA journal_mode` with SQLITE_BUSY at once, without waiting: retry
        // for as long as any other write would wait. Once the file is in WAL mode (it stays
        // so), the pragma changes nothing and takes no lock.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(db(e)),
            }
        };

        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        MIGRATOR.run(&mut tx).await.map_err(|e| {
            RepositoryError::Unavailable(format!("could not migrate the SQLite database: {e}"))
        })?;
        tx.commit().await.map_err(db)?;

        Ok(Self { pool })
    }
}

#[async_trait]
impl Repository for SqliteRepository {
    async fn ping(&self) -> Result<(), RepositoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

impl SqliteRepository {
    /// A write transaction holding the write lock from its first statement (see the module
    /// docs for why).
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, RepositoryError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
}

/// One manifest entry as bound into `INSERT_FILES` through `json_each`.
#[derive(Serialize)]
struct ManifestRow<'a> {
    path: &'a str,
    sha256: String,
    size: i64,
    content_type: &'a str,
}

impl<'a> ManifestRow<'a> {
    fn new(file: &'a FileEntry) -> Result<Self, RepositoryError> {
        Ok(Self {
            path: &file.path,
            sha256: file.sha256.to_string(),
            size: size_to_db(file.size)?,
            content_type: &file.content_type,
        })
    }
}

/// One variant as bound into `INSERT_ENCODINGS` through `json_each`.
#[derive(Serialize)]
struct EncodingRow<'a> {
    path: &'a str,
    encoding: &'static str,
    sha256: String,
    size: i64,
}

impl<'a> EncodingRow<'a> {
    fn new(file: &'a FileEntry, variant: &EncodedVariant) -> Result<Self, RepositoryError> {
        Ok(Self {
            path: &file.path,
            encoding: variant.encoding.as_str(),
            sha256: variant.sha256.to_string(),
            size: size_to_db(variant.size)?,
        })
    }
}

/// One blob as bound into `UPSERT_BLOBS` through `json_each`.
#[derive(Serialize)]
struct BlobRow {
    sha256: String,
    size: i64,
}

/// The JSON array of `BlobRow` that `use_blobs` takes, from `(digest, size)` pairs.
fn blob_rows_json(
    blobs: impl IntoIterator<Item = (ContentHash, u64)>,
) -> Result<String, RepositoryError> {
    let rows = blobs
        .into_iter()
        .map(|(sha256, size)| {
            Ok(BlobRow {
                sha256: sha256.to_string(),
                size: size_to_db(size)?,
            })
        })
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    to_json(&rows)
}

/// One row of `source_files`, as `INSERT_SOURCE_FILES` reads it.
#[derive(Serialize)]
struct SourceFileRow<'a> {
    path: &'a str,
    sha256: String,
    size: i64,
    mode: i64,
}

/// The JSON array `INSERT_SOURCE_FILES` takes.
fn source_files_json(files: &[ManifestEntry]) -> Result<String, RepositoryError> {
    let rows = files
        .iter()
        .map(|f| {
            Ok(SourceFileRow {
                path: &f.path,
                sha256: f.digest.to_string(),
                size: size_to_db(f.size)?,
                mode: i64::from(f.mode),
            })
        })
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    to_json(&rows)
}

/// Why a fenced statement matched no row: the deployment is unknown, or the attempt is no
/// longer the current `BUILDING` one.
async fn fenced_out(conn: &mut SqliteConnection, id: &str) -> RepositoryError {
    match sqlx::query("SELECT 1 FROM deployments WHERE id = ?1")
        .bind(id)
        .fetch_optional(conn)
        .await
    {
        Ok(Some(_)) => RepositoryError::LeaseLost,
        Ok(None) => RepositoryError::NotFound,
        Err(e) => db(e),
    }
}

/// Store `lines` in order inside `tx`: one prepared statement (sqlx caches it per connection)
/// run per line, so the AUTOINCREMENT ids follow the order of `lines`.
async fn insert_log_lines(
    conn: &mut SqliteConnection,
    id: &str,
    lines: &[LogLine],
) -> Result<(), RepositoryError> {
    for line in lines {
        sqlx::query(
            "INSERT INTO build_logs (deployment_id, attempt, at, stream, message) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(id)
        .bind(line.attempt)
        .bind(to_ms(line.at))
        .bind(line.stream.as_str())
        .bind(line.message.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Close the build row of `attempt` with its outcome.
async fn finish_build(
    conn: &mut SqliteConnection,
    id: &str,
    attempt: i64,
    now: i64,
    outcome: &str,
    strategy: Option<&str>,
) -> Result<(), RepositoryError> {
    sqlx::query(FINISH_BUILD)
        .bind(id)
        .bind(attempt)
        .bind(now)
        .bind(outcome)
        .bind(strategy)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Insert or refresh the rows of the blobs of `json` (a JSON array of `BlobRow`) as used
/// `now`, as PostgreSQL's `use_blobs` does. `BlobBusy` if a collector holds one of them: the
/// caller's transaction must then roll back. Within the write transaction no collector can
/// claim them afterwards, so rows referencing them committed with it are safe.
async fn use_blobs(
    conn: &mut SqliteConnection,
    json: &str,
    now: i64,
) -> Result<(), RepositoryError> {
    if let Some(row) = sqlx::query(FIND_COLLECTING)
        .bind(json)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
    {
        return Err(RepositoryError::BlobBusy(rows::parse(&row, "sha256")?));
    }
    sqlx::query(UPSERT_BLOBS)
        .bind(json)
        .bind(now)
        .execute(conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// Map a sqlx error to what a caller can act on. The database's own text stays in the
/// variant's message, which is for logs; HTTP handlers show generic text for these.
fn db(error: sqlx::Error) -> RepositoryError {
    rows::map_error(error, "sqlite", |e| match sqlite_code(e) {
        // SQLITE_CORRUPT, SQLITE_NOTADB (primary codes are the low byte).
        Some(code) if matches!(code & 0xff, 11 | 26) => {
            Some(RepositoryError::Corrupt(e.to_string()))
        }
        // SQLITE_FULL: the disk (or `max_page_count`) has no room.
        Some(code) if code & 0xff == 13 => Some(RepositoryError::Full(e.to_string())),
        _ => None,
    })
}

/// Whether SQLite refused because another connection holds the lock (SQLITE_BUSY and its
/// extended codes).
fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => sqlite_code(e.as_ref()).is_some_and(|code| code & 0xff == 5),
        _ => false,
    }
}

/// The (extended) SQLite result code of a database error.
fn sqlite_code(error: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    error.code().and_then(|code| code.parse().ok())
}

/// Whether `url` names an in-memory database (as sqlx parses it).
pub(crate) fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

async fn create_dir(dir: &Path) -> Result<(), RepositoryError> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        RepositoryError::Unavailable(format!(
            "could not create the database directory {}: {e}",
            dir.display()
        ))
    })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, RepositoryError> {
    serde_json::to_string(value)
        .map_err(|e| RepositoryError::Unavailable(format!("could not encode parameters: {e}")))
}

/// The repository's clock, in unix milliseconds.
fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// Unix milliseconds, saturating far outside the representable years.
fn to_ms(at: OffsetDateTime) -> i64 {
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

fn from_ms(ms: i64) -> Result<OffsetDateTime, RepositoryError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| RepositoryError::Corrupt(format!("timestamp {ms}: {e}")))
}

/// When a lease taken at `now` runs out.
fn expiry(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// The cursor after `last`: its (created_at, id), the listing's sort key.
fn encode_cursor(last: &Deployment) -> String {
    rows::encode_cursor(i128::from(to_ms(last.created_at)), &last.id.to_string())
}

/// A cursor's (created_at in unix milliseconds, id).
fn decode_cursor(cursor: &str) -> Result<(i64, DeploymentId), RepositoryError> {
    rows::decode_cursor(cursor)
}

fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, RepositoryError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(db)
}

/// How this engine reads the model's columns; [`rows`] builds the model from them.
impl Columns for SqliteRow {
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
        // Unix milliseconds.
        self.int(column)?.map(from_ms).transpose()
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::repository::{file, new_deployment, run_all};

    fn file_url(dir: &tempfile::TempDir, name: &str) -> String {
        format!("sqlite://{}", dir.path().join(name).display())
    }

    #[tokio::test]
    async fn a_full_database_is_full_not_unavailable() {
        use sqlx::ConnectOptions;
        // A database that may not grow: SQLite answers SQLITE_FULL, as on a full disk.
        let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
            .in_memory(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v BLOB)")
            .execute(&mut connection)
            .await
            .unwrap();
        // It cannot shrink below its size, so this caps it where it is.
        sqlx::query("PRAGMA max_page_count = 1")
            .execute(&mut connection)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (zeroblob(1000000))")
            .execute(&mut connection)
            .await
            .unwrap_err();
        assert!(matches!(db(err), RepositoryError::Full(_)));
    }

    #[tokio::test]
    async fn in_memory_database_passes_the_conformance_suite() {
        let repo = SqliteRepository::connect("sqlite::memory:")
            .await
            .expect("connect");
        run_all(&repo).await;
    }

    #[tokio::test]
    async fn file_database_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory that does not exist yet: connect creates it.
        let repo = SqliteRepository::connect(&file_url(&dir, "data/deploystack.db"))
            .await
            .expect("connect");
        run_all(&repo).await;
        // The suite leaves data behind; it must pass again on a database in use.
        run_all(&repo).await;
    }

    #[tokio::test]
    async fn an_arc_of_a_repository_passes_the_conformance_suite() {
        let repo = SqliteRepository::connect("sqlite::memory:")
            .await
            .expect("connect");
        run_all(&std::sync::Arc::new(repo)).await;
    }

    #[tokio::test]
    async fn in_memory_databases_are_private() {
        let a = SqliteRepository::connect("sqlite::memory:")
            .await
            .expect("connect");
        let b = SqliteRepository::connect("sqlite::memory:")
            .await
            .expect("connect");
        let d = a
            .create_deployment(&new_deployment())
            .await
            .expect("create");
        let other = b.get_deployment(&d.id).await;
        assert!(matches!(other, Err(RepositoryError::NotFound)), "{other:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_connects_to_a_new_file_both_migrate_safely() {
        for round in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = file_url(&dir, "race.db");
            let (a, b) = tokio::join!(
                SqliteRepository::connect(&url),
                SqliteRepository::connect(&url)
            );
            let a = a.unwrap_or_else(|e| panic!("round {round}: first connect: {e}"));
            let b = b.unwrap_or_else(|e| panic!("round {round}: second connect: {e}"));
            let d = a
                .create_deployment(&new_deployment())
                .await
                .expect("create");
            assert_eq!(b.get_deployment(&d.id).await.expect("get"), d);
            // Reopening an up-to-date database applies nothing and fails nothing.
            SqliteRepository::connect(&url).await.expect("reconnect");
        }
    }

    #[tokio::test]
    async fn publishes_a_manifest_of_5000_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = SqliteRepository::connect(&file_url(&dir, "big.db"))
            .await
            .expect("connect");
        let d = repo
            .create_deployment(&new_deployment())
            .await
            .expect("create");
        let claim = repo
            .claim_deployment(&d.id, "worker", Duration::from_secs(60))
            .await
            .expect("claim")
            .expect("claimable");
        let files: Vec<FileEntry> = (0..5_000)
            .map(|i| file(&format!("pages/{i:05}.html"), &format!("page {i}")))
            .collect();
        let ready = repo
            .publish(
                &d.id,
                claim.attempt,
                &PublishedBuild {
                    log: Vec::new(),
                    routing: None,
                    strategy: "static".into(),
                    files: files.clone(),
                },
            )
            .await
            .expect("publish");
        assert_eq!(ready.file_count, 5_000);
        let listed = repo.list_files(&d.id).await.expect("list_files");
        assert_eq!(listed, files);
        let one = repo
            .find_file(&d.id, "pages/04999.html")
            .await
            .expect("find_file");
        assert_eq!(one.as_ref(), files.last());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_have_exactly_one_winner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = SqliteRepository::connect(&file_url(&dir, "claims.db"))
            .await
            .expect("connect");
        let d = repo
            .create_deployment(&new_deployment())
            .await
            .expect("create");
        let claims = (0..16).map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.claim_deployment(&d.id, &format!("worker-{i}"), Duration::from_secs(60))
                    .await
            })
        });
        let mut winners = 0;
        for claim in claims {
            let claim = claim.await.expect("task").expect("claim must not fail");
            winners += usize::from(claim.is_some());
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn file_connections_use_wal_foreign_keys_and_a_busy_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = SqliteRepository::connect(&file_url(&dir, "pragmas.db"))
            .await
            .expect("connect");
        let mut conn = repo.pool.acquire().await.expect("acquire");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .expect("journal_mode");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .expect("foreign_keys");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("synchronous");
        let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .expect("busy_timeout");
        assert_eq!(journal, "wal");
        assert_eq!(foreign_keys, 1);
        assert_eq!(synchronous, 1, "NORMAL");
        assert_eq!(busy_timeout, 5_000);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = DeploymentId::random();
        assert_eq!(
            decode_cursor(&format!("1700000000123.{id}")).ok(),
            Some((1_700_000_000_123, id))
        );
        for bad in [
            "",
            ".",
            "12",
            "x.y",
            &format!("12.{id}x"),
            &format!("a.{id}"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(RepositoryError::Conflict(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn memory_urls_are_recognised() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://x?mode=memory"));
        assert!(!is_in_memory("sqlite://data/memory.db"));
        assert!(!is_in_memory("sqlite:///abs/:memory:.db"));
    }
}
