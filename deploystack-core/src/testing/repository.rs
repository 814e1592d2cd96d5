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
mod projects;
mod tokens;

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::model::{
    BlobRef, BuildSettings, ContentHash, Deployment, DeploymentError, DeploymentId,
    DeploymentStatus, EncodedVariant, Encoding, EnvVar, FileEntry, LogLine, LogStream,
    NewDeployment, PageRequest, Target,
};
use crate::repository::{Claim, PublishedBuild, Repository, RepositoryError};

pub use domains::*;
pub use env::*;
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

/// A cancel ends a `QUEUED` or `BUILDING` deployment in `CANCELED`, fences out the canceled
/// attempt (publish, fail, renew and release answer `LeaseLost` and change nothing), is never
/// claimed or reconciled again, and is refused with `Final` for final and deleted ones.
pub async fn cancel_stops_queued_and_building_and_refuses_final(repo: &dyn Repository) {
    let queued = create(repo).await.id;
    let canceled = repo
        .cancel_deployment(&queued)
        .await
        .expect("cancel of a QUEUED deployment failed");
    assert_eq!(
        canceled.status,
        DeploymentStatus::Canceled,
        "QUEUED not canceled"
    );
    assert_eq!(canceled.deleted_at, None, "a cancel deleted the deployment");
    assert_eq!(
        get(repo, &queued).await,
        canceled,
        "get differs after cancel"
    );
    let claim_after = repo
        .claim_deployment(&queued, "worker", LONG_LEASE)
        .await
        .expect("claim failed");
    assert!(claim_after.is_none(), "a canceled deployment was claimed");

    let building = create(repo).await.id;
    let attempt = claim(repo, &building, "worker", LONG_LEASE).await.attempt;
    let canceled = repo
        .cancel_deployment(&building)
        .await
        .expect("cancel of a BUILDING deployment failed");
    assert_eq!(
        canceled.status,
        DeploymentStatus::Canceled,
        "BUILDING not canceled"
    );
    assert_eq!(canceled.lease_owner, None, "lease owner kept after cancel");
    assert_eq!(canceled.lease_expires_at, None, "lease kept after cancel");
    let files = [file("index.html", &format!("canceled {building}"))];
    touch(repo, &files).await;
    let published = repo
        .publish(&building, attempt, &published_build(&files))
        .await;
    assert!(
        is_lease_lost(&published),
        "publish after cancel: {published:?}"
    );
    assert!(
        list_files(repo, &building).await.is_empty(),
        "publish after cancel wrote files"
    );
    let failed = repo
        .fail_deployment(&building, attempt, &build_error())
        .await;
    assert!(is_lease_lost(&failed), "fail after cancel: {failed:?}");
    let renewed = repo.renew_lease(&building, attempt, LONG_LEASE).await;
    assert!(is_lease_lost(&renewed), "renew after cancel: {renewed:?}");
    let released = repo.release_claim(&building, attempt).await;
    assert!(
        is_lease_lost(&released),
        "release after cancel: {released:?}"
    );
    let after = get(repo, &building).await;
    assert_eq!(
        after.status,
        DeploymentStatus::Canceled,
        "the fenced calls changed it"
    );
    assert_eq!(after.error, None, "a fenced fail recorded its error");

    let again = repo.cancel_deployment(&building).await;
    assert!(
        matches!(
            again,
            Err(RepositoryError::Final(DeploymentStatus::Canceled))
        ),
        "a second cancel: {again:?}"
    );
    let ready = create(repo).await.id;
    let attempt = claim(repo, &ready, "worker", LONG_LEASE).await.attempt;
    publish(repo, &ready, attempt, &[]).await;
    let refused = repo.cancel_deployment(&ready).await;
    assert!(
        matches!(
            refused,
            Err(RepositoryError::Final(DeploymentStatus::Ready))
        ),
        "cancel of a READY deployment: {refused:?}"
    );
    assert_eq!(
        get(repo, &ready).await.status,
        DeploymentStatus::Ready,
        "READY changed"
    );
    let errored = create(repo).await.id;
    let attempt = claim(repo, &errored, "worker", LONG_LEASE).await.attempt;
    repo.fail_deployment(&errored, attempt, &build_error())
        .await
        .expect("fail_deployment failed");
    let refused = repo.cancel_deployment(&errored).await;
    assert!(
        matches!(
            refused,
            Err(RepositoryError::Final(DeploymentStatus::Error))
        ),
        "cancel of an ERROR deployment: {refused:?}"
    );
    let deleted = create(repo).await.id;
    repo.delete_deployment(&deleted)
        .await
        .expect("delete_deployment failed");
    let refused = repo.cancel_deployment(&deleted).await;
    assert!(
        matches!(refused, Err(RepositoryError::Final(_))),
        "cancel of a deleted deployment: {refused:?}"
    );
    let missing = repo.cancel_deployment(&DeploymentId::random()).await;
    assert!(
        is_not_found(&missing),
        "cancel of an unknown id: {missing:?}"
    );

    // Canceled ones are never handed to the reconciler, however old.
    pause().await;
    let stalled = repo
        .stalled_deployments(OffsetDateTime::now_utc(), 100_000)
        .await
        .expect("stalled_deployments failed");
    assert!(
        !stalled.contains(&queued) && !stalled.contains(&building),
        "a canceled deployment is stalled"
    );
}

