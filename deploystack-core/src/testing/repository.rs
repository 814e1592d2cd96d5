//! The `Repository` conformance suite: what every adapter must do, checked through the trait
//! alone.
//!
//! An adapter's tests call [`run_all`] with a freshly connected repository. Each check is also
//! a public function, so a failing one can be run on its own. Every check creates its own
//! deployments with random ids and only asserts about those, so the suite also runs against a
//! database that already holds data. The blob check collects every unreferenced blob older than
//! a moment it picks, so don't run it while another process relies on unreferenced blobs of the
//! same database.
//!
//! Timestamps handed to the repository are whole milliseconds, the coarsest precision an
//! adapter may store.

mod domains;
mod env;
mod files;
mod lifecycle;
mod projects;
mod tokens;

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{
    BlobRef, BuildSettings, ContentHash, Deployment, DeploymentError, DeploymentId,
    DeploymentStatus, EncodedVariant, Encoding, EnvVar, FileEntry, LogLine, LogStream,
    ManifestEntry, NewDeployment, PageRequest, Target,
};
use crate::repository::{Claim, PublishedBuild, Repository, RepositoryError};

pub use domains::*;
pub use env::*;
pub use files::*;
pub use lifecycle::*;
pub use projects::*;
pub use tokens::*;

/// A lease long enough never to run out during a test.
const LONG_LEASE: Duration = Duration::from_secs(60);
/// A lease that has run out after [`pause`].
const SHORT_LEASE: Duration = Duration::from_millis(1);

/// Run every check of the suite, in order.
pub async fn run_all(repo: &dyn Repository) {
    ping_succeeds(repo).await;
    create_and_get(repo).await;
    build_settings_and_env_round_trip(repo).await;
    list_is_newest_first_and_paginates(repo).await;
    claim_is_a_compare_and_set(repo).await;
    expired_lease_can_be_claimed_again(repo).await;
    final_deleted_and_unknown_deployments_are_not_claimed(repo).await;
    stale_attempts_are_fenced_out(repo).await;
    publish_writes_the_manifest_atomically(repo).await;
    publish_stores_its_log_lines_with_the_status(repo).await;
    routing_round_trips(repo).await;
    fail_records_the_error(repo).await;
    release_makes_the_deployment_claimable_again(repo).await;
    delete_hides_cancels_and_fences(repo).await;
    cancel_stops_queued_and_building_and_refuses_final(repo).await;
    logs_keep_append_order_across_attempts(repo).await;
    logs_after_returns_only_newer_lines(repo).await;
    blob_collection_protocol(repo).await;
    encodings_round_trip_and_keep_their_blobs(repo).await;
    source_files_keep_their_blobs(repo).await;
    stalled_deployments_are_found(repo).await;
    run_projects(repo).await;
    run_env(repo).await;
    run_domains(repo).await;
    run_tokens(repo).await;
    crate::testing::idempotency::run_all(repo).await;
}

/// The routing configuration given to `publish` comes back, equal, on the deployment —
/// from `publish` itself, `get_deployment` and listings — and is `None` when none was given.
pub async fn routing_round_trips(repo: &dyn Repository) {
    let config = crate::routing::RoutingConfig::from_files(
        |name| {
            (name == "vercel.json").then(|| {
                br#"{"cleanUrls": true, "trailingSlash": false,
                    "redirects": [{"source": "/old/:path*", "destination": "/new/:path*", "permanent": false}],
                    "rewrites": [{"source": "/(.*)", "destination": "/index.html"}],
                    "headers": [{"source": "/(.*)", "headers": [{"key": "X-Frame-Options", "value": "DENY"}]}]}"#
                    .to_vec()
            })
        },
        |_| {},
    )
    .expect("the fixture vercel.json compiles")
    .expect("the fixture has a configuration");

    let id = create(repo).await.id;
    assert_eq!(
        get(repo, &id).await.routing,
        None,
        "a new deployment has no routing"
    );
    let attempt = claim(repo, &id, "worker", LONG_LEASE).await.attempt;
    let files = [file("index.html", &format!("<h1>routed {id}</h1>"))];
    touch(repo, &files).await;
    let build = PublishedBuild {
        routing: Some(config.clone()),
        ..published_build(&files)
    };
    let ready = repo
        .publish(&id, attempt, &build)
        .await
        .expect("publish failed");
    assert_eq!(
        ready.routing.as_deref(),
        Some(&config),
        "publish returns the routing"
    );
    assert_eq!(
        get(repo, &id).await.routing.as_deref(),
        Some(&config),
        "routing did not round-trip"
    );

    let plain = create(repo).await.id;
    let attempt = claim(repo, &plain, "worker", LONG_LEASE).await.attempt;
    publish(repo, &plain, attempt, &files).await;
    assert_eq!(
        get(repo, &plain).await.routing,
        None,
        "no routing stays None"
    );
}

