//! The files and blobs aggregate of the [`Repository`](super::Repository) port: the manifests
//! of published deployments and the bookkeeping of the content-addressed blobs they share.
//!
//! # Contract
//! A blob is either claimed by the garbage collector or referenced by a committed manifest
//! (a published deployment's files, or the source files of a deployment created from a
//! manifest), never both: `touch_blobs`, `publish` and `create_deployment` refuse blobs
//! being collected with `BlobBusy`, and the collector only claims blobs no manifest
//! references and nobody touched recently.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::RepositoryError;
use crate::model::{BlobRef, ContentHash, DeploymentId, EncodedVariant, FileEntry, ManifestEntry};

/// Manifests and blob bookkeeping.
#[async_trait]
pub trait FileRepository: Send + Sync {
    /// The manifest entry for `path` of a deployment, if there is one.
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError>;

    /// The whole manifest of a deployment, ordered by path.
    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError>;

    /// The source files of a deployment created from a manifest, ordered by path; empty for
    /// a deployment uploaded as an archive (or deleted: deleting releases them).
    async fn list_source_files(
        &self,
        id: &DeploymentId,
    ) -> Result<Vec<ManifestEntry>, RepositoryError>;

    /// The precompressed variants some live manifest already records for files with each of
    /// `hashes` as content, so a redeploy of the same content reuses them instead of
    /// compressing again. Hashes no manifest has variants for are absent from the map. The
    /// answer is a hint: callers still `touch_blobs` the variants and check storage for them
    /// before publishing them.
    async fn known_encodings(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError>;

    /// Record that these blobs are about to be referenced (insert or refresh their
    /// `last_used_at`). Call it before checking storage for them: the garbage collector spares
    /// blobs used within its grace period. `BlobBusy` if one is being collected right now.
    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError>;

    /// Claim up to `limit` blobs for collection: no file and no file's precompressed variant
    /// references them, and they were last used before `unused_since`. They are marked so `touch_blobs` refuses them until
    /// `forget_blobs` removes the rows (after the caller deleted the objects). Claims older
    /// than `unused_since` are handed out again, so a crashed collector is retried.
    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError>;

    /// Remove the rows of blobs claimed by `claim_unreferenced_blobs`.
    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError>;
}
