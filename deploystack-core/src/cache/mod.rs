//! A cache-aside layer over the repository reads of the serving path.
//!
//! Serving one file asks the repository twice — the deployment (`get_deployment`), then one
//! manifest entry (`find_file`) — on every request. [`CachedRepository`] is a decorator over
//! any [`Repository`] that answers those two reads from memory, and optionally from a shared
//! Redis layer, whenever the answer cannot change under it.
//!
//! # What is cached
//! Only answers that nothing but a delete can change:
//! - a deployment record in a final state (`READY`, `ERROR`, `CANCELED`) or deleted;
//! - manifest lookups (`find_file`), "no such file" included, of live `READY` deployments: a
//!   `READY` manifest is immutable. The lookup checks the deployment's (cached) record first,
//!   so a lookup in a manifest still being built is never kept.
//!
//! - projects (`get_project`), which project hosts read on every request. A project does
//!   change — its production moves — but only through writes that go through this decorator
//!   on some node (`move_production`, `update_project`, `delete_project`, and `publish` of a
//!   production deployment, which moves production in its transaction), and each of those
//!   evicts the project here and on every node (see Invalidation). Projects stay in-process;
//!   Redis only carries their invalidations.
//!
//! - custom domains (`get_domain`), "no such domain" included, which hosts outside the base
//!   domain read on every request. Every write of a domain (add, redirect change, check,
//!   delete) goes through this decorator and evicts that domain here and on every node
//!   (`domain:<name>` invalidations); deleting a project evicts its domains with it.
//!
//! `QUEUED` and `BUILDING` records, unknown ids and every other method pass straight through:
//! a worker in another process flips those rows, and this process would never hear of it.
//!
//! # Layers
//! 1. **In-process** (moka): holds about three quarters of `cache_max_bytes` (each entry
//!    weighs its approximate size in memory; the last quarter is the resolution cache's, see
//!    below); an entry expires `cache_ttl_secs` after it was written.
//! 2. **Shared** (Redis, when `cache_url` is `redis://…`; cargo feature `redis`): asked on a
//!    local miss, filled after a repository read, same time to live. A node that starts cold
//!    is warmed by what the other nodes have read.
//!
//! # Invalidation
//! The writes that can change a cached answer — `delete_deployment`, and `publish`,
//! `fail_deployment` and `cancel_deployment`, which make a deployment final — go through the
//! decorator. They evict the
//! deployment's entries from this process. With Redis they also replace its shared record,
//! drop its shared manifest lookups and publish its id on `<redis_prefix>:cache:invalidations`;
//! every node subscribes (a background task) and evicts the same entries.
//!
//! - **Without Redis nothing tells the other nodes.** A deployment deleted through one node
//!   may still be served by another one for up to `cache_ttl_secs`: the time to live is the
//!   staleness bound, so keep it short when several nodes share a database.
//! - **With Redis,** a node whose subscription drops stops answering from its in-process
//!   layer until it has subscribed again, and then empties it, since invalidations published
//!   in between are lost. If Redis cannot be told about a change, the write still stands (the
//!   repository is the source of truth), the error is logged, and other nodes may serve the
//!   old answer until their entries expire.
//! - A read that raced an invalidation (it read the old answer just before the change, and
//!   stores it just after the eviction) is caught by a generation counter: the entry is
//!   dropped again. In Redis the record written by a change overwrites any older fill, and
//!   fills never overwrite (`SET NX`).
//!
//! # Blobs
//! The bytes of served files are cached by [`CachedStorage`], a decorator over the storage
//! port (`blobs.rs`): content-addressed blobs never change, so they are kept until the
//! `blob_cache_max_bytes` budget needs room, with no time to live and no invalidation.
//!
//! # Resolutions
//! On top of the lookups, serving keeps what a path of a `READY` deployment finally resolves
//! to (`crate::services::serving::ResolutionCache`), so a warm request asks one lookup after
//! the deployment record instead of one per routing step. It lives with serving, which it
//! serves; it takes a share of `cache_max_bytes` ([`RESOLUTION_SHARE_DIVISOR`]) and this
//! module's keyed hasher (`keyed_hasher`).
//!
//! # Why cache only what cannot change?
//! Then the cache needs no protocol with the workers: a deployment becomes cacheable the
//! moment it is final, and only a delete can make a cached answer wrong. Every delete
//! DeployStack makes goes through some node's decorator, which is where invalidation happens.
//! (A row edited by hand in the database is seen once its entries expire.)
//!
//! # Why explicit invalidation messages rather than Redis client-side caching?
//! Client-side caching (`CLIENT TRACKING`) only covers values read from Redis, while the
//! in-process layer also keeps database reads, with or without a shared layer; and it needs
//! RESP3. One `PUBLISH` per change works with any Redis and keeps both layers independent.