/// The build settings and environment variables given at creation come back, equal and in
/// order (values of sensitive ones included: the worker needs them), from `create_deployment`,
/// `get_deployment`, a claim and listings; a deployment given none has none.
pub async fn build_settings_and_env_round_trip(repo: &dyn Repository) {
    let settings = BuildSettings {
        framework: Some("vite".into()),
        root_directory: Some("apps/web".into()),
        install_command: Some("npm ci --ignore-scripts".into()),
        build_command: Some("npm run build -- --mode \"staging\" && echo ✓".into()),
        output_directory: Some("dist/client".into()),
    };
    let env = vec![
        EnvVar {
            name: "API_URL".into(),
            value: "https://api.example.com/?a=1&b=\"2\"".into(),
            sensitive: false,
        },
        EnvVar {
            name: "TOKEN".into(),
            value: "s3cr3t\nsecond line ✓".into(),
            sensitive: true,
        },
        EnvVar {
            name: "EMPTY".into(),
            value: String::new(),
            sensitive: false,
        },
    ];
    let new = NewDeployment {
        settings: settings.clone(),
        env: env.clone(),
        ..new_deployment()
    };
    let created = repo
        .create_deployment(&new)
        .await
        .expect("create_deployment with settings failed");
    assert_eq!(
        created.settings, settings,
        "settings not returned by create"
    );
    assert_eq!(created.env, env, "variables not returned by create");
    let got = get(repo, &new.id).await;
    assert_eq!(got.settings, settings, "settings did not round-trip");
    assert_eq!(got.env, env, "variables did not round-trip");
    let claimed = claim(repo, &new.id, "worker", LONG_LEASE).await;
    assert_eq!(
        claimed.deployment.settings, settings,
        "the claim lost the settings"
    );
    assert_eq!(claimed.deployment.env, env, "the claim lost the variables");
    let listed = repo
        .list_deployments(&PageRequest {
            limit: 100,
            cursor: None,
        })
        .await
        .expect("list_deployments failed");
    if let Some(listed) = listed.items.iter().find(|d| d.id == new.id) {
        assert_eq!(listed.settings, settings, "the listing lost the settings");
    }

    let plain = create(repo).await;
    assert!(plain.settings.is_empty(), "a plain deployment has settings");
    assert!(plain.env.is_empty(), "a plain deployment has variables");
    let plain = get(repo, &plain.id).await;
    assert!(
        plain.settings.is_empty() && plain.env.is_empty(),
        "a plain deployment reads back with settings or variables"
    );
}

/// `ping` answers.
pub async fn ping_succeeds(repo: &dyn Repository) {
    repo.ping().await.expect("ping failed");
}

