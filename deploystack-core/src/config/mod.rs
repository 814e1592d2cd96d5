//! Settings: defaults, then an optional TOML file, then `DEPLOYSTACK_*` environment variables,
//! then command-line flags.
//!
//! Durations are whole seconds and sizes whole bytes, so every setting has one obvious
//! spelling in TOML, in the environment and on the command line.
//!
//! # Why one struct with clap attributes?
//!
//! Each setting is declared once, as a field of [`Config`]: the field name is the TOML key
//! (serde), its doc comment the help text, its `#[arg(long, env = …)]` attribute the flag and
//! the variable (clap, which reads the environment itself), and [`Config::default`] its
//! default. A hand-written table of variables beside the flags drifted from them (most
//! settings had a variable and no flag). The clap derive sits behind
//! `#[cfg_attr(feature = "cli", …)]`, so embedders without the `cli` feature get the same
//! struct, defaults and file format without clap. A `macro_rules!` that generated a struct
//! and a flags struct from one list was the alternative; it would hide the fields from
//! rustdoc and from readers, for no gain over attributes the compiler already understands.
//!
//! The file sits between the defaults and the environment, which clap does not know about,
//! so [`cli::ConfigArgs`] parses with clap, then applies only the values that came from the
//! environment or the command line over the file (see its `load`).
//!
//! The S3 settings read the standard `AWS_*` variables rather than `DEPLOYSTACK_*` ones, so
//! the AWS tooling's environment works unchanged; their flags are `--s3-*`.

mod auth;
#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archive::ArchiveLimits;
use crate::build::SandboxMode;
use crate::secrets::SecretText;
use crate::services::hosts::BaseDomain;

pub use self::auth::AuthMode;

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for these settings.
    #[error("invalid configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// An environment variable has a value of the wrong kind.
    #[error("invalid value {value:?} for {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        message: String,
    },
    /// Values clap parsed could not be applied over the file (a mismatch between a flag's
    /// type and its setting's: a bug, not a user error).
    #[error("cannot apply the command line: {0}")]
    Cli(String),
    /// A URL names an engine that does not exist, or one this build does not include.
    #[error("{0}")]
    Engine(String),
    /// The `auth` setting does not fit the listen address.
    #[error("{0}")]
    Auth(String),
}

