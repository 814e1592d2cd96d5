//! `Arc<S>` and `Box<S>` are storages when `S` is: every call goes to the one inside.
//!
//! # Why?
//! [`Services`](crate::Services) holds an `Arc<dyn Storage>`. A decorator generic over its
//! inner storage (`Counting<S: Storage>`) can then wrap that field as it is, and decorators
//! compose (`Retrying<Counting<Arc<dyn Storage>>>`), the way object_store's `LimitStore`
//! wraps any `ObjectStore`. Without these impls an embedder would need to write them, and
//! the orphan rule forbids that outside this crate.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectInfo, ObjectStream, Storage, StorageError};

/// `impl Storage for $wrapper<S>`, each method calling `S`'s.
macro_rules! forward_storage {
    ($wrapper:ident) => {
        #[async_trait]
        impl<S: Storage + ?Sized> Storage for $wrapper<S> {
            async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
                (**self).put(key, data).await
            }

            async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
                (**self).put_file(key, path).await
            }

            async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
                (**self).get(key).await
            }

            async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
                (**self).get_range(key, range).await
            }

            async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
                (**self).head(key).await
            }

            async fn delete(&self, key: &str) -> Result<(), StorageError> {
                (**self).delete(key).await
            }

            async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
                (**self).list(prefix).await
            }

            async fn ping(&self) -> Result<(), StorageError> {
                (**self).ping().await
            }
        }
    };
}

forward_storage!(Arc);
forward_storage!(Box);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::storage::ObjectStoreStorage;

    #[tokio::test]
    async fn a_storage_behind_arc_or_box_passes_the_storage_suite() {
        let shared: Arc<dyn Storage> = Arc::new(ObjectStoreStorage::memory());
        crate::testing::storage::run_all(&shared).await;
        let boxed: Box<dyn Storage> = Box::new(ObjectStoreStorage::memory());
        crate::testing::storage::run_all(&boxed).await;
    }
}
