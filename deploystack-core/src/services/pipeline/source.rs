//! Sources given as a manifest of blobs (`services::manifest`): a static site is published
//! straight from the manifest, and only a project that must be built is laid out on disk.
//!
//! # Publishing without laying out
//! Detection needs a tree to look at, so the folders of the source are made and its
//! root-level files put in them: the small ones detection may read (`package.json`,
//! `vercel.json`, lockfiles, configuration) with their bytes, the others (pages, styles,
//! images, anything large) as empty placeholders of their size, which is all detection asks
//! of them. When the strategy detected is `static` and its plan runs no command (no build
//! script, no build or install command from the settings or `vercel.json`), the manifest
//! itself becomes the output: each file's hash is already known, and a blob is only read
//! when its bytes are needed — the routing files, and text files whose precompressed
//! variants no earlier deployment left behind. A redeploy of 1,000 files with one changed
//! reads one blob.
//!
//! Otherwise every file is laid out from its blob (executable bits kept) and the build runs
//! as for an uploaded zip. Detection that matches on files deeper than the root sees only the
//! folders there; the built-in presets look at the root only.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::failure::{Failure, stop_if, user};
use super::output::{OutputFile, content_type_for};
use super::{Pipeline, UPLOAD_CONCURRENCY};
use crate::build::presets::STATIC;
use crate::build::{BuildLog, BuildPlan, SourceTree};
use crate::events::{Event, emit_best_effort};
use crate::model::{ContentHash, Deployment, FileEntry, ManifestEntry};
use crate::routing::RoutingConfig;
use crate::storage::{Storage, StorageError, download_to_file};

/// Largest root-level file whose bytes are fetched for detection.
const DETECTION_MAX_BYTES: u64 = 256 * 1024;

/// The output of a site published straight from its manifest.
#[derive(Debug)]
pub(super) struct Direct {
    pub(super) files: Vec<OutputFile>,
    pub(super) routing: Option<RoutingConfig>,
}

impl Pipeline {
    /// The source files of a manifest deployment; a user error when there are none (the
    /// deployment was deleted meanwhile).
    pub(super) async fn source_files(
        &self,
        deployment: &Deployment,
    ) -> Result<Vec<ManifestEntry>, Failure> {
        let files = self
            .services
            .repository
            .list_source_files(&deployment.id)
            .await?;
        if files.is_empty() {
            return Err(user(
                "source_missing",
                "the uploaded source of this deployment is gone; deploy the files again",
            ));
        }
        Ok(files)
    }

