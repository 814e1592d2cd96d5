//! Settings: defaults, then an optional TOML file, then `DEPLOYSTACK_*` environment variables,
//! then command-line flags (the binaries apply those last).
//!
//! Durations are whole seconds and sizes whole bytes, so every setting has one obvious
//! spelling in TOML, in the environment and on the command line.

#[cfg(feature = "cli")]
pub mod cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archive::ArchiveLimits;
use crate::build::SandboxMode;
use crate::services::hosts::BaseDomain;

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
    /// A URL names an engine that does not exist, or one this build does not include.
    #[error("{0}")]
    Engine(String),
}

/// Every setting of DeployStack. See `docs/configuration.md` for the full table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds (`DEPLOYSTACK_LISTEN`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the embedded defaults keep their data (`DEPLOYSTACK_DATA_DIR`): the SQLite file
    /// and the storage directory.
    pub data_dir: PathBuf,
    /// Repository URL (`DEPLOYSTACK_DATABASE_URL`); default `sqlite://<data_dir>/deploystack.db`.
    pub database_url: Option<String>,
    /// Queue URL (`DEPLOYSTACK_QUEUE_URL`); default `memory://`.
    pub queue_url: Option<String>,
    /// Storage URL (`DEPLOYSTACK_STORAGE_URL`); default `file://<data_dir>/storage`.
    pub storage_url: Option<String>,
    /// Base of the URLs the API returns (`DEPLOYSTACK_PUBLIC_URL`); default
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// Largest accepted upload body in bytes (`DEPLOYSTACK_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
    /// Most entries an archive may hold (`DEPLOYSTACK_ARCHIVE_MAX_ENTRIES`).
    pub archive_max_entries: usize,
    /// Most bytes an archive may unpack to (`DEPLOYSTACK_ARCHIVE_MAX_TOTAL_BYTES`).
    pub archive_max_total_bytes: u64,
    /// Most bytes one archive entry may unpack to (`DEPLOYSTACK_ARCHIVE_MAX_FILE_BYTES`).
    pub archive_max_file_bytes: u64,
    /// Highest compression ratio allowed for large entries (`DEPLOYSTACK_ARCHIVE_MAX_RATIO`).
    pub archive_max_ratio: u64,
    /// Build workers the server runs in-process (`DEPLOYSTACK_EMBEDDED_WORKERS`); default 2
    /// with the in-memory queue, 0 with a shared queue.
    pub embedded_workers: Option<usize>,
    /// How long a worker's claim lasts without a heartbeat (`DEPLOYSTACK_LEASE_SECS`).
    pub lease_secs: u64,
    /// Deliveries after which a job is dead-lettered (`DEPLOYSTACK_MAX_DELIVERIES`).
    pub max_deliveries: u32,
    /// Longest a build may run (`DEPLOYSTACK_BUILD_TIMEOUT_SECS`).
    pub build_timeout_secs: u64,
    /// Whether build commands run under bubblewrap (`DEPLOYSTACK_BUILD_SANDBOX`): `auto`
    /// (when available, else unsandboxed with a log line), `require` (fail builds without
    /// it) or `off`.
    pub build_sandbox: SandboxMode,
    /// Where each worker keeps the per-project dependency caches
    /// (`DEPLOYSTACK_BUILD_CACHE_DIR`); default `<data_dir>/build-cache`. Local disk: a
    /// restore is a rename when it shares a filesystem with the build's temporary folder.
    pub build_cache_dir: Option<PathBuf>,
    /// Most files a build may publish (`DEPLOYSTACK_BUILD_OUTPUT_MAX_FILES`).
    pub build_output_max_files: usize,
    /// Most bytes a build may publish (`DEPLOYSTACK_BUILD_OUTPUT_MAX_BYTES`).
    pub build_output_max_bytes: u64,
    /// How long shutdown waits for running builds before giving them back to the queue
    /// (`DEPLOYSTACK_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace_secs: u64,
    /// How long an unreferenced blob is kept before it is deleted
    /// (`DEPLOYSTACK_BLOB_GRACE_SECS`). Builds reuse stored blobs; the grace period makes sure
    /// a blob a build just decided to reuse is not collected under it.
    pub blob_grace_secs: u64,
    /// How often each worker process looks for deployments the queue lost
    /// (`DEPLOYSTACK_RECONCILE_SECS`).
    pub reconcile_secs: u64,
    /// How long a deployment may sit in `QUEUED` before the reconciler enqueues it again
    /// (`DEPLOYSTACK_STALLED_AFTER_SECS`). Extra deliveries are harmless (the claim dedupes
    /// them), so this only trades queue traffic for recovery time.
    pub stalled_after_secs: u64,
    /// Shared read cache (`DEPLOYSTACK_CACHE_URL`): `redis://…` adds a Redis layer under the
    /// in-process cache and invalidates every node's cache on changes. Unset: in-process only.
    pub cache_url: Option<String>,
    /// How long a cached repository read may be served before it is read again
    /// (`DEPLOYSTACK_CACHE_TTL_SECS`); bounds staleness between nodes without a shared cache.
    /// 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// Memory budget of the in-process read cache in bytes (`DEPLOYSTACK_CACHE_MAX_BYTES`);
    /// 0 turns the cache off.
    pub cache_max_bytes: u64,
    /// Memory budget of the hot-blob cache in bytes (`DEPLOYSTACK_BLOB_CACHE_MAX_BYTES`):
    /// small content-addressed blobs served from memory instead of storage. 0 turns it off.
    pub blob_cache_max_bytes: u64,
    /// Largest blob the hot-blob cache keeps, in bytes
    /// (`DEPLOYSTACK_BLOB_CACHE_MAX_OBJECT_BYTES`); larger files always stream from storage,
    /// so one big download cannot push many small pages out. 0 turns the cache off.
    pub blob_cache_max_object_bytes: u64,
    /// Prefix of every Redis key DeployStack uses, queue and cache alike
    /// (`DEPLOYSTACK_REDIS_PREFIX`), so several installations can share one Redis.
    pub redis_prefix: String,
    /// Domain under which each deployment is served on its own origin,
    /// `<deployment-id>.<base_domain>` (`DEPLOYSTACK_BASE_DOMAIN`). The default, `localhost`,
    /// works in browsers without DNS set-up.
    pub base_domain: String,
    /// Most connections served at once (`DEPLOYSTACK_MAX_CONNECTIONS`); further connections
    /// wait in the kernel's accept queue until one closes, so a flood cannot exhaust memory
    /// or file descriptors.
    pub max_connections: usize,
    /// Threads that accept and serve HTTP connections (`DEPLOYSTACK_SERVE_THREADS`); 0, the
    /// default, means one per core. Each runs its own single-threaded event loop on the
    /// shared listening socket, as nginx's worker processes do, so a connection never hops
    /// between threads.
    pub serve_threads: usize,
    /// Pin each serve thread to a core of its own and serve every connection on the core
    /// that receives its packets (`DEPLOYSTACK_SERVE_CPU_AFFINITY`, `true` by default), like
    /// nginx's `worker_cpu_affinity auto`. Takes effect with two or more serve threads and at
    /// least as many cores as threads; `false` lets the threads float.
    pub serve_cpu_affinity: bool,
    /// How long a client may take to send a request's line and headers, and how long an idle
    /// keep-alive connection is kept (`DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS`); closes
    /// slowloris connections.
    pub header_read_timeout_secs: u64,
    /// Largest request line plus headers in bytes (`DEPLOYSTACK_MAX_HEADER_BYTES`); past it:
    /// 431.
    pub max_header_bytes: usize,
    /// Longest the server works on a request before answering 503
    /// (`DEPLOYSTACK_REQUEST_TIMEOUT_SECS`); uploads have their own time limit.
    pub request_timeout_secs: u64,
    /// S3 connection settings (`[s3]` in the file, `AWS_*` variables).
    pub s3: S3Settings,
}

