//! Content-addressed uploads, second half: a deployment created from a manifest
//! `{path → digest, size, mode}` of blobs already uploaded (`services::blobs`), instead of a
//! zip. The manifest is the deployment's source, kept with it in the repository; the worker
//! publishes a static site straight from it, without laying anything out, and lays the files
//! out from their blobs only when a build must run (`services::pipeline`, `source.rs`).
//!
//! # Rules
//! The manifest gets the rules of zip entries (`archive::check_paths`): no traversal, no
//! absolute or odd paths, no path given twice, no file that is also another's folder; at most
//! `archive_max_entries` files, each at most `archive_max_file_bytes` and all together at
//! most `archive_max_total_bytes`. Only regular files: a mode whose file type is a link, a
//! folder or a device is refused. `__MACOSX/` and `.DS_Store` are dropped, as from a zip.
//! Every size must be its blob's. The options and their checks are an upload's
//! ([`UploadOptions`]), the per-project queue cap included.
//!
//! # Missing blobs and the collector
//! Every blob named is checked in storage and touched before the deployment is recorded, and
//! the recording refuses a blob the collector holds at that moment (`BlobBusy`): a manifest
//! never refers to a blob that is being removed. The answer for blobs that are not there is
//! [`IngestError::MissingBlobs`] with their digests, and nothing is recorded.

use std::collections::{HashMap, HashSet};

use crate::archive;
use crate::model::{ContentHash, Deployment, DeploymentId, Target, manifest_source_key};
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::services::blobs;
use crate::services::ingest::{
    IngestError, Prepared, UploadOptions, check_queue_cap, prepare, record, validate_env,
    validate_settings,
};

pub use crate::model::ManifestEntry;

/// File-type bits of a unix mode and the one type a manifest may name.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// Check `files` (see the module docs), make sure every blob is stored, and record a `QUEUED`
/// deployment whose source they are; enqueue its build.
pub async fn accept_manifest(
    services: &Services,
    files: Vec<ManifestEntry>,
    options: UploadOptions,
) -> Result<Deployment, IngestError> {
    validate_settings(&options.settings)?;
    validate_env(&options.env)?;
    let files = check_manifest(files, &services.config.archive_limits())?;
    if let Some(project) = &options.project {
        check_queue_cap(services, project).await?;
    }

    let mut seen = HashSet::new();
    let digests: Vec<ContentHash> = files
        .iter()
        .map(|f| f.digest)
        .filter(|d| seen.insert(*d))
        .collect();
    // Touched before the row is written: the collector spares them from now until the
    // source rows, committed below, keep them for good.
    let present = blobs::stored(services, &digests).await?;
    let mut sizes: HashMap<ContentHash, u64> = present
        .iter()
        .map(|blob| (blob.sha256, blob.size))
        .collect();
    for busy in blobs::touch_or_report_busy(services, present).await? {
        sizes.remove(&busy);
    }
    let missing: Vec<ContentHash> = digests
        .iter()
        .filter(|d| !sizes.contains_key(d))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(IngestError::MissingBlobs(missing));
    }
    for file in &files {
        let stored = sizes.get(&file.digest).copied().unwrap_or(file.size);
        if stored != file.size {
            return Err(IngestError::InvalidManifest(format!(
                "{:?} is given as {} bytes, but the blob {} holds {stored} bytes",
                file.path, file.size, file.digest
            )));
        }
    }

    let prepared = prepare(services, &options).await?;
    let id = DeploymentId::random();
    match record(
        services,
        id,
        manifest_source_key(&id),
        files,
        prepared,
        options,
    )
    .await
    {
        // Collected between the touch and the insert (the grace period ran out meanwhile).
        Err(IngestError::Repository(RepositoryError::BlobBusy(hash))) => {
            Err(IngestError::MissingBlobs(vec![hash]))
        }
        other => other,
    }
}

/// A new deployment of `target` built from the source of `from`, which must have been
/// created from a manifest (its source files are kept for as long as it exists); same
/// project, build settings and upload variables. `SourceGone` for a deployment uploaded as a
/// zip or deleted; `Repository(NotFound)` for an unknown one.
pub async fn redeploy(
    services: &Services,
    from: &DeploymentId,
    target: Target,
    by: Option<&str>,
) -> Result<Deployment, IngestError> {
    let old = services.repository.get_deployment(from).await?;
    if old.deleted_at.is_some() {
        return Err(IngestError::SourceGone(*from));
    }
    let files = services.repository.list_source_files(from).await?;
    if files.is_empty() {
        return Err(IngestError::SourceGone(*from));
    }
    if let Some(project) = &old.project {
        check_queue_cap(services, project).await?;
    }
    // Settings and variables as stored (the variables sealed; the worker opens them when
    // the build starts).
    let prepared = Prepared {
        settings: old.settings,
        env: old.env,
    };
    let options = UploadOptions {
        project: old.project,
        target,
        by: by.map(str::to_owned),
        ..UploadOptions::default()
    };
    let id = DeploymentId::random();
    record(
        services,
        id,
        manifest_source_key(&id),
        files,
        prepared,
        options,
    )
    .await
}

