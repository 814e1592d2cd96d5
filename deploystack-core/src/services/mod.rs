//! The flows that tie the ports together, and [`Services`], the one place that chooses
//! adapters from configuration.
//!
//! - [`ingest`]: accept an upload — validate, store the source, record, enqueue.
//! - [`blobs`] and [`manifest`]: content-addressed uploads — which blobs are missing, receive
//!   one, create a deployment from a manifest of them (and build one again from it).
//! - [`pipeline`]: build one job — claim, extract, build, check, store blobs, publish.
//! - [`compression`]: the brotli and gzip variants of text assets, made once at deploy time.
//! - [`serving`]: turn a request path into a file of a deployment, safely.
//! - [`hosts`]: turn a request's `Host` into a deployment (or the platform), strictly.
//! - [`deployments`]: delete, and collect blobs nothing references any more.
//! - [`projects`]: projects, and moving their production (promote, rollback).
//! - [`protection`]: password-protected deployments — password hashes, the bypass secret,
//!   host-bound access tokens, the wrong-password throttle.
//! - [`domains`]: custom domains of projects — add, verify, re-check, sync, what a host
//!   serves.
//! - [`env`](mod@env): projects' environment variables (sealed at rest), what a build receives, and
//!   key rotation.
//! - [`disk`]: free space in the data directory, checked against a floor.
//! - [`reconciler`]: enqueue again what the queue lost.
//! - [`scratch`]: where upload spools and build folders live, swept after a crash.
//! - [`tokens`]: API tokens — make one, find the one a request presents.
//! - [`workers`]: the build worker pool (and its maintenance loops) that runs the pipeline.

pub mod blobs;
pub mod compression;
pub mod deployments;
pub mod desired;
pub mod disk;
pub mod domains;
pub mod env;
pub mod hosts;
pub mod ingest;
pub mod manifest;
pub mod pipeline;
pub mod projects;
pub mod protection;
pub mod reconciler;
pub mod scratch;
pub mod serving;
pub mod tokens;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;

use self::scratch::Scratch;
use self::serving::ResolutionCache;
use crate::breaker::{Breaker, BreakerSettings, RetryPolicy};
use crate::build::{BuildConfig, BuildStrategy, StrategyRegistry};
use crate::cache::{
    BlobCacheConfig, BlobCacheStatsHandle, CacheConfig, CacheStatsHandle, CachedRepository,
    CachedStorage,
};
use crate::config::{Config, ConfigError};
use crate::events::{BroadcastEventSink, EventSink, FanoutEventSink, TracingEventSink};
use crate::queue::{MemoryQueue, Queue};
use crate::ratelimit::{MemoryRateLimiter, Quotas, RateLimiter};
use crate::repository::Repository;
use crate::secrets::{Keyring, SecretKey, SecretsError};
use crate::storage::{ObjectStoreStorage, Storage};