/// `logs_after` returns the lines stored after a sequence number, in order and with
/// increasing numbers, only of its own deployment, at most `limit` at a time.
pub async fn logs_after_returns_only_newer_lines(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let other = create(repo).await.id;
    let at = now_ms();
    let line = |message: &str| LogLine {
        attempt: 1,
        at,
        stream: LogStream::Stdout,
        message: message.to_owned(),
    };
    assert!(
        repo.logs_after(&id, 0, 100)
            .await
            .expect("logs_after failed")
            .is_empty(),
        "a new deployment has lines"
    );
    repo.append_log(&id, &[line("one"), line("two")])
        .await
        .expect("append_log failed");
    repo.append_log(&other, &[line("elsewhere")])
        .await
        .expect("append_log failed");
    let first = repo
        .logs_after(&id, 0, 100)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = first.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["one", "two"], "logs_after from the start");
    assert!(
        first[0].seq > 0 && first[0].seq < first[1].seq,
        "sequence numbers do not increase"
    );
    assert_eq!(first[0].line, line("one"), "the line did not round-trip");

    let last = first[1].seq;
    assert!(
        repo.logs_after(&id, last, 100)
            .await
            .expect("logs_after failed")
            .is_empty(),
        "lines after the last one"
    );
    repo.append_log(&id, &[line("three"), line("four"), line("five")])
        .await
        .expect("append_log failed");
    let next = repo
        .logs_after(&id, last, 2)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = next.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["three", "four"], "logs_after with a limit");
    assert!(next[0].seq > last, "a new line numbered before an old one");
    let rest = repo
        .logs_after(&id, next[1].seq, 100)
        .await
        .expect("logs_after failed");
    let messages: Vec<&str> = rest.iter().map(|l| l.line.message.as_str()).collect();
    assert_eq!(messages, ["five"], "the rest after a limited read");
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

/// A claim takes a `QUEUED` deployment to `BUILDING` under a lease with attempt 1, records
/// the owner and refuses a second claim while that lease is live.
pub async fn claim_is_a_compare_and_set(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let before = OffsetDateTime::now_utc();
    let claim = claim(repo, &id, "worker-1", LONG_LEASE).await;
    assert_eq!(claim.attempt, 1, "first claim is not attempt 1");
    let d = &claim.deployment;
    assert_eq!(
        d.attempt, 1,
        "claimed deployment's attempt differs from the claim's"
    );
    assert_eq!(
        d.status,
        DeploymentStatus::Building,
        "claimed deployment not BUILDING"
    );
    assert_eq!(
        d.lease_owner.as_deref(),
        Some("worker-1"),
        "lease owner not recorded"
    );
    let expires = d
        .lease_expires_at
        .expect("claimed deployment has no lease expiry");
    assert!(
        expires > before + Duration::from_secs(50),
        "a 60 s lease expires at {expires}, claimed at {before}"
    );

    let second = repo
        .claim_deployment(&id, "worker-2", LONG_LEASE)
        .await
        .expect("second claim failed");
    assert!(
        second.is_none(),
        "a live lease was claimed twice: {second:?}"
    );
    let now = get(repo, &id).await;
    assert_eq!(
        now, claim.deployment,
        "a refused claim changed the deployment"
    );

    repo.renew_lease(&id, 1, LONG_LEASE)
        .await
        .expect("renewing the current attempt failed");
}