/// The manifest's files, checked against the rules of the module docs and normalized; the
/// ones the archive rules ignore are dropped.
pub fn check_manifest(
    files: Vec<ManifestEntry>,
    limits: &archive::ArchiveLimits,
) -> Result<Vec<ManifestEntry>, IngestError> {
    let invalid = IngestError::InvalidManifest;
    if files.len() > limits.max_entries {
        return Err(invalid(format!(
            "the manifest names {} files, more than the limit of {}",
            files.len(),
            limits.max_entries
        )));
    }
    let checked = archive::check_paths(files.iter().map(|f| f.path.as_str()))
        .map_err(|err| invalid(manifest_message(&err.to_string())))?;
    let mut kept = Vec::with_capacity(files.len());
    let mut total: u64 = 0;
    for (file, (path, ignored)) in files.into_iter().zip(checked) {
        if ignored {
            continue;
        }
        let kind = file.mode & S_IFMT;
        if kind != 0 && kind != S_IFREG {
            return Err(invalid(format!(
                "{path:?} is not a regular file (mode {:o}); only files can be deployed, not links, folders or devices",
                file.mode
            )));
        }
        if file.size > limits.max_file_bytes {
            return Err(invalid(format!(
                "{path:?} is {} bytes, more than the per-file limit of {}",
                file.size, limits.max_file_bytes
            )));
        }
        total = total.saturating_add(file.size);
        if total > limits.max_total_bytes {
            return Err(invalid(format!(
                "the files add up to more than {} bytes (at least {total} by {path:?})",
                limits.max_total_bytes
            )));
        }
        kept.push(ManifestEntry { path, ..file });
    }
    if kept.is_empty() {
        return Err(invalid("the manifest names no files to deploy".to_owned()));
    }
    Ok(kept)
}

/// An archive rule's message, worded for a manifest (`entry "x"` → `file "x"`).
fn manifest_message(message: &str) -> String {
    let message = message.replacen("entry ", "file ", 1);
    format!("the manifest is not acceptable: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, size: u64) -> ManifestEntry {
        ManifestEntry {
            path: path.to_owned(),
            digest: ContentHash::of(path.as_bytes()),
            size,
            mode: 0o100_644,
        }
    }

    fn refused(files: Vec<ManifestEntry>, limits: &archive::ArchiveLimits) -> String {
        match check_manifest(files, limits) {
            Err(IngestError::InvalidManifest(message)) => message,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn paths_are_held_to_the_rules_of_zip_entries() {
        let limits = archive::ArchiveLimits::default();
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a\\b",
            "a//b",
            "./a",
            "dir/",
            "C:x",
        ] {
            let message = refused(vec![entry("ok.html", 1), entry(bad, 1)], &limits);
            assert!(
                message.contains("the manifest is not acceptable"),
                "{bad}: {message}"
            );
        }
        let message = refused(vec![entry("a.html", 1), entry("a.html", 2)], &limits);
        assert!(message.contains("a.html"), "{message}");
        refused(vec![entry("a", 1), entry("a/b", 1)], &limits);
    }

    #[test]
    fn limits_links_and_empty_manifests_are_refused() {
        let limits = archive::ArchiveLimits {
            max_entries: 2,
            max_total_bytes: 10,
            max_file_bytes: 6,
            max_ratio: 200,
        };
        refused(vec![entry("a", 1), entry("b", 1), entry("c", 1)], &limits);
        refused(vec![entry("a", 7)], &limits);
        refused(vec![entry("a", 6), entry("b", 6)], &limits);
        let link = ManifestEntry {
            mode: 0o120_777,
            ..entry("link", 1)
        };
        assert!(refused(vec![link], &limits).contains("not a regular file"));
        refused(Vec::new(), &limits);
        refused(vec![entry("__MACOSX/x", 1)], &limits);
    }

    #[test]
    fn good_manifests_pass_with_finder_litter_dropped() {
        let limits = archive::ArchiveLimits::default();
        let files = vec![
            entry("index.html", 10),
            entry("css/site.css", 5),
            entry(".DS_Store", 3),
            ManifestEntry {
                mode: 0o755,
                ..entry("bin/run.sh", 4)
            },
            ManifestEntry {
                mode: 0,
                ..entry("plain", 1)
            },
        ];
        let kept = check_manifest(files, &limits).unwrap();
        let paths: Vec<&str> = kept.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["index.html", "css/site.css", "bin/run.sh", "plain"]);
        assert!(kept[2].executable());
    }
}