/// Every port, wired. Cheap to clone; the binaries build one with [`Services::from_config`],
/// embedders and tests may fill the fields with anything that implements the ports.
#[derive(Clone)]
pub struct Services {
    /// The settings these services were built from.
    pub config: Arc<Config>,
    /// Source of truth.
    pub repository: Arc<dyn Repository>,
    /// Sources and blobs.
    pub storage: Arc<dyn Storage>,
    /// Build jobs.
    pub queue: Arc<dyn Queue>,
    /// Build strategies, asked in order.
    pub strategies: Arc<StrategyRegistry>,
    /// Where events go (the tracing log and `broadcast`).
    pub events: Arc<dyn EventSink>,
    /// In-process subscribers of the same events (live updates).
    pub broadcast: BroadcastEventSink,
    /// What paths of `READY` deployments resolved to (`serving::resolve_cached`), shared by
    /// every request of this process; sized from the read cache's settings and off with it.
    /// Kept even when the caller supplied the repository: it never needs invalidating.
    pub resolutions: ResolutionCache,
    /// Counters of the read cache in front of `repository`, when [`Services::from_config`] or
    /// [`Services::in_memory`] put one there (`/metrics` reports them); `None` when caching
    /// is off or the caller supplied the repository.
    pub cache_stats: Option<CacheStatsHandle>,
    /// Counters of the hot-blob cache in front of `storage`, when [`Services::from_config`]
    /// or [`Services::in_memory`] put one there; `None` when it is off or the caller supplied
    /// the storage.
    pub blob_cache_stats: Option<BlobCacheStatsHandle>,
    /// Where upload spools and build folders go: `<data_dir>/tmp/<pid>/` when built by
    /// [`Services::from_config`] (swept after a crash, see [`scratch`]), otherwise the
    /// system temp directory.
    pub scratch: Arc<Scratch>,
    /// Seals environment-variable values before they reach the repository and opens them
    /// for builds and the API. [`Services::from_config`] reads it from the settings
    /// (`Keyring::from_config`); [`Services::new`] and [`Services::in_memory`] make a
    /// throwaway key, which is right for memory-only services and wrong for a repository that
    /// outlives the process: give such services their key with [`Services::with_keyring`].
    pub keyring: Arc<Keyring>,
    /// How many requests of each class a caller may make (the HTTP layer asks it before
    /// every API request). [`Services::from_config`] shares it through Redis when the queue
    /// is in Redis (behind a per-process fallback while Redis fails); otherwise, and in
    /// [`Services::new`], it is this process's own, in memory. Quotas from the settings
    /// `rate_limit_*_per_minute`.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// The circuit breakers guarding the adapters, which `/readyz` and `/metrics` report.
    /// [`Services::from_config`] puts one around S3 storage (`storage`), the Redis queue
    /// (`queue`) and the read cache's Redis layer (`cache`), unless `breaker_min_calls` is 0;
    /// [`Services::new`] leaves it empty. An embedder that wraps its own adapters in
    /// [`BreakerStorage`](crate::breaker::BreakerStorage) or
    /// [`BreakerQueue`](crate::breaker::BreakerQueue) adds their breakers here.
    pub breakers: Vec<Arc<Breaker>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("strategies", &self.strategies)
            .finish_non_exhaustive()
    }
}

/// The repository engines this build includes. Parsing knows every engine DeployStack has,
/// so a URL for one that was not compiled in gets "rebuild with the feature", not "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseEngine {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// The queue engines this build includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueEngine {
    Memory,
    #[cfg(feature = "redis")]
    Redis,
}

/// Where repository reads are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheEngine {
    /// `cache_max_bytes` or `cache_ttl_secs` is 0.
    Off,
    /// In-process only (no `cache_url`).
    Local(CacheConfig),
    /// In-process plus a shared layer in Redis.
    #[cfg(feature = "redis")]
    Redis {
        settings: CacheConfig,
        url: String,
        prefix: String,
    },
}

/// The storage engines this build includes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StorageEngine {
    Local(PathBuf),
    Memory,
    #[cfg(feature = "s3")]
    S3(crate::storage::S3Url),
}

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

fn not_compiled(setting: &str, engine: &str, feature: &str) -> ConfigError {
    ConfigError::Engine(format!(
        "{setting} uses {engine}, which this build does not include: rebuild with `--features {feature}`"
    ))
}

fn unknown(setting: &str, url: &str, expected: &str) -> ConfigError {
    ConfigError::Engine(format!(
        "{setting}={url:?} names no engine DeployStack knows (expected {expected})"
    ))
}

fn database_engine(url: &str) -> Result<DatabaseEngine, ConfigError> {
    match scheme(url) {
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(DatabaseEngine::Sqlite),
        #[cfg(not(feature = "sqlite"))]
        "sqlite" => Err(not_compiled("DEPLOYSTACK_DATABASE_URL", "sqlite", "sqlite")),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(DatabaseEngine::Postgres),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(not_compiled(
            "DEPLOYSTACK_DATABASE_URL",
            "postgres",
            "postgres",
        )),
        _ => Err(unknown(
            "DEPLOYSTACK_DATABASE_URL",
            url,
            "sqlite://… or postgres://…",
        )),
    }
}

fn queue_engine(url: &str) -> Result<QueueEngine, ConfigError> {
    match scheme(url) {
        "memory" => Ok(QueueEngine::Memory),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(QueueEngine::Redis),
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(not_compiled("DEPLOYSTACK_QUEUE_URL", "redis", "redis")),
        _ => Err(unknown(
            "DEPLOYSTACK_QUEUE_URL",
            url,
            "memory:// or redis://…",
        )),
    }
}

