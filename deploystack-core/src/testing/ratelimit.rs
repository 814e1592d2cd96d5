//! The rate limiter conformance suite: what every [`RateLimiter`] must do.
//!
//! [`run_all`] builds one limiter per check through the factory it is given, with the quotas
//! that check needs; every check uses callers with random names, so limiters on a shared
//! engine (one Redis, one key prefix) may be handed to it. [`instances_share_one_budget`] is
//! for adapters that share limits between processes: two instances on the same store.
//!
//! # Time
//! Real time, with quotas of a few hundred milliseconds per request, because an engine keeps
//! its own clock (Redis's `TIME`). Assertions about durations allow for a loaded machine.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::ratelimit::{Class, Decision, Quota, Quotas, RateLimiter};

/// Makes a fresh limiter with the given quotas.
pub type Factory<'a> = &'a dyn Fn(Quotas) -> Arc<dyn RateLimiter>;

/// Run every check, each on a limiter from `make`.
pub async fn run_all(make: Factory<'_>) {
    a_burst_of_the_limit_is_allowed_then_refused(make).await;
    waiting_retry_after_lets_the_next_request_through(make).await;
    callers_and_classes_have_budgets_of_their_own(make).await;
    a_class_without_a_quota_counts_nothing(make).await;
}

/// `limit` requests per `window`.
pub fn quota(limit: u32, window: Duration) -> Quota {
    Quota {
        limit: NonZeroU32::new(limit).expect("a quota of at least one request"),
        window,
    }
}

fn caller(name: &str) -> String {
    crate::testing::env::unique_name(name)
}

async fn check(limiter: &dyn RateLimiter, class: Class, caller: &str) -> Decision {
    limiter
        .check(class, caller)
        .await
        .expect("check failed")
        .expect("the class has a quota")
}

/// A caller may spend its whole quota at once, each answer saying how much is left; the next
/// request is refused with a wait of at most one interval, and refusals do not count.
pub async fn a_burst_of_the_limit_is_allowed_then_refused(make: Factory<'_>) {
    let deploys = quota(3, Duration::from_secs(30));
    let limiter = make(Quotas::off().with(Class::Deploys, Some(deploys)));
    let who = caller("burst");
    for left in [2, 1, 0] {
        let decision = check(&*limiter, Class::Deploys, &who).await;
        assert!(decision.allowed, "{decision:?}");
        assert_eq!(decision.remaining, left, "{decision:?}");
        assert_eq!(decision.class, Class::Deploys);
        assert_eq!(decision.quota, deploys);
        assert_eq!(decision.retry_after, Duration::ZERO);
        assert!(
            decision.reset > Duration::ZERO && decision.reset <= deploys.window,
            "{decision:?}"
        );
    }
    let refused = check(&*limiter, Class::Deploys, &who).await;
    assert!(
        !refused.allowed,
        "a fourth request within the burst: {refused:?}"
    );
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= deploys.interval(),
        "{refused:?}"
    );
    assert!(refused.reset >= refused.retry_after, "{refused:?}");
    assert!(refused.reset <= deploys.window, "{refused:?}");
    // Asking again while refused does not push the next place further away.
    let again = check(&*limiter, Class::Deploys, &who).await;
    assert!(!again.allowed);
    assert!(
        again.retry_after <= refused.retry_after,
        "{again:?} after {refused:?}"
    );
}

/// After `retry_after`, one more request is allowed — and only one.
pub async fn waiting_retry_after_lets_the_next_request_through(make: Factory<'_>) {
    let writes = quota(2, Duration::from_millis(800));
    let limiter = make(Quotas::off().with(Class::Writes, Some(writes)));
    let who = caller("wait");
    for _ in 0..2 {
        assert!(check(&*limiter, Class::Writes, &who).await.allowed);
    }
    let refused = check(&*limiter, Class::Writes, &who).await;
    assert!(!refused.allowed, "{refused:?}");
    tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
    let next = check(&*limiter, Class::Writes, &who).await;
    assert!(
        next.allowed,
        "after waiting {:?}: {next:?}",
        refused.retry_after
    );
    assert_eq!(next.remaining, 0, "{next:?}");
    let after = check(&*limiter, Class::Writes, &who).await;
    assert!(!after.allowed, "only one place came back: {after:?}");
}

/// One caller spending its budget leaves other callers', and its own other classes', whole.
pub async fn callers_and_classes_have_budgets_of_their_own(make: Factory<'_>) {
    let one = quota(1, Duration::from_secs(30));
    let limiter = make(
        Quotas::off()
            .with(Class::Deploys, Some(one))
            .with(Class::Writes, Some(one)),
    );
    let (a, b) = (caller("a"), caller("b"));
    assert!(check(&*limiter, Class::Deploys, &a).await.allowed);
    assert!(!check(&*limiter, Class::Deploys, &a).await.allowed);
    assert!(
        check(&*limiter, Class::Deploys, &b).await.allowed,
        "b has its own budget"
    );
    assert!(
        check(&*limiter, Class::Writes, &a).await.allowed,
        "writes have their own"
    );
}

/// A class whose quota is off answers `None`, however often it is asked.
pub async fn a_class_without_a_quota_counts_nothing(make: Factory<'_>) {
    let limiter = make(Quotas::off().with(Class::Deploys, Some(quota(1, Duration::from_secs(30)))));
    let who = caller("off");
    for _ in 0..5 {
        let answer = limiter
            .check(Class::Reads, &who)
            .await
            .expect("check failed");
        assert_eq!(answer, None);
    }
}

/// Two limiters on one store (two servers of a cluster) draw on one budget: requests spread
/// over both get the quota's burst in total, not twice it.
pub async fn instances_share_one_budget(a: &dyn RateLimiter, b: &dyn RateLimiter, limit: u32) {
    let who = caller("shared");
    let mut allowed = 0;
    for n in 0..(limit * 3) {
        let limiter = if n % 2 == 0 { a } else { b };
        if check(limiter, Class::Deploys, &who).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, limit, "the two instances did not share one budget");
}
