//! Values for tests, each made in one line: zip uploads, deployments in any status, claims,
//! file manifests, build contexts and queue deliveries.
//!
//! # Why?
//! A mock's expectation returns a value of the model, and `Deployment` alone has eighteen
//! fields. Writing them out in every test buries what the test is about and breaks every
//! test when the model grows a field; these constructors fill in plausible values, and
//! struct update syntax changes the one that matters:
//! `Deployment { file_count: 3, ..fixtures::deployment(id, DeploymentStatus::Ready) }`.

use std::io::Write;
use std::time::Duration;

use time::OffsetDateTime;

use crate::build::{BuildContext, SourceTree};
use crate::model::{
    BuildSettings, ContentHash, Deployment, DeploymentError, DeploymentId, DeploymentStatus,
    FileEntry, Target,
};
use crate::queue::{Delivery, Job};
use crate::repository::Claim;

/// A deflated zip archive of `files` (path, bytes); a path ending in `/` is a folder entry.
///
/// # Panics
/// If the zip writer fails, which only happens for names it cannot encode: this is for tests.
pub fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        if path.ends_with('/') {
            writer
                .add_directory(*path, options)
                .expect("add a folder entry");
        } else {
            writer
                .start_file(*path, options)
                .expect("start a file entry");
            writer.write_all(bytes).expect("write a file entry");
        }
    }
    writer.finish().expect("finish the zip").into_inner()
}

/// A preview deployment `id` in `status`, as a repository would return it: created now, its
/// source under the key ingest uses, and what the status implies — a lease for
/// `BUILDING`, an error for `ERROR`, `ready_at` for `READY`. Attempt 0 while `QUEUED`, 1
/// after.
pub fn deployment(id: DeploymentId, status: DeploymentStatus) -> Deployment {
    let now = OffsetDateTime::now_utc();
    let building = status == DeploymentStatus::Building;
    Deployment {
        id,
        project: None,
        target: Target::Preview,
        status,
        source_key: crate::services::ingest::source_key(&id),
        attempt: i64::from(status != DeploymentStatus::Queued),
        lease_owner: building.then(|| "worker-test".to_owned()),
        lease_expires_at: building.then(|| now + Duration::from_secs(60)),
        error: (status == DeploymentStatus::Error).then(|| DeploymentError {
            code: "build_failed".to_owned(),
            message: "the build command exited with status 1".to_owned(),
        }),
        file_count: 0,
        total_bytes: 0,
        created_at: now,
        updated_at: now,
        ready_at: (status == DeploymentStatus::Ready).then_some(now),
        deleted_at: None,
        routing: None,
        settings: BuildSettings::default(),
        env: Vec::new(),
        created_by: None,
    }
}

/// What `Repository::claim_deployment` returns when the claim succeeds: deployment `id`
/// `BUILDING` under attempt 1.
pub fn claim(id: DeploymentId) -> Claim {
    Claim {
        deployment: deployment(id, DeploymentStatus::Building),
        attempt: 1,
    }
}

/// The manifest entry of a file at `path` holding `content`: its hash, size and the content
/// type the pipeline would give it; no precompressed variants.
pub fn file_entry(path: &str, content: &[u8]) -> FileEntry {
    FileEntry {
        path: path.to_owned(),
        sha256: ContentHash::of(content),
        size: content.len() as u64,
        content_type: crate::services::pipeline::content_type_for(path),
        encodings: Vec::new(),
    }
}

/// A whole manifest, ordered by path as the repository lists it.
pub fn manifest(files: &[(&str, &[u8])]) -> Vec<FileEntry> {
    let mut entries: Vec<FileEntry> = files
        .iter()
        .map(|(path, content)| file_entry(path, content))
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries
}

/// A build context whose source tree holds `files` (path, bytes; folders are created), in a
/// temporary directory that also holds the work directory. Keep the returned directory alive
/// as long as the context: dropping it removes both.
///
/// # Panics
/// If the temporary directory cannot be written: this is for tests.
pub fn build_context(files: &[(&str, &[u8])]) -> (tempfile::TempDir, BuildContext) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let source = dir.path().join("source");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&source).expect("create the source folder");
    std::fs::create_dir_all(&work).expect("create the work folder");
    for (path, content) in files {
        let file = source.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create a source folder");
        }
        std::fs::write(&file, content).expect("write a source file");
    }
    let context = BuildContext::new(SourceTree::new(source), work);
    (dir, context)
}

/// A first delivery of the job that builds `id`, as `Queue::reserve` hands it out.
pub fn delivery(id: DeploymentId) -> Delivery {
    Delivery {
        delivery_id: format!("delivery-{id}"),
        job: Job { deployment_id: id },
        deliveries: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_look_like_what_their_status_implies() {
        let id = DeploymentId::random();
        let queued = deployment(id, DeploymentStatus::Queued);
        assert_eq!((queued.id, queued.attempt), (id, 0));
        assert!(queued.lease_owner.is_none() && queued.ready_at.is_none());
        let building = claim(id);
        assert_eq!(building.deployment.status, DeploymentStatus::Building);
        assert_eq!(building.attempt, building.deployment.attempt);
        assert!(building.deployment.lease_expires_at.is_some());
        assert!(deployment(id, DeploymentStatus::Error).error.is_some());
        assert!(deployment(id, DeploymentStatus::Ready).ready_at.is_some());
    }

    #[test]
    fn manifests_hash_and_type_their_files_in_path_order() {
        let files = manifest(&[("style.css", b"body{}"), ("index.html", b"<h1>hi</h1>")]);
        assert_eq!(files[0].path, "index.html");
        assert_eq!(files[0].sha256, ContentHash::of(b"<h1>hi</h1>"));
        assert_eq!(files[0].size, 11);
        assert_eq!(files[0].content_type, "text/html; charset=utf-8");
        assert_eq!(files[1].content_type, "text/css; charset=utf-8");
    }

    #[test]
    fn build_contexts_hold_their_source_files() {
        let (_dir, context) = build_context(&[("index.html", b"hi"), ("docs/a.md", b"# a")]);
        assert!(context.source.has_file("index.html"));
        assert!(context.source.has_file("docs/a.md"));
        assert!(context.work_dir.is_dir());
        assert!(!context.cancel.is_cancelled());
    }
}
