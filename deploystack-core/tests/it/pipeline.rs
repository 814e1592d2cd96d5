//! One delivery through the pipeline, on every path it can take: published, refused as the
//! user's problem, retried as ours, handed back on shutdown, fenced out after a delete or a
//! cancel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use deploystack_core::build::StrategyRegistry;
use deploystack_core::events::Event;
use deploystack_core::model::{ContentHash, DeploymentId, DeploymentStatus, FileEntry};
use deploystack_core::queue::Job;
use deploystack_core::services::deployments;
use deploystack_core::services::pipeline::{Outcome, Pipeline};
use deploystack_core::services::serving::{Resolved, SiteError, resolve};
use deploystack_core::{Config, Services};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{
    DEADLINE, Script, Scripted, blob_keys, build_next, deploy, deployment, depth, log_contains,
    process, received, reserve, services, services_with, upload,
};

/// A one-file site's build under `strategy`, claimed by a worker and running in the
/// background; `events` was subscribed before the build began.
struct RunningBuild {
    services: Services,
    id: DeploymentId,
    events: broadcast::Receiver<Event>,
    running: JoinHandle<Outcome>,
}

/// Upload, reserve and start processing a one-file site; returns once `strategy` runs.
async fn start_build(config: Config, strategy: &Arc<Scripted>) -> RunningBuild {
    let services = services_with(config, strategy.clone()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    let delivery = reserve(&services).await;
    let events = services.broadcast.subscribe();
    let running = tokio::spawn({
        let services = services.clone();
        async move { process(&services, &delivery).await }
    });
    strategy.started().await;
    RunningBuild {
        services,
        id,
        events,
        running,
    }
}

/// A small site in folders, with one file whose bytes repeat another's.
fn nested_site() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("index.html", b"<!doctype html><h1>Home</h1>"),
        ("css/site.css", b"body { color: #333 }"),
        ("docs/guide/intro.html", b"<h1>Intro</h1>"),
        ("img/logo.png", b"\x89PNG\r\n\x1a\n not really"),
        ("notes.txt", b"plain words"),
        ("download/data.weird-ext", b"\x00\x01\x02"),
        ("css/copy-of-site.css", b"body { color: #333 }"),
    ]
}

fn entry(path: &str, bytes: &[u8], content_type: &str) -> FileEntry {
    FileEntry {
        path: path.to_owned(),
        sha256: ContentHash::of(bytes),
        size: bytes.len() as u64,
        content_type: content_type.to_owned(),
        encodings: Vec::new(),
    }
}