/// Once a lease runs out, another worker can claim the deployment, with the next attempt.
pub async fn expired_lease_can_be_claimed_again(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let first = claim(repo, &id, "worker-1", SHORT_LEASE).await;
    pause().await;
    let second = claim(repo, &id, "worker-2", LONG_LEASE).await;
    assert_eq!(
        second.attempt,
        first.attempt + 1,
        "a takeover does not bump the attempt"
    );
    assert_eq!(
        second.deployment.lease_owner.as_deref(),
        Some("worker-2"),
        "the takeover did not record the new owner"
    );
    assert_eq!(
        get(repo, &id).await.attempt,
        second.attempt,
        "stored attempt is stale"
    );
}

/// `READY`, `ERROR` and deleted deployments, and unknown ids, have nothing to claim.
pub async fn final_deleted_and_unknown_deployments_are_not_claimed(repo: &dyn Repository) {
    let ready = create(repo).await.id;
    let attempt = claim(repo, &ready, "w", LONG_LEASE).await.attempt;
    publish(repo, &ready, attempt, &[]).await;

    let failed = create(repo).await.id;
    let attempt = claim(repo, &failed, "w", LONG_LEASE).await.attempt;
    repo.fail_deployment(&failed, attempt, &build_error())
        .await
        .expect("fail_deployment failed");

    let deleted = create(repo).await.id;
    repo.delete_deployment(&deleted)
        .await
        .expect("delete_deployment failed");

    for (what, id) in [
        ("READY", ready),
        ("ERROR", failed),
        ("deleted", deleted),
        ("unknown", DeploymentId::random()),
    ] {
        let claim = repo
            .claim_deployment(&id, "late-worker", LONG_LEASE)
            .await
            .unwrap_or_else(|e| panic!("claim of a {what} deployment failed: {e}"));
        assert!(
            claim.is_none(),
            "a {what} deployment was claimed: {claim:?}"
        );
    }
    assert_eq!(get(repo, &ready).await.status, DeploymentStatus::Ready);
    assert_eq!(get(repo, &failed).await.status, DeploymentStatus::Error);
}

/// The log lines given to `publish` are stored with the status change: they are there as
/// soon as the deployment reads `READY`, after the lines appended before, and a publish that
/// is fenced out stores none of them.
pub async fn publish_stores_its_log_lines_with_the_status(repo: &dyn Repository) {
    let line = |attempt, message: &str| LogLine {
        attempt,
        at: OffsetDateTime::now_utc(),
        stream: LogStream::System,
        message: message.to_owned(),
    };
    let id = create(repo).await.id;
    let stale = claim(repo, &id, "zombie", SHORT_LEASE).await.attempt;
    pause().await;
    let current = claim(repo, &id, "worker", LONG_LEASE).await.attempt;
    let files = [file("index.html", &format!("logged {id}"))];
    touch(repo, &files).await;
    repo.append_log(&id, &[line(current, "building")])
        .await
        .expect("append_log");

    let fenced = PublishedBuild {
        log: vec![line(stale, "published by the zombie")],
        ..published_build(&files)
    };
    let result = repo.publish(&id, stale, &fenced).await;
    assert!(is_lease_lost(&result), "a stale publish: {result:?}");

    let build = PublishedBuild {
        log: vec![line(current, "published 1 file")],
        ..published_build(&files)
    };
    let published = repo.publish(&id, current, &build).await.expect("publish");
    assert_eq!(published.status, DeploymentStatus::Ready);
    let messages: Vec<String> = repo
        .logs(&id)
        .await
        .expect("logs")
        .into_iter()
        .map(|l| l.message)
        .collect();
    assert_eq!(messages, ["building", "published 1 file"]);
}