/// Every setting of DeployStack, each declared once: the field is the TOML key, its doc
/// comment the help text, its attribute the flag and the variable, and [`Config::default`]
/// its default. `docs/configuration.md` has the full table (a test keeps it in step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds; port 0 picks a free port.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_LISTEN", value_name = "ADDR")
    )]
    pub listen: SocketAddr,
    /// Who may call the API without a token: `required` (nobody: every API call needs a
    /// token), `local` (same-site requests from this machine to a loopback host name; see
    /// `docs/security.md`) or `local-unsafe` (`local` although the server listens on a
    /// network address). Default: `local` when listening on loopback, else `required`.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_AUTH", value_name = "MODE")
    )]
    pub auth: Option<AuthMode>,
    /// Where the embedded defaults keep their data: the SQLite file and the storage
    /// directory.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_DATA_DIR", value_name = "DIR")
    )]
    pub data_dir: PathBuf,
    /// Repository URL: sqlite://… or postgres://…; default `sqlite://<data_dir>/deploystack.db`.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_DATABASE_URL", value_name = "URL")
    )]
    pub database_url: Option<String>,
    /// Queue URL: memory:// or redis://host:port/db; default memory://.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_QUEUE_URL", value_name = "URL")
    )]
    pub queue_url: Option<String>,
    /// Storage URL: file:///dir, memory:// or s3://bucket/prefix; default
    /// `file://<data_dir>/storage`.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_STORAGE_URL", value_name = "URL")
    )]
    pub storage_url: Option<String>,
    /// Base of the URLs the API returns; default `http://<bound address>`.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_PUBLIC_URL", value_name = "URL")
    )]
    pub public_url: Option<String>,
    /// Largest accepted upload body in bytes; past it: 413.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MAX_UPLOAD_BYTES", value_name = "BYTES")
    )]
    pub max_upload_bytes: u64,
    /// Uploads are refused with 507 when the filesystem of the data directory has less free
    /// space than this many bytes, so a full disk fails one upload cleanly instead of
    /// corrupting a write half-way; 0 turns the check off.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MIN_FREE_DISK_BYTES", value_name = "BYTES")
    )]
    pub min_free_disk_bytes: u64,
    /// Most entries an archive may hold.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_ARCHIVE_MAX_ENTRIES", value_name = "N")
    )]
    pub archive_max_entries: usize,
    /// Most bytes an archive may unpack to.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_ARCHIVE_MAX_TOTAL_BYTES",
            value_name = "BYTES"
        )
    )]
    pub archive_max_total_bytes: u64,
    /// Most bytes one archive entry may unpack to.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_ARCHIVE_MAX_FILE_BYTES", value_name = "BYTES")
    )]
    pub archive_max_file_bytes: u64,
    /// Highest compression ratio allowed for entries over 1 MiB (zip bombs).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_ARCHIVE_MAX_RATIO", value_name = "N")
    )]
    pub archive_max_ratio: u64,
    /// Build workers the server runs in-process; default 2 with the in-memory queue, 0 with
    /// a shared queue.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_EMBEDDED_WORKERS", value_name = "N")
    )]
    pub embedded_workers: Option<usize>,
    /// How long a worker's claim lasts without a heartbeat, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_LEASE_SECS", value_name = "SECS")
    )]
    pub lease_secs: u64,
    /// Deliveries after which a job is dead-lettered.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MAX_DELIVERIES", value_name = "N")
    )]
    pub max_deliveries: u32,
    /// Longest a build may run, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BUILD_TIMEOUT_SECS", value_name = "SECS")
    )]
    pub build_timeout_secs: u64,
    /// Whether build commands run under bubblewrap: auto (when available, else unsandboxed
    /// with a log line), require (fail builds without it) or off.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BUILD_SANDBOX", value_name = "MODE")
    )]
    pub build_sandbox: SandboxMode,
    /// Where each worker keeps the per-project dependency caches; default
    /// `<data_dir>/build-cache`.
    ///
    /// Local disk: a restore is a rename when it shares a filesystem with the build's
    /// temporary folder.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BUILD_CACHE_DIR", value_name = "DIR")
    )]
    pub build_cache_dir: Option<PathBuf>,
    /// Most files a build may publish.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BUILD_OUTPUT_MAX_FILES", value_name = "N")
    )]
    pub build_output_max_files: usize,
    /// Most bytes a build may publish.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BUILD_OUTPUT_MAX_BYTES", value_name = "BYTES")
    )]
    pub build_output_max_bytes: u64,
    /// How long shutdown waits for running builds before giving them back to the queue, in
    /// seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_SHUTDOWN_GRACE_SECS", value_name = "SECS")
    )]
    pub shutdown_grace_secs: u64,
    /// How long an unreferenced blob is kept before it is deleted, in seconds.
    ///
    /// Builds reuse stored blobs; the grace period makes sure a blob a build just decided to
    /// reuse is not collected under it.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BLOB_GRACE_SECS", value_name = "SECS")
    )]
    pub blob_grace_secs: u64,
    /// How often each worker process looks for deployments the queue lost, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_RECONCILE_SECS", value_name = "SECS")
    )]
    pub reconcile_secs: u64,
    /// How long a deployment may sit in QUEUED before the reconciler enqueues it again, in
    /// seconds.
    ///
    /// Extra deliveries are harmless (the claim dedupes them), so this only trades queue
    /// traffic for recovery time.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_STALLED_AFTER_SECS", value_name = "SECS")
    )]
    pub stalled_after_secs: u64,
    /// Shared read cache: redis://… adds a Redis layer under the in-process cache and
    /// invalidates every node's cache on changes; unset: in-process only.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_CACHE_URL", value_name = "URL")
    )]
    pub cache_url: Option<String>,
    /// How long a cached repository read may be served before it is read again, in seconds;
    /// 0 turns the cache off.
    ///
    /// Bounds staleness between nodes without a shared cache.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_CACHE_TTL_SECS", value_name = "SECS")
    )]
    pub cache_ttl_secs: u64,
    /// Memory budget of the in-process read cache in bytes; 0 turns the cache off.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_CACHE_MAX_BYTES", value_name = "BYTES")
    )]
    pub cache_max_bytes: u64,
    /// Memory budget of the hot-blob cache in bytes: small content-addressed blobs served
    /// from memory instead of storage; 0 turns it off.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BLOB_CACHE_MAX_BYTES", value_name = "BYTES")
    )]
    pub blob_cache_max_bytes: u64,
    /// Largest blob the hot-blob cache keeps, in bytes; 0 turns the cache off.
    ///
    /// Larger files always stream from storage, so one big download cannot push many small
    /// pages out.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_BLOB_CACHE_MAX_OBJECT_BYTES",
            value_name = "BYTES"
        )
    )]
    pub blob_cache_max_object_bytes: u64,
    /// Prefix of every Redis key DeployStack uses, queue and cache alike, so several
    /// installations can share one Redis.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_REDIS_PREFIX", value_name = "PREFIX")
    )]
    pub redis_prefix: String,
    /// Share of failed calls, in percent (1–100), at which a circuit breaker opens: when S3 or
    /// Redis fails this often within `breaker_window_secs`, calls to it fail at once (the
    /// API answers 503 with `Retry-After`) instead of each waiting for its timeouts.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_BREAKER_FAILURE_THRESHOLD",
            value_name = "PERCENT"
        )
    )]
    pub breaker_failure_threshold: u8,
    /// Fewest calls a breaker's window must hold before its failure share is judged; 0 turns
    /// the breakers off.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BREAKER_MIN_CALLS", value_name = "N")
    )]
    pub breaker_min_calls: u32,
    /// Length of the window a breaker counts calls in, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BREAKER_WINDOW_SECS", value_name = "SECS")
    )]
    pub breaker_window_secs: u64,
    /// How long an open breaker refuses calls before it lets one probe through, in seconds;
    /// what `Retry-After` counts down.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BREAKER_COOLDOWN_SECS", value_name = "SECS")
    )]
    pub breaker_cooldown_secs: u64,
    /// Most attempts of an S3 request or a repeatable queue operation that fails because the
    /// backend is unavailable, the first included (exponential backoff with jitter between
    /// them).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_RETRY_MAX_ATTEMPTS", value_name = "N")
    )]
    pub retry_max_attempts: u32,
    /// Longest time the attempts of one call may take before it gives up, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_RETRY_MAX_SECS", value_name = "SECS")
    )]
    pub retry_max_secs: u64,
    /// Domain under which each deployment is served on its own origin,
    /// `<deployment-id>.<base_domain>`.
    ///
    /// The default, localhost, works in browsers without DNS set-up.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BASE_DOMAIN", value_name = "DOMAIN")
    )]
    pub base_domain: String,
    /// Most connections served at once.
    ///
    /// Further connections wait in the kernel's accept queue until one closes, so a flood
    /// cannot exhaust memory or file descriptors.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MAX_CONNECTIONS", value_name = "N")
    )]
    pub max_connections: usize,
    /// Threads that accept and serve HTTP connections; 0 means one per core.
    ///
    /// Each runs its own single-threaded event loop on the shared listening socket, as
    /// nginx's worker processes do, so a connection never hops between threads.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_SERVE_THREADS", value_name = "N")
    )]
    pub serve_threads: usize,
    /// How long a client may take to send a request's line and headers, and how long an
    /// idle keep-alive connection is kept, in seconds.
    ///
    /// Closes slowloris connections.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS",
            value_name = "SECS"
        )
    )]
    pub header_read_timeout_secs: u64,
    /// How long a request body may go without sending a byte before the server answers 408
    /// and closes the connection, in seconds.
    ///
    /// The body's counterpart of the header timeout: a client that stops sending half-way
    /// through an upload cannot hold a connection (and an upload slot) for ever.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_BODY_READ_TIMEOUT_SECS", value_name = "SECS")
    )]
    pub body_read_timeout_secs: u64,
    /// Largest request line plus headers in bytes; past it: 431.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MAX_HEADER_BYTES", value_name = "BYTES")
    )]
    pub max_header_bytes: usize,
    /// Longest the server works on a request before answering 503, in seconds; uploads have
    /// their own time limit.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_REQUEST_TIMEOUT_SECS", value_name = "SECS")
    )]
    pub request_timeout_secs: u64,
    /// Uploads (new deployments) one caller may make per minute, all at once if it likes;
    /// 0: no limit. A caller is a token, or the client's address without one; see
    /// `docs/security.md`, "Rate limits".
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_RATE_LIMIT_DEPLOYS_PER_MINUTE",
            value_name = "N"
        )
    )]
    pub rate_limit_deploys_per_minute: u32,
    /// Other API writes (`POST`, `PUT`, `PATCH`, `DELETE`) one caller may make per minute;
    /// 0: no limit.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_RATE_LIMIT_WRITES_PER_MINUTE",
            value_name = "N"
        )
    )]
    pub rate_limit_writes_per_minute: u32,
    /// API reads (`GET`, `HEAD`) one caller may make per minute; 0: no limit. Sites, health
    /// checks and `/metrics` are never limited.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_RATE_LIMIT_READS_PER_MINUTE",
            value_name = "N"
        )
    )]
    pub rate_limit_reads_per_minute: u32,
    /// Most deployments of one project that may wait in the queue (`QUEUED`); a further
    /// upload to it is refused with 429 `too_many_queued`. 0: no cap.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_MAX_QUEUED_PER_PROJECT", value_name = "N")
    )]
    pub max_queued_per_project: u32,
    /// The platform key that seals environment variables at rest: 32 bytes as base64 or 64
    /// hex digits; never printed. Unset, and no `secret_key_file`: the key file
    /// `<data_dir>/secret.key`, created on first start.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_SECRET_KEY",
            value_name = "KEY",
            hide_env_values = true
        )
    )]
    pub secret_key: Option<SecretText>,
    /// A file holding the platform key instead: one key a line, the current key first and
    /// older ones after it; it must be readable by its owner only.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_SECRET_KEY_FILE", value_name = "FILE")
    )]
    pub secret_key_file: Option<PathBuf>,
    /// Older platform keys, comma-separated: they only open values sealed before a rotation;
    /// never printed.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_PREVIOUS_SECRET_KEYS",
            value_name = "KEYS",
            value_delimiter = ',',
            hide_env_values = true
        )
    )]
    pub previous_secret_keys: Vec<SecretText>,
    /// Name servers asked for custom domains' verification records, comma-separated
    /// `ip:port`; empty: the system's (resolv.conf).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "DEPLOYSTACK_DNS_SERVERS",
            value_name = "IP:PORT",
            value_delimiter = ','
        )
    )]
    pub dns_servers: Vec<SocketAddr>,
    /// Seconds before a new custom domain's record is looked up in the background, and
    /// the first delay between re-checks; each later delay doubles, up to
    /// `domain_recheck_max_secs`.
    ///
    /// Also how often the maintenance loop looks for due domains (at most every 30 s).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_DOMAIN_RECHECK_SECS", value_name = "SECS")
    )]
    pub domain_recheck_secs: u64,
    /// Longest delay between background re-checks of a pending custom domain, in seconds.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "DEPLOYSTACK_DOMAIN_RECHECK_MAX_SECS", value_name = "SECS")
    )]
    pub domain_recheck_max_secs: u64,
    /// S3 connection settings (`[s3]` in the file, the standard `AWS_*` variables).
    #[cfg_attr(feature = "cli", command(flatten))]
    pub s3: S3Settings,
}

