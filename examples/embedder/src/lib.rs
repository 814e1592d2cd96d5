//! Embedding DeployStack from a crate of your own, with `deploystack-core` and
//! `deploystack-http` as the only dependencies. The three things people do first, each
//! exercised by `tests/embedder.rs`:
//!
//! 1. [`ShoutStrategy`]: a build strategy of its own, served with `deploystack_http::serve`
//!    ([`serve`]) — asked before the built-in presets, with in-process builders.
//! 2. [`home_page`]: code of its own against the ports, unit-tested with `MockRepository`
//!    and `MockStorage` (feature `mock`) and the `testing::fixtures`.
//! 3. [`CountingStorage`]: a decorator over the `Storage` port, wrapped around what
//!    `Services` holds (`Arc<dyn Storage>`) and checked by `testing::storage::run_all`.
//!
//! Every crate it needs beyond the two comes from `deploystack_core`'s re-exports.

use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deploystack_core::async_trait;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
};
use deploystack_core::bytes::Bytes;
use deploystack_core::model::{DeploymentId, DeploymentStatus};
use deploystack_core::repository::Repository;
use deploystack_core::storage::{ObjectInfo, ObjectStream, Storage, StorageError};
use deploystack_core::tokio::net::TcpListener;
use deploystack_core::{Config, Services};

/// The file [`ShoutStrategy`] looks for.
pub const SHOUT_FILE: &str = "shout.txt";

/// Publishes `shout.txt`, upper-cased, as the home page (`index.html`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShoutStrategy;

#[async_trait]
impl BuildStrategy for ShoutStrategy {
    fn name(&self) -> &str {
        "shout"
    }

    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        Ok(source.has_file(SHOUT_FILE).then(|| Detection {
            strategy: self.name().to_owned(),
            reason: format!("{SHOUT_FILE} found: shouting it"),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        if ctx.cancel.is_cancelled() {
            return Err(BuildError::Canceled);
        }
        let text = std::fs::read_to_string(ctx.source.root().join(SHOUT_FILE))?;
        if text.trim().is_empty() {
            // A code made at run time, from the strategy's name: it becomes the
            // deployment's `error.code`.
            return Err(BuildError::failed(
                format!("{}_empty", self.name()),
                format!("{SHOUT_FILE} is empty: there is nothing to shout"),
            ));
        }
        ctx.log.system(format!("shouting {} bytes", text.len()));
        let out = ctx.work_dir.join("out");
        std::fs::create_dir_all(&out)?;
        std::fs::write(
            out.join("index.html"),
            format!("<h1>{}</h1>\n", text.trim().to_uppercase()),
        )?;
        Ok(BuildOutput { dir: out })
    }
}

/// Services all in memory, with [`ShoutStrategy`] asked first.
pub async fn services(
    config: Config,
) -> Result<Services, deploystack_core::services::ServicesError> {
    Ok(Services::in_memory(config)
        .await?
        .with_strategy(Arc::new(ShoutStrategy)))
}

/// Serve `services` on `listener` until `shutdown` resolves, building in-process.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    deploystack_http::serve(listener, services, shutdown).await
}

/// The code under test of task 2: the home page of deployment `id`, or `None` when it is
/// not live (not `READY`, or deleted) or has none. Errors of either port are errors.
pub async fn home_page(
    repository: &dyn Repository,
    storage: &dyn Storage,
    id: &DeploymentId,
) -> Result<Option<Bytes>, HomePageError> {
    let deployment = repository.get_deployment(id).await?;
    if deployment.status != DeploymentStatus::Ready || deployment.deleted_at.is_some() {
        return Ok(None);
    }
    let Some(file) = repository.find_file(id, "index.html").await? else {
        return Ok(None);
    };
    let object = storage.get(&file.sha256.blob_key()).await?;
    Ok(Some(object.into_bytes().await?))
}

/// Why [`home_page`] failed.
#[derive(Debug)]
pub enum HomePageError {
    /// The repository failed.
    Repository(deploystack_core::repository::RepositoryError),
    /// Storage failed.
    Storage(StorageError),
}

impl From<deploystack_core::repository::RepositoryError> for HomePageError {
    fn from(err: deploystack_core::repository::RepositoryError) -> Self {
        Self::Repository(err)
    }
}

impl From<StorageError> for HomePageError {
    fn from(err: StorageError) -> Self {
        Self::Storage(err)
    }
}

/// Counts the reads that go through it, then hands every call to `inner` — any storage,
/// `Arc<dyn Storage>` included (`deploystack-core` implements the port for `Arc`).
#[derive(Debug)]
pub struct CountingStorage<S> {
    inner: S,
    reads: AtomicU64,
}

impl<S: Storage> CountingStorage<S> {
    /// Counting reads of `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            reads: AtomicU64::new(0),
        }
    }

    /// Objects (or ranges) read so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl<S: Storage> Storage for CountingStorage<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.inner.put(key, data).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        self.inner.put_file(key, path).await
    }

    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        self.inner.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }
}
