//! The `Storage` port: immutable objects by key — uploaded sources and content-addressed blobs.
//!
//! # Contract
//! - A `put` is atomic: readers see the whole object or none of it.
//! - Keys are `/`-separated relative paths (`blobs/ab/ab…`, `sources/<id>.zip`).
//! - `get` streams; nothing forces an object into memory. `get_range` reads a slice.
//! - `delete` of a missing key succeeds (idempotent), so cleanup can be retried safely.
//! - Objects are immutable in practice: blobs are content-addressed, so writing one twice
//!   writes the same bytes.
//!
//! Adapters, all over the `object_store` crate: [`ObjectStoreStorage`] with a local directory
//! (`file://`) or memory (`memory://`) backend, and, behind the `s3` feature, `S3Storage` for
//! any S3-compatible bucket (`s3://<bucket>/<optional prefix>`). Every adapter passes
//! `crate::testing::storage::run_all`. `Arc<S>` and `Box<S>` are storages too (`forward`),
//! so a decorator can wrap what [`Services`](crate::Services) holds.

mod forward;
mod object_store;
#[cfg(feature = "s3")]
mod s3;

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWriteExt;

pub use self::object_store::ObjectStoreStorage;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use self::s3::{S3Storage, S3Url};

/// A stream of an object's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// What can go wrong with storage, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No object under this key.
    #[error("object {0:?} not found")]
    NotFound(String),
    /// The key is not a valid storage key.
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    /// A range outside the object.
    #[error("range {start}..{end} is outside object {key:?}")]
    InvalidRange {
        /// The key read.
        key: String,
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
    },
    /// The backend failed or cannot be reached; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage URL or settings are wrong (a malformed URL, a bucket that does not
    /// exist, credentials given by half); retrying will not help, fixing them will. The
    /// message says what to change.
    #[error("{0}")]
    InvalidConfig(String),
    /// A local file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage has no space left (or the quota is used up): retrying will not help until
    /// space is freed.
    #[error("no space left in storage: {0}")]
    Full(String),
    /// Storage has been failing and its circuit breaker refused the call without trying:
    /// retry after `retry_after` (see [`crate::breaker`]).
    #[error("storage unavailable: {0}")]
    Open(crate::breaker::BreakerOpen),
}

impl StorageError {
    /// Whether this is running out of space, whatever the variant: [`StorageError::Full`], or
    /// an i/o error that says so.
    pub fn is_full(&self) -> bool {
        match self {
            StorageError::Full(_) => true,
            StorageError::Io(err) => crate::services::disk::is_out_of_space(err),
            _ => false,
        }
    }
}

/// What `head` and `list` say about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An object being read: its size, then its bytes.
pub struct ObjectStream {
    /// Total size in bytes.
    pub size: u64,
    /// The bytes, in order.
    pub stream: ByteStream,
}

impl ObjectStream {
    /// An object whose bytes are already in memory, as one chunk: what an in-memory adapter
    /// or decorator returns, and what a mock's expectation returns in one line —
    /// `storage.expect_get().returning(|_| Ok(ObjectStream::from_bytes("<h1>hi</h1>")))`.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            size: data.len() as u64,
            stream: futures_util::stream::iter([Ok(data)]).boxed(),
        }
    }

    /// Read the whole object into memory (for small objects: tests, decorators that keep a
    /// copy). Fails with the first error the stream yields.
    pub async fn into_bytes(mut self) -> Result<Bytes, StorageError> {
        // The size is a hint from the adapter; never reserve more than a few MiB up front.
        let hint = usize::try_from(self.size).unwrap_or(0).min(8 << 20);
        let mut data = bytes::BytesMut::with_capacity(hint);
        while let Some(chunk) = self.stream.next().await {
            data.extend_from_slice(&chunk?);
        }
        Ok(data.freeze())
    }
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Immutable objects by key. See the module docs for the contract.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Store `data` under `key`, replacing what was there.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError>;

    /// Store the contents of a local file under `key`, streaming it; returns the size.
    async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError>;

    /// Stream the object under `key`.
    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError>;

    /// Read `range` of the object under `key`.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError>;

    /// Size of the object under `key`, or `None` if there is none.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError>;

    /// Remove the object under `key`; succeeds when there is none.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Every object whose key starts with `prefix` (a `/`-separated folder), in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<(), StorageError>;
}

/// Copy the object under `key` into a new local file at `path`, streaming; returns its size.
pub async fn download_to_file(
    storage: &dyn Storage,
    key: &str,
    path: &Path,
) -> Result<u64, StorageError> {
    let mut object = storage.get(key).await?;
    let mut file = tokio::fs::File::create(path).await?;
    let mut written = 0u64;
    while let Some(chunk) = object.stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_object_from_bytes_reads_back_whole() {
        let object = ObjectStream::from_bytes("hello");
        assert_eq!(object.size, 5);
        assert_eq!(
            object.into_bytes().await.unwrap(),
            Bytes::from_static(b"hello")
        );
    }

    #[tokio::test]
    async fn into_bytes_joins_chunks_and_stops_at_the_first_error() {
        let chunks = [Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"cd"))];
        let object = ObjectStream {
            size: 4,
            stream: futures_util::stream::iter(chunks).boxed(),
        };
        assert_eq!(
            object.into_bytes().await.unwrap(),
            Bytes::from_static(b"abcd")
        );

        let failing = [
            Ok(Bytes::from_static(b"ab")),
            Err(StorageError::Unavailable("connection reset".into())),
        ];
        let object = ObjectStream {
            size: 4,
            stream: futures_util::stream::iter(failing).boxed(),
        };
        assert!(matches!(
            object.into_bytes().await,
            Err(StorageError::Unavailable(_))
        ));
    }
}