/// After a takeover, every call with the old attempt is `LeaseLost` and changes nothing;
/// calls on an unknown id are `NotFound`.
pub async fn stale_attempts_are_fenced_out(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let stale = claim(repo, &id, "zombie", SHORT_LEASE).await.attempt;
    pause().await;
    let current = claim(repo, &id, "worker", LONG_LEASE).await;
    let files = [file("index.html", &format!("zombie {id}"))];

    let renew = repo.renew_lease(&id, stale, LONG_LEASE).await;
    assert!(
        is_lease_lost(&renew),
        "renew_lease with a stale attempt: {renew:?}"
    );
    let release = repo.release_claim(&id, stale).await;
    assert!(
        is_lease_lost(&release),
        "release_claim with a stale attempt: {release:?}"
    );
    let fail = repo.fail_deployment(&id, stale, &build_error()).await;
    assert!(
        is_lease_lost(&fail),
        "fail_deployment with a stale attempt: {fail:?}"
    );
    let published = repo.publish(&id, stale, &published_build(&files)).await;
    assert!(
        is_lease_lost(&published),
        "publish with a stale attempt: {published:?}"
    );
    let future = repo.renew_lease(&id, current.attempt + 1, LONG_LEASE).await;
    assert!(
        is_lease_lost(&future),
        "renew_lease with a future attempt: {future:?}"
    );

    assert_eq!(
        get(repo, &id).await,
        current.deployment,
        "a fenced-out call changed the deployment"
    );
    assert!(
        list_files(repo, &id).await.is_empty(),
        "a fenced-out publish wrote files"
    );

    let unknown = DeploymentId::random();
    let renew = repo.renew_lease(&unknown, 1, LONG_LEASE).await;
    assert!(
        is_not_found(&renew),
        "renew_lease of an unknown id: {renew:?}"
    );
    let release = repo.release_claim(&unknown, 1).await;
    assert!(
        is_not_found(&release),
        "release_claim of an unknown id: {release:?}"
    );
    let fail = repo.fail_deployment(&unknown, 1, &build_error()).await;
    assert!(
        is_not_found(&fail),
        "fail_deployment of an unknown id: {fail:?}"
    );
    let published = repo.publish(&unknown, 1, &published_build(&files)).await;
    assert!(
        is_not_found(&published),
        "publish of an unknown id: {published:?}"
    );
}

/// `publish` writes the manifest, the counts and `READY` together, and clears the lease;
/// afterwards the attempt is spent.
pub async fn publish_writes_the_manifest_atomically(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let claim = claim(repo, &id, "worker", LONG_LEASE).await;
    let shared = format!("shared {id}");
    let files = [
        file("index.html", &format!("<h1>{id}</h1>")),
        file("css/site.css", &shared),
        file("assets/copy.css", &shared),
        file("empty.txt", ""),
    ];
    touch(repo, &files).await;

    let ready = repo
        .publish(&id, claim.attempt, &published_build(&files))
        .await
        .expect("publish failed");
    assert_eq!(
        ready.status,
        DeploymentStatus::Ready,
        "published deployment not READY"
    );
    assert_eq!(ready.attempt, claim.attempt, "publish changed the attempt");
    assert_eq!(ready.file_count, 4, "file_count");
    let total: u64 = files.iter().map(|f| f.size).sum();
    assert_eq!(
        u64::try_from(ready.total_bytes).ok(),
        Some(total),
        "total_bytes"
    );
    assert!(ready.ready_at.is_some(), "ready_at not set");
    assert_eq!(ready.lease_owner, None, "lease owner kept after publish");
    assert_eq!(ready.lease_expires_at, None, "lease kept after publish");
    assert_eq!(ready.error, None, "publish set an error");
    assert_eq!(
        get(repo, &id).await,
        ready,
        "get differs from what publish returned"
    );

    for f in &files {
        let found = repo
            .find_file(&id, &f.path)
            .await
            .expect("find_file failed");
        assert_eq!(found.as_ref(), Some(f), "find_file({:?})", f.path);
    }
    let absent = repo
        .find_file(&id, "missing.html")
        .await
        .expect("find_file failed");
    assert_eq!(absent, None, "find_file of a path not in the manifest");
    let mut by_path = files.to_vec();
    by_path.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(
        list_files(repo, &id).await,
        by_path,
        "list_files is not the manifest by path"
    );

    let again = repo
        .publish(&id, claim.attempt, &published_build(&files[..1]))
        .await;
    assert!(
        is_lease_lost(&again),
        "publishing a READY deployment again: {again:?}"
    );
    let renew = repo.renew_lease(&id, claim.attempt, LONG_LEASE).await;
    assert!(is_lease_lost(&renew), "renewing after publish: {renew:?}");
    assert_eq!(
        list_files(repo, &id).await.len(),
        4,
        "a refused publish changed the manifest"
    );
}

