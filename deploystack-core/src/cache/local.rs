//! The in-process layer of the read cache: a moka cache weighed in bytes, what it is keyed
//! by and holds, and the generation counter and trust flag that keep it coherent with
//! invalidations (see the parent module's docs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use moka::sync::Cache;

use super::*;

/// What the in-process layer is keyed by. Every key belongs to one deployment, so a
/// deployment's entries can be evicted together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    /// `get_deployment(id)`.
    Deployment(DeploymentId),
    /// `find_file(id, path)`.
    File(DeploymentId, Box<str>),
    /// `get_project(name)`: what a project host serves.
    Project(ProjectName),
    /// `get_domain(name)`: what a custom domain serves.
    Domain(DomainName),
}

impl Key {
    pub(super) fn deployment(&self) -> Option<DeploymentId> {
        match self {
            Self::Deployment(id) | Self::File(id, _) => Some(*id),
            Self::Project(_) | Self::Domain(_) => None,
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Behind an `Arc`: a record is several times the size of a manifest entry, and every
    /// entry of the cache is as large as its largest variant.
    Deployment(Arc<Deployment>),
    /// `None` is a cached "no such file".
    File(Option<FileEntry>),
    /// A project, with its production.
    Project(Arc<Project>),
    /// A domain; `None` is a cached "no such domain".
    Domain(Option<Arc<Domain>>),
}

/// What moka keeps per entry besides our key and value (hash table slot, queue nodes,
/// timestamps), roughly; it makes the byte budget count many small entries fairly.
pub(super) const ENTRY_OVERHEAD: usize = 96;

/// The approximate bytes an entry occupies: its inline size, the heap it owns, and moka's own
/// bookkeeping.
pub(super) fn weigh(key: &Key, value: &Value) -> u32 {
    let key_heap = match key {
        Key::Deployment(_) => 0,
        Key::File(_, path) => path.len(),
        Key::Project(name) => name.as_str().len(),
        Key::Domain(name) => name.as_str().len(),
    };
    let value_heap = match value {
        Value::Deployment(deployment) => {
            std::mem::size_of::<Deployment>()
                + deployment.source_key.len()
                + deployment.project.as_ref().map_or(0, |p| p.as_str().len())
                + deployment.lease_owner.as_ref().map_or(0, String::len)
                + deployment
                    .error
                    .as_ref()
                    .map_or(0, |e| e.code.len() + e.message.len())
                + [
                    &deployment.settings.framework,
                    &deployment.settings.root_directory,
                    &deployment.settings.install_command,
                    &deployment.settings.build_command,
                    &deployment.settings.output_directory,
                ]
                .iter()
                .map(|setting| setting.as_ref().map_or(0, String::len))
                .sum::<usize>()
                + deployment
                    .env
                    .iter()
                    .map(|var| std::mem::size_of_val(var) + var.name.len() + var.value.len())
                    .sum::<usize>()
        }
        Value::File(entry) => entry
            .as_ref()
            .map_or(0, |e| e.path.len() + e.content_type.len()),
        Value::Domain(domain) => domain.as_ref().map_or(0, |domain| {
            std::mem::size_of::<Domain>()
                + domain.name.as_str().len()
                + domain.project.as_str().len()
                + domain.redirect.as_ref().map_or(0, |r| r.as_str().len())
                + domain.token.as_str().len()
        }),
        Value::Project(project) => {
            std::mem::size_of::<Project>()
                + project.name.as_str().len()
                + [
                    &project.build_settings.framework,
                    &project.build_settings.root_directory,
                    &project.build_settings.install_command,
                    &project.build_settings.build_command,
                    &project.build_settings.output_directory,
                    &project.protection.password_hash,
                    &project.protection.bypass_hash,
                ]
                .iter()
                .map(|setting| setting.as_ref().map_or(0, String::len))
                .sum::<usize>()
        }
    };
    let total = ENTRY_OVERHEAD
        + std::mem::size_of::<Key>()
        + std::mem::size_of::<Value>()
        + key_heap
        + value_heap;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// Hit, miss and invalidation counters. Relaxed atomics: they are statistics, read as a
/// snapshot that need not be consistent across fields.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) local_hits: AtomicU64,
    pub(super) local_misses: AtomicU64,
    pub(super) shared_hits: AtomicU64,
    pub(super) shared_misses: AtomicU64,
    pub(super) shared_errors: AtomicU64,
    pub(super) invalidations_sent: AtomicU64,
    pub(super) invalidations_received: AtomicU64,
    pub(super) resyncs: AtomicU64,
}

impl Counters {
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The in-process layer: the moka cache plus what keeps it coherent.
pub(super) struct Local {
    pub(super) entries: Cache<Key, Value, Hasher>,
    /// Bumped by every eviction. A reader notes it before reading and drops what it stored
    /// if it moved meanwhile: the answer may predate the change that caused the eviction.
    pub(super) generation: AtomicU64,
    /// False while a shared layer's invalidation feed is down: entries may then be stale, so
    /// they are neither served nor stored until the feed is back and the cache emptied.
    pub(super) trusted: AtomicBool,
    pub(super) counters: Counters,
    pub(super) max_bytes: u64,
}

impl Local {
    pub(super) fn new(config: CacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(weigh)
            .time_to_live(config.ttl)
            // Evicting one deployment's manifest lookups needs a predicate over keys.
            .support_invalidation_closures()
            .build_with_hasher(keyed_hasher());
        Self {
            entries,
            generation: AtomicU64::new(0),
            trusted: AtomicBool::new(true),
            counters: Counters::default(),
            max_bytes: config.max_bytes,
        }
    }

    pub(super) fn count(&self, counted: bool, counter: impl FnOnce(&Counters) -> &AtomicU64) {
        if counted {
            Counters::bump(counter(&self.counters));
        }
    }

    pub(super) fn get(&self, key: &Key) -> Option<Value> {
        if !self.trusted.load(Ordering::SeqCst) {
            return None;
        }
        self.entries.get(key)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Store an answer read after `generation` was noted. Insert first, check second: an
    /// eviction that bumped the generation before the check is seen here, and one that bumps
    /// it after the check comes after the insert and evicts the entry itself.
    pub(super) fn fill(&self, key: Key, value: Value, generation: u64) {
        if !self.trusted.load(Ordering::SeqCst) {
            return;
        }
        self.entries.insert(key.clone(), value);
        if self.generation() != generation {
            self.entries.invalidate(&key);
        }
    }

    /// Evict every entry of deployment `id`.
    pub(super) fn forget(&self, id: DeploymentId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&Key::Deployment(id));
        // moka applies the predicate to entries stored until now, lazily but without ever
        // returning one of them again.
        if self
            .entries
            .invalidate_entries_if(move |key, _| key.deployment() == Some(id))
            .is_err()
        {
            // Only if the cache were built without invalidation closures: over-evict.
            self.entries.invalidate_all();
        }
    }

    /// Evict project `name`: its production or settings changed.
    pub(super) fn forget_project(&self, name: &ProjectName) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&Key::Project(name.clone()));
        // Its domains too: a deleted project's domains are deleted with it.
        let name = name.clone();
        if self
            .entries
            .invalidate_entries_if(move |_, value| {
                matches!(value, Value::Domain(Some(domain)) if domain.project == name)
            })
            .is_err()
        {
            self.entries.invalidate_all();
        }
    }

    /// Evict domain `name`: it was added, changed, verified or deleted.
    pub(super) fn forget_domain(&self, name: &DomainName) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(&Key::Domain(name.clone()));
    }

    /// Stop serving entries: the invalidation feed is down.
    // Only the Redis listener has a feed to lose.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn distrust(&self) {
        self.trusted.store(false, Ordering::SeqCst);
    }

    /// The invalidation feed is back: empty the cache (invalidations were missed) and serve
    /// from it again.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(super) fn resync(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
        self.trusted.store(true, Ordering::SeqCst);
        Counters::bump(&self.counters.resyncs);
    }

    pub(super) fn stats(&self, shared_enabled: bool) -> CacheStats {
        // Sizes are maintained lazily; settle pending evictions so they are current.
        self.entries.run_pending_tasks();
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            local_hits: load(&c.local_hits),
            local_misses: load(&c.local_misses),
            shared_hits: load(&c.shared_hits),
            shared_misses: load(&c.shared_misses),
            shared_errors: load(&c.shared_errors),
            invalidations_sent: load(&c.invalidations_sent),
            invalidations_received: load(&c.invalidations_received),
            resyncs: load(&c.resyncs),
            local_entries: self.entries.entry_count(),
            local_bytes: self.entries.weighted_size(),
            local_max_bytes: self.max_bytes,
            shared_enabled,
        }
    }
}
