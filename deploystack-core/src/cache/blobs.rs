//! A hot-blob cache: a decorator over any [`Storage`] that keeps small content-addressed
//! blobs in memory, so a warm site is served without a storage round trip.
//!
//! # What is cached
//! Only objects under `blobs/`, whose key is the sha256 of their bytes: such an object can
//! never change, so an entry needs no time to live and no invalidation protocol between
//! nodes — it is simply evicted when the budget needs room. Sources, logs and every other key
//! pass straight through. Objects larger than `blob_cache_max_object_bytes` are never kept:
//! one large download must not push hundreds of small pages out, and large files stream
//! from storage anyway.
//!
//! `get` and `get_range` are answered from memory on a hit; a `get` miss of a small blob reads
//! it whole from the inner storage, keeps it and answers with it. A `get_range` miss passes
//! through without filling (a range request says the client wants part of the object, so
//! reading all of it would be a guess). `head` of a cached blob is answered from memory.
//! `put`, `put_file` and `delete` go to the inner storage and drop the key from memory, so a
//! caller that overwrites or deletes a key (the garbage collector, the conformance suite)
//! never reads the old bytes back.
//!
//! # Budget
//! The cache holds about `blob_cache_max_bytes`: each entry weighs its bytes plus its key.
//! Eviction is moka's (TinyLFU admission, LRU eviction), so a scan of cold blobs does not
//! flush the hot ones.
//!
//! # Why a storage decorator rather than a cache inside the HTTP handler?
//! Everything that reads blobs — serving, but also an embedder's own code — gets the cache by
//! asking `Services::storage`, and every storage adapter (local disk, memory, S3) gets it
//! without knowing about it, as `object_store`'s own decorators work.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use moka::sync::Cache;
use serde::Serialize;

use super::{Hasher, keyed_hasher};
use crate::storage::{ObjectInfo, ObjectStream, Storage, StorageError};

/// Keys under this prefix are content-addressed and therefore immutable.
const IMMUTABLE_PREFIX: &str = "blobs/";

/// Size limits of the hot-blob cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobCacheConfig {
    /// Memory budget in bytes (`blob_cache_max_bytes`).
    pub max_bytes: u64,
    /// Largest object kept (`blob_cache_max_object_bytes`); larger ones always stream from
    /// the inner storage.
    pub max_object_bytes: u64,
}

impl BlobCacheConfig {
    /// The cache the settings ask for, or `None` when either setting is 0 (caching off).
    pub fn from_config(config: &crate::Config) -> Option<Self> {
        let on = config.blob_cache_max_bytes > 0 && config.blob_cache_max_object_bytes > 0;
        on.then_some(Self {
            max_bytes: config.blob_cache_max_bytes,
            max_object_bytes: config.blob_cache_max_object_bytes,
        })
    }
}

/// A snapshot of the hot-blob cache's counters since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct BlobCacheStats {
    /// Reads (`get`, `get_range`, `head`) of `blobs/` keys answered from memory.
    pub hits: u64,
    /// Reads of `blobs/` keys that went to the inner storage (large objects included).
    pub misses: u64,
    /// Blobs held now.
    pub entries: u64,
    /// Bytes held now (blob bytes plus keys).
    pub bytes: u64,
    /// The budget (`blob_cache_max_bytes`).
    pub max_bytes: u64,
}

/// The cache and its counters, shared by the decorator and its stats handles.
struct Hot {
    blobs: Cache<String, Bytes, Hasher>,
    hits: AtomicU64,
    misses: AtomicU64,
    config: BlobCacheConfig,
}

impl Hot {
    fn stats(&self) -> BlobCacheStats {
        // moka applies pending writes lazily; the gauges may lag a few operations behind.
        BlobCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.blobs.entry_count(),
            bytes: self.blobs.weighted_size(),
            max_bytes: self.config.max_bytes,
        }
    }

    fn lookup(&self, key: &str) -> Option<Bytes> {
        if !key.starts_with(IMMUTABLE_PREFIX) {
            return None;
        }
        let found = self.blobs.get(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }
}

/// A cheap, cloneable view of a [`CachedStorage`]'s counters, for `/metrics`.
#[derive(Clone)]
pub struct BlobCacheStatsHandle(Arc<Hot>);

impl BlobCacheStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> BlobCacheStats {
        self.0.stats()
    }
}

impl std::fmt::Debug for BlobCacheStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BlobCacheStatsHandle")
            .field(&self.snapshot())
            .finish()
    }
}