/// `fail_deployment` sets `ERROR` with the code and message and clears the lease.
pub async fn fail_records_the_error(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let claim = claim(repo, &id, "worker", LONG_LEASE).await;
    let error = build_error();
    let failed = repo
        .fail_deployment(&id, claim.attempt, &error)
        .await
        .expect("fail_deployment failed");
    assert_eq!(
        failed.status,
        DeploymentStatus::Error,
        "failed deployment not ERROR"
    );
    assert_eq!(failed.error.as_ref(), Some(&error), "error not recorded");
    assert_eq!(failed.lease_owner, None, "lease owner kept after failure");
    assert_eq!(failed.lease_expires_at, None, "lease kept after failure");
    assert_eq!(failed.ready_at, None, "a failed deployment is ready");
    assert_eq!(
        get(repo, &id).await,
        failed,
        "get differs from what fail returned"
    );

    let again = repo.fail_deployment(&id, claim.attempt, &error).await;
    assert!(
        is_lease_lost(&again),
        "failing an ERROR deployment again: {again:?}"
    );
}

/// `release_claim` puts the deployment back to `QUEUED` at once, claimable with the next
/// attempt.
pub async fn release_makes_the_deployment_claimable_again(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let first = claim(repo, &id, "worker-1", LONG_LEASE).await;
    repo.release_claim(&id, first.attempt)
        .await
        .expect("release_claim failed");
    let released = get(repo, &id).await;
    assert_eq!(
        released.status,
        DeploymentStatus::Queued,
        "released deployment not QUEUED"
    );
    assert_eq!(released.lease_owner, None, "lease owner kept after release");
    assert_eq!(released.lease_expires_at, None, "lease kept after release");

    let second = claim(repo, &id, "worker-2", LONG_LEASE).await;
    assert_eq!(second.attempt, first.attempt + 1, "re-claim after release");
    let stale = repo.release_claim(&id, first.attempt).await;
    assert!(
        is_lease_lost(&stale),
        "releasing a spent attempt: {stale:?}"
    );
}

