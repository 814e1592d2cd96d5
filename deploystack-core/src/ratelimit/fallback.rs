//! [`FallbackRateLimiter`]: what happens to the limits when the shared store fails.
//!
//! # Why fall back to per-server limits
//! A rate limiter guards the API; it must not take it down. Refusing every request while
//! Redis is unreachable would turn a Redis outage into an API outage, and waving every request
//! through would lift the limits exactly when the cluster is weakest. So while the primary
//! (Redis) fails, each server limits on its own, in memory, with the same quotas: a cluster of
//! N servers then lets a caller through at most N times its budget, and nobody is refused
//! because of Redis. The first failure is logged as a warning, and again at most every
//! [`WARN_EVERY`] while it lasts; the first success after it is logged too.
//!
//! # Why the primary is skipped for a moment after a failure
//! An unreachable Redis costs each check its timeout. After a failure the primary is not
//! asked again for [`PAUSE`], so while Redis is down requests are delayed once per pause, not
//! each one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Class, Decision, RateLimitError, RateLimiter};

/// How long the primary is left alone after it failed.
const PAUSE: Duration = Duration::from_secs(1);
/// How often, at most, a continuing failure is logged again.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Asks `primary`, and `fallback` while `primary` fails. See the module docs.
pub struct FallbackRateLimiter<P, F> {
    primary: P,
    fallback: F,
    state: Mutex<Outage>,
}

/// What is known about the primary's current failure.
#[derive(Debug, Default)]
struct Outage {
    /// When the primary may be asked again; `None`: it is working.
    paused_until: Option<Instant>,
    /// When the failure was last logged.
    warned_at: Option<Instant>,
}

impl<P, F> std::fmt::Debug for FallbackRateLimiter<P, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackRateLimiter")
            .finish_non_exhaustive()
    }
}

impl<P: RateLimiter, F: RateLimiter> FallbackRateLimiter<P, F> {
    /// `primary`, with `fallback` standing in while it fails.
    pub fn new(primary: P, fallback: F) -> Self {
        Self {
            primary,
            fallback,
            state: Mutex::new(Outage::default()),
        }
    }

    fn outage(&self) -> std::sync::MutexGuard<'_, Outage> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl<P: RateLimiter, F: RateLimiter> RateLimiter for FallbackRateLimiter<P, F> {
    async fn check(&self, class: Class, caller: &str) -> Result<Option<Decision>, RateLimitError> {
        let paused = self
            .outage()
            .paused_until
            .is_some_and(|until| Instant::now() < until);
        if !paused {
            match self.primary.check(class, caller).await {
                Ok(decision) => {
                    let mut outage = self.outage();
                    if outage.paused_until.take().is_some() {
                        outage.warned_at = None;
                        tracing::info!("the shared rate limits answer again");
                    }
                    return Ok(decision);
                }
                Err(err) => {
                    let now = Instant::now();
                    let mut outage = self.outage();
                    outage.paused_until = Some(now + PAUSE);
                    if outage
                        .warned_at
                        .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
                    {
                        outage.warned_at = Some(now);
                        tracing::warn!(
                            error = %err,
                            "the shared rate limits cannot be reached; each server limits on its own until they can"
                        );
                    }
                }
            }
        }
        self.fallback.check(class, caller).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::ratelimit::{MemoryRateLimiter, Quota, Quotas};

    /// A primary that fails, counting how often it is asked.
    #[derive(Default)]
    struct Down(AtomicU32);

    #[async_trait]
    impl RateLimiter for Down {
        async fn check(&self, _: Class, _: &str) -> Result<Option<Decision>, RateLimitError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(RateLimitError::Unavailable("connection refused".into()))
        }
    }

    #[tokio::test]
    async fn while_the_primary_fails_the_fallback_limits_and_the_primary_rests() {
        let quotas = Quotas::off().with(Class::Deploys, Quota::per_minute(2));
        let limiter = FallbackRateLimiter::new(Down::default(), MemoryRateLimiter::new(quotas));
        let mut allowed = 0;
        for _ in 0..5 {
            let decision = limiter.check(Class::Deploys, "c").await.unwrap().unwrap();
            allowed += u32::from(decision.allowed);
        }
        assert_eq!(allowed, 2, "the fallback's quota holds");
        assert_eq!(
            limiter.primary.0.load(Ordering::Relaxed),
            1,
            "asked once per pause"
        );
    }
}
