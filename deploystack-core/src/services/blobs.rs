//! Content-addressed uploads, first half: a client asks which of its files' sha256 digests the
//! server lacks ([`missing`]) and sends only those ([`put_file`]); then it creates a
//! deployment from a manifest naming them (`services::manifest`). A redeploy with one changed
//! file sends one file.
//!
//! # Why blobs are checked on receipt
//! A blob is stored under its digest and shared by every deployment and project that names
//! it, so a blob whose bytes do not hash to its name would corrupt every site using it. The
//! bytes are hashed as received and refused on a mismatch before anything is stored.
//!
//! # Grace period
//! Both calls touch the blobs they answer for ([`FileRepository::touch_blobs`]): a blob
//! uploaded (or found present) now is spared by the garbage collector for `blob_grace_secs`,
//! the time a client has to create the deployment that references it. Once a deployment's
//! source names a blob, the collector never takes it while that deployment exists.
//!
//! [`FileRepository::touch_blobs`]: crate::repository::FileRepository::touch_blobs

use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};

use crate::Config;
use crate::model::{BlobRef, ContentHash};
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::storage::StorageError;

/// How many storage checks run at once.
const CHECK_CONCURRENCY: usize = 16;

/// What [`put_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStored {
    /// The blob's digest (its name).
    pub digest: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it was written now (`false`: it was already stored).
    pub created: bool,
}

/// Why a blob was not accepted, or a question about blobs not answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes do not hash to the digest they were sent under; nothing was stored.
    #[error(
        "the bytes received hash to {actual}, not to {expected}: the upload was damaged or sent under the wrong digest; nothing was stored"
    )]
    Mismatch {
        /// The digest the client named.
        expected: ContentHash,
        /// The sha256 of what arrived.
        actual: ContentHash,
    },
    /// The client said how large the blob is, and it was not; nothing was stored.
    #[error(
        "{actual} bytes were received, but the blob was announced as {expected} bytes; nothing was stored"
    )]
    SizeMismatch {
        /// The size announced.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// Larger than the largest file a deployment may have.
    #[error("the blob is {size} bytes, more than the largest file allowed ({max} bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit (`archive_max_file_bytes`).
        max: u64,
    },
    /// More digests asked about at once than a deployment may have files.
    #[error(
        "{count} digests asked about at once; at most {max} (the most files a deployment may have)"
    )]
    TooMany {
        /// How many were asked about.
        count: usize,
        /// The limit (`archive_max_entries`).
        max: usize,
    },
    /// The blob is being garbage-collected at this moment; sending it again in a moment
    /// stores it anew.
    #[error(
        "the blob {0} is being removed by the garbage collector right now; send it again in a moment"
    )]
    Busy(ContentHash),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The repository failed.
    #[error(transparent)]
    Repository(RepositoryError),
    /// The file could not be read.
    #[error("cannot read the received blob: {0}")]
    Io(#[from] std::io::Error),
}

impl From<RepositoryError> for BlobError {
    fn from(err: RepositoryError) -> Self {
        match err {
            RepositoryError::BlobBusy(hash) => BlobError::Busy(hash),
            other => BlobError::Repository(other),
        }
    }
}

/// Largest blob accepted, in bytes: the largest file a deployment may have
/// (`archive_max_file_bytes`).
pub fn max_blob_bytes(config: &Config) -> u64 {
    config.archive_max_file_bytes
}

/// Which of `digests` the server lacks: deduplicated, in the order first given. The ones it
/// has are touched, so the collector spares them for the grace period (see the module docs);
/// a blob being collected right now counts as lacking.
pub async fn missing(
    services: &Services,
    digests: &[ContentHash],
) -> Result<Vec<ContentHash>, BlobError> {
    let max = services.config.archive_max_entries;
    if digests.len() > max {
        return Err(BlobError::TooMany {
            count: digests.len(),
            max,
        });
    }
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<ContentHash> = digests
        .iter()
        .copied()
        .filter(|d| seen.insert(*d))
        .collect();
    let present = stored(services, &unique).await?;
    let mut usable: std::collections::HashSet<ContentHash> =
        present.iter().map(|blob| blob.sha256).collect();
    for busy in touch_or_report_busy(services, present).await? {
        usable.remove(&busy);
    }
    Ok(unique.into_iter().filter(|d| !usable.contains(d)).collect())
}