mod blobs;
mod env;
mod idempotency;
mod local;
mod projects;
#[cfg(feature = "redis")]
mod redis;
mod tokens;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domains::{DomainName, RedirectStatus};
use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, DeploymentStatus, Domain,
    EncodedVariant, FileEntry, LogLine, ManifestEntry, NewDeployment, NewDomain, NewProject, Page,
    PageRequest, ProductionChange, ProductionReason, Project, ProjectName, ProjectUpdate,
    Retention, StoredLogLine, Target,
};
use crate::repository::{
    Claim, DeploymentRepository, DomainRepository, FileRepository, LogRepository,
    ProjectRepository, PublishedBuild, Repository, RepositoryError,
};

pub use self::blobs::{BlobCacheConfig, BlobCacheStats, BlobCacheStatsHandle, CachedStorage};
use self::local::{Counters, Key, Local, Value};
/// The hasher of every in-process table (read cache, resolutions, hot blobs): foldhash,
/// keyed per table.
///
/// ## Why foldhash rather than the standard SipHash?
/// Keys are request paths, chosen by whoever sends requests, so the hasher must stay keyed.
/// foldhash is keyed — each table gets 64 bits from the operating system's random number
/// generator on top of foldhash's own process-wide seed, so no fixed set of inputs collides
/// for every instance — is already in the tree through hashbrown, and hashes a short path
/// several times faster than SipHash-1-3. Nothing exposes hash values or iteration order to
/// a client, and every table's budget bounds it whatever its keys.
pub(crate) type Hasher = foldhash::quality::SeedableRandomState;

/// The resolution cache (`crate::services::serving::ResolutionCache`) gets
/// `cache_max_bytes / RESOLUTION_SHARE_DIVISOR` bytes; the read cache keeps the rest. A
/// quarter: an answer is about the size of the manifest entry it names, and once a path's
/// answer is kept, its manifest lookups are not asked again, so the read cache mostly holds
/// deployment records and the lookups of cold paths.
pub const RESOLUTION_SHARE_DIVISOR: u64 = 4;

/// A [`Hasher`] with a fresh key: 64 bits from the operating system's random number
/// generator on top of foldhash's process-wide seed, so no fixed set of keys collides in
/// every table.
pub(crate) fn keyed_hasher() -> Hasher {
    Hasher::with_seed(rand::random(), foldhash::SharedSeed::global_random())
}

#[cfg(not(feature = "redis"))]
use self::no_shared_layer::SharedLayer;
#[cfg(feature = "redis")]
use self::redis::RedisLayer as SharedLayer;

/// What can go wrong setting up or talking to the shared cache layer. Reads never fail
/// because of it: a shared-layer error is counted and logged, and the read goes to the
/// repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The shared cache cannot be reached or refused a command; worth retrying.
    #[error("shared cache unavailable: {0}")]
    Unavailable(String),
    /// A value in the shared cache could not be decoded (another version wrote it, or a
    /// manual edit); it is treated as a miss.
    #[error("corrupt value in the shared cache: {0}")]
    Corrupt(String),
}

/// Size and lifetime of the in-process layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Memory budget in bytes (`cache_max_bytes` less the resolution cache's share); entries
    /// are weighed by their approximate size, so the budget is approximate too.
    pub max_bytes: u64,
    /// How long an entry may be served after it was written (`cache_ttl_secs`), in every
    /// layer. Without a shared layer it bounds how long another node's delete goes unseen.
    pub ttl: Duration,
}

