//! The pool end to end: it builds what is queued, drains on shutdown within the grace period
//! or hands running builds back, and at start enqueues what the queue lost.

use std::time::Duration;

use deploystack_core::Config;
use deploystack_core::model::{DeploymentId, DeploymentStatus, NewDeployment, Target};
use deploystack_core::services::ingest::source_key;

use crate::support::{
    Pool, Script, Scripted, deployment, depth, log_contains, services, services_with, temp_file,
    upload, wait_for_status, zip_bytes,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_builds_every_queued_deployment_and_stops_when_told() {
    let services = services(Config::default()).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let page = format!("<h1>site {n}</h1>");
        ids.push(
            upload(&services, &[("index.html", page.as_bytes())])
                .await
                .id,
        );
    }

    let pool = Pool::start(&services, 2);
    for id in &ids {
        wait_for_status(&services, id, DeploymentStatus::Ready).await;
    }
    pool.shut_down().await;

    for id in &ids {
        let ready = deployment(&services, id).await;
        assert_eq!(ready.status, DeploymentStatus::Ready);
        // Extra deliveries (the start-up reconciliation re-enqueues what is queued) never
        // build a deployment twice.
        assert_eq!(ready.attempt, 1, "{id} was built more than once");
        assert_eq!(ready.file_count, 1);
    }
    assert_eq!(depth(&services).await.in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_running_build_finish_within_the_grace_period() {
    let config = Config {
        shutdown_grace_secs: 10,
        ..Config::default()
    };
    let strategy = Scripted::new(Script::Sleep(Duration::from_secs(1)));
    let services = services_with(config, strategy.clone()).await;
    let pool = Pool::start(&services, 1);
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    strategy.started().await;
    assert_eq!(
        deployment(&services, &id).await.status,
        DeploymentStatus::Building
    );
    pool.shut_down().await;

    let done = deployment(&services, &id).await;
    assert_eq!(done.status, DeploymentStatus::Ready);
    assert_eq!(done.attempt, 1);
    assert!(!log_contains(&services, &id, "handed back").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_past_the_grace_period_hands_the_build_back() {
    let config = Config {
        shutdown_grace_secs: 0,
        ..Config::default()
    };
    let strategy = Scripted::new(Script::UntilCanceled);
    let services = services_with(config, strategy.clone()).await;
    let pool = Pool::start(&services, 1);
    let id = upload(&services, &[("index.html", b"home")]).await.id;

    strategy.started().await;
    pool.shut_down().await;

    let handed_back = deployment(&services, &id).await;
    assert_eq!(handed_back.status, DeploymentStatus::Queued);
    assert_eq!(handed_back.lease_owner, None);
    assert!(log_contains(&services, &id, "handed back").await);
    let queue = depth(&services).await;
    assert!(
        queue.waiting >= 1,
        "the job is not back in the queue: {queue:?}"
    );
    assert_eq!(queue.in_flight, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_pool_builds_queued_deployments_the_queue_never_held() {
    let services = services(Config::default()).await;
    // What a restart leaves behind with an in-memory queue: a recorded upload, no job.
    let id = DeploymentId::random();
    let key = source_key(&id);
    let archive = temp_file(&zip_bytes(&[("index.html", b"survived a restart")]));
    services
        .storage
        .put_file(&key, archive.path())
        .await
        .unwrap();
    services
        .repository
        .create_deployment(&NewDeployment {
            id,
            project: None,
            target: Target::Preview,
            source_key: key,
            source_files: Vec::new(),
            settings: Default::default(),
            env: Vec::new(),
            created_by: None,
        })
        .await
        .unwrap();
    assert_eq!(depth(&services).await.waiting, 0);

    let pool = Pool::start(&services, 1);
    wait_for_status(&services, &id, DeploymentStatus::Ready).await;
    pool.shut_down().await;

    let ready = deployment(&services, &id).await;
    assert_eq!(ready.file_count, 1);
    assert_eq!(
        services
            .repository
            .find_file(&id, "index.html")
            .await
            .unwrap()
            .map(|file| file.size),
        Some(b"survived a restart".len() as u64)
    );
}
