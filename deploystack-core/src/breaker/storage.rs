//! [`BreakerStorage`]: a [`Storage`] whose calls go through a [`Breaker`].

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::Breaker;
use crate::storage::{ObjectInfo, ObjectStream, Storage, StorageError};

/// A storage decorator that fails fast with [`StorageError::Open`] while its breaker is open.
/// Only [`StorageError::Unavailable`] counts as a failure: a missing object, a bad key or a
/// full disk is the backend answering.
///
/// Put it *under* the hot-blob cache (`CachedStorage`), so warm blobs are answered from
/// memory whatever the breaker says:
///
/// ```
/// # use std::sync::Arc;
/// # use deploystack_core::breaker::{Breaker, BreakerSettings, BreakerStorage};
/// # use deploystack_core::storage::{ObjectStoreStorage, Storage};
/// let breaker = Arc::new(Breaker::new("storage", BreakerSettings {
///     failure_percent: 50,
///     min_calls: 20,
///     window: std::time::Duration::from_secs(30),
///     cooldown: std::time::Duration::from_secs(15),
/// }));
/// let storage: Arc<dyn Storage> =
///     Arc::new(BreakerStorage::new(ObjectStoreStorage::memory(), Arc::clone(&breaker)));
/// // …and `breaker` goes into `Services::breakers`, so /readyz and /metrics show it.
/// ```
#[derive(Debug)]
pub struct BreakerStorage<S> {
    inner: S,
    breaker: Arc<Breaker>,
}

impl<S: Storage> BreakerStorage<S> {
    /// `inner`, guarded by `breaker`.
    pub fn new(inner: S, breaker: Arc<Breaker>) -> Self {
        Self { inner, breaker }
    }

    /// The breaker guarding it.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

fn is_failure(err: &StorageError) -> bool {
    matches!(err, StorageError::Unavailable(_))
}

#[async_trait]
impl<S: Storage> Storage for BreakerStorage<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.put(key, data))
            .await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        self.breaker
            .call(
                is_failure,
                StorageError::Open,
                self.inner.put_file(key, path),
            )
            .await
    }

    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.get(key))
            .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.breaker
            .call(
                is_failure,
                StorageError::Open,
                self.inner.get_range(key, range),
            )
            .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.head(key))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.delete(key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.list(prefix))
            .await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.breaker
            .call(is_failure, StorageError::Open, self.inner.ping())
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::breaker::{BreakerSettings, BreakerState};
    use crate::storage::ObjectStoreStorage;

    fn breaker() -> Arc<Breaker> {
        Arc::new(Breaker::new(
            "storage",
            BreakerSettings {
                failure_percent: 50,
                min_calls: 2,
                window: Duration::from_secs(60),
                cooldown: Duration::from_secs(60),
            },
        ))
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_guarded_storage_passes_the_storage_suite() {
        let storage = BreakerStorage::new(ObjectStoreStorage::memory(), breaker());
        crate::testing::storage::run_all(&storage).await;
        assert_eq!(storage.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn missing_objects_never_open_it_and_an_open_one_touches_nothing() {
        let storage = BreakerStorage::new(ObjectStoreStorage::memory(), breaker());
        for _ in 0..10 {
            assert!(matches!(
                storage.get("blobs/ab/missing").await,
                Err(StorageError::NotFound(_))
            ));
        }
        assert_eq!(storage.breaker().state(), BreakerState::Closed);

        // A directory that is a file: every write fails as the backend failing would.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let broken = ObjectStoreStorage::from_store(
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&file).unwrap()),
            "broken",
        );
        let storage = BreakerStorage::new(broken, breaker());
        for _ in 0..2 {
            let err = storage
                .put("k", Bytes::from_static(b"v"))
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
        }
        assert_eq!(storage.breaker().state(), BreakerState::Open);
        let Err(StorageError::Open(open)) = storage.put("k", Bytes::from_static(b"v")).await else {
            panic!("an open breaker let a put through");
        };
        assert_eq!(open.breaker, "storage");
        assert!(open.retry_after_secs() >= 59);
    }
}
