//! Precompression: brotli and gzip variants of the output's text files, reused from earlier
//! deployments of the same content when their blobs are still stored (see
//! [`compression`](crate::services::compression) for what and how).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use super::failure::{Failure, stop_if};
use super::output::OutputFile;
use super::{Pipeline, UPLOAD_CONCURRENCY};
use crate::build::BuildLog;
use crate::model::{BlobRef, ContentHash, EncodedVariant};
use crate::services::compression::{self, LocalVariant};

/// How many files are compressed at once: compression is CPU-bound, so one per core (at
/// least two, so a slow large file does not hold up the small ones).
fn compression_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// What `precompress` did.
#[derive(Debug, Default)]
struct Precompressed {
    /// Distinct contents that qualified for compression.
    files: usize,
    /// Variants taken over from earlier deployments.
    reused: usize,
    /// Variants compressed now, still to be stored.
    made: Vec<LocalVariant>,
}

impl Pipeline {
    /// The precompression step: variants for `files`, written under `scratch`, and a log
    /// line saying what was made and reused. Returns the variants still to be stored.
    pub(super) async fn precompress_output(
        &self,
        files: &mut [OutputFile],
        scratch: &Path,
        log: &BuildLog,
        cancel: &CancellationToken,
    ) -> Result<Vec<LocalVariant>, Failure> {
        let phase = Instant::now();
        let variants_dir = scratch.join("variants");
        std::fs::create_dir(&variants_dir)?;
        let precompressed = self.precompress(files, &variants_dir, cancel).await?;
        log.system(format!(
            "precompressed {} text files: made {} variants, reused {} from earlier deployments, in {} ms",
            precompressed.files,
            precompressed.made.len(),
            precompressed.reused,
            phase.elapsed().as_millis()
        ));
        Ok(precompressed.made)
    }

    /// Give every compressible file of the output its brotli and gzip variants: reused from
    /// an earlier deployment of the same content when their blobs still exist, compressed
    /// otherwise (once per content, on the blocking pool, a few files at a time).
    async fn precompress(
        &self,
        files: &mut [OutputFile],
        out_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Precompressed, Failure> {
        let mut sources: Vec<(ContentHash, u64, PathBuf)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in files.iter() {
            if compression::wants_variants(&file.entry.content_type, file.entry.size)
                && seen.insert(file.entry.sha256)
            {
                sources.push((file.entry.sha256, file.entry.size, file.local.clone()));
            }
        }
        if sources.is_empty() {
            return Ok(Precompressed::default());
        }
        let hashes: Vec<ContentHash> = sources.iter().map(|(hash, ..)| *hash).collect();
        let known = self.services.repository.known_encodings(&hashes).await?;
        let reusable = self.reusable_variants(known, cancel).await?;

        let mut chosen: std::collections::HashMap<ContentHash, Vec<EncodedVariant>> =
            reusable.clone();
        let work: Vec<_> = sources
            .iter()
            .filter(|(hash, ..)| !reusable.contains_key(hash))
            .map(|(hash, size, local)| {
                let (hash, size, local) = (*hash, *size, local.clone());
                let out_dir = out_dir.to_path_buf();
                let cancel = cancel.clone();
                let storage = Arc::clone(&self.services.storage);
                async move {
                    stop_if(&cancel)?;
                    // A site published straight from its manifest has its files in
                    // storage only (see `source.rs`): fetch the bytes to compress.
                    if !local.exists() {
                        super::source::fetch(storage.as_ref(), &hash, &local).await?;
                    }
                    let variants = tokio::task::spawn_blocking(move || {
                        compression::compress_file(&local, &hash, size, &out_dir)
                    })
                    .await
                    .map_err(|err| Failure::Internal(err.to_string()))??;
                    Ok::<_, Failure>((hash, variants))
                }
            })
            .collect();
        let compressed: Vec<(ContentHash, Vec<LocalVariant>)> = futures_util::stream::iter(work)
            .buffer_unordered(compression_concurrency())
            .try_collect()
            .await?;
        let mut made = Vec::new();
        for (hash, variants) in compressed {
            chosen.insert(hash, variants.iter().map(|v| v.variant).collect());
            made.extend(variants);
        }
        for file in files.iter_mut() {
            if let Some(variants) = chosen.get(&file.entry.sha256) {
                file.entry.encodings.clone_from(variants);
            }
        }
        Ok(Precompressed {
            files: sources.len(),
            reused: reusable.values().map(Vec::len).sum(),
            made,
        })
    }

    /// The known variants whose blobs are all still stored, touched first so the collector
    /// spares them until this build publishes (the same protocol as `store_blobs`). A content
    /// with any variant missing is compressed again rather than published half-served.
    async fn reusable_variants(
        &self,
        known: std::collections::HashMap<ContentHash, Vec<EncodedVariant>>,
        cancel: &CancellationToken,
    ) -> Result<std::collections::HashMap<ContentHash, Vec<EncodedVariant>>, Failure> {
        let refs: Vec<BlobRef> = known
            .values()
            .flatten()
            .map(|v| BlobRef {
                sha256: v.sha256,
                size: v.size,
            })
            .collect();
        if refs.is_empty() {
            return Ok(known);
        }
        self.services.repository.touch_blobs(&refs).await?;
        let checks: Vec<_> = known
            .into_iter()
            .map(|(hash, variants)| {
                let storage = Arc::clone(&self.services.storage);
                let cancel = cancel.clone();
                async move {
                    for variant in &variants {
                        stop_if(&cancel)?;
                        if storage.head(&variant.sha256.blob_key()).await?.is_none() {
                            return Ok::<_, Failure>(None);
                        }
                    }
                    Ok(Some((hash, variants)))
                }
            })
            .collect();
        let found: Vec<_> = futures_util::stream::iter(checks)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}