#[tokio::test]
async fn a_nested_site_is_published_with_its_manifest_blobs_log_and_events() {
    let services = services(Config::default()).await;
    let site = nested_site();
    let uploaded = upload(&services, &site).await;
    let id = uploaded.id;
    let mut events = services.broadcast.subscribe();

    assert_eq!(build_next(&services).await, Outcome::Ready);

    let ready = deployment(&services, &id).await;
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert_eq!(ready.error, None);
    assert_eq!(ready.attempt, 1);
    assert_eq!(ready.lease_owner, None);
    assert!(ready.ready_at.is_some());
    let total: usize = site.iter().map(|(_, bytes)| bytes.len()).sum();
    assert_eq!(ready.file_count, site.len() as i64);
    assert_eq!(ready.total_bytes, total as i64);

    let css = "text/css; charset=utf-8";
    let html = "text/html; charset=utf-8";
    let mut expected = vec![
        entry("index.html", site[0].1, html),
        entry("css/site.css", site[1].1, css),
        entry("docs/guide/intro.html", site[2].1, html),
        entry("img/logo.png", site[3].1, "image/png"),
        entry("notes.txt", site[4].1, "text/plain; charset=utf-8"),
        entry(
            "download/data.weird-ext",
            site[5].1,
            "application/octet-stream",
        ),
        entry("css/copy-of-site.css", site[6].1, css),
    ];
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(services.repository.list_files(&id).await.unwrap(), expected);

    for (path, bytes) in &site {
        let key = ContentHash::of(bytes).blob_key();
        let stored = services
            .storage
            .get_range(&key, 0..bytes.len() as u64)
            .await
            .unwrap_or_else(|err| panic!("blob of {path} at {key}: {err}"));
        assert_eq!(stored, Bytes::from_static(bytes), "blob of {path}");
    }
    // Two files share their bytes, so storage holds one blob fewer than there are files.
    assert_eq!(blob_keys(&services).await.len(), site.len() - 1);
    assert_eq!(
        services.storage.head(&uploaded.source_key).await.unwrap(),
        None,
        "the uploaded source is kept after the build"
    );
    assert!(log_contains(&services, &id, "preset: static").await);
    assert_eq!(depth(&services).await, (0, 0, 0), "the job was not acked");

    match received(&mut events).as_slice() {
        [
            Event::BuildStarted {
                deployment_id: started,
                attempt: 1,
                preset: strategy,
                ..
            },
            Event::BuildCompleted {
                deployment_id: completed,
                attempt: 1,
                preset: completed_preset,
                files,
                bytes,
                new_blobs,
                ..
            },
            Event::DeploymentReady {
                deployment_id: live,
            },
        ] => {
            assert_eq!([*started, *completed, *live], [id; 3]);
            assert_eq!(strategy, "static");
            assert_eq!(completed_preset, "static");
            assert_eq!(*files, site.len() as u64);
            assert_eq!(*bytes, total as u64);
            assert_eq!(*new_blobs, site.len() as u64 - 1);
        }
        other => panic!("unexpected events: {other:#?}"),
    }

    match resolve(services.repository.as_ref(), &id, "docs/guide/intro.html").await {
        Ok(Resolved::File { file, .. }) => assert_eq!(file.sha256, ContentHash::of(site[2].1)),
        other => panic!("the published site does not serve its files: {other:?}"),
    }
}

#[tokio::test]
async fn identical_files_of_two_deployments_are_stored_once() {
    let services = services(Config::default()).await;
    let site = nested_site();
    let first = deploy(&services, &site).await;
    let stored = blob_keys(&services).await;

    let mut events = services.broadcast.subscribe();
    let second = deploy(&services, &site).await;

    let new_blobs = received(&mut events)
        .into_iter()
        .find_map(|event| match event {
            Event::BuildCompleted { new_blobs, .. } => Some(new_blobs),
            _ => None,
        });
    assert_eq!(new_blobs, Some(0));
    assert_eq!(blob_keys(&services).await, stored);
    assert_eq!(
        services.repository.list_files(&second).await.unwrap(),
        services.repository.list_files(&first).await.unwrap()
    );
}

#[tokio::test]
async fn a_single_top_level_folder_is_stripped() {
    let services = services(Config::default()).await;
    let id = deploy(
        &services,
        &[("site/index.html", b"home"), ("site/css/a.css", b"a {}")],
    )
    .await;

    let paths: Vec<String> = services
        .repository
        .list_files(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|file| file.path)
        .collect();
    assert_eq!(paths, ["css/a.css", "index.html"]);
}

#[tokio::test]
async fn output_with_a_symbolic_link_is_refused_and_nothing_is_published() {
    let strategy = Scripted::new(Script::SymlinkOutput);
    let services = services_with(Config::default(), strategy).await;
    let uploaded = upload(&services, &[("index.html", b"home")]).await;
    let id = uploaded.id;
    let mut events = services.broadcast.subscribe();

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    let error = failed.error.expect("an error");
    assert_eq!(error.code, "unsafe_output");
    assert!(error.message.contains("symbolic link"), "{}", error.message);
    assert!(error.message.contains("leak"), "{}", error.message);
    assert!(log_contains(&services, &id, &error.message).await);
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
    assert_eq!(blob_keys(&services).await, Vec::<String>::new());
    assert_eq!(
        services.storage.head(&uploaded.source_key).await.unwrap(),
        None
    );
    assert_eq!(depth(&services).await, (0, 0, 0));
    assert!(
        received(&mut events).iter().any(|event| matches!(
            event,
            Event::BuildFailed { code, attempt: 1, .. } if code == "unsafe_output"
        )),
        "no BuildFailed event"
    );
}

