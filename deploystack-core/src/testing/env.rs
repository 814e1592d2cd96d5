//! Where the tests find the real engines, and what they do when one is missing.
//!
//! Tests that need PostgreSQL, Redis or S3 read the standard variables below (the test
//! command, `scripts/test`, sets them after starting what is missing). Without a variable a
//! test reports why it skips ([`skip`]) and returns; with `CI=true` a missing engine is a
//! failure, never a skip, so CI cannot pass without having run them.
//!
//! Each test isolates itself on the shared engines: its own database, its own key prefix, its
//! own bucket prefix — see [`unique_name`].

/// Whether this run is CI's (`CI=true`): nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The value of `name`, or `None` after printing why the caller skips. Panics under CI.
pub fn required(name: &str, what: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if is_ci() => panic!("{name} is not set: CI=true requires {what} (run ./scripts/test)"),
        _ => {
            skip(&format!(
                "{name} is not set, so {what} is not available (./scripts/test sets it)"
            ));
            None
        }
    }
}

/// The variable naming the file [`skip`] appends to; `scripts/test` sets it and counts the
/// lines at the end.
pub const SKIP_LOG_VAR: &str = "DEPLOYSTACK_TEST_SKIP_LOG";

/// Report that the calling test skips, and why: printed as `skipped: <reason>`, and appended
/// as a line to the file named by [`SKIP_LOG_VAR`] when it is set.
///
/// Why a file? The test harness shows a passing test's output only with `--nocapture`, so a
/// skip would otherwise pass unseen. Best effort: a file that cannot be written is ignored.
pub fn skip(reason: &str) {
    eprintln!("skipped: {reason}");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR).filter(|path| !path.is_empty()) {
        use std::io::Write;
        // One write of one line to a file opened for appending: lines of tests running in
        // parallel do not interleave.
        let line = format!("{}\n", reason.replace('\n', " "));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
    }
}

/// An admin URL of a PostgreSQL server (`DATABASE_URL`); tests create their own databases on it.
pub fn postgres_url() -> Option<String> {
    required("DATABASE_URL", "a PostgreSQL server")
}

/// The URL of a Redis server (`REDIS_URL`); tests use their own key prefixes on it.
pub fn redis_url() -> Option<String> {
    required("REDIS_URL", "a Redis server")
}

