//! Conformance: a deployment's life — claims and leases, fencing of stale attempts, failure,
//! release, delete, cancel, and finding stalled deployments.
use super::*;

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