/// How to reach an S3-compatible store. Each value can also come from the standard `AWS_*`
/// variable named beside it; unset values fall back to the AWS defaults (instance metadata,
/// `us-east-1`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "S3 storage"))]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint of a non-AWS store, e.g. http://127.0.0.1:9000.
    #[cfg_attr(
        feature = "cli",
        arg(long = "s3-endpoint", env = "AWS_ENDPOINT_URL", value_name = "URL")
    )]
    pub endpoint: Option<String>,
    /// Region of the bucket; default us-east-1.
    #[cfg_attr(
        feature = "cli",
        arg(long = "s3-region", env = "AWS_REGION", value_name = "REGION")
    )]
    pub region: Option<String>,
    /// Access key id; default: the EC2 instance profile.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "s3-access-key-id",
            env = "AWS_ACCESS_KEY_ID",
            value_name = "ID"
        )
    )]
    pub access_key_id: Option<String>,
    /// Secret access key; never printed (not in --help, logs or Debug output).
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "s3-secret-access-key",
            env = "AWS_SECRET_ACCESS_KEY",
            value_name = "KEY",
            hide_env_values = true
        )
    )]
    pub secret_access_key: Option<String>,
    /// Allow plain http:// endpoints, for local test servers.
    #[cfg_attr(
        feature = "cli",
        arg(long = "s3-allow-http", env = "AWS_ALLOW_HTTP", value_name = "BOOL", action = clap::ArgAction::Set)
    )]
    pub allow_http: Option<bool>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        let archive = ArchiveLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            auth: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            queue_url: None,
            storage_url: None,
            public_url: None,
            max_upload_bytes: 256 * 1024 * 1024,
            min_free_disk_bytes: 512 * 1024 * 1024,
            archive_max_entries: archive.max_entries,
            archive_max_total_bytes: archive.max_total_bytes,
            archive_max_file_bytes: archive.max_file_bytes,
            archive_max_ratio: archive.max_ratio,
            embedded_workers: None,
            lease_secs: 30,
            max_deliveries: 5,
            build_timeout_secs: 900,
            build_sandbox: SandboxMode::Auto,
            build_cache_dir: None,
            build_output_max_files: 20_000,
            build_output_max_bytes: 1024 * 1024 * 1024,
            shutdown_grace_secs: 30,
            blob_grace_secs: 300,
            reconcile_secs: 30,
            stalled_after_secs: 60,
            cache_url: None,
            cache_ttl_secs: 60,
            cache_max_bytes: 64 * 1024 * 1024,
            blob_cache_max_bytes: 64 * 1024 * 1024,
            blob_cache_max_object_bytes: 1024 * 1024,
            redis_prefix: "deploystack".to_owned(),
            breaker_failure_threshold: 50,
            breaker_min_calls: 20,
            breaker_window_secs: 30,
            breaker_cooldown_secs: 15,
            retry_max_attempts: 4,
            retry_max_secs: 10,
            base_domain: "localhost".to_owned(),
            max_connections: 4096,
            serve_threads: 0,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            request_timeout_secs: 30,
            rate_limit_deploys_per_minute: 60,
            rate_limit_writes_per_minute: 600,
            rate_limit_reads_per_minute: 6000,
            max_queued_per_project: 20,
            secret_key: None,
            secret_key_file: None,
            previous_secret_keys: Vec::new(),
            dns_servers: Vec::new(),
            domain_recheck_secs: 30,
            domain_recheck_max_secs: 3600,
            s3: S3Settings::default(),
        }
    }
}