/// How to reach an S3-compatible store. Each value can also come from the standard `AWS_*`
/// variable named beside it; unset values fall back to the AWS defaults (instance metadata,
/// `us-east-1`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint of a non-AWS store, e.g. `http://127.0.0.1:9000` (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`).
    pub region: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`); never printed.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (`AWS_ALLOW_HTTP`), for local test servers.
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
            data_dir: PathBuf::from("./data"),
            database_url: None,
            queue_url: None,
            storage_url: None,
            public_url: None,
            max_upload_bytes: 256 * 1024 * 1024,
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
            base_domain: "localhost".to_owned(),
            max_connections: 4096,
            serve_threads: 0,
            serve_cpu_affinity: true,
            header_read_timeout_secs: 10,
            max_header_bytes: 16 * 1024,
            request_timeout_secs: 30,
            s3: S3Settings::default(),
        }
    }
}

impl Config {
    /// Defaults, overridden by `file` (if any), overridden by `DEPLOYSTACK_*` variables of
    /// this process.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

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

    /// Override settings from environment variables, read through `get` (so tests need not
    /// touch the real environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            slot: &mut T,
        ) -> Result<(), ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(value) = get(name).filter(|v| !v.is_empty()) {
                *slot = value.parse().map_err(|err: T::Err| ConfigError::Env {
                    name,
                    message: err.to_string(),
                    value,
                })?;
            }
            Ok(())
        }
        fn optional(
            get: &impl Fn(&str) -> Option<String>,
            name: &'static str,
            slot: &mut Option<String>,
        ) {
            if let Some(value) = get(name).filter(|v| !v.is_empty()) {
                *slot = Some(value);
            }
        }
        parse(&get, "DEPLOYSTACK_LISTEN", &mut self.listen)?;
        parse(&get, "DEPLOYSTACK_DATA_DIR", &mut self.data_dir)?;
        optional(&get, "DEPLOYSTACK_DATABASE_URL", &mut self.database_url);
        optional(&get, "DEPLOYSTACK_QUEUE_URL", &mut self.queue_url);
        optional(&get, "DEPLOYSTACK_STORAGE_URL", &mut self.storage_url);
        optional(&get, "DEPLOYSTACK_PUBLIC_URL", &mut self.public_url);
        parse(
            &get,
            "DEPLOYSTACK_MAX_UPLOAD_BYTES",
            &mut self.max_upload_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_ARCHIVE_MAX_ENTRIES",
            &mut self.archive_max_entries,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_ARCHIVE_MAX_TOTAL_BYTES",
            &mut self.archive_max_total_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_ARCHIVE_MAX_FILE_BYTES",
            &mut self.archive_max_file_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_ARCHIVE_MAX_RATIO",
            &mut self.archive_max_ratio,
        )?;
        if get("DEPLOYSTACK_EMBEDDED_WORKERS").is_some_and(|v| !v.is_empty()) {
            let mut workers = 0usize;
            parse(&get, "DEPLOYSTACK_EMBEDDED_WORKERS", &mut workers)?;
            self.embedded_workers = Some(workers);
        }
        parse(&get, "DEPLOYSTACK_LEASE_SECS", &mut self.lease_secs)?;
        parse(&get, "DEPLOYSTACK_MAX_DELIVERIES", &mut self.max_deliveries)?;
        parse(
            &get,
            "DEPLOYSTACK_BUILD_TIMEOUT_SECS",
            &mut self.build_timeout_secs,
        )?;
        parse(&get, "DEPLOYSTACK_BUILD_SANDBOX", &mut self.build_sandbox)?;
        if let Some(dir) = get("DEPLOYSTACK_BUILD_CACHE_DIR").filter(|v| !v.is_empty()) {
            self.build_cache_dir = Some(PathBuf::from(dir));
        }
        parse(
            &get,
            "DEPLOYSTACK_BUILD_OUTPUT_MAX_FILES",
            &mut self.build_output_max_files,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_BUILD_OUTPUT_MAX_BYTES",
            &mut self.build_output_max_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_SHUTDOWN_GRACE_SECS",
            &mut self.shutdown_grace_secs,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_BLOB_GRACE_SECS",
            &mut self.blob_grace_secs,
        )?;
        parse(&get, "DEPLOYSTACK_RECONCILE_SECS", &mut self.reconcile_secs)?;
        parse(
            &get,
            "DEPLOYSTACK_STALLED_AFTER_SECS",
            &mut self.stalled_after_secs,
        )?;
        optional(&get, "DEPLOYSTACK_CACHE_URL", &mut self.cache_url);
        parse(&get, "DEPLOYSTACK_CACHE_TTL_SECS", &mut self.cache_ttl_secs)?;
        parse(
            &get,
            "DEPLOYSTACK_CACHE_MAX_BYTES",
            &mut self.cache_max_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_BLOB_CACHE_MAX_BYTES",
            &mut self.blob_cache_max_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_BLOB_CACHE_MAX_OBJECT_BYTES",
            &mut self.blob_cache_max_object_bytes,
        )?;
        parse(&get, "DEPLOYSTACK_REDIS_PREFIX", &mut self.redis_prefix)?;
        parse(&get, "DEPLOYSTACK_BASE_DOMAIN", &mut self.base_domain)?;
        parse(
            &get,
            "DEPLOYSTACK_MAX_CONNECTIONS",
            &mut self.max_connections,
        )?;
        parse(&get, "DEPLOYSTACK_SERVE_THREADS", &mut self.serve_threads)?;
        parse(
            &get,
            "DEPLOYSTACK_SERVE_CPU_AFFINITY",
            &mut self.serve_cpu_affinity,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_HEADER_READ_TIMEOUT_SECS",
            &mut self.header_read_timeout_secs,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_MAX_HEADER_BYTES",
            &mut self.max_header_bytes,
        )?;
        parse(
            &get,
            "DEPLOYSTACK_REQUEST_TIMEOUT_SECS",
            &mut self.request_timeout_secs,
        )?;
        let s3 = &mut self.s3;
        optional(&get, "AWS_ENDPOINT_URL", &mut s3.endpoint);
        optional(&get, "AWS_REGION", &mut s3.region);
        optional(&get, "AWS_ACCESS_KEY_ID", &mut s3.access_key_id);
        optional(&get, "AWS_SECRET_ACCESS_KEY", &mut s3.secret_access_key);
        if get("AWS_ALLOW_HTTP").is_some_and(|v| !v.is_empty()) {
            let mut allow = false;
            parse(&get, "AWS_ALLOW_HTTP", &mut allow)?;
            s3.allow_http = Some(allow);
        }
        Ok(())
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

    /// The header read (and keep-alive idle) timeout; at least one second.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    /// The timeout of requests that are not uploads; at least one second.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_embedded_shape() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.queue_url(), "memory://");
        assert!(config.database_url().starts_with("sqlite://"));
        assert!(config.database_url().ends_with("deploystack.db"));
        assert!(config.storage_url().starts_with("file://"));
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploystack.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlease_secs = 7\n").unwrap();
        let mut config = Config::from_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9000);
        config
            .apply_env(env(&[
                ("DEPLOYSTACK_LISTEN", "127.0.0.1:0"),
                ("DEPLOYSTACK_EMBEDDED_WORKERS", "3"),
                ("DEPLOYSTACK_QUEUE_URL", "memory://"),
            ]))
            .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.lease_secs, 7);
        assert_eq!(config.embedded_workers, Some(3));
    }

    #[test]
    fn s3_settings_come_from_the_file_and_the_standard_aws_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(
            &path,
            "storage_url = \"s3://sites/prod\"\n[s3]\nregion = \"eu-west-1\"\nsecret_access_key = \"from-file\"\n",
        )
        .unwrap();
        let mut config = Config::from_file(&path).unwrap();
        assert_eq!(config.s3.region.as_deref(), Some("eu-west-1"));
        config
            .apply_env(env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("AWS_SECRET_ACCESS_KEY", "from-env"),
                ("AWS_ALLOW_HTTP", "true"),
                ("DEPLOYSTACK_REDIS_PREFIX", "staging"),
            ]))
            .unwrap();
        assert_eq!(config.s3.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(config.s3.allow_http, Some(true));
        assert_eq!(config.redis_prefix, "staging");
        assert_eq!(config.base_domain().unwrap().as_str(), "localhost");
        let printed = format!("{config:?}");
        assert!(!printed.contains("from-env"), "{printed}");
        let err = Config::default()
            .apply_env(env(&[("AWS_ALLOW_HTTP", "maybe")]))
            .unwrap_err();
        assert!(err.to_string().contains("AWS_ALLOW_HTTP"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable_or_the_line() {
        let err = Config::default()
            .apply_env(env(&[("DEPLOYSTACK_LEASE_SECS", "soon")]))
            .unwrap_err();
        assert!(err.to_string().contains("DEPLOYSTACK_LEASE_SECS"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = \"x\"\nnot_a_setting = 1\n").unwrap();
        let err = Config::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");

        let mut config = Config::default();
        config
            .apply_env(env(&[("DEPLOYSTACK_BASE_DOMAIN", "sites.example.com:80")]))
            .unwrap();
        let err = config.base_domain().unwrap_err();
        assert!(err.to_string().contains("DEPLOYSTACK_BASE_DOMAIN"), "{err}");
    }
}