impl CacheConfig {
    /// The cache the settings ask for, or `None` when `cache_max_bytes` or `cache_ttl_secs`
    /// is 0 (caching off). `cache_max_bytes` is shared with the resolution cache
    /// ([`RESOLUTION_SHARE_DIVISOR`]), so this layer gets what that one does not.
    pub fn from_config(config: &crate::Config) -> Option<Self> {
        (config.cache_max_bytes > 0 && config.cache_ttl_secs > 0).then(|| Self {
            max_bytes: config.cache_max_bytes - config.cache_max_bytes / RESOLUTION_SHARE_DIVISOR,
            ttl: config.cache_ttl(),
        })
    }
}

/// A snapshot of the cache's counters since the process started. The shared layer is only
/// asked on local misses, so `shared_hits + shared_misses ≤ local_misses`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered by the in-process layer.
    pub local_hits: u64,
    /// Reads the in-process layer could not answer (uncacheable ones included).
    pub local_misses: u64,
    /// Local misses answered by the shared layer.
    pub shared_hits: u64,
    /// Local misses the shared layer could not answer either.
    pub shared_misses: u64,
    /// Shared-layer commands that failed: lookups (the read then went to the repository),
    /// fills and invalidations.
    pub shared_errors: u64,
    /// Invalidations this node published for the others.
    pub invalidations_sent: u64,
    /// Invalidations this node received from the others.
    pub invalidations_received: u64,
    /// Times the in-process layer was emptied after its invalidation feed was lost.
    pub resyncs: u64,
    /// Entries in the in-process layer now.
    pub local_entries: u64,
    /// Approximate bytes the in-process layer holds now.
    pub local_bytes: u64,
    /// The in-process layer's budget (`cache_max_bytes` less the resolution cache's share).
    pub local_max_bytes: u64,
    /// Whether a shared layer is configured.
    pub shared_enabled: bool,
}

impl CacheStats {
    /// Share of reads that did not reach the repository, over both layers; `None` before the
    /// first read.
    pub fn hit_rate(&self) -> Option<f64> {
        ratio(
            self.local_hits + self.shared_hits,
            self.local_hits + self.local_misses,
        )
    }

    /// Share of reads the in-process layer answered; `None` before the first read.
    pub fn local_hit_rate(&self) -> Option<f64> {
        ratio(self.local_hits, self.local_hits + self.local_misses)
    }

    /// Share of shared-layer lookups that hit; `None` before the first one.
    pub fn shared_hit_rate(&self) -> Option<f64> {
        ratio(self.shared_hits, self.shared_hits + self.shared_misses)
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A cheap, cloneable view of a [`CachedRepository`]'s counters, for whoever reports them
/// (`/metrics`) without holding the repository.
#[derive(Clone)]
pub struct CacheStatsHandle {
    local: Arc<Local>,
    shared_enabled: bool,
}

impl CacheStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> CacheStats {
        self.local.stats(self.shared_enabled)
    }
}

impl std::fmt::Debug for CacheStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheStatsHandle")
            .field(&self.snapshot())
            .finish()
    }
}

/// A [`Repository`] decorator that caches the reads of the serving path. See the module docs
/// for what is cached and how it is invalidated.
pub struct CachedRepository {
    /// The source of truth every miss and every write goes to.
    inner: Arc<dyn Repository>,
    /// The in-process layer and the counters, shared with the invalidation listener.
    local: Arc<Local>,
    /// The Redis layer, when configured; dropping it stops its listener.
    shared: Option<SharedLayer>,
}

