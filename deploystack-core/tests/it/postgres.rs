//! `PostgresRepository` against a real server (`DATABASE_URL`; skipped without it, required
//! under `CI=true`): the conformance suite, and what only a database shared by several
//! processes can get wrong — migrations racing at start-up, claims racing from separate
//! pools, a takeover fencing out a stale worker — plus an unreachable server, and the
//! pipeline run by two nodes that share one database.
//!
//! Every test works in its own fresh database and drops it at the end; a separate connection
//! pool stands for each process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deploystack_core::model::{BlobRef, ContentHash, DeploymentId, DeploymentStatus};
use deploystack_core::queue::{MemoryQueue, Queue};
use deploystack_core::repository::prelude::*;
use deploystack_core::repository::{PostgresRepository, PublishedBuild, RepositoryError};
use deploystack_core::services::deployments::{collect_garbage, delete};
use deploystack_core::services::pipeline::Outcome;
use deploystack_core::services::reconciler::reconcile;
use deploystack_core::services::serving::{Resolved, resolve};
use deploystack_core::storage::{ObjectStoreStorage, Storage};
use deploystack_core::testing::env;
use deploystack_core::testing::repository::{file, new_deployment, run_all};
use deploystack_core::{Config, Services};
use time::OffsetDateTime;
use tokio::sync::Barrier;

use crate::support::{DEADLINE, blob_keys, build_next, deployment, log_contains, process, upload};

const LONG_LEASE: Duration = Duration::from_secs(60);