fn cache_engine(config: &Config) -> Result<CacheEngine, ConfigError> {
    // Checked even when caching is off, so a typo never goes unnoticed.
    if let Some(url) = &config.cache_url {
        match scheme(url) {
            "redis" | "rediss" if cfg!(feature = "redis") => {}
            "redis" | "rediss" => {
                return Err(not_compiled("DEPLOYSTACK_CACHE_URL", "redis", "redis"));
            }
            _ => {
                return Err(unknown(
                    "DEPLOYSTACK_CACHE_URL",
                    url,
                    "redis://…, or none for an in-process cache only",
                ));
            }
        }
    }
    let Some(settings) = CacheConfig::from_config(config) else {
        return Ok(CacheEngine::Off);
    };
    #[cfg(feature = "redis")]
    if let Some(url) = &config.cache_url {
        return Ok(CacheEngine::Redis {
            settings,
            url: url.clone(),
            prefix: config.redis_prefix.clone(),
        });
    }
    Ok(CacheEngine::Local(settings))
}

/// Put the hot-blob cache in front of `storage`, unless the settings turn it off.
fn with_blob_cache(
    storage: Arc<dyn Storage>,
    config: &Config,
) -> (Arc<dyn Storage>, Option<BlobCacheStatsHandle>) {
    match BlobCacheConfig::from_config(config) {
        Some(settings) => {
            let cached = CachedStorage::new(storage, settings);
            let stats = cached.stats_handle();
            (Arc::new(cached), Some(stats))
        }
        None => (storage, None),
    }
}

/// Put the read cache `engine` names in front of `repository`; `breaker` guards its Redis
/// layer, if it has one.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
async fn with_cache(
    repository: Arc<dyn Repository>,
    engine: CacheEngine,
    breaker: Option<Arc<Breaker>>,
) -> Result<(Arc<dyn Repository>, Option<CacheStatsHandle>), ServicesError> {
    let cached = match engine {
        CacheEngine::Off => return Ok((repository, None)),
        CacheEngine::Local(settings) => CachedRepository::new(repository, settings),
        #[cfg(feature = "redis")]
        CacheEngine::Redis {
            settings,
            url,
            prefix,
        } => {
            let cached = CachedRepository::with_redis(repository, settings, &url, &prefix).await?;
            match breaker {
                Some(breaker) => cached.with_breaker(breaker),
                None => cached,
            }
        }
    };
    let stats = cached.stats_handle();
    Ok((Arc::new(cached), Some(stats)))
}

/// The rate limiter for `config`'s quotas, kept where the queue is: shared through Redis
/// (falling back to this process's memory while Redis fails, see
/// `ratelimit::FallbackRateLimiter`) when the queue is there, else in memory.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
fn rate_limiter(
    config: &Config,
    queue: QueueEngine,
    queue_url: &str,
) -> Result<Arc<dyn RateLimiter>, ServicesError> {
    let quotas = Quotas::from_config(config);
    let memory = MemoryRateLimiter::new(quotas);
    Ok(match queue {
        QueueEngine::Memory => Arc::new(memory),
        #[cfg(feature = "redis")]
        QueueEngine::Redis => {
            let redis =
                crate::ratelimit::RedisRateLimiter::new(queue_url, &config.redis_prefix, quotas)?;
            Arc::new(crate::ratelimit::FallbackRateLimiter::new(redis, memory))
        }
    })
}

fn storage_engine(url: &str) -> Result<StorageEngine, ConfigError> {
    match scheme(url) {
        "file" => {
            let path = url.trim_start_matches("file:").trim_start_matches("//");
            if path.is_empty() {
                return Err(ConfigError::Engine(format!(
                    "DEPLOYSTACK_STORAGE_URL={url:?} names no directory (use file:///path/to/dir)"
                )));
            }
            Ok(StorageEngine::Local(PathBuf::from(path)))
        }
        "memory" => Ok(StorageEngine::Memory),
        #[cfg(feature = "s3")]
        "s3" => crate::storage::S3Url::parse(url)
            .map(StorageEngine::S3)
            .map_err(|err| ConfigError::Engine(format!("DEPLOYSTACK_STORAGE_URL: {err}"))),
        #[cfg(not(feature = "s3"))]
        "s3" => Err(not_compiled("DEPLOYSTACK_STORAGE_URL", "s3", "s3")),
        _ => Err(unknown(
            "DEPLOYSTACK_STORAGE_URL",
            url,
            "file:///path, memory:// or s3://bucket",
        )),
    }
}

