//! The conformance suite of [`IdempotencyKeys`], the part of the `Repository` that keeps the
//! answers of idempotent requests: what every adapter must do, checked through the trait.
//!
//! Every check uses its own random keys, so the suite also runs against a database in use.

use std::time::Duration;

use time::OffsetDateTime;

use crate::model::ContentHash;
use crate::repository::{IdempotencyKeys, RepositoryError, Reservation, StoredAnswer};

/// Longer than any check.
const LONG: Duration = Duration::from_secs(600);
/// Runs out after [`pause`].
const SHORT: Duration = Duration::from_millis(1);

/// Run every check of the suite, in order.
pub async fn run_all(repo: &dyn IdempotencyKeys) {
    the_first_reservation_is_fresh_and_a_second_waits(repo).await;
    a_completed_key_replays_its_answer(repo).await;
    keys_are_scoped(repo).await;
    a_released_key_is_fresh_again(repo).await;
    an_expired_lock_is_taken_over_and_fences_the_old_holder(repo).await;
    an_expired_record_is_forgotten_and_purged(repo).await;
    concurrent_reservations_have_one_winner(repo).await;
}

fn key() -> String {
    format!("key-{}", uuid::Uuid::new_v4().simple())
}

fn answer(body: &str) -> StoredAnswer {
    StoredAnswer {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/api/v1/projects/site".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

async fn reserve(
    repo: &dyn IdempotencyKeys,
    scope: &str,
    key: &str,
    lock: Duration,
) -> Reservation {
    repo.reserve_idempotency_key(scope, key, lock, LONG)
        .await
        .expect("reserve_idempotency_key failed")
}

fn token(reservation: Reservation) -> String {
    match reservation {
        Reservation::Fresh { token } => token,
        other => panic!("expected a fresh reservation, got {other:?}"),
    }
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// The first caller holds the key; a second sees it in progress.
pub async fn the_first_reservation_is_fresh_and_a_second_waits(repo: &dyn IdempotencyKeys) {
    let key = key();
    let _held = token(reserve(repo, "POST /x", &key, LONG).await);
    assert_eq!(
        reserve(repo, "POST /x", &key, LONG).await,
        Reservation::InProgress
    );
}

/// Once completed, every later reservation gets the fingerprint and the answer, byte for
/// byte, and the holder cannot complete twice.
pub async fn a_completed_key_replays_its_answer(repo: &dyn IdempotencyKeys) {
    let key = key();
    let held = token(reserve(repo, "POST /x", &key, LONG).await);
    let fingerprint = ContentHash::of(b"the request");
    let first = answer("{\"name\":\"site\"}");
    repo.complete_idempotency_key("POST /x", &key, &held, &fingerprint, &first)
        .await
        .expect("complete");
    for _ in 0..2 {
        assert_eq!(
            reserve(repo, "POST /x", &key, LONG).await,
            Reservation::Completed {
                fingerprint,
                answer: first.clone()
            }
        );
    }
    let again = repo
        .complete_idempotency_key("POST /x", &key, &held, &fingerprint, &answer("other"))
        .await;
    assert!(
        matches!(again, Err(RepositoryError::LeaseLost)),
        "{again:?}"
    );
}

/// The same key in another scope is another request.
pub async fn keys_are_scoped(repo: &dyn IdempotencyKeys) {
    let key = key();
    let _one = token(reserve(repo, "POST /a", &key, LONG).await);
    let _two = token(reserve(repo, "POST /b", &key, LONG).await);
}

/// A released key runs again; a stale token's release does nothing.
pub async fn a_released_key_is_fresh_again(repo: &dyn IdempotencyKeys) {
    let key = key();
    let held = token(reserve(repo, "POST /x", &key, LONG).await);
    repo.release_idempotency_key("POST /x", &key, &held)
        .await
        .expect("release");
    let again = token(reserve(repo, "POST /x", &key, LONG).await);
    // The first holder's release comes late: the second reservation stays.
    repo.release_idempotency_key("POST /x", &key, &held)
        .await
        .expect("release");
    assert_eq!(
        reserve(repo, "POST /x", &key, LONG).await,
        Reservation::InProgress
    );
    repo.release_idempotency_key("POST /x", &key, &again)
        .await
        .expect("release");
}

/// A reservation whose lock ran out (its request crashed) is taken over, and the old
/// holder can then neither complete nor release it.
pub async fn an_expired_lock_is_taken_over_and_fences_the_old_holder(repo: &dyn IdempotencyKeys) {
    let key = key();
    let crashed = token(reserve(repo, "POST /x", &key, SHORT).await);
    pause().await;
    let retry = token(reserve(repo, "POST /x", &key, LONG).await);
    assert_ne!(crashed, retry);
    let fingerprint = ContentHash::of(b"late");
    let late = repo
        .complete_idempotency_key("POST /x", &key, &crashed, &fingerprint, &answer("late"))
        .await;
    assert!(matches!(late, Err(RepositoryError::LeaseLost)), "{late:?}");
    repo.release_idempotency_key("POST /x", &key, &crashed)
        .await
        .expect("release");
    let mine = answer("retry");
    repo.complete_idempotency_key("POST /x", &key, &retry, &fingerprint, &mine)
        .await
        .expect("the retry completes");
    assert_eq!(
        reserve(repo, "POST /x", &key, LONG).await,
        Reservation::Completed {
            fingerprint,
            answer: mine
        }
    );
}

/// A record older than its time to live counts as absent, and purging removes it.
pub async fn an_expired_record_is_forgotten_and_purged(repo: &dyn IdempotencyKeys) {
    let key = key();
    let held = token(reserve(repo, "POST /x", &key, LONG).await);
    repo.complete_idempotency_key(
        "POST /x",
        &key,
        &held,
        &ContentHash::of(b"old"),
        &answer("old"),
    )
    .await
    .expect("complete");
    pause().await;
    // With a time to live shorter than its age, the record is gone for this caller.
    let fresh = repo
        .reserve_idempotency_key("POST /x", &key, LONG, SHORT)
        .await
        .expect("reserve");
    let held = token(fresh);
    repo.complete_idempotency_key(
        "POST /x",
        &key,
        &held,
        &ContentHash::of(b"new"),
        &answer("new"),
    )
    .await
    .expect("complete");
    pause().await;
    let purged = repo
        .purge_idempotency_keys(OffsetDateTime::now_utc())
        .await
        .expect("purge");
    assert!(purged >= 1, "purged {purged}");
    let _fresh_again = token(reserve(repo, "POST /x", &key, LONG).await);
}

/// Of many callers racing for one key, exactly one holds it.
pub async fn concurrent_reservations_have_one_winner(repo: &dyn IdempotencyKeys) {
    let key = key();
    let attempts = (0..8).map(|_| reserve(repo, "POST /race", &key, LONG));
    let results = futures_util::future::join_all(attempts).await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, Reservation::Fresh { .. }))
        .count();
    assert_eq!(fresh, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Reservation::Fresh { .. } | Reservation::InProgress)),
        "{results:?}"
    );
}