/// The blobs among `digests` that storage holds, with their sizes.
pub(crate) async fn stored(
    services: &Services,
    digests: &[ContentHash],
) -> Result<Vec<BlobRef>, StorageError> {
    let checks: Vec<_> = digests
        .iter()
        .map(|digest| {
            let storage = Arc::clone(&services.storage);
            let digest = *digest;
            async move {
                Ok::<_, StorageError>(storage.head(&digest.blob_key()).await?.map(|info| BlobRef {
                    sha256: digest,
                    size: info.size,
                }))
            }
        })
        .collect();
    let found: Vec<Option<BlobRef>> = futures_util::stream::iter(checks)
        .buffered(CHECK_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Touch `blobs`; the ones a collector holds right now (`BlobBusy`, one at a time) are left
/// out and returned, so the caller treats them as absent.
pub(crate) async fn touch_or_report_busy(
    services: &Services,
    mut blobs: Vec<BlobRef>,
) -> Result<Vec<ContentHash>, RepositoryError> {
    let mut busy = Vec::new();
    loop {
        match services.repository.touch_blobs(&blobs).await {
            Ok(()) => return Ok(busy),
            Err(RepositoryError::BlobBusy(hash)) => {
                busy.push(hash);
                blobs.retain(|b| b.sha256 != hash);
            }
            Err(err) => return Err(err),
        }
    }
}

/// Verify that the file at `path` (received from a client, e.g. into a temporary file) is
/// `expected_size` bytes when that is given, at most [`max_blob_bytes`], and hashes to
/// `expected`; then store it as the blob `expected` (unless it already is) and touch it.
/// Nothing is stored when a check fails. The caller still owns (and removes) the file.
pub async fn put_file(
    services: &Services,
    expected: &ContentHash,
    expected_size: Option<u64>,
    path: &Path,
) -> Result<BlobStored, BlobError> {
    if let Some(expected_size) = expected_size {
        let size = tokio::fs::metadata(path).await?.len();
        if size != expected_size && size <= max_blob_bytes(&services.config) {
            return Err(BlobError::SizeMismatch {
                expected: expected_size,
                actual: size,
            });
        }
    }
    let mut stored = put_files(services, &[(*expected, path.to_path_buf())]).await?;
    stored
        .pop()
        .ok_or_else(|| std::io::Error::other("a batch of one stored nothing").into())
}

/// [`put_file`] for several blobs at once (a batch upload): every file is checked first
/// (size limit, announced size, digest) and nothing is stored unless all pass; then they are
/// touched in one repository call and stored, a few at a time. `files` holds
/// `(expected digest, path)` pairs; the answer is in the same order.
pub async fn put_files(
    services: &Services,
    files: &[(ContentHash, std::path::PathBuf)],
) -> Result<Vec<BlobStored>, BlobError> {
    let files = files
        .iter()
        .map(|(expected, path)| (Some(*expected), path.clone()))
        .collect();
    store(services, files).await
}

/// Store the file at `path` as the blob named by the sha256 of its bytes, whatever they
/// are, and touch it: for a client that names its files by another digest and has checked
/// that one (the `vercel` CLI's SHA-1). The file is read and hashed once, here; at most
/// [`max_blob_bytes`]. The caller still owns (and removes) the file.
pub async fn put_file_by_content(
    services: &Services,
    path: &Path,
) -> Result<BlobStored, BlobError> {
    let mut stored = store(services, vec![(None, path.to_path_buf())]).await?;
    stored
        .pop()
        .ok_or_else(|| std::io::Error::other("a batch of one stored nothing").into())
}

/// Check every file (size limit and, where one is expected, its digest), then touch them
/// in one repository call and store them, a few at a time; nothing is stored unless all
/// pass. The answer is in the order of `files`.
async fn store(
    services: &Services,
    files: Vec<(Option<ContentHash>, std::path::PathBuf)>,
) -> Result<Vec<BlobStored>, BlobError> {
    let max = max_blob_bytes(&services.config);
    let owned = files.clone();
    let checked = tokio::task::spawn_blocking(move || {
        owned
            .iter()
            .map(|(expected, path)| {
                let size = std::fs::metadata(path)?.len();
                if size > max {
                    return Err(BlobError::TooLarge { size, max });
                }
                let actual = hash_file(path)?;
                if let Some(expected) = expected.filter(|expected| *expected != actual) {
                    return Err(BlobError::Mismatch { expected, actual });
                }
                Ok(BlobRef {
                    sha256: actual,
                    size,
                })
            })
            .collect::<Result<Vec<BlobRef>, BlobError>>()
    })
    .await
    .map_err(|err| std::io::Error::other(err.to_string()))??;
    services.repository.touch_blobs(&checked).await?;
    let stores: Vec<_> = checked
        .iter()
        .zip(&files)
        .map(|(blob, (_, path))| {
            let storage = Arc::clone(&services.storage);
            let (blob, path) = (*blob, path.clone());
            async move {
                let key = blob.sha256.blob_key();
                let created = storage.head(&key).await?.is_none();
                if created {
                    storage.put_file(&key, &path).await?;
                }
                Ok::<_, BlobError>(BlobStored {
                    digest: blob.sha256,
                    size: blob.size,
                    created,
                })
            }
        })
        .collect();
    futures_util::stream::iter(stores)
        .buffered(CHECK_CONCURRENCY)
        .try_collect()
        .await
}

/// The sha256 of a file's bytes.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ContentHash::from_bytes(hasher.finalize().into()))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::Config;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(file.path(), bytes).expect("write the temporary file");
        file
    }

    #[tokio::test]
    async fn a_blob_is_stored_once_under_its_digest_and_then_no_longer_missing() {
        let services = Services::in_memory(Config::default()).await.unwrap();
        let (a, b) = (ContentHash::of(b"alpha"), ContentHash::of(b"beta"));
        assert_eq!(missing(&services, &[a, b, a]).await.unwrap(), vec![a, b]);

        let file = file_with(b"alpha");
        let stored = put_file(&services, &a, Some(5), file.path()).await.unwrap();
        assert_eq!((stored.digest, stored.size, stored.created), (a, 5, true));
        let again = put_file(&services, &a, None, file.path()).await.unwrap();
        assert!(!again.created, "stored twice");
        assert_eq!(missing(&services, &[b, a]).await.unwrap(), vec![b]);
        let mut bytes = services.storage.get(&a.blob_key()).await.unwrap();
        let mut read = Vec::new();
        while let Some(chunk) = bytes.stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, b"alpha");
    }

    #[tokio::test]
    async fn a_wrong_digest_size_or_an_oversized_blob_stores_nothing() {
        let config = Config {
            archive_max_file_bytes: 8,
            ..Config::default()
        };
        let services = Services::in_memory(config).await.unwrap();
        let claimed = ContentHash::of(b"what the client meant");
        let file = file_with(b"other");
        match put_file(&services, &claimed, None, file.path()).await {
            Err(BlobError::Mismatch { expected, actual }) => {
                assert_eq!((expected, actual), (claimed, ContentHash::of(b"other")));
            }
            other => panic!("a mismatch was accepted: {other:?}"),
        }
        let real = ContentHash::of(b"other");
        assert!(matches!(
            put_file(&services, &real, Some(6), file.path()).await,
            Err(BlobError::SizeMismatch {
                expected: 6,
                actual: 5
            })
        ));
        let big = file_with(b"nine byte");
        assert!(matches!(
            put_file(&services, &ContentHash::of(b"nine byte"), None, big.path()).await,
            Err(BlobError::TooLarge { size: 9, max: 8 })
        ));
        assert!(services.storage.list("blobs/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_is_stored_whole_or_not_at_all() {
        let services = Services::in_memory(Config::default()).await.unwrap();
        let (one, two) = (file_with(b"one"), file_with(b"two"));
        let bad = vec![
            (ContentHash::of(b"one"), one.path().to_path_buf()),
            (ContentHash::of(b"not two"), two.path().to_path_buf()),
        ];
        assert!(matches!(
            put_files(&services, &bad).await,
            Err(BlobError::Mismatch { .. })
        ));
        assert!(services.storage.list("blobs/").await.unwrap().is_empty());
        let good = vec![
            (ContentHash::of(b"one"), one.path().to_path_buf()),
            (ContentHash::of(b"two"), two.path().to_path_buf()),
        ];
        let stored = put_files(&services, &good).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|s| s.created));
        assert_eq!(stored[1].digest, ContentHash::of(b"two"));
        assert!(
            missing(&services, &[good[0].0, good[1].0])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!put_files(&services, &good).await.unwrap()[0].created);
    }

    #[tokio::test]
    async fn a_file_stored_by_content_is_named_by_its_sha256_and_held_to_the_limit() {
        let config = Config {
            archive_max_file_bytes: 8,
            ..Config::default()
        };
        let services = Services::in_memory(config).await.unwrap();
        let file = file_with(b"gamma");
        let stored = put_file_by_content(&services, file.path()).await.unwrap();
        let gamma = ContentHash::of(b"gamma");
        assert_eq!(
            (stored.digest, stored.size, stored.created),
            (gamma, 5, true)
        );
        assert!(missing(&services, &[gamma]).await.unwrap().is_empty());
        assert!(
            !put_file_by_content(&services, file.path())
                .await
                .unwrap()
                .created
        );
        let big = file_with(b"nine byte");
        assert!(matches!(
            put_file_by_content(&services, big.path()).await,
            Err(BlobError::TooLarge { size: 9, max: 8 })
        ));
        assert_eq!(
            services.storage.list("blobs/").await.unwrap().len(),
            1,
            "only gamma is stored"
        );
    }

    #[tokio::test]
    async fn asking_about_more_digests_than_a_deployment_may_have_files_is_refused() {
        let config = Config {
            archive_max_entries: 2,
            ..Config::default()
        };
        let services = Services::in_memory(config).await.unwrap();
        let digests = [b"1", b"2", b"3"].map(|b| ContentHash::of(b));
        assert!(matches!(
            missing(&services, &digests).await,
            Err(BlobError::TooMany { count: 3, max: 2 })
        ));
    }
}