    /// Publish a static site straight from its manifest (see the module docs), or `None`
    /// when a build must run; then the root-level files are already in `source_dir`, and
    /// [`Pipeline::lay_out`] adds the rest.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn publish_directly(
        &self,
        deployment: &Deployment,
        attempt: i64,
        files: &[ManifestEntry],
        scratch: &Path,
        source_dir: &Path,
        log: &BuildLog,
        cancel: &CancellationToken,
    ) -> Result<Option<Direct>, Failure> {
        let storage = &self.services.storage;
        let settings = &deployment.settings;
        make_folders(files, source_dir)?;
        let root = settings
            .root_directory
            .as_deref()
            .map(|r| r.trim().trim_start_matches("./").trim_matches('/'))
            .filter(|r| !r.is_empty() && *r != ".");
        let rooted = |path: &str| -> Option<String> {
            match root {
                None => Some(path.to_owned()),
                Some(root) => path
                    .strip_prefix(root)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .map(str::to_owned),
            }
        };
        // The tree detection looks at: every folder (made above), the root-level files.
        for file in files {
            let Some(path) = rooted(&file.path) else {
                continue;
            };
            if path.contains('/') {
                continue;
            }
            stop_if(cancel)?;
            let local = source_dir.join(&file.path);
            if file.size <= DETECTION_MAX_BYTES && may_be_read_by_detection(&path) {
                fetch(storage.as_ref(), &file.digest, &local).await?;
            } else {
                std::fs::File::create(&local)?.set_len(file.size)?;
            }
        }

        let selection = self
            .services
            .strategies
            .select(&SourceTree::new(source_dir), settings)
            .await?;
        if selection.strategy.name() != STATIC.name {
            return Ok(None);
        }
        let plan = BuildPlan::new(&STATIC, selection.source.root(), settings)?;
        if plan.build.is_some() || plan.install.is_some() {
            return Ok(None);
        }
        let output = plan.output_dir(selection.source.root());
        let output = output.trim_start_matches("./").trim_end_matches('/');
        let prefix = match (root, output) {
            (None, "." | "") => String::new(),
            (None, out) => format!("{out}/"),
            (Some(root), "." | "") => format!("{root}/"),
            (Some(root), out) => format!("{root}/{out}/"),
        };
        let started = Instant::now();
        let blobs_dir = scratch.join("blobs");
        std::fs::create_dir_all(&blobs_dir)?;
        let mut output_files = Vec::new();
        let mut total: u64 = 0;
        for file in files {
            let Some(path) = file.path.strip_prefix(&prefix) else {
                continue;
            };
            total = total.saturating_add(file.size);
            if output_files.len() >= self.services.config.build_output_max_files
                || total > self.services.config.build_output_max_bytes
            {
                return Err(user(
                    "output_too_large",
                    format!(
                        "the site is larger than allowed (at most {} files and {} bytes)",
                        self.services.config.build_output_max_files,
                        self.services.config.build_output_max_bytes
                    ),
                ));
            }
            output_files.push(OutputFile {
                entry: FileEntry {
                    content_type: content_type_for(path),
                    path: path.to_owned(),
                    sha256: file.digest,
                    size: file.size,
                    encodings: Vec::new(),
                },
                // Fetched only if its bytes are needed (see `fetch_missing`).
                local: blobs_dir.join(file.digest.to_string()),
            });
        }
        if output_files.is_empty() {
            return Err(user(
                "empty_output",
                format!(
                    "there are no files to publish in {:?}",
                    if prefix.is_empty() { "." } else { &prefix }
                ),
            ));
        }
        self.preset_started(deployment, attempt, "static").await;
        log.system(format!(
            "preset: static (publishing the uploaded files as they are, from {}; nothing to build)",
            if prefix.is_empty() {
                "the root of the upload".to_owned()
            } else {
                format!("{prefix:?}")
            }
        ));
        // The routing files are read, and taken out of the manifest.
        let config_files: Vec<&OutputFile> = output_files
            .iter()
            .filter(|f| crate::routing::CONFIG_FILES.contains(&f.entry.path.as_str()))
            .collect();
        for file in config_files {
            fetch(storage.as_ref(), &file.entry.sha256, &file.local).await?;
        }
        let (files, routing) = super::output::read_routing(output_files)?;
        for line in &routing.notes {
            log.system(line.clone());
        }
        log.system(format!(
            "published {} files ({total} bytes) from the uploaded blobs without laying them out, in {} ms",
            files.len(),
            started.elapsed().as_millis()
        ));
        Ok(Some(Direct {
            files,
            routing: routing.config,
        }))
    }

    /// Lay every file of `files` out in `source_dir` from its blob, with the owner's execute
    /// bit as the manifest says; files already fetched for detection are written again
    /// (placeholders among them).
    pub(super) async fn lay_out(
        &self,
        files: &[ManifestEntry],
        source_dir: &Path,
        log: &BuildLog,
        cancel: &CancellationToken,
    ) -> Result<(), Failure> {
        let phase = Instant::now();
        make_folders(files, source_dir)?;
        // Owned values only: the futures run concurrently and must not borrow across awaits.
        let writes: Vec<_> = files
            .iter()
            .map(|file| {
                let storage = Arc::clone(&self.services.storage);
                let local = source_dir.join(&file.path);
                let (digest, executable) = (file.digest, file.executable());
                let cancel = cancel.clone();
                async move {
                    stop_if(&cancel)?;
                    fetch(storage.as_ref(), &digest, &local).await?;
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode))?;
                    Ok::<(), Failure>(())
                }
            })
            .collect();
        futures_util::stream::iter(writes)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        log.system(format!(
            "laid out {} files ({bytes} bytes) from the uploaded blobs in {} ms",
            files.len(),
            phase.elapsed().as_millis()
        ));
        Ok(())
    }

    /// Announce that the build of `deployment` started with `preset`.
    pub(super) async fn preset_started(&self, deployment: &Deployment, attempt: i64, preset: &str) {
        let waited = OffsetDateTime::now_utc() - deployment.created_at;
        emit_best_effort(
            self.services.events.as_ref(),
            Event::BuildStarted {
                deployment_id: deployment.id,
                attempt,
                preset: preset.to_owned(),
                waited_ms: u64::try_from(waited.whole_milliseconds()).unwrap_or(0),
            },
        )
        .await;
    }
}

/// `source_dir` and every folder of `files` in it, each made once.
fn make_folders(files: &[ManifestEntry], source_dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(source_dir)?;
    let mut made = HashSet::new();
    for file in files {
        if let Some(parent) = Path::new(&file.path).parent()
            && made.insert(parent)
        {
            std::fs::create_dir_all(source_dir.join(parent))?;
        }
    }
    Ok(())
}

/// Whether detection may read the bytes of a root-level file called `name`: anything but
/// pages, styles, images, fonts and media, which it only checks for.
fn may_be_read_by_detection(name: &str) -> bool {
    let content_type = content_type_for(name);
    let essence = content_type.split(';').next().unwrap_or_default();
    !(matches!(essence, "text/html" | "text/css")
        || ["image/", "font/", "audio/", "video/"]
            .iter()
            .any(|kind| essence.starts_with(kind)))
}

/// Write the blob `digest` to `local`. A blob that is gone is the user's problem to fix
/// (deploy again), not a reason to retry.
pub(super) async fn fetch(
    storage: &dyn Storage,
    digest: &ContentHash,
    local: &Path,
) -> Result<(), Failure> {
    match download_to_file(storage, &digest.blob_key(), local).await {
        Ok(_) => Ok(()),
        Err(StorageError::NotFound(_)) => Err(user(
            "source_missing",
            format!(
                "the uploaded file with sha256 {digest} is gone from storage; deploy the files again"
            ),
        )),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_reads_configuration_not_pages_or_media() {
        for name in [
            "package.json",
            "vercel.json",
            "netlify.toml",
            "next.config.js",
            "Gemfile",
            "pnpm-lock.yaml",
        ] {
            assert!(may_be_read_by_detection(name), "{name}");
        }
        for name in [
            "index.html",
            "site.css",
            "logo.png",
            "font.woff2",
            "clip.mp4",
        ] {
            assert!(!may_be_read_by_detection(name), "{name}");
        }
    }
}
