//! Storage through the `object_store` crate: one adapter for a local directory, memory and
//! (with the `s3` feature) S3, because `object_store` already gives each of them atomic puts,
//! streaming and ranged reads.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::{ObjectInfo, ObjectStream, Storage, StorageError};

/// Files at or below this size are read whole and written with one `put`; larger ones are
/// streamed as a multipart upload so memory stays flat.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Read buffer for streaming uploads (also the multipart part size).
const CHUNK: usize = 8 * 1024 * 1024;

/// [`Storage`] over any `object_store` backend.
#[derive(Clone)]
pub struct ObjectStoreStorage {
    store: Arc<dyn ObjectStore>,
    /// What `Debug` and logs call this store (`file:///data/storage`, `memory://`).
    description: String,
}

impl std::fmt::Debug for ObjectStoreStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreStorage")
            .field("store", &self.description)
            .finish()
    }
}

impl ObjectStoreStorage {
    /// Objects as files under `dir`, created if missing. Writes go to a temporary file that is
    /// renamed into place, so readers never see half an object.
    pub fn local(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StorageError::Unavailable(e.to_string()))?
            .with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            description: format!("file://{}", dir.display()),
        })
    }

    /// Objects in this process's memory; gone when it exits. For tests and experiments.
    pub fn memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            description: "memory://".to_owned(),
        }
    }

    /// Any other `object_store` backend.
    pub fn from_store(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        Self {
            store,
            description: description.into(),
        }
    }
}

/// Keys are relative, `/`-separated and free of empty, `.` and `..` segments: they come from
/// our own code (hashes, ids), so anything else is a bug we refuse rather than normalise.
pub(super) fn object_path(key: &str) -> Result<ObjectPath, StorageError> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    if !valid {
        return Err(StorageError::InvalidKey(key.to_owned()));
    }
    ObjectPath::parse(key).map_err(|_| StorageError::InvalidKey(key.to_owned()))
}

fn map_err(key: &str, err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_owned()),
        object_store::Error::InvalidPath { .. } => StorageError::InvalidKey(key.to_owned()),
        // A full local disk is not worth retrying; say so rather than "unavailable".
        other if crate::services::disk::is_out_of_space(&other) => {
            StorageError::Full(other.to_string())
        }
        other => StorageError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Storage for ObjectStoreStorage {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let path = object_path(key)?;
        self.store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| map_err(key, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, file_path: &Path) -> Result<u64, StorageError> {
        let path = object_path(key)?;
        let mut file = tokio::fs::File::open(file_path).await?;
        let size = file.metadata().await?.len();
        if size <= SINGLE_PUT_MAX {
            let mut data = Vec::with_capacity(size as usize);
            file.read_to_end(&mut data).await?;
            let len = data.len() as u64;
            self.store
                .put(&path, PutPayload::from(data))
                .await
                .map_err(|e| map_err(key, e))?;
            return Ok(len);
        }
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| map_err(key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut buf = vec![0u8; CHUNK];
        let mut written = 0u64;
        loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(err.into());
                }
            };
            if let Err(err) = writer.wait_for_capacity(2).await {
                // Abort so the backend drops the parts already sent (S3 keeps, and bills,
                // incomplete uploads until they are aborted). The upload error is the one
                // worth reporting.
                let _ = writer.abort().await;
                return Err(map_err(key, err));
            }
            writer.write(&buf[..n]);
            written += n as u64;
        }
        writer.finish().await.map_err(|e| map_err(key, e))?;
        Ok(written)
    }

    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
        let path = object_path(key)?;
        let result = self.store.get(&path).await.map_err(|e| map_err(key, e))?;
        let size = result.meta.size;
        let owned_key = key.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |e| map_err(&owned_key, e))
            .boxed();
        Ok(ObjectStream { size, stream })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        let path = object_path(key)?;
        let invalid = || StorageError::InvalidRange {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
        };
        if range.start > range.end {
            return Err(invalid());
        }
        let meta = self.store.head(&path).await.map_err(|e| map_err(key, e))?;
        if range.end > meta.size {
            return Err(invalid());
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        self.store
            .get_range(&path, range.clone())
            .await
            .map_err(|e| map_err(key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let path = object_path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: meta.size,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(map_err(key, err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = object_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(map_err(key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let prefix_path = if prefix.is_empty() {
            None
        } else {
            Some(object_path(prefix.trim_end_matches('/'))?)
        };
        let mut items: Vec<ObjectInfo> = self
            .store
            .list(prefix_path.as_ref())
            .map_ok(|meta| ObjectInfo {
                key: meta.location.to_string(),
                size: meta.size,
            })
            .try_collect()
            .await
            .map_err(|e| map_err(prefix, e))?;
        items.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(items)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        // A listing of a key nobody writes is a real round trip that needs no object.
        self.store
            .list_with_delimiter(Some(&ObjectPath::from("health")))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Unavailable(e.to_string()))
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    use super::ObjectStoreStorage;
    use crate::testing::storage::run_all;

    #[tokio::test]
    async fn memory_storage_passes_the_storage_suite() {
        run_all(&ObjectStoreStorage::memory()).await;
    }

    #[tokio::test]
    async fn local_storage_passes_the_storage_suite() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let storage =
            ObjectStoreStorage::local(&dir.path().join("objects")).expect("local storage");
        run_all(&storage).await;
    }
}