/// Build with `script`, whose output must be refused as `unsafe_output` with a message that
/// contains `why`, leaving nothing published.
async fn assert_output_refused(script: Script, why: &str) {
    let services = services_with(Config::default(), Scripted::new(script)).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    let error = failed.error.expect("an error");
    assert_eq!(error.code, "unsafe_output");
    assert!(error.message.contains(why), "{}", error.message);
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
    assert_eq!(blob_keys(&services).await, Vec::<String>::new());
}

#[tokio::test]
async fn output_with_a_hard_link_is_refused() {
    assert_output_refused(Script::HardLinkOutput, "hard link").await;
}

#[tokio::test]
async fn output_with_a_socket_is_refused() {
    assert_output_refused(Script::SocketOutput, "special file").await;
}

#[tokio::test]
async fn an_output_folder_that_is_a_symbolic_link_is_refused() {
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("secret.txt"), "host file").unwrap();
    let script = Script::LinkedOutputDir(elsewhere.path().to_path_buf());

    assert_output_refused(script, "symbolic link").await;
}

#[tokio::test]
async fn a_failing_user_build_ends_in_error_with_its_code_and_output() {
    let strategy = Scripted::new(Script::UserError);
    let services = services_with(Config::default(), strategy).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    let error = failed.error.expect("an error");
    assert_eq!(error.code, "build_failed");
    assert_eq!(error.message, "the build command exited with status 1");
    assert!(log_contains(&services, &id, "cannot find module 'left-pad'").await);
    assert!(log_contains(&services, &id, "exited with status 1").await);
    assert_eq!(depth(&services).await, (0, 0, 0), "a user error is retried");
}

#[tokio::test]
async fn a_build_without_output_ends_in_empty_output() {
    let strategy = Scripted::new(Script::EmptyOutput);
    let services = services_with(Config::default(), strategy).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.error.expect("an error").code, "empty_output");
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
}

#[tokio::test]
async fn a_build_past_its_timeout_ends_in_build_timeout() {
    let config = Config {
        build_timeout_secs: 1,
        ..Config::default()
    };
    let services = services_with(config, Scripted::new(Script::Hang)).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.error.expect("an error").code, "build_timeout");
    assert!(log_contains(&services, &id, "did not finish within 1 seconds").await);
}