impl std::fmt::Debug for CachedRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedRepository")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CachedRepository {
    /// An in-process cache over `inner`. Other nodes' deletes are not seen until entries
    /// expire.
    pub fn new(inner: Arc<dyn Repository>, config: CacheConfig) -> Self {
        Self {
            inner,
            local: Arc::new(Local::new(config)),
            shared: None,
        }
    }

    /// An in-process cache over `inner` plus a shared layer in the Redis at `url`, with keys
    /// under `<prefix>:cache:`. Subscribes to invalidations before returning, so a node never
    /// serves from memory without hearing about deletes; fails if Redis cannot be reached.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub async fn with_redis(
        inner: Arc<dyn Repository>,
        config: CacheConfig,
        url: &str,
        prefix: &str,
    ) -> Result<Self, CacheError> {
        let local = Arc::new(Local::new(config));
        let shared = SharedLayer::connect(url, prefix, config.ttl, Arc::clone(&local)).await?;
        Ok(Self {
            inner,
            local,
            shared: Some(shared),
        })
    }

    /// Guard the Redis layer's commands with `breaker`: while it is open, reads skip Redis
    /// and go to the repository at once, and invalidations are not sent (other nodes' entries
    /// then expire by their time to live, as when Redis is down). No effect without a Redis
    /// layer.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn with_breaker(mut self, breaker: Arc<crate::breaker::Breaker>) -> Self {
        if let Some(shared) = &mut self.shared {
            shared.guard(breaker);
        }
        self
    }

    /// The counters now.
    pub fn stats(&self) -> CacheStats {
        self.local.stats(self.shared.is_some())
    }

    /// A handle that reads the counters later, without holding the repository.
    pub fn stats_handle(&self) -> CacheStatsHandle {
        CacheStatsHandle {
            local: Arc::clone(&self.local),
            shared_enabled: self.shared.is_some(),
        }
    }

    /// The deployment, from the first layer that has it, else from the repository (then kept
    /// if it is final). `counted` is false for the status check inside `find_file`, so the
    /// counters count the reads callers asked for.
    async fn deployment(
        &self,
        id: &DeploymentId,
        counted: bool,
    ) -> Result<Deployment, RepositoryError> {
        let key = Key::Deployment(*id);
        if let Some(Value::Deployment(deployment)) = self.local.get(&key) {
            self.local.count(counted, |c| &c.local_hits);
            return Ok(Deployment::clone(&deployment));
        }
        self.local.count(counted, |c| &c.local_misses);
        // Taken before anything is read: see `Local::fill`.
        let generation = self.local.generation();
        if let Some(shared) = &self.shared {
            match shared.deployment(id).await {
                Ok(Some(deployment)) => {
                    self.local.count(counted, |c| &c.shared_hits);
                    self.local.fill(
                        key,
                        Value::Deployment(Arc::new(deployment.clone())),
                        generation,
                    );
                    return Ok(deployment);
                }
                Ok(None) => self.local.count(counted, |c| &c.shared_misses),
                Err(err) => self.shared_failed("read a deployment", &err),
            }
        }
        let deployment = self.inner.get_deployment(id).await?;
        if is_settled(&deployment) {
            self.local.fill(
                key,
                Value::Deployment(Arc::new(deployment.clone())),
                generation,
            );
            if let Some(shared) = &self.shared
                && shareable(&deployment)
                && let Err(err) = shared.fill_deployment(&deployment).await
            {
                self.shared_failed("store a deployment", &err);
            }
        }
        Ok(deployment)
    }

    /// After a write to deployment `id` (whatever its outcome): evict it here, and tell the
    /// shared layer and the other nodes. `now` is the deployment as the write left it, if the
    /// write said.
    async fn changed(&self, id: &DeploymentId, now: Option<&Deployment>) {
        self.local.forget(*id);
        if let Some(shared) = &self.shared {
            let settled = now.filter(|deployment| is_settled(deployment) && shareable(deployment));
            match shared.changed(id, settled).await {
                Ok(()) => Counters::bump(&self.local.counters.invalidations_sent),
                Err(err) => {
                    // The write stands; only other nodes' caches lag, until their TTL.
                    Counters::bump(&self.local.counters.shared_errors);
                    tracing::error!(
                        deployment = %id,
                        error = %err,
                        "could not invalidate the shared cache; other nodes may serve the old answer until it expires"
                    );
                }
            }
        }
    }

    /// After a write that may have changed project `name` (its production, its settings, its
    /// existence): evict it here and tell every other node, so a project host serves the new
    /// production on every node at once rather than after a time to live.
    async fn project_changed(&self, name: &ProjectName) {
        self.local.forget_project(name);
        if let Some(shared) = &self.shared {
            match shared.project_changed(name).await {
                Ok(()) => Counters::bump(&self.local.counters.invalidations_sent),
                Err(err) => {
                    Counters::bump(&self.local.counters.shared_errors);
                    tracing::error!(
                        project = %name,
                        error = %err,
                        "could not tell the other nodes that a project changed; they may serve its old production until their entries expire"
                    );
                }
            }
        }
    }

    /// After a write to domain `name`: evict it here and tell every other node, so a host
    /// starts (or stops) serving on every node at once.
    async fn domain_changed(&self, name: &DomainName) {
        self.local.forget_domain(name);
        if let Some(shared) = &self.shared {
            match shared.domain_changed(name).await {
                Ok(()) => Counters::bump(&self.local.counters.invalidations_sent),
                Err(err) => {
                    Counters::bump(&self.local.counters.shared_errors);
                    tracing::error!(
                        domain = %name,
                        error = %err,
                        "could not tell the other nodes that a domain changed; they may serve it as before until their entries expire"
                    );
                }
            }
        }
    }

    fn shared_failed(&self, doing: &str, err: &CacheError) {
        Counters::bump(&self.local.counters.shared_errors);
        // Debug, not warn: during a Redis outage every read fails here. The error counter
        // (on `/metrics`) is what an operator watches.
        tracing::debug!(error = %err, "cache: could not {doing} in the shared layer");
    }
}