async fn connect(url: &str) -> PostgresRepository {
    PostgresRepository::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Claim `id`, retrying until the lease another worker holds has run out.
async fn claim_when_expired(repo: &dyn Repository, id: &DeploymentId, worker: &str) -> i64 {
    let give_up = Instant::now() + DEADLINE;
    loop {
        if let Some(claim) = repo.claim_deployment(id, worker, LONG_LEASE).await.unwrap() {
            return claim.attempt;
        }
        assert!(Instant::now() < give_up, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn build(content: &str) -> PublishedBuild {
    PublishedBuild {
        log: Vec::new(),
        strategy: "static".into(),
        files: vec![file("index.html", content)],
        routing: None,
    }
}

#[tokio::test]
async fn a_fresh_database_passes_the_conformance_suite() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let repo = connect(&url).await;
    run_all(&repo).await;
    // The suite leaves data behind; it must pass again on a database in use.
    run_all(&repo).await;
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_connects_to_a_new_database_all_succeed_and_migrate_once() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    for round in 0..3 {
        let url = env::fresh_postgres_database(&admin).await;
        let start = Arc::new(Barrier::new(8));
        let connects: Vec<_> = (0..8)
            .map(|_| {
                let (url, start) = (url.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    PostgresRepository::connect(&url).await
                })
            })
            .collect();
        let mut repos = Vec::new();
        for connect in connects {
            let repo = connect.await.unwrap();
            repos.push(repo.unwrap_or_else(|e| panic!("round {round}: connect: {e}")));
        }

        // Without the migrator's lock, the losers would fail creating tables that exist, or
        // record the migration twice.
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            applied,
            [
                (1, true),
                (2, true),
                (3, true),
                (4, true),
                (5, true),
                (6, true),
                (7, true),
                (8, true),
                (9, true),
                (10, true),
                (11, true),
                (12, true),
                (13, true)
            ],
            "round {round}"
        );
        let _ = sqlx::Connection::close(conn).await;

        let d = repos[0].create_deployment(&new_deployment()).await.unwrap();
        for repo in &repos[1..] {
            assert_eq!(repo.get_deployment(&d.id).await.unwrap(), d);
        }
        // Reopening an up-to-date database applies nothing and fails nothing.
        connect(&url).await;
        drop(repos);
        env::drop_postgres_database(&admin, &url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_racing_from_separate_pools_have_exactly_one_winner() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let mut repos = Vec::new();
    for _ in 0..6 {
        repos.push(Arc::new(connect(&url).await));
    }
    for round in 0..5 {
        let id = repos[0]
            .create_deployment(&new_deployment())
            .await
            .unwrap()
            .id;
        let workers = repos.len() * 2;
        let start = Arc::new(Barrier::new(workers));
        let claims: Vec<_> = (0..workers)
            .map(|i| {
                let (repo, start) = (repos[i % repos.len()].clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let worker = format!("worker-{i}");
                    let claim = repo.claim_deployment(&id, &worker, LONG_LEASE).await;
                    (worker, claim)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for claim in claims {
            let (worker, claim) = claim.await.unwrap();
            let claim = claim.unwrap_or_else(|e| panic!("a claim failed: {e}"));
            if claim.is_some() {
                winners.push(worker);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let claimed = repos[1].get_deployment(&id).await.unwrap();
        assert_eq!(claimed.attempt, 1, "round {round}: attempts were spent");
        assert_eq!(claimed.lease_owner.as_ref(), winners.first());
    }
    drop(repos);
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test]
async fn a_stale_attempt_cannot_publish_after_another_worker_claimed_the_expired_lease() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let (zombie, worker) = (connect(&url).await, connect(&url).await);

    let id = zombie
        .create_deployment(&new_deployment())
        .await
        .unwrap()
        .id;
    let stale = zombie
        .claim_deployment(&id, "zombie", Duration::from_millis(1))
        .await
        .unwrap()
        .expect("a queued deployment is claimable")
        .attempt;
    let current = claim_when_expired(&worker, &id, "worker").await;
    assert_eq!(current, stale + 1);

    let published = zombie.publish(&id, stale, &build("zombie")).await;
    assert!(
        matches!(published, Err(RepositoryError::LeaseLost)),
        "{published:?}"
    );
    let renewed = zombie.renew_lease(&id, stale, LONG_LEASE).await;
    assert!(
        matches!(renewed, Err(RepositoryError::LeaseLost)),
        "{renewed:?}"
    );
    assert!(worker.list_files(&id).await.unwrap().is_empty());

    let ready = worker
        .publish(&id, current, &build("worker"))
        .await
        .unwrap();
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert_eq!(
        zombie.list_files(&id).await.unwrap(),
        build("worker").files,
        "the worker's manifest is what is served"
    );
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_racing_a_takeover_leaves_exactly_one_of_them_in_effect() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let (old, new) = (Arc::new(connect(&url).await), Arc::new(connect(&url).await));
    let mut outcomes = [0usize; 2];
    for round in 0..20 {
        let id = old.create_deployment(&new_deployment()).await.unwrap().id;
        let attempt = old
            .claim_deployment(&id, "old", Duration::ZERO)
            .await
            .unwrap()
            .expect("a queued deployment is claimable")
            .attempt;
        // The lease has run out: the old worker may still publish until someone takes over.
        let start = Arc::new(Barrier::new(2));
        let publish = tokio::spawn({
            let (old, start) = (old.clone(), start.clone());
            async move {
                start.wait().await;
                old.publish(&id, attempt, &build("old")).await
            }
        });
        let takeover = tokio::spawn({
            let (new, start) = (new.clone(), start.clone());
            async move {
                start.wait().await;
                new.claim_deployment(&id, "new", LONG_LEASE).await
            }
        });
        let published = publish.await.unwrap();
        let taken = takeover.await.unwrap().unwrap();
        let now = new.get_deployment(&id).await.unwrap();
        let files = new.list_files(&id).await.unwrap();
        match (&published, &taken) {
            (Ok(_), None) => {
                outcomes[0] += 1;
                assert_eq!(now.status, DeploymentStatus::Ready, "round {round}");
                assert_eq!(files, build("old").files, "round {round}");
            }
            (Err(RepositoryError::LeaseLost), Some(claim)) => {
                outcomes[1] += 1;
                assert_eq!(claim.attempt, attempt + 1, "round {round}");
                assert_eq!(now.status, DeploymentStatus::Building, "round {round}");
                assert!(
                    files.is_empty(),
                    "round {round}: the stale publish wrote files"
                );
            }
            other => panic!("round {round}: both or neither took effect: {other:?}"),
        }
    }
    eprintln!(
        "old worker published {} times, new worker took over {} times",
        outcomes[0], outcomes[1]
    );
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collection_racing_a_publish_never_claims_a_blob_it_references() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let (builder, collector) = (Arc::new(connect(&url).await), Arc::new(connect(&url).await));
    let mut outcomes = [0usize; 2];
    for round in 0..40 {
        let shared = file("shared.txt", &format!("shared {round} {url}"));
        builder
            .touch_blobs(&[BlobRef {
                sha256: shared.sha256,
                size: shared.size,
            }])
            .await
            .unwrap();
        let id = builder
            .create_deployment(&new_deployment())
            .await
            .unwrap()
            .id;
        let attempt = builder
            .claim_deployment(&id, "builder", LONG_LEASE)
            .await
            .unwrap()
            .expect("a queued deployment is claimable")
            .attempt;
        let manifest = PublishedBuild {
            log: Vec::new(),
            strategy: "static".into(),
            files: vec![shared.clone()],
            routing: None,
        };
        // A cutoff in the future makes every unreferenced blob old enough: only the protocol,
        // not the grace period, may keep the blob from being collected under the publish.
        let cutoff = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        let start = Arc::new(Barrier::new(2));
        let publish = tokio::spawn({
            let (builder, start) = (builder.clone(), start.clone());
            async move {
                start.wait().await;
                builder.publish(&id, attempt, &manifest).await
            }
        });
        let collect = tokio::spawn({
            let (collector, start) = (collector.clone(), start.clone());
            async move {
                start.wait().await;
                // A publish takes several round trips: land the claim at different points.
                tokio::time::sleep(Duration::from_micros(100 * (round % 20))).await;
                collector.claim_unreferenced_blobs(cutoff, 1000).await
            }
        });
        let published = publish.await.unwrap();
        let claimed = collect.await.unwrap().unwrap();
        let collected = claimed.contains(&shared.sha256);
        match &published {
            Ok(_) if !collected => outcomes[0] += 1,
            Err(RepositoryError::BlobBusy(hash)) if collected && *hash == shared.sha256 => {
                outcomes[1] += 1;
                assert!(builder.list_files(&id).await.unwrap().is_empty());
            }
            other => panic!("round {round}: published {other:?}, collected: {collected}"),
        }
        collector.forget_blobs(&claimed).await.unwrap();
    }
    eprintln!(
        "published first {} times, collected first {} times",
        outcomes[0], outcomes[1]
    );
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_quickly_and_says_where() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://deploy:hunter2@127.0.0.1:{port}/deploystack");
    let result = tokio::time::timeout(DEADLINE, PostgresRepository::connect(&url))
        .await
        .expect("connecting to a closed port hangs");
    let Err(RepositoryError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(
        message.contains(&format!("127.0.0.1:{port}/deploystack")),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );

    let invalid = PostgresRepository::connect("postgres://[not a host").await;
    assert!(
        matches!(&invalid, Err(RepositoryError::Unavailable(m)) if m.contains("invalid PostgreSQL URL")),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn services_open_postgres_from_a_database_url() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    for scheme_url in [url.clone(), url.replacen("postgres://", "postgresql://", 1)] {
        let services = Services::from_config(Config {
            database_url: Some(scheme_url.clone()),
            queue_url: Some("memory://".into()),
            storage_url: Some("memory://".into()),
            // A shared database needs the key given explicitly.
            secret_key: Some(
                deploystack_core::secrets::SecretKey::generate()
                    .to_base64()
                    .into(),
            ),
            ..Config::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{scheme_url}: {e}"));
        let d = services
            .repository
            .create_deployment(&new_deployment())
            .await
            .unwrap();
        assert_eq!(connect(&url).await.get_deployment(&d.id).await.unwrap(), d);
    }
    env::drop_postgres_database(&admin, &url).await;
}

/// Two nodes of a cluster: each with its own connection pool to the database, sharing the
/// storage and the queue.
async fn two_nodes(url: &str, config: Config) -> (Services, Services) {
    let storage: Arc<dyn Storage> = Arc::new(ObjectStoreStorage::memory());
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(config.max_deliveries));
    let node = |repo: PostgresRepository| {
        Services::new(
            config.clone(),
            Arc::new(repo),
            storage.clone(),
            queue.clone(),
        )
    };
    (node(connect(url).await), node(connect(url).await))
}

#[tokio::test]
async fn an_upload_on_one_node_is_built_by_another_and_served_by_both() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let (a, b) = two_nodes(&url, Config::default()).await;
    let site: [(&str, &[u8]); 3] = [
        ("index.html", b"<h1>Home</h1>"),
        ("css/site.css", b"body { color: #333 }"),
        ("css/copy.css", b"body { color: #333 }"),
    ];

    let id = upload(&a, &site).await.id;
    assert_eq!(build_next(&b).await, Outcome::Ready);

    let ready = deployment(&a, &id).await;
    assert_eq!(ready.status, DeploymentStatus::Ready);
    assert_eq!(ready.file_count, 3);
    assert!(log_contains(&a, &id, "preset: static").await);
    for node in [&a, &b] {
        match resolve(node.repository.as_ref(), &id, "css/copy.css").await {
            Ok(Resolved::File { file, .. }) => assert_eq!(file.sha256, ContentHash::of(site[2].1)),
            other => panic!("the published site is not served: {other:?}"),
        }
    }
    // Identical bytes are stored once.
    assert_eq!(blob_keys(&a).await.len(), 2);
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test]
async fn a_build_whose_worker_died_is_taken_back_by_another_node() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let (a, b) = two_nodes(&url, Config::default()).await;
    let id = upload(&a, &[("index.html", b"home")]).await.id;
    // A worker on node a claims with a lease that runs out at once, and dies with its job.
    let lost = a
        .queue
        .reserve("crashed", a.config.lease(), Duration::ZERO)
        .await
        .unwrap()
        .expect("a job");
    a.queue.ack(&lost).await.unwrap();
    a.repository
        .claim_deployment(&id, "crashed", Duration::ZERO)
        .await
        .unwrap()
        .expect("a claim");

    // Node b's reconciler sees the lease expired by the database's clock.
    let give_up = Instant::now() + DEADLINE;
    while reconcile(&b, OffsetDateTime::now_utc(), 100).await.unwrap() == 0 {
        assert!(
            Instant::now() < give_up,
            "the expired lease was never found"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(build_next(&b).await, Outcome::Ready);
    let ready = deployment(&a, &id).await;
    assert_eq!((ready.status, ready.attempt), (DeploymentStatus::Ready, 2));
    env::drop_postgres_database(&admin, &url).await;
}

#[tokio::test]
async fn a_build_on_one_node_waits_out_a_collection_on_another() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let config = Config {
        blob_grace_secs: 0,
        ..Config::default()
    };
    let (a, b) = two_nodes(&url, config).await;
    let x: &[u8] = b"shared by a deleted and a new deployment";
    let old = upload(&a, &[("x.txt", x)]).await.id;
    assert_eq!(build_next(&a).await, Outcome::Ready);
    delete(&a, &old, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Node a's collector claims the blob and has not deleted the object yet.
    let claimed = a
        .repository
        .claim_unreferenced_blobs(OffsetDateTime::now_utc(), 100)
        .await
        .unwrap();
    assert_eq!(claimed, [ContentHash::of(x)]);

    let new = upload(&b, &[("x.txt", x)]).await.id;
    assert_eq!(build_next(&b).await, Outcome::Retrying);
    assert_eq!(deployment(&b, &new).await.status, DeploymentStatus::Queued);

    // The collection finishes; the retried build stores the blob again.
    a.storage
        .delete(&ContentHash::of(x).blob_key())
        .await
        .unwrap();
    a.repository.forget_blobs(&claimed).await.unwrap();
    let retry = b
        .queue
        .reserve("t", b.config.lease(), DEADLINE)
        .await
        .unwrap()
        .expect("the build never came back");
    assert_eq!(process(&b, &retry).await, Outcome::Ready);
    assert_eq!(blob_keys(&a).await, [ContentHash::of(x).blob_key()]);
    assert_eq!(
        collect_garbage(&a, 100).await.unwrap(),
        0,
        "a referenced blob was collected"
    );
    env::drop_postgres_database(&admin, &url).await;
}

/// No value reaches a PostgreSQL row in plaintext: project variables of every type and an
/// upload's variables are all stored sealed, and still open for the build.
#[tokio::test]
async fn postgres_rows_hold_no_environment_value_in_plaintext() {
    use deploystack_core::model::{EnvTarget, EnvVarType, NewProject, Target};
    use deploystack_core::services::env as project_env;
    use deploystack_core::services::ingest::{UploadOptions, accept_upload};

    let Some(admin) = env::postgres_url() else {
        return;
    };
    let url = env::fresh_postgres_database(&admin).await;
    let services = Services::from_config(Config {
        database_url: Some(url.clone()),
        queue_url: Some("memory://".into()),
        storage_url: Some("memory://".into()),
        secret_key: Some(
            deploystack_core::secrets::SecretKey::generate()
                .to_base64()
                .into(),
        ),
        ..Config::default()
    })
    .await
    .unwrap();
    let name: deploystack_core::model::ProjectName = "pgsealed".parse().unwrap();
    deploystack_core::services::projects::create(
        &services,
        NewProject {
            name: name.clone(),
            build_settings: Default::default(),
            retention: Default::default(),
        },
        None,
    )
    .await
    .unwrap();
    let unique = env::unique_name("pgplain");
    let secrets: Vec<String> = (0..5).map(|n| format!("{unique}-{n}")).collect();
    for (n, kind) in [
        EnvVarType::Plain,
        EnvVarType::Encrypted,
        EnvVarType::Sensitive,
    ]
    .into_iter()
    .enumerate()
    {
        project_env::create(
            &services,
            &name,
            project_env::DesiredEnvVar {
                key: format!("V{n}"),
                value: secrets[n].clone(),
                targets: vec![EnvTarget::Production],
                kind,
            },
            None,
        )
        .await
        .unwrap();
    }
    let mut archive = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut archive,
        &deploystack_core::testing::fixtures::zip_bytes(&[("index.html", b"<p>x</p>")]),
    )
    .unwrap();
    let deployment = accept_upload(
        &services,
        archive.path(),
        UploadOptions {
            project: Some(name.clone()),
            target: Target::Production,
            env: vec![
                deploystack_core::model::EnvVar {
                    name: "UPLOAD_A".into(),
                    value: secrets[3].clone(),
                    sensitive: false,
                },
                deploystack_core::model::EnvVar {
                    name: "UPLOAD_B".into(),
                    value: secrets[4].clone(),
                    sensitive: true,
                },
            ],
            ..UploadOptions::default()
        },
    )
    .await
    .unwrap();

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT value FROM env_vars UNION ALL SELECT build_env FROM deployments")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (text,) in &rows {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a row holds {secret}: {text}"
            );
        }
    }
    let stored = services
        .repository
        .get_deployment(&deployment.id)
        .await
        .unwrap();
    let opened = project_env::for_build(&services, &stored).await.unwrap();
    let values: Vec<&str> = opened.iter().map(|v| v.value.as_str()).collect();
    assert_eq!(
        values,
        secrets.iter().map(String::as_str).collect::<Vec<_>>()
    );
    drop(conn);
    env::drop_postgres_database(&admin, &url).await;
}
