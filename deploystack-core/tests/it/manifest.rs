//! Deployments from a manifest of uploaded blobs (content-addressed uploads): a static site
//! goes live straight from the manifest, a project that builds gets its files laid out, a
//! deployment can be built again from its kept source, and a collector running at the same
//! time never takes a blob a manifest refers to.

use std::sync::Arc;

use async_trait::async_trait;
use deploystack_core::build::{
    BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
};
use deploystack_core::model::{ContentHash, DeploymentStatus, ManifestEntry, Target};
use deploystack_core::services::ingest::{IngestError, UploadOptions};
use deploystack_core::services::pipeline::Outcome;
use deploystack_core::services::{blobs, deployments, manifest};
use deploystack_core::{Config, Services};

use crate::support::{build_next, deployment, log_contains, services, services_with, upload};

/// Upload `files` as blobs and describe them as a manifest (mode 0o100644, or 0o100755 for
/// paths ending in `.sh`).
async fn put_all(services: &Services, files: &[(&str, &[u8])]) -> Vec<ManifestEntry> {
    let mut entries = Vec::new();
    for (path, bytes) in files {
        let digest = ContentHash::of(bytes);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        blobs::put_file(services, &digest, Some(bytes.len() as u64), file.path())
            .await
            .unwrap();
        entries.push(ManifestEntry {
            path: (*path).to_owned(),
            digest,
            size: bytes.len() as u64,
            mode: if path.ends_with(".sh") {
                0o100_755
            } else {
                0o100_644
            },
        });
    }
    entries
}

fn project(name: &str) -> UploadOptions {
    UploadOptions {
        project: Some(name.parse().unwrap()),
        ..UploadOptions::default()
    }
}

#[tokio::test]
async fn a_static_site_goes_live_straight_from_its_manifest() {
    let services = services(Config::default()).await;
    let page = "<!doctype html><h1>Home</h1>".repeat(40);
    let files = put_all(
        &services,
        &[
            ("index.html", page.as_bytes()),
            ("css/site.css", b"body { color: #333 }"),
            ("about.html", b"<h1>About</h1>"),
            ("vercel.json", br#"{"cleanUrls": true}"#),
        ],
    )
    .await;
    let first = manifest::accept_manifest(&services, files.clone(), project("site"))
        .await
        .unwrap();
    assert_eq!(first.status, DeploymentStatus::Queued);
    assert_eq!(build_next(&services).await, Outcome::Ready);
    let ready = deployment(&services, &first.id).await;
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert!(
        log_contains(&services, &first.id, "without laying them out").await,
        "the site was laid out on disk"
    );
    let published = services.repository.list_files(&first.id).await.unwrap();
    let paths: Vec<&str> = published.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["about.html", "css/site.css", "index.html"]);
    assert_eq!(published[2].sha256, ContentHash::of(page.as_bytes()));
    assert!(
        !published[2].encodings.is_empty(),
        "the page was not precompressed"
    );
    assert!(ready.routing.is_some(), "vercel.json was not read");
    assert!(
        services.storage.list("sources/").await.unwrap().is_empty(),
        "a source archive was stored"
    );

    // A redeploy with one file changed reuses the rest, variants included.
    let mut changed = files.clone();
    changed.retain(|f| f.path != "about.html");
    changed.extend(put_all(&services, &[("about.html", b"<h1>About us</h1>")]).await);
    let second = manifest::accept_manifest(&services, changed, project("site"))
        .await
        .unwrap();
    assert_eq!(build_next(&services).await, Outcome::Ready);
    assert!(log_contains(&services, &second.id, "stored 0 new blobs").await);
    let about = services
        .repository
        .find_file(&second.id, "about.html")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(about.sha256, ContentHash::of(b"<h1>About us</h1>"));
}

/// Detects a project with `build.sh` at its root and, when building, checks that the files
/// were laid out with their bytes and modes, then publishes `out/index.html`.
#[derive(Debug)]
struct LaidOut;