/// Whether nothing but a delete can change this record any more, so it may be cached.
fn is_settled(deployment: &Deployment) -> bool {
    deployment.deleted_at.is_some() || deployment.status.is_final()
}

/// Whether the record may go to the shared layer. Its environment variables are never
/// serialized (their values must not leave the process), so a record holding some would come
/// back from Redis without them; such records stay in-process, and other nodes read them from
/// the repository.
fn shareable(deployment: &Deployment) -> bool {
    deployment.env.is_empty()
}

/// Whether the manifest of this deployment is immutable, so lookups in it may be cached.
fn serves_files(deployment: &Deployment) -> bool {
    deployment.deleted_at.is_none() && deployment.status == DeploymentStatus::Ready
}

#[async_trait]
impl DeploymentRepository for CachedRepository {
    // Creation, listing, claims, leases and releases pass straight through: they only touch
    // `QUEUED`/`BUILDING` rows, which are never cached, so they need no invalidation.

    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        self.inner.create_deployment(new).await
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        self.deployment(id, true).await
    }

    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError> {
        self.inner.list_deployments(page).await
    }

    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError> {
        self.inner.claim_deployment(id, worker, lease).await
    }

    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError> {
        self.inner.renew_lease(id, attempt, lease).await
    }

    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
        self.inner.release_claim(id, attempt).await
    }

    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError> {
        let result = self.inner.publish(id, attempt, build).await;
        self.changed(id, result.as_ref().ok()).await;
        // A production deployment may have taken its project's production with it.
        if let Ok(Deployment {
            target: Target::Production,
            project: Some(project),
            ..
        }) = &result
        {
            self.project_changed(project).await;
        }
        result
    }

    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError> {
        let result = self.inner.fail_deployment(id, attempt, error).await;
        self.changed(id, result.as_ref().ok()).await;
        result
    }

    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        // Evict even when the write reports an error: a commit whose answer was lost still
        // happened.
        let result = self.inner.delete_deployment(id).await;
        self.changed(id, result.as_ref().ok()).await;
        result
    }

    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        let result = self.inner.cancel_deployment(id).await;
        self.changed(id, result.as_ref().ok()).await;
        result
    }

    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        self.inner.stalled_deployments(older_than, limit).await
    }

    // Never cached: the count changes with every upload and build.
    async fn count_deployments(
        &self,
        project: &ProjectName,
        status: DeploymentStatus,
    ) -> Result<u64, RepositoryError> {
        self.inner.count_deployments(project, status).await
    }
}