/// Deleting hides a deployment from serving (manifest gone), cancels one in progress so its
/// worker can publish nothing, is idempotent, and keeps the row readable.
pub async fn delete_hides_cancels_and_fences(repo: &dyn Repository) {
    // A READY one: it stays READY, but its manifest goes.
    let ready = create(repo).await.id;
    let attempt = claim(repo, &ready, "worker", LONG_LEASE).await.attempt;
    let files = [file("index.html", &format!("deleted {ready}"))];
    publish(repo, &ready, attempt, &files).await;
    let deleted = repo
        .delete_deployment(&ready)
        .await
        .expect("delete_deployment failed");
    assert!(deleted.deleted_at.is_some(), "deleted_at not set");
    assert_eq!(
        deleted.status,
        DeploymentStatus::Ready,
        "delete changed a final status"
    );
    assert_eq!(
        get(repo, &ready).await,
        deleted,
        "get of a deleted deployment differs"
    );
    assert!(
        list_files(repo, &ready).await.is_empty(),
        "manifest kept after delete"
    );
    let found = repo
        .find_file(&ready, "index.html")
        .await
        .expect("find_file failed");
    assert_eq!(found, None, "a deleted deployment's file is still found");

    let again = repo
        .delete_deployment(&ready)
        .await
        .expect("deleting twice failed");
    assert_eq!(again, deleted, "a second delete changed the deployment");

    // A BUILDING one: canceled, and its worker is fenced out.
    let building = create(repo).await.id;
    let attempt = claim(repo, &building, "worker", LONG_LEASE).await.attempt;
    let canceled = repo
        .delete_deployment(&building)
        .await
        .expect("delete_deployment failed");
    assert_eq!(
        canceled.status,
        DeploymentStatus::Canceled,
        "deleted BUILDING not CANCELED"
    );
    assert_eq!(canceled.lease_owner, None, "lease owner kept after delete");
    assert_eq!(canceled.lease_expires_at, None, "lease kept after delete");
    let published = repo
        .publish(&building, attempt, &published_build(&files))
        .await;
    assert!(
        is_lease_lost(&published),
        "publish after delete: {published:?}"
    );
    assert!(
        list_files(repo, &building).await.is_empty(),
        "publish after delete wrote files"
    );
    let renew = repo.renew_lease(&building, attempt, LONG_LEASE).await;
    assert!(is_lease_lost(&renew), "renew after delete: {renew:?}");

    // A QUEUED one: canceled too.
    let queued = create(repo).await.id;
    let canceled = repo
        .delete_deployment(&queued)
        .await
        .expect("delete_deployment failed");
    assert_eq!(
        canceled.status,
        DeploymentStatus::Canceled,
        "deleted QUEUED not CANCELED"
    );

    let missing = repo.delete_deployment(&DeploymentId::random()).await;
    assert!(
        is_not_found(&missing),
        "delete of an unknown id: {missing:?}"
    );
}

/// Log lines come back in the order they were appended, across batches and attempts.
pub async fn logs_keep_append_order_across_attempts(repo: &dyn Repository) {
    let id = create(repo).await.id;
    let other = create(repo).await.id;
    let at = now_ms();
    let line = |attempt, stream, message: &str| LogLine {
        attempt,
        at,
        stream,
        message: message.to_owned(),
    };
    let first = [
        line(1, LogStream::System, "detected a static site"),
        line(1, LogStream::Stdout, "building"),
        line(1, LogStream::Stderr, "warning: something"),
    ];
    let second = [
        line(2, LogStream::System, "retrying"),
        line(2, LogStream::Stdout, ""),
        line(2, LogStream::Stdout, "done ✓"),
    ];
    repo.append_log(&id, &first)
        .await
        .expect("append_log failed");
    repo.append_log(&other, &[line(1, LogStream::Stdout, "elsewhere")])
        .await
        .expect("append_log failed");
    repo.append_log(&id, &[])
        .await
        .expect("appending no lines failed");
    repo.append_log(&id, &second)
        .await
        .expect("append_log failed");

    let logs = repo.logs(&id).await.expect("logs failed");
    let expected: Vec<LogLine> = first.iter().chain(&second).cloned().collect();
    assert_eq!(logs, expected, "logs are not the appended lines in order");
    let fresh = create(repo).await.id;
    assert!(
        repo.logs(&fresh).await.expect("logs failed").is_empty(),
        "a new deployment has log lines"
    );
}

