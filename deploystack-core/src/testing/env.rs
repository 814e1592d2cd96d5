//! Where the tests find the real engines, and what they do when one is missing.
//!
//! Tests that need PostgreSQL, Redis or S3 read the standard variables below (the test
//! command, `scripts/test`, sets them after starting what is missing). Without a variable a
//! test prints why it skips and returns; with `CI=true` a missing engine is a failure, never a
//! skip, so CI cannot pass without having run them.
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
            eprintln!(
                "skipped: {name} is not set, so {what} is not available (./scripts/test sets it)"
            );
            None
        }
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