#[async_trait]
impl LogRepository for CachedRepository {
    async fn append_log(
        &self,
        id: &DeploymentId,
        lines: &[LogLine],
    ) -> Result<(), RepositoryError> {
        self.inner.append_log(id, lines).await
    }

    async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError> {
        self.inner.logs(id).await
    }

    async fn logs_after(
        &self,
        id: &DeploymentId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredLogLine>, RepositoryError> {
        self.inner.logs_after(id, after, limit).await
    }
}

#[async_trait]
impl FileRepository for CachedRepository {
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        let key = Key::File(*id, path.into());
        if let Some(Value::File(entry)) = self.local.get(&key) {
            Counters::bump(&self.local.counters.local_hits);
            return Ok(entry);
        }
        Counters::bump(&self.local.counters.local_misses);
        let generation = self.local.generation();
        // A lookup may only be kept if the manifest can no longer change. The record is
        // almost always cached already: serving asked for it just before.
        let immutable = self
            .deployment(id, false)
            .await
            .is_ok_and(|deployment| serves_files(&deployment));
        if !immutable {
            return self.inner.find_file(id, path).await;
        }
        if let Some(shared) = &self.shared {
            match shared.file(id, path).await {
                Ok(Some(entry)) => {
                    Counters::bump(&self.local.counters.shared_hits);
                    self.local.fill(key, Value::File(entry.clone()), generation);
                    return Ok(entry);
                }
                Ok(None) => Counters::bump(&self.local.counters.shared_misses),
                Err(err) => self.shared_failed("read a manifest entry", &err),
            }
        }
        let entry = self.inner.find_file(id, path).await?;
        self.local.fill(key, Value::File(entry.clone()), generation);
        if let Some(shared) = &self.shared
            && let Err(err) = shared.fill_file(id, path, entry.as_ref()).await
        {
            self.shared_failed("store a manifest entry", &err);
        }
        Ok(entry)
    }

    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        self.inner.list_files(id).await
    }

    async fn list_source_files(
        &self,
        id: &DeploymentId,
    ) -> Result<Vec<ManifestEntry>, RepositoryError> {
        // Read once per build, off the serving path.
        self.inner.list_source_files(id).await
    }

    async fn known_encodings(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError> {
        // Read once per build, off the serving path: not worth a cache entry.
        self.inner.known_encodings(hashes).await
    }

    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError> {
        self.inner.touch_blobs(blobs).await
    }

    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError> {
        self.inner
            .claim_unreferenced_blobs(unused_since, limit)
            .await
    }

    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
        self.inner.forget_blobs(hashes).await
    }
}

/// Projects are cached in-process only (they are small and read by project hosts on every
/// request); every write that can change one evicts it here and on every other node.
/// Deleting a project deletes its deployments, which are evicted like single deletes.
/// Domains are cached in-process only, like projects, "not found" included (every request
/// for a host outside the base domain asks); each write evicts the domain on every node.
#[async_trait]
impl Repository for CachedRepository {
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.inner.ping().await
    }
}

/// Stands in for the Redis layer when the `redis` feature is off. It has no values, so
/// `CachedRepository::shared` is always `None` and the decorator needs no `cfg` of its own.
#[cfg(not(feature = "redis"))]
mod no_shared_layer {
    use super::CacheError;
    use crate::model::{Deployment, DeploymentId, FileEntry, ProjectName};

    pub(super) enum SharedLayer {}

    impl SharedLayer {
        pub(super) async fn deployment(
            &self,
            _: &DeploymentId,
        ) -> Result<Option<Deployment>, CacheError> {
            match *self {}
        }

        pub(super) async fn fill_deployment(&self, _: &Deployment) -> Result<(), CacheError> {
            match *self {}
        }

        pub(super) async fn file(
            &self,
            _: &DeploymentId,
            _: &str,
        ) -> Result<Option<Option<FileEntry>>, CacheError> {
            match *self {}
        }

        pub(super) async fn fill_file(
            &self,
            _: &DeploymentId,
            _: &str,
            _: Option<&FileEntry>,
        ) -> Result<(), CacheError> {
            match *self {}
        }

