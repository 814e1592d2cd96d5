//! The answers of serving resolution, kept per `(deployment, path)`.
//!
//! # Why a second cache in front of the read cache?
//! Resolving a path asks the manifest once for a file that exists, but about six times for
//! one that does not: the path, `path/index.html`, `200.html`, then `404.html` in each folder
//! up the tree (`crate::routing::route`). Even when the read cache answers every one of those
//! from memory, each costs a key allocation and a hash-table lookup, so a warm 404 cost six
//! times what a warm file did. [`ResolutionCache`] keeps the final answer instead, so every
//! warm resolution — file, 404, redirect, trailing slash — costs one lookup here after the
//! deployment record.
//!
//! # Why it needs no invalidation
//! Only the answers of live `READY` deployments are stored, and a `READY` deployment is
//! immutable: its manifest and routing configuration never change, so neither does the
//! answer for a path (`Last-Modified` and the configuration's headers included). The one
//! change left is a delete, and [`super::resolve_cached`] reads the
//! deployment record (from the read cache, which deletes evict on every node) before it asks
//! this cache, on every request. A deleted deployment therefore answers "deleted" whatever
//! this cache still holds; its entries are never read again and leave with their time to
//! live, or earlier when the budget needs room.
//!
//! # Budget and lifetime
//! A share ([`RESOLUTION_SHARE_DIVISOR`]) of `cache_max_bytes`, taken from the read cache so
//! the setting still bounds both; entries weigh their approximate size in memory. moka's
//! TinyLFU admission keeps a flood of random paths (each a new 404) from pushing the hot
//! answers out. Entries expire after `cache_ttl_secs`, like the read cache's, so a row edited
//! by hand in the database is seen within the same bound. `cache_max_bytes = 0` or
//! `cache_ttl_secs = 0` turns it off along with the read cache, and resolution then asks the
//! repository as before.
//!
//!
//! # Hasher
//! The read cache's keyed foldhash (`crate::cache`), for the same reasons: keys are request
//! paths.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use super::{Resolution, Resolved};
use crate::cache::{Hasher, RESOLUTION_SHARE_DIVISOR, keyed_hasher};
use crate::model::{DeploymentId, EncodedVariant, FileEntry};

/// Size and lifetime of the resolution cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolutionCacheConfig {
    /// Memory budget in bytes; entries are weighed by their approximate size.
    pub max_bytes: u64,
    /// How long an answer may be served after it was stored (`cache_ttl_secs`).
    pub ttl: Duration,
}

impl ResolutionCacheConfig {
    /// The share of the read cache's settings this cache gets, or `None` when caching is off
    /// (`cache_max_bytes` or `cache_ttl_secs` is 0) or the share rounds down to nothing.
    pub fn from_config(config: &crate::Config) -> Option<Self> {
        let max_bytes = config.cache_max_bytes / RESOLUTION_SHARE_DIVISOR;
        (max_bytes > 0 && config.cache_ttl_secs > 0).then(|| Self {
            max_bytes,
            ttl: config.cache_ttl(),
        })
    }
}

/// Where an answer is filed: the deployment id's 16 bytes followed by the normalized path.
/// One flat allocation, made once per request and moved into the cache on a miss.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolutionKey(Box<[u8]>);

impl ResolutionKey {
    /// The key of `path` (normalized, see `serving::normalize_path`) of deployment `id`.
    pub fn new(id: &DeploymentId, path: &str) -> Self {
        let mut bytes = Vec::with_capacity(16 + path.len());
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(path.as_bytes());
        Self(bytes.into_boxed_slice())
    }
}

/// A bounded, shared map from `(READY deployment, path)` to its [`Resolution`]. Cheap to
/// clone: clones share the entries. See the module docs for why it is never invalidated.
#[derive(Clone)]
pub struct ResolutionCache {
    /// `None` when caching is off.
    entries: Option<Cache<ResolutionKey, Arc<Resolution>, Hasher>>,
    /// The budget, for [`ResolutionCacheStats`].
    max_bytes: u64,
}

impl std::fmt::Debug for ResolutionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ResolutionCache")
            .field(&self.stats())
            .finish()
    }
}

/// How full the resolution cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ResolutionCacheStats {
    /// Answers held now.
    pub entries: u64,
    /// Approximate bytes they occupy.
    pub bytes: u64,
    /// The budget; 0 when the cache is off.
    pub max_bytes: u64,
}

impl ResolutionCache {
    /// A cache of `config.max_bytes`.
    pub fn new(config: ResolutionCacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(weigh)
            .time_to_live(config.ttl)
            .build_with_hasher(keyed_hasher());
        Self {
            entries: Some(entries),
            max_bytes: config.max_bytes,
        }
    }

    /// A cache that keeps nothing: every resolution asks the repository.
    pub fn disabled() -> Self {
        Self {
            entries: None,
            max_bytes: 0,
        }
    }

    /// The cache the settings ask for (see [`ResolutionCacheConfig::from_config`]).
    pub fn from_config(config: &crate::Config) -> Self {
        ResolutionCacheConfig::from_config(config).map_or_else(Self::disabled, Self::new)
    }

    /// The key to look `path` of `id` up with, or `None` when the cache is off (so a
    /// disabled cache costs no allocation).
    pub fn key(&self, id: &DeploymentId, path: &str) -> Option<ResolutionKey> {
        self.entries.as_ref().map(|_| ResolutionKey::new(id, path))
    }