#[async_trait]
impl BuildStrategy for LaidOut {
    fn name(&self) -> &str {
        "laid-out"
    }

    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        Ok(source.has_file("build.sh").then(|| Detection {
            strategy: "laid-out".into(),
            reason: "build.sh at the root".into(),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        use std::os::unix::fs::PermissionsExt;
        let root = ctx.source.root();
        let script = std::fs::metadata(root.join("build.sh"))?;
        let source = std::fs::read_to_string(root.join("src/page.html"))?;
        let out = ctx.work_dir.join("out");
        std::fs::create_dir_all(&out)?;
        let executable = script.permissions().mode() & 0o100 != 0;
        std::fs::write(
            out.join("index.html"),
            format!("{source} executable={executable}"),
        )?;
        Ok(BuildOutput { dir: out })
    }
}

#[tokio::test]
async fn a_project_that_builds_gets_its_files_laid_out_with_their_modes() {
    let services = services_with(Config::default(), Arc::new(LaidOut)).await;
    let files = put_all(
        &services,
        &[
            ("build.sh", b"#!/bin/sh\necho build"),
            ("src/page.html", b"<h1>Built</h1>"),
        ],
    )
    .await;
    let queued = manifest::accept_manifest(&services, files, project("built"))
        .await
        .unwrap();
    assert_eq!(build_next(&services).await, Outcome::Ready);
    assert!(log_contains(&services, &queued.id, "laid out 2 files").await);
    let index = services
        .repository
        .find_file(&queued.id, "index.html")
        .await
        .unwrap()
        .expect("the build's output was published");
    assert_eq!(
        index.sha256,
        ContentHash::of(b"<h1>Built</h1> executable=true")
    );
}

#[tokio::test]
async fn a_manifest_deployment_can_be_built_again_and_a_zip_one_cannot() {
    let services = services(Config::default()).await;
    let files = put_all(&services, &[("index.html", b"<h1>v1</h1>")]).await;
    let first = manifest::accept_manifest(&services, files, project("again"))
        .await
        .unwrap();
    assert_eq!(build_next(&services).await, Outcome::Ready);

    let again = manifest::redeploy(&services, &first.id, Target::Production, Some("test"))
        .await
        .unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(again.target, Target::Production);
    assert_eq!(again.project, first.project);
    assert_eq!(again.created_by.as_deref(), Some("test"));
    assert_eq!(build_next(&services).await, Outcome::Ready);
    let files = services.repository.list_files(&again.id).await.unwrap();
    assert_eq!(files[0].sha256, ContentHash::of(b"<h1>v1</h1>"));

    let zipped = upload(&services, &[("index.html", b"zip")]).await;
    assert!(matches!(
        manifest::redeploy(&services, &zipped.id, Target::Production, None).await,
        Err(IngestError::SourceGone(id)) if id == zipped.id
    ));
    deployments::delete(&services, &first.id, None)
        .await
        .unwrap();
    assert!(matches!(
        manifest::redeploy(&services, &first.id, Target::Preview, None).await,
        Err(IngestError::SourceGone(_))
    ));
}

#[tokio::test]
async fn blobs_never_uploaded_are_named_and_nothing_is_recorded() {
    let services = services(Config::default()).await;
    let mut files = put_all(&services, &[("index.html", b"here")]).await;
    let absent = ContentHash::of(b"never sent");
    files.push(ManifestEntry {
        path: "gone.html".into(),
        digest: absent,
        size: 10,
        mode: 0o100_644,
    });
    match manifest::accept_manifest(&services, files.clone(), project("holes")).await {
        Err(IngestError::MissingBlobs(missing)) => assert_eq!(missing, vec![absent]),
        other => panic!("a manifest with a hole was accepted: {other:?}"),
    }
    // A size that is not the blob's is refused too.
    files.pop();
    files[0].size += 1;
    assert!(matches!(
        manifest::accept_manifest(&services, files, project("holes")).await,
        Err(IngestError::InvalidManifest(message)) if message.contains("index.html")
    ));
    let page = services
        .repository
        .list_deployments(&Default::default())
        .await
        .unwrap();
    assert!(page.items.is_empty(), "a refused manifest was recorded");
}

/// The race the grace period and `BlobBusy` close: a collector and a manifest naming an
/// old unreferenced blob, at the same moment, many times. Either the manifest is refused with
/// the blob named as missing (the client uploads it again), or the deployment is recorded
/// and its blob survives — this collection and every later one — and the site publishes.
#[tokio::test]
async fn a_concurrent_collector_never_removes_a_blob_a_manifest_references() {
    let config = Config {
        blob_grace_secs: 0,
        max_queued_per_project: 0,
        ..Config::default()
    };
    let services = services(config).await;
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..40 {
        let content = format!("<h1>round {round}</h1>");
        let files = put_all(&services, &[("index.html", content.as_bytes())]).await;
        // Old enough for a collector with no grace period.
        tokio::time::sleep(std::time::Duration::from_millis(2 + round % 3)).await;
        // The collector starts a little later each round, so every interleaving comes up.
        let collector = async {
            for _ in 0..round % 12 {
                tokio::task::yield_now().await;
            }
            deployments::collect_garbage(&services, 100).await
        };
        let (collected, created) = tokio::join!(
            collector,
            manifest::accept_manifest(&services, files.clone(), project("race")),
        );
        collected.unwrap();
        match created {
            Ok(deployment) => {
                accepted += 1;
                deployments::collect_garbage(&services, 100).await.unwrap();
                assert!(
                    services
                        .storage
                        .head(&files[0].digest.blob_key())
                        .await
                        .unwrap()
                        .is_some(),
                    "round {round}: the blob of a recorded manifest was removed"
                );
                assert_eq!(build_next(&services).await, Outcome::Ready, "round {round}");
                assert_eq!(deployment.status, DeploymentStatus::Queued, "round {round}");
            }
            Err(IngestError::MissingBlobs(missing)) => {
                refused += 1;
                assert_eq!(missing, vec![files[0].digest], "round {round}");
            }
            Err(other) => panic!("round {round}: {other:?}"),
        }
    }
    // Both outcomes came up, so the race was run, not just one side of it.
    assert!(
        accepted > 0 && refused > 0,
        "the race was not run: {accepted} accepted, {refused} refused"
    );
}