        pub(super) async fn changed(
            &self,
            _: &DeploymentId,
            _: Option<&Deployment>,
        ) -> Result<(), CacheError> {
            match *self {}
        }

        pub(super) async fn project_changed(&self, _: &ProjectName) -> Result<(), CacheError> {
            match *self {}
        }

        pub(super) async fn domain_changed(
            &self,
            _: &crate::domains::DomainName,
        ) -> Result<(), CacheError> {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::local::{ENTRY_OVERHEAD, weigh};
    use super::*;
    use crate::model::Target;

    fn deployment(status: DeploymentStatus) -> Deployment {
        let now = OffsetDateTime::now_utc();
        Deployment {
            id: DeploymentId::random(),
            project: None,
            target: Target::Preview,
            status,
            source_key: "sources/x.zip".to_owned(),
            attempt: 1,
            lease_owner: None,
            lease_expires_at: None,
            error: None,
            file_count: 0,
            total_bytes: 0,
            created_at: now,
            updated_at: now,
            ready_at: None,
            deleted_at: None,
            routing: None,
            settings: Default::default(),
            env: Vec::new(),
            created_by: None,
        }
    }

    #[test]
    fn only_final_or_deleted_records_are_settled() {
        assert!(is_settled(&deployment(DeploymentStatus::Ready)));
        assert!(is_settled(&deployment(DeploymentStatus::Error)));
        assert!(is_settled(&deployment(DeploymentStatus::Canceled)));
        assert!(!is_settled(&deployment(DeploymentStatus::Queued)));
        assert!(!is_settled(&deployment(DeploymentStatus::Building)));
        let mut deleted = deployment(DeploymentStatus::Ready);
        deleted.deleted_at = Some(OffsetDateTime::now_utc());
        assert!(is_settled(&deleted));
        assert!(!serves_files(&deleted), "a deleted manifest is not served");
    }

    #[test]
    fn entries_weigh_what_they_own() {
        let short = weigh(
            &Key::File(DeploymentId::random(), "a".into()),
            &Value::File(None),
        );
        let long = weigh(
            &Key::File(DeploymentId::random(), "a".repeat(1001).into()),
            &Value::File(None),
        );
        assert_eq!(long - short, 1000);
        assert!(usize::try_from(short).is_ok_and(|s| s > ENTRY_OVERHEAD));
    }

    #[test]
    fn a_fill_that_raced_an_eviction_is_dropped() {
        let local = Local::new(CacheConfig {
            max_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        });
        let record = deployment(DeploymentStatus::Ready);
        let key = Key::Deployment(record.id);
        let before = local.generation();
        // The deployment changes while the read is in flight…
        local.forget(record.id);
        // …so the answer it stores afterwards is dropped again.
        local.fill(
            key.clone(),
            Value::Deployment(Arc::new(record.clone())),
            before,
        );
        assert!(local.get(&key).is_none());
        local.fill(
            key.clone(),
            Value::Deployment(Arc::new(record)),
            local.generation(),
        );
        assert!(local.get(&key).is_some());
    }

    #[test]
    fn an_untrusted_cache_serves_nothing_until_it_is_resynced() {
        let local = Local::new(CacheConfig {
            max_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        });
        let record = deployment(DeploymentStatus::Ready);
        let key = Key::Deployment(record.id);
        local.fill(
            key.clone(),
            Value::Deployment(Arc::new(record)),
            local.generation(),
        );
        local.distrust();
        assert!(local.get(&key).is_none());
        local.resync();
        assert!(local.get(&key).is_none(), "a resync empties the cache");
        assert_eq!(local.stats(false).resyncs, 1);
    }

    #[test]
    fn hit_rates_are_undefined_before_the_first_read() {
        let stats = CacheStats::default();
        assert_eq!(stats.hit_rate(), None);
        let stats = CacheStats {
            local_hits: 3,
            local_misses: 1,
            shared_hits: 1,
            ..CacheStats::default()
        };
        assert_eq!(stats.hit_rate(), Some(1.0));
        assert_eq!(stats.local_hit_rate(), Some(0.75));
        assert_eq!(stats.shared_hit_rate(), Some(1.0));
    }
}