    /// The stored answer, if any. Only ask after checking that the deployment is live and
    /// `READY`: this cache does not know about deletes.
    pub fn get(&self, key: &ResolutionKey) -> Option<Arc<Resolution>> {
        self.entries.as_ref()?.get(key)
    }

    /// Store the answer for a path of a live `READY` deployment.
    pub fn insert(&self, key: ResolutionKey, resolution: Arc<Resolution>) {
        if let Some(entries) = &self.entries {
            entries.insert(key, resolution);
        }
    }

    /// How full it is now.
    pub fn stats(&self) -> ResolutionCacheStats {
        let Some(entries) = &self.entries else {
            return ResolutionCacheStats::default();
        };
        // Sizes are maintained lazily; settle pending work so they are current.
        entries.run_pending_tasks();
        ResolutionCacheStats {
            entries: entries.entry_count(),
            bytes: entries.weighted_size(),
            max_bytes: self.max_bytes,
        }
    }
}

/// What moka keeps per entry besides our key and value (hash table slot, queue nodes,
/// timestamps, the `Arc`s around key and value), roughly; it makes the budget count many
/// small entries fairly.
const ENTRY_OVERHEAD: usize = 128;

/// The approximate bytes an entry occupies: its inline size, the heap it owns, and moka's
/// bookkeeping.
fn weigh(key: &ResolutionKey, resolution: &Arc<Resolution>) -> u32 {
    let file_heap = |file: &FileEntry| {
        file.path.len()
            + file.content_type.len()
            + file.encodings.len() * std::mem::size_of::<EncodedVariant>()
    };
    let resolved_heap = match &resolution.resolved {
        Resolved::File { file, .. } | Resolved::NotFound(Some(file)) => file_heap(file),
        Resolved::Redirect { location, .. } => location.len(),
        Resolved::NotFound(None) | Resolved::AddTrailingSlash => 0,
    };
    let headers_heap: usize = resolution
        .headers
        .iter()
        .map(|(name, value)| std::mem::size_of::<(String, String)>() + name.len() + value.len())
        .sum();
    let total = ENTRY_OVERHEAD
        + std::mem::size_of::<ResolutionKey>()
        + key.0.len()
        + std::mem::size_of::<Resolution>()
        + resolved_heap
        + headers_heap
        + resolution.attached.heap_bytes();
    u32::try_from(total).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_found() -> Arc<Resolution> {
        Arc::new(Resolution {
            resolved: Resolved::NotFound(None),
            headers: Vec::new(),
            attached: Default::default(),
        })
    }

    #[test]
    fn keys_tell_deployments_and_paths_apart() {
        let (a, b) = (DeploymentId::random(), DeploymentId::random());
        assert_eq!(ResolutionKey::new(&a, "x"), ResolutionKey::new(&a, "x"));
        assert_ne!(ResolutionKey::new(&a, "x"), ResolutionKey::new(&b, "x"));
        assert_ne!(ResolutionKey::new(&a, "x"), ResolutionKey::new(&a, "x/"));
        // The id has a fixed length, so no (id, path) pair can spell another one.
        assert_eq!(ResolutionKey::new(&a, "").0.len(), 16);
    }

    #[test]
    fn entries_weigh_what_they_own() {
        let id = DeploymentId::random();
        let short = weigh(&ResolutionKey::new(&id, "a"), &not_found());
        let long = weigh(&ResolutionKey::new(&id, &"a".repeat(1001)), &not_found());
        assert_eq!(long - short, 1000);
        let with_headers = Arc::new(Resolution {
            resolved: Resolved::NotFound(None),
            headers: vec![("x-frame-options".to_owned(), "DENY".to_owned())],
            attached: Default::default(),
        });
        assert!(weigh(&ResolutionKey::new(&id, "a"), &with_headers) > short);
    }

    #[test]
    fn the_budget_bounds_the_cache() {
        let cache = ResolutionCache::new(ResolutionCacheConfig {
            max_bytes: 16 * 1024,
            ttl: Duration::from_secs(60),
        });
        let id = DeploymentId::random();
        for i in 0..2000 {
            let key = ResolutionKey::new(&id, &format!("missing/{i}.html"));
            cache.insert(key, not_found());
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 16 * 1024, "{stats:?}");
        assert!(stats.entries > 0 && stats.entries < 2000, "{stats:?}");
        assert_eq!(stats.max_bytes, 16 * 1024);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing_and_allocates_no_key() {
        let cache = ResolutionCache::disabled();
        let id = DeploymentId::random();
        assert!(cache.key(&id, "a").is_none());
        cache.insert(ResolutionKey::new(&id, "a"), not_found());
        assert!(cache.get(&ResolutionKey::new(&id, "a")).is_none());
        assert_eq!(cache.stats(), ResolutionCacheStats::default());
    }

    #[test]
    fn the_share_follows_the_read_cache_settings() {
        let config = crate::Config {
            cache_max_bytes: 64 * 1024 * 1024,
            ..crate::Config::default()
        };
        assert_eq!(
            ResolutionCacheConfig::from_config(&config).map(|c| c.max_bytes),
            Some(16 * 1024 * 1024)
        );
        for off in [
            crate::Config {
                cache_max_bytes: 0,
                ..crate::Config::default()
            },
            crate::Config {
                cache_ttl_secs: 0,
                ..crate::Config::default()
            },
        ] {
            assert_eq!(ResolutionCacheConfig::from_config(&off), None);
        }
    }
}
