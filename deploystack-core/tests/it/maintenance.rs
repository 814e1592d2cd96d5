//! The loops that keep the platform honest: the reconciler enqueues what the queue lost, and
//! the collector removes blobs nothing references any more.

use std::time::{Duration, Instant};

use deploystack_core::Config;
use deploystack_core::model::{ContentHash, DeploymentStatus};
use deploystack_core::services::deployments::{collect_garbage, delete};
use deploystack_core::services::pipeline::Outcome;
use deploystack_core::services::reconciler::reconcile;
use deploystack_core::services::serving::{Resolved, resolve};
use time::OffsetDateTime;

use crate::support::{
    DEADLINE, blob_keys, build_next, deploy, deployment, depth, process, reserve, services, upload,
};

fn in_a_second() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(1)
}

#[tokio::test]
async fn the_reconciler_enqueues_a_deployment_whose_job_was_lost() {
    let services = services(Config::default()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    let lost = reserve(&services).await;
    services.queue.ack(&lost).await.unwrap();
    assert_eq!(depth(&services).await, (0, 0, 0));

    assert_eq!(reconcile(&services, in_a_second(), 100).await.unwrap(), 1);

    assert_eq!(depth(&services).await, (1, 0, 0));
    assert_eq!(build_next(&services).await, Outcome::Ready);
    assert_eq!(
        deployment(&services, &id).await.status,
        DeploymentStatus::Ready
    );
    assert_eq!(
        reconcile(&services, in_a_second(), 100).await.unwrap(),
        0,
        "a ready deployment was enqueued again"
    );
}

#[tokio::test]
async fn the_reconciler_takes_back_a_build_whose_worker_died() {
    let services = services(Config::default()).await;
    let id = upload(&services, &[("index.html", b"home")]).await.id;
    // A worker claims the deployment with a lease that runs out at once, and dies with its
    // job: nothing will renew the lease or hand the job back.
    let lost = reserve(&services).await;
    services.queue.ack(&lost).await.unwrap();
    let claim = services
        .repository
        .claim_deployment(&id, "crashed", Duration::ZERO)
        .await
        .unwrap()
        .expect("a claim");
    assert_eq!(claim.attempt, 1);

    // The repository's clock has millisecond steps: poll until the lease is past.
    let give_up = Instant::now() + DEADLINE;
    while reconcile(&services, OffsetDateTime::now_utc(), 100)
        .await
        .unwrap()
        == 0
    {
        assert!(
            Instant::now() < give_up,
            "the expired lease was never found"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    assert_eq!(build_next(&services).await, Outcome::Ready);
    let ready = deployment(&services, &id).await;
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert_eq!(ready.attempt, 2);
}

#[tokio::test]
async fn the_collector_removes_exactly_the_blobs_of_deleted_deployments() {
    let config = Config {
        blob_grace_secs: 0,
        ..Config::default()
    };
    let services = services(config).await;
    let (x, y, z): (&[u8], &[u8], &[u8]) = (b"only in a", b"in both", b"only in b");
    let a = deploy(&services, &[("x.txt", x), ("y.txt", y)]).await;
    let b = deploy(&services, &[("y.txt", y), ("z.txt", z)]).await;
    delete(&services, &a, None).await.unwrap();
    // The collector spares blobs used within the grace period, compared in whole
    // milliseconds; make sure the last use lies in the past.
    tokio::time::sleep(Duration::from_millis(5)).await;

    assert_eq!(collect_garbage(&services, 100).await.unwrap(), 1);

    let mut kept = vec![ContentHash::of(y).blob_key(), ContentHash::of(z).blob_key()];
    kept.sort();
    assert_eq!(blob_keys(&services).await, kept);
    match resolve(services.repository.as_ref(), &b, "y.txt").await {
        Ok(Resolved::File { file, .. }) => assert_eq!(file.sha256, ContentHash::of(y)),
        other => panic!("the surviving deployment lost a file: {other:?}"),
    }
    assert_eq!(
        collect_garbage(&services, 100).await.unwrap(),
        0,
        "a second pass found more to collect"
    );
}

#[tokio::test]
async fn the_collector_spares_unreferenced_blobs_within_the_grace_period() {
    let services = services(Config::default()).await;
    let a = deploy(&services, &[("x.txt", b"x")]).await;
    delete(&services, &a, None).await.unwrap();

    assert_eq!(collect_garbage(&services, 100).await.unwrap(), 0);

    assert_eq!(
        blob_keys(&services).await,
        [ContentHash::of(b"x").blob_key()]
    );
}

#[tokio::test]
async fn a_build_that_needs_a_blob_being_collected_retries_and_stores_it_again() {
    let config = Config {
        blob_grace_secs: 0,
        ..Config::default()
    };
    let services = services(config).await;
    let x: &[u8] = b"shared by a deleted and a new deployment";
    let a = deploy(&services, &[("x.txt", x)]).await;
    delete(&services, &a, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // A collector claims the blob; it has not deleted the object yet.
    let claimed = services
        .repository
        .claim_unreferenced_blobs(OffsetDateTime::now_utc(), 100)
        .await
        .unwrap();
    assert_eq!(claimed, [ContentHash::of(x)]);

    let b = upload(&services, &[("x.txt", x)]).await.id;
    assert_eq!(build_next(&services).await, Outcome::Retrying);
    assert_eq!(
        deployment(&services, &b).await.status,
        DeploymentStatus::Queued
    );

    // The collector finishes its pass; then the build comes back.
    let key = ContentHash::of(x).blob_key();
    services.storage.delete(&key).await.unwrap();
    services.repository.forget_blobs(&claimed).await.unwrap();
    let retry = services
        .queue
        .reserve("t", services.config.lease(), DEADLINE)
        .await
        .unwrap()
        .expect("the build never came back");
    assert_eq!(process(&services, &retry).await, Outcome::Ready);

    assert!(services.storage.head(&key).await.unwrap().is_some());
    match resolve(services.repository.as_ref(), &b, "x.txt").await {
        Ok(Resolved::File { file, .. }) => assert_eq!(file.sha256, ContentHash::of(x)),
        other => panic!("the new deployment does not serve its file: {other:?}"),
    }
}