/// The garbage-collection protocol: only old, unreferenced blobs are claimed; a claimed blob
/// cannot be touched or published until forgotten; stale claims are handed out again.
pub async fn blob_collection_protocol(repo: &dyn Repository) {
    let tag = DeploymentId::random();
    let unused = file("unused.txt", &format!("unused {tag}"));
    let referenced = file("referenced.txt", &format!("referenced {tag}"));
    let fresh = file("fresh.txt", &format!("fresh {tag}"));
    touch(repo, &[unused.clone(), referenced.clone()]).await;
    let owner = create(repo).await.id;
    let attempt = claim(repo, &owner, "worker", LONG_LEASE).await.attempt;
    publish(repo, &owner, attempt, std::slice::from_ref(&referenced)).await;

    pause().await;
    let cutoff = OffsetDateTime::now_utc();
    pause().await;
    touch(repo, std::slice::from_ref(&fresh)).await;

    let claimed = collect(repo, cutoff).await;
    assert!(
        claimed.contains(&unused.sha256),
        "an old unreferenced blob was not claimed"
    );
    assert!(
        !claimed.contains(&fresh.sha256),
        "a recently used blob was claimed"
    );
    assert!(
        !claimed.contains(&referenced.sha256),
        "a referenced blob was claimed"
    );
    let twice = collect(repo, cutoff).await;
    assert!(
        !twice.contains(&unused.sha256),
        "a fresh claim was handed out twice"
    );

    let busy = repo.touch_blobs(&[blob(&fresh), blob(&unused)]).await;
    assert!(
        matches!(busy, Err(RepositoryError::BlobBusy(h)) if h == unused.sha256),
        "touching a blob being collected: expected BlobBusy, got {busy:?}"
    );
    let late = create(repo).await.id;
    let late_attempt = claim(repo, &late, "worker", LONG_LEASE).await.attempt;
    let published = repo
        .publish(
            &late,
            late_attempt,
            &published_build(std::slice::from_ref(&unused)),
        )
        .await;
    assert!(
        matches!(published, Err(RepositoryError::BlobBusy(h)) if h == unused.sha256),
        "publishing a blob being collected: expected BlobBusy, got {published:?}"
    );
    assert!(
        list_files(repo, &late).await.is_empty(),
        "a refused publish wrote files"
    );
    assert_eq!(
        get(repo, &late).await.status,
        DeploymentStatus::Building,
        "a refused publish changed the status"
    );

    // A collector that crashed leaves its claim; once older than the cutoff it is retried.
    pause().await;
    let retry_cutoff = OffsetDateTime::now_utc();
    let retried = collect(repo, retry_cutoff).await;
    assert!(
        retried.contains(&unused.sha256),
        "a stale claim was not handed out again"
    );
    assert!(
        !retried.contains(&referenced.sha256),
        "a referenced blob was claimed"
    );

    repo.forget_blobs(&retried)
        .await
        .expect("forget_blobs failed");
    touch(repo, std::slice::from_ref(&unused)).await;
    let after = collect(repo, retry_cutoff).await;
    assert!(
        !after.contains(&unused.sha256),
        "a blob forgotten then touched again was claimed"
    );

    // Deleting the last deployment that references a blob makes it collectable.
    repo.delete_deployment(&owner)
        .await
        .expect("delete_deployment failed");
    pause().await;
    let orphaned = collect(repo, OffsetDateTime::now_utc()).await;
    assert!(
        orphaned.contains(&referenced.sha256),
        "a blob no deployment references any more was not claimed"
    );
    repo.forget_blobs(&orphaned)
        .await
        .expect("forget_blobs failed");
    repo.forget_blobs(&[])
        .await
        .expect("forgetting nothing failed");
    repo.touch_blobs(&[])
        .await
        .expect("touching nothing failed");
}

/// The reconciler's view: `QUEUED` since before the cutoff, or `BUILDING` with an expired
/// lease; not fresh, live-leased, final or deleted ones.
pub async fn stalled_deployments_are_found(repo: &dyn Repository) {
    let old_queued = create(repo).await.id;
    let deleted = create(repo).await.id;
    let ready = create(repo).await.id;
    let attempt = claim(repo, &ready, "worker", LONG_LEASE).await.attempt;
    publish(repo, &ready, attempt, &[]).await;
    pause().await;
    let cutoff = OffsetDateTime::now_utc();
    pause().await;
    repo.delete_deployment(&deleted)
        .await
        .expect("delete_deployment failed");
    let new_queued = create(repo).await.id;
    let expired = create(repo).await.id;
    claim(repo, &expired, "worker", SHORT_LEASE).await;
    let live = create(repo).await.id;
    claim(repo, &live, "worker", LONG_LEASE).await;
    pause().await;

    let stalled = repo
        .stalled_deployments(cutoff, 100_000)
        .await
        .expect("stalled_deployments failed");
    assert!(
        stalled.contains(&old_queued),
        "an old QUEUED deployment is not stalled"
    );
    assert!(
        stalled.contains(&expired),
        "a BUILDING one with an expired lease is not stalled"
    );
    assert!(
        !stalled.contains(&new_queued),
        "a fresh QUEUED deployment is stalled"
    );
    assert!(
        !stalled.contains(&live),
        "a BUILDING one with a live lease is stalled"
    );
    assert!(
        !stalled.contains(&deleted),
        "a deleted deployment is stalled"
    );
    assert!(!stalled.contains(&ready), "a READY deployment is stalled");

    let limited = repo
        .stalled_deployments(cutoff, 1)
        .await
        .expect("stalled_deployments failed");
    assert_eq!(limited.len(), 1, "the limit is not applied");
}