impl Config {
    /// Defaults overridden by a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|err| ConfigError::File {
            path: path.to_owned(),
            message: err.to_string(),
        })
    }

    /// The repository URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.data_dir.join("deploystack.db").display()
            )
        })
    }

    /// The queue URL in effect.
    pub fn queue_url(&self) -> String {
        self.queue_url
            .clone()
            .unwrap_or_else(|| "memory://".to_owned())
    }

    /// The storage URL in effect.
    pub fn storage_url(&self) -> String {
        self.storage_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("storage").display()))
    }

    /// The archive limits in effect.
    pub fn archive_limits(&self) -> ArchiveLimits {
        ArchiveLimits {
            max_entries: self.archive_max_entries,
            max_total_bytes: self.archive_max_total_bytes,
            max_file_bytes: self.archive_max_file_bytes,
            max_ratio: self.archive_max_ratio,
        }
    }

    /// The worker lease.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs.max(1))
    }

    /// The folder of the dependency caches in effect.
    pub fn build_cache_dir(&self) -> PathBuf {
        self.build_cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("build-cache"))
    }

    /// The build timeout.
    pub fn build_timeout(&self) -> Duration {
        Duration::from_secs(self.build_timeout_secs.max(1))
    }

    /// How many threads serve HTTP: `serve_threads`, or one per core when it is 0.
    pub fn serve_threads(&self) -> usize {
        match self.serve_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// How often the reconciler runs.
    pub fn reconcile_every(&self) -> Duration {
        Duration::from_secs(self.reconcile_secs.max(1))
    }

    /// How long a deployment may wait in `QUEUED` before it is enqueued again.
    pub fn stalled_after(&self) -> Duration {
        Duration::from_secs(self.stalled_after_secs)
    }

    /// How long a cached read is served.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    /// The blob grace period.
    pub fn blob_grace(&self) -> Duration {
        Duration::from_secs(self.blob_grace_secs)
    }

    /// The configured base domain, validated (a DNS name, no port, no trailing dot).
    pub fn base_domain(&self) -> Result<BaseDomain, ConfigError> {
        BaseDomain::parse(&self.base_domain).map_err(|err| ConfigError::Env {
            name: "DEPLOYSTACK_BASE_DOMAIN",
            value: self.base_domain.clone(),
            message: err.to_string(),
        })
    }

    /// The backoff of background re-checks of pending domains: `domain_recheck_secs`
    /// (at least one second) doubling up to `domain_recheck_max_secs`, with jitter.
    pub fn recheck_schedule(&self) -> crate::domains::RecheckSchedule {
        let first = Duration::from_secs(self.domain_recheck_secs.max(1));
        crate::domains::RecheckSchedule {
            first,
            max: Duration::from_secs(self.domain_recheck_max_secs).max(first),
            ..crate::domains::RecheckSchedule::default()
        }
    }

    /// How often the maintenance loop looks for due domains: the first re-check delay,
    /// between one and thirty seconds.
    pub fn domain_recheck_every(&self) -> Duration {
        Duration::from_secs(self.domain_recheck_secs.clamp(1, 30))
    }

    /// The header read (and keep-alive idle) timeout; at least one second.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// How long a request body may pause between bytes; at least one second.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs.max(1))
    }

    /// The timeout of requests that are not uploads; at least one second.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests;