/// A new deployment is `QUEUED` with attempt 0 and reads back identically; unknown ids are
/// `NotFound` and a reused id is a `Conflict`.
pub async fn create_and_get(repo: &dyn Repository) {
    let new = NewDeployment {
        target: Target::Production,
        ..new_deployment()
    };
    let created = repo
        .create_deployment(&new)
        .await
        .expect("create_deployment failed");
    assert_eq!(created.id, new.id, "created deployment has another id");
    assert_eq!(created.project, new.project, "project not stored");
    assert_eq!(created.target, Target::Production, "target not stored");
    assert_eq!(created.source_key, new.source_key, "source key not stored");
    assert_eq!(created.created_by, new.created_by, "creator not stored");
    assert_eq!(
        created.status,
        DeploymentStatus::Queued,
        "new deployment not QUEUED"
    );
    assert_eq!(created.attempt, 0, "new deployment's attempt is not 0");
    assert_eq!(
        created.lease_owner, None,
        "new deployment has a lease owner"
    );
    assert_eq!(created.lease_expires_at, None, "new deployment has a lease");
    assert_eq!(created.error, None, "new deployment has an error");
    assert_eq!(
        (created.file_count, created.total_bytes),
        (0, 0),
        "new deployment has files"
    );
    assert_eq!(created.ready_at, None, "new deployment is ready");
    assert_eq!(created.deleted_at, None, "new deployment is deleted");
    assert_eq!(
        created.updated_at, created.created_at,
        "updated_at != created_at at creation"
    );

    let anonymous = NewDeployment {
        project: None,
        ..new_deployment()
    };
    let anonymous = repo
        .create_deployment(&anonymous)
        .await
        .expect("create_deployment without a project failed");
    assert_eq!(
        anonymous.project, None,
        "anonymous deployment got a project"
    );
    assert_eq!(anonymous.target, Target::Preview, "target not stored");

    let got = repo
        .get_deployment(&new.id)
        .await
        .expect("get_deployment of a new deployment failed");
    assert_eq!(
        got, created,
        "get_deployment differs from what create_deployment returned"
    );

    let missing = repo.get_deployment(&DeploymentId::random()).await;
    assert!(
        matches!(missing, Err(RepositoryError::NotFound)),
        "get_deployment of an unknown id: expected NotFound, got {missing:?}"
    );

    let again = repo
        .create_deployment(&NewDeployment {
            source_key: "another".into(),
            source_files: Vec::new(),
            ..new.clone()
        })
        .await;
    assert!(
        matches!(again, Err(RepositoryError::Conflict(_))),
        "create_deployment with a taken id: expected Conflict, got {again:?}"
    );
    let unchanged = repo.get_deployment(&new.id).await.expect("get failed");
    assert_eq!(
        unchanged, created,
        "a refused create changed the existing deployment"
    );
}

/// Listing walks live deployments newest first, page by page, each exactly once; deleted ones
/// are left out, the page size is clamped to 1..=100 and a malformed cursor is a `Conflict`.
pub async fn list_is_newest_first_and_paginates(repo: &dyn Repository) {
    // Distinct creation times, so "newest first" has one right answer for these.
    let mut mine = Vec::new();
    for _ in 0..8 {
        mine.push(create(repo).await.id);
        pause().await;
    }
    let deleted = mine.remove(3);
    repo.delete_deployment(&deleted)
        .await
        .expect("delete_deployment failed");

    let mut seen = Vec::<Deployment>::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = repo
            .list_deployments(&PageRequest {
                limit: 3,
                cursor: cursor.clone(),
            })
            .await
            .expect("list_deployments failed");
        pages += 1;
        assert!(page.items.len() <= 3, "a page holds more than the limit");
        if page.next_cursor.is_some() {
            assert_eq!(
                page.items.len(),
                3,
                "a page before the last one is not full"
            );
        }
        seen.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 100_000, "the listing does not end");
    }
    assert!(
        pages >= 3,
        "7 live deployments in pages of 3 fit in {pages} pages"
    );

    let mut unique = HashSet::new();
    for d in &seen {
        assert!(unique.insert(d.id), "{} is listed twice", d.id);
        assert!(
            d.deleted_at.is_none(),
            "deleted deployment {} is listed",
            d.id
        );
    }
    for pair in seen.windows(2) {
        assert!(
            pair[0].created_at >= pair[1].created_at,
            "listing is not newest first: {} ({}) before {} ({})",
            pair[0].id,
            pair[0].created_at,
            pair[1].id,
            pair[1].created_at
        );
    }
    let listed_mine: Vec<DeploymentId> = seen
        .iter()
        .map(|d| d.id)
        .filter(|id| mine.contains(id) || *id == deleted)
        .collect();
    let newest_first: Vec<DeploymentId> = mine.iter().rev().copied().collect();
    assert_eq!(
        listed_mine, newest_first,
        "the live deployments of this test are not all listed, newest first"
    );

    let one = repo
        .list_deployments(&PageRequest {
            limit: 0,
            cursor: None,
        })
        .await
        .expect("list_deployments with limit 0 failed");
    assert_eq!(one.items.len(), 1, "limit 0 is not clamped to 1");
    let many = repo
        .list_deployments(&PageRequest {
            limit: 10_000,
            cursor: None,
        })
        .await
        .expect("list_deployments with a huge limit failed");
    assert!(many.items.len() <= 100, "limit is not clamped to 100");

    let bad = repo
        .list_deployments(&PageRequest {
            limit: 3,
            cursor: Some("not a cursor".into()),
        })
        .await;
    assert!(
        matches!(bad, Err(RepositoryError::Conflict(_))),
        "a malformed cursor: expected Conflict, got {bad:?}"
    );
}