/// A [`Storage`] decorator that serves small immutable blobs from memory. See the module
/// docs for what is cached.
pub struct CachedStorage {
    /// Where every miss and every write goes.
    inner: Arc<dyn Storage>,
    /// The cache and its counters.
    hot: Arc<Hot>,
}

impl std::fmt::Debug for CachedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStorage")
            .field("stats", &self.hot.stats())
            .finish_non_exhaustive()
    }
}

impl CachedStorage {
    /// A hot-blob cache over `inner`.
    pub fn new(inner: Arc<dyn Storage>, config: BlobCacheConfig) -> Self {
        let blobs = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &String, bytes: &Bytes| {
                u32::try_from(key.len() + bytes.len()).unwrap_or(u32::MAX)
            })
            .build_with_hasher(keyed_hasher());
        Self {
            inner,
            hot: Arc::new(Hot {
                blobs,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                config,
            }),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> BlobCacheStats {
        self.hot.stats()
    }

    /// A handle that reads the counters later, without holding the storage.
    pub fn stats_handle(&self) -> BlobCacheStatsHandle {
        BlobCacheStatsHandle(Arc::clone(&self.hot))
    }

    /// Whether an object of `size` bytes under `key` may be kept.
    fn cacheable(&self, key: &str, size: u64) -> bool {
        key.starts_with(IMMUTABLE_PREFIX) && size <= self.hot.config.max_object_bytes
    }

    fn forget(&self, key: &str) {
        if key.starts_with(IMMUTABLE_PREFIX) {
            self.hot.blobs.invalidate(key);
        }
    }
}

/// One in-memory object as a stream, for callers of [`Storage::get`].
fn whole(bytes: Bytes) -> ObjectStream {
    ObjectStream {
        size: bytes.len() as u64,
        stream: futures_util::stream::once(async move { Ok(bytes) }).boxed(),
    }
}

#[async_trait]
impl Storage for CachedStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let result = self.inner.put(key, data).await;
        self.forget(key);
        result
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        let result = self.inner.put_file(key, path).await;
        self.forget(key);
        result
    }

    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
        if let Some(bytes) = self.hot.lookup(key) {
            return Ok(whole(bytes));
        }
        let mut object = self.inner.get(key).await?;
        if !self.cacheable(key, object.size) {
            return Ok(object);
        }
        // Small enough to hold whole: read it now, so this request and every later one get
        // a single buffer. `size` is at most the per-object cap, so the allocation is bounded.
        let mut buffer = BytesMut::with_capacity(usize::try_from(object.size).unwrap_or(0));
        while let Some(chunk) = object.stream.next().await {
            buffer.extend_from_slice(&chunk?);
            if buffer.len() as u64 > self.hot.config.max_object_bytes {
                // The object is not the size storage said; do not keep a surprise.
                return Err(StorageError::Unavailable(format!(
                    "object {key:?} is longer than its reported size {}",
                    object.size
                )));
            }
        }
        let bytes = buffer.freeze();
        if bytes.len() as u64 == object.size {
            self.hot.blobs.insert(key.to_owned(), bytes.clone());
        }
        Ok(whole(bytes))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let Some(bytes) = self.hot.lookup(key) else {
            return self.inner.get_range(key, range).await;
        };
        // The same rule as the adapters: a range must lie inside the object.
        let len = bytes.len() as u64;
        if range.start > range.end || range.end > len {
            return Err(StorageError::InvalidRange {
                key: key.to_owned(),
                start: range.start,
                end: range.end,
            });
        }
        // Both bounds are at most `len`, which came from a `usize`.
        Ok(bytes.slice(range.start as usize..range.end as usize))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        if let Some(bytes) = self.hot.lookup(key) {
            return Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: bytes.len() as u64,
            }));
        }
        self.inner.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        // Forget first: once the delete is done, no reader may get the bytes from memory.
        self.forget(key);
        let result = self.inner.delete(key).await;
        self.forget(key);
        result
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ObjectStoreStorage;

    /// Counts the reads that reach the storage below the cache.
    struct Counting {
        inner: ObjectStoreStorage,
        reads: AtomicU64,
    }

    impl Counting {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                inner: ObjectStoreStorage::memory(),
                reads: AtomicU64::new(0),
            })
        }

        fn reads(&self) -> u64 {
            self.reads.load(Ordering::Relaxed)
        }
    }

    #[async_trait]
    impl Storage for Counting {
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
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.head(key).await
        }
        async fn delete(&self, key: &str) -> Result<(), StorageError> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
            self.inner.list(prefix).await
        }
        async fn ping(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    fn cached(inner: &Arc<Counting>, max_bytes: u64, max_object_bytes: u64) -> CachedStorage {
        CachedStorage::new(
            Arc::clone(inner) as Arc<dyn Storage>,
            BlobCacheConfig {
                max_bytes,
                max_object_bytes,
            },
        )
    }

    async fn read_all(storage: &dyn Storage, key: &str) -> Vec<u8> {
        let mut object = storage.get(key).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = object.stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(out.len() as u64, object.size);
        out
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn passes_the_storage_conformance_suite() {
        let storage = cached(&Counting::new(), 1024 * 1024, 64 * 1024);
        crate::testing::storage::run_all(&storage).await;
    }

    #[tokio::test]
    async fn a_warm_blob_is_served_without_touching_storage() {
        let inner = Counting::new();
        let storage = cached(&inner, 1024 * 1024, 1024);
        inner
            .put("blobs/ab/abc", Bytes::from_static(b"hello world"))
            .await
            .unwrap();

        assert_eq!(read_all(&storage, "blobs/ab/abc").await, b"hello world");
        assert_eq!(inner.reads(), 1);
        for _ in 0..3 {
            assert_eq!(read_all(&storage, "blobs/ab/abc").await, b"hello world");
        }
        assert_eq!(
            storage.get_range("blobs/ab/abc", 6..11).await.unwrap(),
            "world"
        );
        assert_eq!(storage.get_range("blobs/ab/abc", 0..0).await.unwrap(), "");
        assert_eq!(
            storage
                .head("blobs/ab/abc")
                .await
                .unwrap()
                .map(|info| info.size),
            Some(11)
        );
        assert_eq!(
            inner.reads(),
            1,
            "every read after the first came from memory"
        );
        let stats = storage.stats();
        assert_eq!((stats.hits, stats.misses), (6, 1));
    }

    #[tokio::test]
    async fn ranges_outside_a_cached_blob_are_invalid() {
        let inner = Counting::new();
        let storage = cached(&inner, 1024 * 1024, 1024);
        inner
            .put("blobs/ab/abc", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        read_all(&storage, "blobs/ab/abc").await;
        for range in [5..11, 11..12] {
            assert!(matches!(
                storage.get_range("blobs/ab/abc", range).await,
                Err(StorageError::InvalidRange { .. })
            ));
        }
        assert_eq!(inner.reads(), 1);
    }

    #[tokio::test]
    async fn objects_over_the_cap_and_other_keys_are_not_kept() {
        let inner = Counting::new();
        let storage = cached(&inner, 1024 * 1024, 4);
        inner
            .put("blobs/ab/big", Bytes::from_static(b"too large"))
            .await
            .unwrap();
        inner
            .put("sources/x.zip", Bytes::from_static(b"zip"))
            .await
            .unwrap();
        for _ in 0..2 {
            assert_eq!(read_all(&storage, "blobs/ab/big").await, b"too large");
            assert_eq!(read_all(&storage, "sources/x.zip").await, b"zip");
        }
        assert_eq!(inner.reads(), 4, "every read went to storage");
        storage.hot.blobs.run_pending_tasks();
        assert_eq!(storage.stats().entries, 0);
    }

    #[tokio::test]
    async fn the_byte_budget_is_respected() {
        let inner = Counting::new();
        let budget = 10 * 1024;
        let storage = cached(&inner, budget, 1024);
        for i in 0..100 {
            let key = format!("blobs/00/{i:04}");
            inner.put(&key, Bytes::from(vec![7u8; 1000])).await.unwrap();
            read_all(&storage, &key).await;
        }
        storage.hot.blobs.run_pending_tasks();
        let stats = storage.stats();
        assert!(stats.bytes <= budget, "{stats:?}");
        assert!(stats.entries > 0 && stats.entries <= 10, "{stats:?}");
    }

    #[tokio::test]
    async fn overwrites_and_deletes_are_not_hidden_by_the_cache() {
        let inner = Counting::new();
        let storage = cached(&inner, 1024 * 1024, 1024);
        storage
            .put("blobs/ab/k", Bytes::from_static(b"one"))
            .await
            .unwrap();
        assert_eq!(read_all(&storage, "blobs/ab/k").await, b"one");
        storage
            .put("blobs/ab/k", Bytes::from_static(b"two"))
            .await
            .unwrap();
        assert_eq!(read_all(&storage, "blobs/ab/k").await, b"two");
        storage.delete("blobs/ab/k").await.unwrap();
        assert!(matches!(
            storage.get("blobs/ab/k").await,
            Err(StorageError::NotFound(_))
        ));
    }
}