/// The keyring of `config`. A private in-memory SQLite database dies with its process, and
/// so may its key: without a configured key it gets a throwaway one rather than a key file
/// left in the data directory.
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables, unreachable_code))]
fn keyring(
    config: &Config,
    database: DatabaseEngine,
    database_url: &str,
) -> Result<Keyring, SecretsError> {
    let throwaway = match database {
        #[cfg(feature = "sqlite")]
        DatabaseEngine::Sqlite => crate::repository::is_sqlite_in_memory(database_url),
        #[cfg(feature = "postgres")]
        DatabaseEngine::Postgres => false,
    };
    if throwaway && config.secret_key.is_none() && config.secret_key_file.is_none() {
        return Ok(Keyring::new(SecretKey::generate(), []));
    }
    Keyring::from_config(config)
}

/// Why services could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServicesError {
    /// A setting is wrong or names an engine this build lacks.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository could not be opened.
    #[error("cannot open the repository: {0}")]
    Repository(#[from] crate::repository::RepositoryError),
    /// Storage could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The shared cache could not be reached.
    #[error("cannot connect the shared cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
    /// The queue could not be opened.
    #[error("cannot open the queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    /// The shared rate limits could not be set up (a malformed Redis URL).
    #[error("cannot set up the rate limits: {0}")]
    RateLimits(#[from] crate::ratelimit::RateLimitError),
    /// The secret key could not be read or created, or its settings are wrong.
    #[error("cannot load the secret key: {0}")]
    Secrets(#[from] SecretsError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Services {
    /// Choose and open every adapter from the URLs in `config`. This is the only place that
    /// knows which adapters exist.
    // Built with no repository engine at all (an embedder with its own repository), every
    // database URL is refused before anything opens, so the rest is unreachable by design.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(unreachable_code, unused_variables)
    )]
    pub async fn from_config(config: Config) -> Result<Self, ServicesError> {
        let database_url = config.database_url();
        let queue_url = config.queue_url();
        let storage_url = config.storage_url();
        // Check every URL before opening anything, so a typo fails fast and touches nothing.
        let database = database_engine(&database_url)?;
        let queue_kind = queue_engine(&queue_url)?;
        let storage_kind = storage_engine(&storage_url)?;
        let cache = cache_engine(&config)?;
        // Before the database opens: a missing, exposed or misconfigured key stops the start
        // before anything is opened. The embedded default creates its key file (and logs
        // where) in the data directory on first start.
        let keyring = keyring(&config, database, &database_url)?;
        let repository: Arc<dyn Repository> = match database {
            #[cfg(feature = "sqlite")]
            DatabaseEngine::Sqlite => {
                if config.database_url.is_none() {
                    std::fs::create_dir_all(&config.data_dir).map_err(|source| {
                        ServicesError::DataDir {
                            path: config.data_dir.clone(),
                            source,
                        }
                    })?;
                }
                Arc::new(crate::repository::SqliteRepository::connect(&database_url).await?)
            }
            #[cfg(feature = "postgres")]
            DatabaseEngine::Postgres => {
                Arc::new(crate::repository::PostgresRepository::connect(&database_url).await?)
            }
        };
        let breaker_settings = BreakerSettings::from_config(&config);
        #[cfg_attr(not(any(feature = "s3", feature = "redis")), allow(unused_variables))]
        let retry = RetryPolicy::from_config(&config);
        // Only remote engines get breakers: a local directory or memory does not go away on
        // its own, and its errors (a full disk) are not outages.
        #[cfg_attr(not(any(feature = "s3", feature = "redis")), allow(unused_mut))]
        let mut breakers: Vec<Arc<Breaker>> = Vec::new();
        #[cfg_attr(
            not(any(feature = "s3", feature = "redis")),
            allow(unused_mut, unused_variables)
        )]
        let mut breaker = |name: &'static str| {
            breaker_settings.map(|settings| {
                let breaker = Arc::new(Breaker::new(name, settings));
                breakers.push(Arc::clone(&breaker));
                breaker
            })
        };
        #[cfg(feature = "redis")]
        let cache_breaker = match cache {
            CacheEngine::Redis { .. } => breaker("cache"),
            _ => None,
        };
        #[cfg(not(feature = "redis"))]
        let cache_breaker = None;
        let (repository, cache_stats) = with_cache(repository, cache, cache_breaker).await?;
        let storage: Arc<dyn Storage> = match storage_kind {
            StorageEngine::Local(dir) => Arc::new(ObjectStoreStorage::local(&dir)?),
            StorageEngine::Memory => Arc::new(ObjectStoreStorage::memory()),
            #[cfg(feature = "s3")]
            StorageEngine::S3(url) => {
                let s3 =
                    crate::storage::S3Storage::connect_with_retry(&url, &config.s3, &retry).await?;
                match breaker("storage") {
                    Some(breaker) => Arc::new(crate::breaker::BreakerStorage::new(s3, breaker)),
                    None => Arc::new(s3),
                }
            }
        };
        // The hot-blob cache goes in front of the breaker, so warm blobs are answered from
        // memory while storage is down.
        let (storage, blob_cache_stats) = with_blob_cache(storage, &config);
        let queue: Arc<dyn Queue> = match queue_kind {
            QueueEngine::Memory => Arc::new(MemoryQueue::new(config.max_deliveries)),
            #[cfg(feature = "redis")]
            QueueEngine::Redis => {
                let redis = crate::queue::RedisQueue::connect(
                    &queue_url,
                    &config.redis_prefix,
                    config.max_deliveries,
                )
                .await?;
                match breaker("queue") {
                    Some(breaker) => Arc::new(
                        crate::breaker::BreakerQueue::new(redis, breaker).with_retry(retry),
                    ),
                    None => Arc::new(redis),
                }
            }
        };
        let rate_limiter = rate_limiter(&config, queue_kind, &queue_url)?;
        let (scratch, swept) =
            Scratch::in_data_dir(&config.data_dir).map_err(|source| ServicesError::DataDir {
                path: config.data_dir.join("tmp"),
                source,
            })?;
        if swept.folders > 0 {
            tracing::info!(
                folders = swept.folders,
                bytes = swept.bytes,
                "removed the temporary files of processes that did not exit cleanly"
            );
        }
        Ok(Self {
            cache_stats,
            blob_cache_stats,
            scratch: Arc::new(scratch),
            keyring: Arc::new(keyring),
            rate_limiter,
            breakers,
            ..Self::new(config, repository, storage, queue)
        })
    }

    /// Wire the given adapters with the default strategies (every preset) and event sinks
    /// (tracing + broadcast).
    pub fn new(
        config: Config,
        repository: Arc<dyn Repository>,
        storage: Arc<dyn Storage>,
        queue: Arc<dyn Queue>,
    ) -> Self {
        let broadcast = BroadcastEventSink::default();
        let events = FanoutEventSink::new(vec![
            Arc::new(TracingEventSink),
            Arc::new(broadcast.clone()),
        ]);
        let strategies = Arc::new(StrategyRegistry::with_config(&BuildConfig::from_config(
            &config,
        )));
        let rate_limiter = Arc::new(MemoryRateLimiter::new(Quotas::from_config(&config)));
        Self {
            rate_limiter,
            resolutions: ResolutionCache::from_config(&config),
            config: Arc::new(config),
            repository,
            storage,
            queue,
            strategies,
            events: Arc::new(events),
            broadcast,
            cache_stats: None,
            blob_cache_stats: None,
            scratch: Arc::new(Scratch::system()),
            keyring: Arc::new(Keyring::new(SecretKey::generate(), [])),
            breakers: Vec::new(),
        }
    }

    /// Seal and open environment-variable values with `keyring` (the one the values in the
    /// repository were sealed with).
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Arc::new(keyring);
        self
    }

    /// Everything in this process's memory: a private in-memory SQLite database behind the
    /// in-process read cache (as configured; never a shared one), memory storage and the
    /// in-memory queue. For tests, experiments and embedding a throwaway platform; nothing
    /// survives the process.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn in_memory(config: Config) -> Result<Self, ServicesError> {
        let repository =
            Arc::new(crate::repository::SqliteRepository::connect("sqlite::memory:").await?);
        let cache = CacheConfig::from_config(&config).map_or(CacheEngine::Off, CacheEngine::Local);
        let (repository, cache_stats) = with_cache(repository, cache, None).await?;
        let queue = MemoryQueue::new(config.max_deliveries);
        let (storage, blob_cache_stats) =
            with_blob_cache(Arc::new(ObjectStoreStorage::memory()), &config);
        Ok(Self {
            cache_stats,
            blob_cache_stats,
            ..Self::new(config, repository, storage, Arc::new(queue))
        })
    }

    /// Ask `strategy` before the strategies registered so far (the static fallback stays
    /// last): how embedders plug in their own builds.
    pub fn with_strategy(mut self, strategy: Arc<dyn BuildStrategy>) -> Self {
        let mut registry = (*self.strategies).clone();
        registry.register(strategy);
        self.strategies = Arc::new(registry);
        self
    }

    /// How many build workers the server should run in-process: the configured number, else
    /// two when the queue only works in-process, else none.
    pub fn embedded_workers(&self) -> usize {
        self.config
            .embedded_workers
            .unwrap_or(if self.queue.is_in_process() { 2 } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_told_apart_from_unknown_schemes() {
        #[cfg(feature = "sqlite")]
        assert_eq!(
            database_engine("sqlite://x.db").ok(),
            Some(DatabaseEngine::Sqlite)
        );
        #[cfg(not(feature = "sqlite"))]
        {
            let sqlite = database_engine("sqlite://x.db").unwrap_err().to_string();
            assert!(sqlite.contains("--features sqlite"), "{sqlite}");
        }
        #[cfg(feature = "postgres")]
        for url in ["postgres://h/db", "postgresql://h/db"] {
            assert_eq!(database_engine(url).ok(), Some(DatabaseEngine::Postgres));
        }
        #[cfg(not(feature = "postgres"))]
        for url in ["postgres://h/db", "postgresql://h/db"] {
            let postgres = database_engine(url).unwrap_err().to_string();
            assert!(postgres.contains("--features postgres"), "{postgres}");
        }
        assert!(database_engine("mysql://h/db").is_err());
        #[cfg(not(feature = "redis"))]
        {
            let redis = queue_engine("redis://127.0.0.1").unwrap_err().to_string();
            assert!(redis.contains("--features redis"), "{redis}");
        }
        #[cfg(feature = "redis")]
        for url in ["redis://127.0.0.1", "rediss://cache.example:6380"] {
            assert_eq!(queue_engine(url).ok(), Some(QueueEngine::Redis), "{url}");
        }
        let kafka = queue_engine("kafka://x").unwrap_err().to_string();
        assert!(kafka.contains("names no engine"), "{kafka}");
        #[cfg(not(feature = "s3"))]
        {
            let s3 = storage_engine("s3://bucket").unwrap_err().to_string();
            assert!(s3.contains("--features s3"), "{s3}");
        }
        #[cfg(feature = "s3")]
        {
            let s3 = storage_engine("s3://bucket/prefix").map_err(|e| e.to_string());
            assert!(
                matches!(&s3, Ok(StorageEngine::S3(url)) if url.bucket() == "bucket"),
                "{s3:?}"
            );
            let empty = storage_engine("s3://").unwrap_err().to_string();
            assert!(empty.contains("DEPLOYSTACK_STORAGE_URL"), "{empty}");
            assert!(empty.contains("names no bucket"), "{empty}");
        }
        assert_eq!(
            storage_engine("file:///tmp/x").ok(),
            Some(StorageEngine::Local(PathBuf::from("/tmp/x")))
        );
        assert!(storage_engine("file://").is_err());
    }

    #[test]
    fn the_cache_url_is_checked_even_when_caching_is_off() {
        let with = |url: &str, max_bytes: u64| Config {
            cache_url: Some(url.to_owned()),
            cache_max_bytes: max_bytes,
            ..Config::default()
        };
        let memcached = cache_engine(&with("memcached://x", 0))
            .unwrap_err()
            .to_string();
        assert!(memcached.contains("DEPLOYSTACK_CACHE_URL"), "{memcached}");
        #[cfg(not(feature = "redis"))]
        {
            let redis = cache_engine(&with("redis://x", 1)).unwrap_err().to_string();
            assert!(redis.contains("--features redis"), "{redis}");
        }
        #[cfg(feature = "redis")]
        assert!(matches!(
            cache_engine(&with("redis://x", 1)),
            Ok(CacheEngine::Redis { .. })
        ));
        let off = Config {
            cache_ttl_secs: 0,
            ..Config::default()
        };
        assert_eq!(cache_engine(&off).ok(), Some(CacheEngine::Off));
        assert!(matches!(
            cache_engine(&Config::default()),
            Ok(CacheEngine::Local(_))
        ));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn in_memory_services_cache_reads_as_configured() {
        let cached = Services::in_memory(Config::default()).await.unwrap();
        assert!(cached.cache_stats.is_some());
        let off = Config {
            cache_max_bytes: 0,
            ..Config::default()
        };
        let uncached = Services::in_memory(off).await.unwrap();
        assert!(uncached.cache_stats.is_none());
    }

    /// The embedded default keeps its key beside the database; a database that dies with the
    /// process leaves no key file behind.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn the_default_key_file_is_made_for_a_database_file_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let memory = Config {
            data_dir: dir.path().join("memory"),
            database_url: Some("sqlite::memory:".into()),
            storage_url: Some("memory://".into()),
            ..Config::default()
        };
        Services::from_config(memory).await.unwrap();
        assert!(!dir.path().join("memory").join("secret.key").exists());

        let file = Config {
            data_dir: dir.path().join("file"),
            storage_url: Some("memory://".into()),
            ..Config::default()
        };
        let services = Services::from_config(file.clone()).await.unwrap();
        let key_file = dir.path().join("file").join("secret.key");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let again = Services::from_config(file).await.unwrap();
        assert_eq!(
            services.keyring.current_key_id(),
            again.keyring.current_key_id(),
            "a restart reads the same key"
        );
    }

    /// A local directory or memory does not go away on its own: no breaker in front of it.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn local_engines_get_no_circuit_breakers() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            database_url: Some("sqlite::memory:".into()),
            ..Config::default()
        };
        let services = Services::from_config(config).await.unwrap();
        assert!(services.breakers.is_empty());
    }

    #[cfg(all(feature = "sqlite", not(feature = "redis")))]
    #[tokio::test]
    async fn a_url_for_an_engine_not_compiled_in_names_the_feature() {
        let config = Config {
            queue_url: Some("redis://127.0.0.1:6379".into()),
            database_url: Some("sqlite::memory:".into()),
            storage_url: Some("memory://".into()),
            ..Config::default()
        };
        let err = Services::from_config(config).await.unwrap_err().to_string();
        assert!(err.contains("--features redis"), "{err}");
    }

    /// What an embedder that turned the default engine off sees when it is configured for it
    /// anyway — the default database URL included — before anything is opened.
    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn without_the_sqlite_feature_a_sqlite_url_says_how_to_rebuild() {
        let data_dir = tempfile::tempdir().unwrap();
        for database_url in [Some("sqlite::memory:".to_owned()), None] {
            let config = Config {
                data_dir: data_dir.path().join("data"),
                database_url: database_url.clone(),
                storage_url: Some("memory://".into()),
                ..Config::default()
            };
            let err = Services::from_config(config).await.unwrap_err();
            assert!(
                matches!(err, ServicesError::Config(ConfigError::Engine(_))),
                "{database_url:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("DEPLOYSTACK_DATABASE_URL"), "{message}");
            assert!(
                message.contains("rebuild with `--features sqlite`"),
                "{message}"
            );
        }
        assert!(
            !data_dir.path().join("data").exists(),
            "a refused configuration created the data directory"
        );
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn a_redis_queue_that_does_not_answer_fails_startup() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let config = Config {
            queue_url: Some(format!("redis://127.0.0.1:{port}")),
            database_url: Some("sqlite::memory:".into()),
            storage_url: Some("memory://".into()),
            ..Config::default()
        };
        let err = Services::from_config(config).await.unwrap_err();
        assert!(
            matches!(
                err,
                ServicesError::Queue(crate::queue::QueueError::Unavailable(_))
            ),
            "{err:?}"
        );
    }
}