/// An S3-compatible endpoint and a bucket that exists on it.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// `S3_ENDPOINT`, e.g. `http://127.0.0.1:5055`.
    pub endpoint: String,
    /// `S3_BUCKET`; tests write under their own prefix in it.
    pub bucket: String,
    /// `AWS_ACCESS_KEY_ID` (default `test`).
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` (default `test`).
    pub secret_access_key: String,
    /// `AWS_REGION` (default `us-east-1`).
    pub region: String,
}

/// The S3-compatible store for tests (`S3_ENDPOINT`, `S3_BUCKET` and the `AWS_*` credentials).
pub fn s3() -> Option<S3Env> {
    let endpoint = required("S3_ENDPOINT", "an S3-compatible server")?;
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    Some(S3Env {
        endpoint,
        bucket: var("S3_BUCKET", "deploystack-test"),
        access_key_id: var("AWS_ACCESS_KEY_ID", "test"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY", "test"),
        region: var("AWS_REGION", "us-east-1"),
    })
}

/// A name no other test or run uses: `<prefix>_<16 random hex digits>`, lowercase, safe as a
/// database name, a Redis key prefix or an object prefix.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// What every test database's name starts with; the rest is its creation time (unix seconds)
/// and random digits, so [`fresh_postgres_database`] can tell abandoned ones apart.
#[cfg(feature = "postgres")]
const TEST_DATABASE_PREFIX: &str = "deploystack_test";

/// How old an unused test database must be before [`fresh_postgres_database`] drops it: far
/// longer than any test runs.
#[cfg(feature = "postgres")]
const ABANDONED_AFTER_SECS: i64 = 60 * 60;

/// Create an empty database with a name no other test uses on the server of `admin_url` (a
/// [`postgres_url`]) and return its URL. Safe to call from tests running in parallel.
///
/// A test may drop its database with [`drop_postgres_database`]. Those a failed test left
/// behind are dropped by a later call, once they are an hour old and nobody is connected.
///
/// Panics if the server cannot be reached or refuses: the test cannot run without it.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::{AssertSqlSafe, Connection};

    let admin: PgConnectOptions = admin_url
        .parse()
        .unwrap_or_else(|e| panic!("DATABASE_URL is not a PostgreSQL URL: {e}"));
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the PostgreSQL server of DATABASE_URL: {e}"));
    drop_abandoned_databases(&mut conn).await;

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let name = unique_name(&format!("{TEST_DATABASE_PREFIX}_{now}"));
    // From template0, which nobody can connect to: CREATE DATABASE fails if someone is
    // connected to its template, which template1 does not rule out.
    sqlx::query(AssertSqlSafe(format!(
        r#"CREATE DATABASE "{name}" TEMPLATE template0"#
    )))
    .execute(&mut conn)
    .await
    .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    // Best effort: the server ends the session anyway when the socket closes.
    let _ = conn.close().await;

    with_database(admin_url, &name)
}

/// `url` with its database (the path) replaced by `name`, everything else kept as written.
#[cfg(feature = "postgres")]
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut url = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Drop the database at `url`, made by [`fresh_postgres_database`] on the server of
/// `admin_url`, ending any session still connected to it. Best effort: a failure is printed,
/// and a later [`fresh_postgres_database`] retries once the database is abandoned.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn drop_postgres_database(admin_url: &str, url: &str) {
    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::{AssertSqlSafe, Connection};

    let name = url
        .parse::<PgConnectOptions>()
        .ok()
        .and_then(|options| options.get_database().map(str::to_owned));
    let Some(name) = name.filter(|name| is_test_database(name)) else {
        eprintln!("not dropping {url:?}: not a database fresh_postgres_database made");
        return;
    };
    let dropped = async {
        let admin: PgConnectOptions = admin_url.parse()?;
        let mut conn = PgConnection::connect_with(&admin).await?;
        let result = sqlx::query(AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
        result.map(drop)
    };
    if let Err(e) = dropped.await {
        eprintln!("could not drop the test database {name}: {e}");
    }
}

/// Whether `name` is one of [`fresh_postgres_database`]'s, and so safe to drop.
#[cfg(feature = "postgres")]
fn is_test_database(name: &str) -> bool {
    name.strip_prefix(TEST_DATABASE_PREFIX)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b == b'_' || b.is_ascii_hexdigit())
        })
}

/// Drop the test databases older than [`ABANDONED_AFTER_SECS`] that nobody is connected to
/// (without `FORCE`, PostgreSQL refuses to drop a database in use). Errors are ignored: another
/// test may be dropping the same one.
#[cfg(feature = "postgres")]
async fn drop_abandoned_databases(conn: &mut sqlx::PgConnection) {
    use sqlx::AssertSqlSafe;

    let names: Vec<String> = sqlx::query_scalar(
        r"SELECT datname FROM pg_database WHERE datname LIKE 'deploystack\_test\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let cutoff = time::OffsetDateTime::now_utc().unix_timestamp() - ABANDONED_AFTER_SECS;
    for name in names.into_iter().filter(|name| is_test_database(name)) {
        let created: Option<i64> = name
            .strip_prefix(TEST_DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').nth(1))
            .and_then(|secs| secs.parse().ok());
        if created.is_some_and(|created| created < cutoff) {
            let _ = sqlx::query(AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{name}""#
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_database_url_keeps_everything_but_the_database() {
        for (admin, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/fresh",
            ),
            (
                "postgresql://u:p%2Fw@db:5432/test?sslmode=disable",
                "postgresql://u:p%2Fw@db:5432/fresh?sslmode=disable",
            ),
            (
                "postgres://postgres@127.0.0.1",
                "postgres://postgres@127.0.0.1/fresh",
            ),
            (
                "postgres://h/?host=/run/pg",
                "postgres://h/fresh?host=/run/pg",
            ),
        ] {
            assert_eq!(with_database(admin, "fresh"), expected, "{admin}");
        }
    }

    #[test]
    fn only_databases_made_for_tests_may_be_dropped() {
        let name = unique_name(&format!("{TEST_DATABASE_PREFIX}_1700000000"));
        assert!(is_test_database(&name), "{name}");
        for other in [
            "test",
            "postgres",
            "deploystack_test",
            "deploystack_test_",
            "deploystack",
        ] {
            assert!(!is_test_database(other), "{other}");
        }
        assert!(!is_test_database("deploystack_test_1; DROP TABLE x"));
    }
}