/// A fresh preview deployment of the `conformance` project.
pub fn new_deployment() -> NewDeployment {
    let id = DeploymentId::random();
    NewDeployment {
        id,
        project: "conformance".parse().ok(),
        target: Target::Preview,
        source_key: format!("sources/{id}.zip"),
        source_files: Vec::new(),
        settings: BuildSettings::default(),
        env: Vec::new(),
        created_by: Some("token conformance (0123456789abcdef0123456789abcdef)".into()),
    }
}

/// A manifest entry for `path` holding `content`.
pub fn file(path: &str, content: &str) -> FileEntry {
    FileEntry {
        path: path.to_owned(),
        sha256: ContentHash::of(content.as_bytes()),
        size: content.len() as u64,
        content_type: mime_guess::from_path(path)
            .first_or_octet_stream()
            .to_string(),
        encodings: Vec::new(),
    }
}

/// The current time, whole milliseconds.
fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond()).unwrap_or(now)
}

/// Long enough for a 1 ms lease to run out and for timestamps to move on.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

async fn create(repo: &dyn Repository) -> Deployment {
    repo.create_deployment(&new_deployment())
        .await
        .expect("create_deployment failed")
}

async fn get(repo: &dyn Repository, id: &DeploymentId) -> Deployment {
    repo.get_deployment(id)
        .await
        .expect("get_deployment failed")
}

async fn claim(repo: &dyn Repository, id: &DeploymentId, worker: &str, lease: Duration) -> Claim {
    repo.claim_deployment(id, worker, lease)
        .await
        .expect("claim_deployment failed")
        .unwrap_or_else(|| panic!("{id} could not be claimed"))
}

async fn publish(repo: &dyn Repository, id: &DeploymentId, attempt: i64, files: &[FileEntry]) {
    touch(repo, files).await;
    repo.publish(id, attempt, &published_build(files))
        .await
        .expect("publish failed");
}

async fn touch(repo: &dyn Repository, files: &[FileEntry]) {
    let blobs: Vec<BlobRef> = files.iter().map(blob).collect();
    repo.touch_blobs(&blobs).await.expect("touch_blobs failed");
}

async fn list_files(repo: &dyn Repository, id: &DeploymentId) -> Vec<FileEntry> {
    repo.list_files(id).await.expect("list_files failed")
}

async fn collect(repo: &dyn Repository, unused_since: OffsetDateTime) -> Vec<ContentHash> {
    repo.claim_unreferenced_blobs(unused_since, 100_000)
        .await
        .expect("claim_unreferenced_blobs failed")
}

fn blob(file: &FileEntry) -> BlobRef {
    BlobRef {
        sha256: file.sha256,
        size: file.size,
    }
}

fn published_build(files: &[FileEntry]) -> PublishedBuild {
    PublishedBuild {
        log: Vec::new(),
        strategy: "static".into(),
        files: files.to_vec(),
        routing: None,
    }
}

fn build_error() -> DeploymentError {
    DeploymentError {
        code: "build_failed".into(),
        message: "the build command exited with status 1".into(),
    }
}

fn is_lease_lost<T>(result: &Result<T, RepositoryError>) -> bool {
    matches!(result, Err(RepositoryError::LeaseLost))
}

fn is_not_found<T>(result: &Result<T, RepositoryError>) -> bool {
    matches!(result, Err(RepositoryError::NotFound))
}
