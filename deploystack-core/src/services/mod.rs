//! The flows that tie the ports together, and [`Services`], the one place that chooses
//! adapters from configuration.
//!
//! - [`archive`]: validate and extract uploaded zips without trusting them.
//! - [`ingest`]: accept an upload — validate, store the source, record, enqueue.
//! - [`pipeline`]: build one job — claim, extract, build, check, store blobs, publish.
//! - [`serving`]: turn a request path into a file of a deployment, safely.
//! - [`deployments`]: delete, and collect blobs nothing references any more.
//! - [`reconciler`]: enqueue again what the queue lost.

pub mod archive;
pub mod deployments;
pub mod ingest;
pub mod pipeline;
pub mod reconciler;
pub mod serving;

use std::path::PathBuf;
use std::sync::Arc;

use crate::build::{BuildStrategy, StrategyRegistry};
use crate::config::{Config, ConfigError};
use crate::events::{BroadcastEventSink, EventSink, FanoutEventSink, TracingEventSink};
use crate::queue::{MemoryQueue, Queue};
use crate::repository::{Repository, SqliteRepository};
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
    Sqlite,
}

/// The queue engines this build includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueEngine {
    Memory,
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
        "sqlite" => Ok(DatabaseEngine::Sqlite),
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
        "redis" | "rediss" => Err(not_compiled("DEPLOYSTACK_QUEUE_URL", "redis", "redis")),
        _ => Err(unknown(
            "DEPLOYSTACK_QUEUE_URL",
            url,
            "memory:// or redis://…",
        )),
    }
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
    pub async fn from_config(config: Config) -> Result<Self, ServicesError> {
        let database_url = config.database_url();
        let queue_url = config.queue_url();
        let storage_url = config.storage_url();
        // Check every URL before opening anything, so a typo fails fast and touches nothing.
        let database = database_engine(&database_url)?;
        let queue_kind = queue_engine(&queue_url)?;
        let storage_kind = storage_engine(&storage_url)?;
        let repository: Arc<dyn Repository> = match database {
            DatabaseEngine::Sqlite => {
                if config.database_url.is_none() {
                    std::fs::create_dir_all(&config.data_dir).map_err(|source| {
                        ServicesError::DataDir {
                            path: config.data_dir.clone(),
                            source,
                        }
                    })?;
                }
                Arc::new(SqliteRepository::connect(&database_url).await?)
            }
        };
        let storage: Arc<dyn Storage> = match storage_kind {
            StorageEngine::Local(dir) => Arc::new(ObjectStoreStorage::local(&dir)?),
            StorageEngine::Memory => Arc::new(ObjectStoreStorage::memory()),
            #[cfg(feature = "s3")]
            StorageEngine::S3(url) => {
                Arc::new(crate::storage::S3Storage::connect(&url, &config.s3).await?)
            }
        };
        let queue: Arc<dyn Queue> = match queue_kind {
            QueueEngine::Memory => Arc::new(MemoryQueue::new(config.max_deliveries)),
        };
        Ok(Self::new(config, repository, storage, queue))
    }

    /// Wire the given adapters with the default strategies (static) and event sinks
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
        Self {
            config: Arc::new(config),
            repository,
            storage,
            queue,
            strategies: Arc::new(StrategyRegistry::default()),
            events: Arc::new(events),
            broadcast,
        }
    }

    /// Everything in this process's memory: a private in-memory SQLite database, memory
    /// storage and the in-memory queue. For tests, experiments and embedding a throwaway
    /// platform; nothing survives the process.
    pub async fn in_memory(config: Config) -> Result<Self, ServicesError> {
        let repository = SqliteRepository::connect("sqlite::memory:").await?;
        let queue = MemoryQueue::new(config.max_deliveries);
        Ok(Self::new(
            config,
            Arc::new(repository),
            Arc::new(ObjectStoreStorage::memory()),
            Arc::new(queue),
        ))
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
        assert_eq!(
            database_engine("sqlite://x.db").ok(),
            Some(DatabaseEngine::Sqlite)
        );
        let postgres = database_engine("postgres://h/db").unwrap_err().to_string();
        assert!(postgres.contains("--features postgres"), "{postgres}");
        assert!(database_engine("mysql://h/db").is_err());
        let redis = queue_engine("redis://127.0.0.1").unwrap_err().to_string();
        assert!(redis.contains("--features redis"), "{redis}");
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
}