/// A fresh preview deployment of the `conformance` project.
pub fn new_deployment() -> NewDeployment {
    let id = DeploymentId::random();
    NewDeployment {
        id,
        project: "conformance".parse().ok(),
        target: Target::Preview,
        source_key: format!("sources/{id}.zip"),
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

/// Precompressed variants are part of the manifest: they read back through `find_file` and
/// `list_files`, `known_encodings` offers them for the same content, and the blob collector
/// treats their blobs as referenced until the deployment is deleted.
pub async fn encodings_round_trip_and_keep_their_blobs(repo: &dyn Repository) {
    let tag = DeploymentId::random();
    let variant = |encoding, text: &str| EncodedVariant {
        encoding,
        sha256: ContentHash::of(format!("{text} {tag}").as_bytes()),
        size: 7,
    };
    let css = FileEntry {
        encodings: vec![variant(Encoding::Br, "br"), variant(Encoding::Gzip, "gz")],
        ..file("site.css", &format!("css {tag}"))
    };
    let js = FileEntry {
        encodings: vec![variant(Encoding::Gzip, "js-gz")],
        ..file("app.js", &format!("js {tag}"))
    };
    let png = file("logo.png", &format!("png {tag}"));
    let files = [js.clone(), png.clone(), css.clone()];
    touch(repo, &files).await;
    let id = create(repo).await.id;
    let attempt = claim(repo, &id, "worker", LONG_LEASE).await.attempt;
    publish(repo, &id, attempt, &files).await;

    let found = repo
        .find_file(&id, "site.css")
        .await
        .expect("find_file failed");
    assert_eq!(
        found.as_ref(),
        Some(&css),
        "variants of a file did not round-trip"
    );
    let found = repo
        .find_file(&id, "logo.png")
        .await
        .expect("find_file failed");
    assert_eq!(
        found.as_ref(),
        Some(&png),
        "a file without variants grew some"
    );
    let listed = repo.list_files(&id).await.expect("list_files failed");
    assert_eq!(
        listed,
        [js.clone(), png.clone(), css.clone()],
        "list_files lost variants"
    );
    let known = repo
        .known_encodings(&[css.sha256, js.sha256, png.sha256])
        .await
        .expect("known_encodings failed");
    assert_eq!(known.get(&css.sha256), Some(&css.encodings));
    assert_eq!(known.get(&js.sha256), Some(&js.encodings));
    assert!(
        !known.contains_key(&png.sha256),
        "variants invented for a png"
    );

    let variant_hashes: Vec<ContentHash> = [&css, &js]
        .iter()
        .flat_map(|f| f.encodings.iter().map(|v| v.sha256))
        .collect();
    pause().await;
    let cutoff = OffsetDateTime::now_utc();
    pause().await;
    let claimed = collect(repo, cutoff).await;
    for hash in &variant_hashes {
        assert!(
            !claimed.contains(hash),
            "a referenced variant blob was claimed"
        );
    }

    repo.delete_deployment(&id).await.expect("delete failed");
    let known = repo
        .known_encodings(&[css.sha256])
        .await
        .expect("known_encodings failed");
    assert!(
        known.is_empty(),
        "a deleted deployment still offers variants"
    );
    let claimed = collect(repo, cutoff).await;
    for hash in &variant_hashes {
        assert!(
            claimed.contains(hash),
            "the variant blob of a deleted deployment was not collected"
        );
    }
    repo.forget_blobs(&claimed)
        .await
        .expect("forget_blobs failed");
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