#[tokio::test]
async fn a_duplicate_delivery_changes_nothing() {
    let services = services(Config::default()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    services
        .queue
        .enqueue(&Job { deployment_id: id })
        .await
        .unwrap();
    let first = reserve(&services).await;
    let second = reserve(&services).await;
    assert_eq!(first.job, second.job);

    assert_eq!(process(&services, &first).await, Outcome::Ready);
    let ready = deployment(&services, &id).await;
    let manifest = services.repository.list_files(&id).await.unwrap();
    let mut events = services.broadcast.subscribe();

    assert_eq!(process(&services, &second).await, Outcome::Skipped);

    assert_eq!(deployment(&services, &id).await, ready);
    assert_eq!(ready.attempt, 1);
    assert_eq!(services.repository.list_files(&id).await.unwrap(), manifest);
    assert_eq!(received(&mut events), []);
    assert_eq!(
        depth(&services).await,
        (0, 0, 0),
        "the duplicate was not acked"
    );
}

#[tokio::test]
async fn a_deployment_deleted_while_queued_is_never_built() {
    let services = services(Config::default()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    deployments::delete(&services, &id, None).await.unwrap();
    let mut events = services.broadcast.subscribe();

    assert_eq!(build_next(&services).await, Outcome::Skipped);

    let deleted = deployment(&services, &id).await;
    assert_eq!(deleted.status, DeploymentStatus::Canceled);
    assert_eq!(deleted.attempt, 0);
    assert_eq!(received(&mut events), []);
    assert_eq!(depth(&services).await, (0, 0, 0));
}

#[tokio::test]
async fn a_stop_hands_the_build_back_and_it_is_built_again() {
    let strategy = Scripted::new(Script::UntilCanceled);
    let services = services_with(Config::default(), strategy.clone()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    let delivery = reserve(&services).await;
    let stop = CancellationToken::new();
    let running = tokio::spawn({
        let pipeline = Pipeline::new(services.clone(), "w1");
        let stop = stop.clone();
        async move { pipeline.process(&delivery, &stop).await }
    });

    strategy.started().await;
    assert_eq!(
        deployment(&services, &id).await.status,
        DeploymentStatus::Building
    );
    stop.cancel();
    let outcome = tokio::time::timeout(DEADLINE, running).await;

    assert_eq!(outcome.unwrap().unwrap(), Outcome::Requeued);
    let handed_back = deployment(&services, &id).await;
    assert_eq!(handed_back.status, DeploymentStatus::Queued);
    assert_eq!(handed_back.lease_owner, None);
    assert!(log_contains(&services, &id, "handed back").await);
    assert_eq!(depth(&services).await, (1, 0, 0));

    // Another worker, with the ordinary strategies, picks it up at once and finishes it.
    let mut other = services.clone();
    other.strategies = Arc::new(StrategyRegistry::new());
    let again = reserve(&other).await;
    assert_eq!(
        again.deliveries, 1,
        "a hand-back must not count towards dead-lettering"
    );
    assert_eq!(process(&other, &again).await, Outcome::Ready);
    let ready = deployment(&services, &id).await;
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert_eq!(ready.attempt, 2);
}

#[tokio::test]
async fn a_deployment_deleted_while_building_is_fenced_out_by_the_heartbeat() {
    // A one-second lease makes the heartbeat check the claim every third of a second.
    let config = Config {
        lease_secs: 1,
        ..Config::default()
    };
    let strategy = Scripted::new(Script::UntilCanceled);
    let RunningBuild {
        services,
        id,
        running,
        ..
    } = start_build(config, &strategy).await;
    deployments::delete(&services, &id, None).await.unwrap();
    let outcome = tokio::time::timeout(DEADLINE, running).await;

    assert_eq!(outcome.unwrap().unwrap(), Outcome::Canceled);
    let deleted = deployment(&services, &id).await;
    assert_eq!(deleted.status, DeploymentStatus::Canceled);
    assert!(deleted.deleted_at.is_some());
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
    assert_eq!(
        depth(&services).await,
        (0, 0, 0),
        "a deleted build is retried"
    );
}

#[tokio::test]
async fn a_build_that_finishes_after_its_deployment_was_deleted_publishes_nothing() {
    // The default 30 s lease: no heartbeat runs before the zombie reaches the publish step,
    // so it is the publish transaction's fence that stops it.
    let strategy = Scripted::new(Script::UntilReleased);
    let RunningBuild {
        services,
        id,
        mut events,
        running,
    } = start_build(Config::default(), &strategy).await;
    deployments::delete(&services, &id, None).await.unwrap();
    strategy.release();
    let outcome = tokio::time::timeout(DEADLINE, running).await;

    assert_eq!(outcome.unwrap().unwrap(), Outcome::Canceled);
    let deleted = deployment(&services, &id).await;
    assert_eq!(deleted.status, DeploymentStatus::Canceled);
    assert_eq!(deleted.ready_at, None);
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
    assert!(matches!(
        resolve(services.repository.as_ref(), &id, "").await,
        Err(SiteError::Deleted)
    ));
    assert!(
        !received(&mut events)
            .iter()
            .any(|event| matches!(event, Event::DeploymentReady { .. })),
        "a deleted deployment was announced ready"
    );
    assert_eq!(depth(&services).await, (0, 0, 0));
}

#[tokio::test]
async fn a_platform_failure_is_retried_then_fails_on_the_last_delivery() {
    let config = Config {
        max_deliveries: 2,
        ..Config::default()
    };
    let services = services_with(config, Scripted::new(Script::Unavailable)).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    let mut events = services.broadcast.subscribe();

    assert_eq!(build_next(&services).await, Outcome::Retrying);

    let retrying = deployment(&services, &id).await;
    assert_eq!(retrying.status, DeploymentStatus::Queued);
    assert_eq!(retrying.error, None);
    assert_eq!(retrying.lease_owner, None);
    assert!(log_contains(&services, &id, "will be retried").await);
    assert_eq!(depth(&services).await, (1, 0, 0));
    let now = services
        .queue
        .reserve("t", services.config.lease(), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(now, None, "a retry came back without a backoff");

    let last = services
        .queue
        .reserve("t", services.config.lease(), DEADLINE)
        .await
        .unwrap()
        .expect("the job never came back");
    assert_eq!(last.deliveries, 2);
    assert_eq!(process(&services, &last).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.attempt, 2);
    let error = failed.error.expect("an error");
    assert_eq!(error.code, "internal_error");
    assert!(
        error.message.contains("after 2 attempts"),
        "{}",
        error.message
    );
    assert!(log_contains(&services, &id, "repeatedly").await);
    assert_eq!(depth(&services).await, (0, 0, 0));
    let failures: Vec<Event> = received(&mut events)
        .into_iter()
        .filter(|event| matches!(event, Event::BuildFailed { .. }))
        .collect();
    assert!(
        matches!(failures.as_slice(), [Event::BuildFailed { code, attempt: 2, .. }] if code == "internal_error"),
        "{failures:#?}"
    );
}

#[tokio::test]
async fn a_full_disk_ends_the_deployment_at_once_with_that_reason() {
    let services = services_with(Config::default(), Scripted::new(Script::DiskFull)).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.attempt, 1, "a full disk is not retried");
    let error = failed.error.expect("an error");
    assert_eq!(error.code, "insufficient_storage");
    assert!(error.message.contains("disk space"), "{}", error.message);
    assert_eq!(depth(&services).await, (0, 0, 0));
}

#[tokio::test]
async fn a_corrupt_source_ends_in_archive_invalid() {
    let services = services(Config::default()).await;
    let uploaded = upload(&services, &[("index.html", b"home")]).await;
    services
        .storage
        .put(
            &uploaded.source_key,
            Bytes::from_static(b"this is not a zip archive"),
        )
        .await
        .unwrap();

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &uploaded.id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.error.expect("an error").code, "archive_invalid");
}

#[tokio::test]
async fn a_missing_source_ends_in_source_missing() {
    let services = services(Config::default()).await;
    let uploaded = upload(&services, &[("index.html", b"home")]).await;
    services.storage.delete(&uploaded.source_key).await.unwrap();

    assert_eq!(build_next(&services).await, Outcome::Failed);

    let failed = deployment(&services, &uploaded.id).await;
    assert_eq!(failed.status, DeploymentStatus::Error);
    assert_eq!(failed.error.expect("an error").code, "source_missing");
}

#[tokio::test]
async fn a_build_canceled_while_running_stops_within_about_a_second_and_records_nothing_more() {
    // The default 30 s lease: only the status check every second can notice the cancel.
    let strategy = Scripted::new(Script::UntilCanceled);
    let RunningBuild {
        services,
        id,
        mut events,
        running,
    } = start_build(Config::default(), &strategy).await;
    let canceled_at = std::time::Instant::now();
    let canceled = deployments::cancel(&services, &id, None).await.unwrap();
    assert_eq!(canceled.status, DeploymentStatus::Canceled);
    let outcome = tokio::time::timeout(DEADLINE, running).await;

    assert_eq!(outcome.unwrap().unwrap(), Outcome::Canceled);
    assert!(
        canceled_at.elapsed() < Duration::from_secs(5),
        "the cancel took {:?} to stop the build",
        canceled_at.elapsed()
    );
    let after = deployment(&services, &id).await;
    assert_eq!(after.status, DeploymentStatus::Canceled);
    assert_eq!(after.error, None, "a canceled build recorded an error");
    assert_eq!(after.deleted_at, None);
    assert_eq!(services.repository.list_files(&id).await.unwrap(), []);
    assert!(log_contains(&services, &id, "build canceled").await);
    assert_eq!(
        depth(&services).await,
        (0, 0, 0),
        "a canceled build was requeued"
    );
    let received = received(&mut events);
    assert!(
        received.iter().any(|event| matches!(
            event,
            Event::DeploymentCanceled {
                previous_status: DeploymentStatus::Building,
                ..
            }
        )),
        "no DeploymentCanceled event: {received:?}"
    );
    assert!(
        !received.iter().any(|event| matches!(
            event,
            Event::BuildFailed { .. } | Event::DeploymentReady { .. }
        )),
        "a canceled build was announced failed or ready: {received:?}"
    );
}

#[tokio::test]
async fn a_deployment_canceled_while_queued_is_never_built() {
    let services = services(Config::default()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    deployments::cancel(&services, &id, None).await.unwrap();

    assert_eq!(build_next(&services).await, Outcome::Skipped);
    let canceled = deployment(&services, &id).await;
    assert_eq!(canceled.status, DeploymentStatus::Canceled);
    assert_eq!(canceled.attempt, 0);
    assert!(
        deploystack_core::services::reconciler::reconcile(
            &services,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            100
        )
        .await
        .unwrap()
            == 0,
        "the reconciler enqueued a canceled deployment"
    );
    let again = deployments::cancel(&services, &id, None).await;
    assert!(matches!(
        again,
        Err(deploystack_core::repository::RepositoryError::Final(
            DeploymentStatus::Canceled
        ))
    ));
}

#[tokio::test]
async fn log_lines_are_stored_while_the_build_runs() {
    let strategy = Scripted::new(Script::UntilCanceled);
    let RunningBuild {
        services,
        id,
        running,
        ..
    } = start_build(Config::default(), &strategy).await;
    // The strategy waits for its cancel; the lines written before it must show up meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !log_contains(&services, &id, "preset: scripted").await {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line was stored while the build ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    deployments::cancel(&services, &id, None).await.unwrap();
    let outcome = tokio::time::timeout(DEADLINE, running).await;
    assert_eq!(outcome.unwrap().unwrap(), Outcome::Canceled);
}

#[tokio::test]
async fn the_build_gets_the_deployments_settings_and_variables() {
    use deploystack_core::model::{BuildSettings, EnvVar};
    use deploystack_core::services::ingest::{UploadOptions, accept_upload};
    use std::io::Write;

    let strategy = Arc::new(Recording::default());
    let services = services_with(Config::default(), strategy.clone()).await;
    let settings = BuildSettings {
        build_command: Some("make site".into()),
        output_directory: Some("public".into()),
        ..Default::default()
    };
    let env = vec![EnvVar {
        name: "TOKEN".into(),
        value: "s3cr3t".into(),
        sensitive: true,
    }];
    let mut archive = tempfile::NamedTempFile::new().unwrap();
    archive
        .write_all(&crate::support::zip_bytes(&[("index.html", b"home")]))
        .unwrap();
    let uploaded = accept_upload(
        &services,
        archive.path(),
        UploadOptions {
            settings: settings.clone(),
            env: env.clone(),
            ..UploadOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(uploaded.settings, settings);

    let mut events = services.broadcast.subscribe();
    assert_eq!(build_next(&services).await, Outcome::Ready);
    let seen = strategy.seen.lock().unwrap().clone();
    assert_eq!(seen, Some((settings, env)));
    let received = received(&mut events);
    assert!(
        received.iter().any(|event| matches!(
            event,
            Event::BuildStarted { preset, .. } if preset == "recording"
        )),
        "{received:?}"
    );
    assert!(
        received.iter().any(|event| matches!(
            event,
            Event::BuildCompleted { preset, .. } if preset == "recording"
        )),
        "{received:?}"
    );
}

/// Publishes the source as it is and remembers the settings and variables it was given.
#[derive(Debug, Default)]
struct Recording {
    seen: std::sync::Mutex<
        Option<(
            deploystack_core::model::BuildSettings,
            Vec<deploystack_core::model::EnvVar>,
        )>,
    >,
}

#[async_trait::async_trait]
impl deploystack_core::build::BuildStrategy for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn detect(
        &self,
        _source: &deploystack_core::build::SourceTree,
    ) -> Result<Option<deploystack_core::build::Detection>, deploystack_core::build::BuildError>
    {
        Ok(Some(deploystack_core::build::Detection {
            strategy: "recording".into(),
            reason: "the test records what the build is given".into(),
        }))
    }

    async fn build(
        &self,
        ctx: &deploystack_core::build::BuildContext,
    ) -> Result<deploystack_core::build::BuildOutput, deploystack_core::build::BuildError> {
        *self.seen.lock().unwrap() = Some((ctx.settings.clone(), ctx.env.clone()));
        Ok(deploystack_core::build::BuildOutput {
            dir: ctx.source.root().to_path_buf(),
        })
    }
}
