//! [`MemoryRateLimiter`]: the rate limits of one process, on the `governor` crate.
//!
//! One keyed governor limiter per limited class, keyed by caller. governor keeps one
//! timestamp per caller; callers whose budget is whole again are dropped every
//! [`SWEEP_EVERY`] checks (`retain_recent`), so a stream of one-off callers (new addresses)
//! cannot grow the map for ever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use super::{Class, Decision, Quota, Quotas, RateLimitError, RateLimiter};

/// How many checks between two sweeps of callers whose budget is whole again.
const SWEEP_EVERY: u64 = 4096;

type Keyed = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Rate limits kept in this process's memory. See the module docs.
pub struct MemoryRateLimiter {
    /// Per class (in [`Class::ALL`] order): its quota and its limiter, `None` when off.
    classes: [Option<(Quota, Keyed)>; 3],
    clock: DefaultClock,
    /// Checks so far, to sweep every [`SWEEP_EVERY`].
    checks: AtomicU64,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quotas: Vec<_> = self
            .classes
            .iter()
            .map(|class| class.as_ref().map(|(quota, _)| *quota))
            .collect();
        f.debug_struct("MemoryRateLimiter")
            .field("quotas", &quotas)
            .finish_non_exhaustive()
    }
}

impl MemoryRateLimiter {
    /// A limiter enforcing `quotas`.
    pub fn new(quotas: Quotas) -> Self {
        let clock = DefaultClock::default();
        let classes = Class::ALL.map(|class| {
            quotas.get(class).map(|quota| {
                let gcra = governor::Quota::with_period(quota.interval())
                    .unwrap_or_else(|| governor::Quota::per_second(quota.limit))
                    .allow_burst(quota.limit);
                let limiter = governor::RateLimiter::hashmap_with_clock(gcra, clock.clone())
                    .with_middleware::<StateInformationMiddleware>();
                (quota, limiter)
            })
        });
        Self {
            classes,
            clock,
            checks: AtomicU64::new(0),
        }
    }

    fn sweep(&self) {
        for (_, limiter) in self.classes.iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, class: Class, caller: &str) -> Result<Option<Decision>, RateLimitError> {
        let Some((quota, limiter)) = &self.classes[class.index()] else {
            return Ok(None);
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let interval = quota.interval();
        let limit = quota.limit.get();
        let decision = match limiter.check_key(&caller.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    class,
                    quota: *quota,
                    allowed: true,
                    remaining,
                    // governor keeps the TAT to itself; the places used, each back after
                    // `interval`, bound it from above.
                    reset: interval * limit.saturating_sub(remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(refused) => {
                let wait = refused.wait_time_from(self.clock.now());
                Decision {
                    class,
                    quota: *quota,
                    allowed: false,
                    remaining: 0,
                    // The next place comes back after `wait`, the others one interval apart.
                    reset: wait + interval * (limit - 1),
                    retry_after: wait,
                }
            }
        };
        Ok(Some(decision))
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    use std::sync::Arc;

    use super::MemoryRateLimiter;

    #[tokio::test]
    async fn memory_limiter_passes_the_rate_limit_suite() {
        crate::testing::ratelimit::run_all(&|quotas| Arc::new(MemoryRateLimiter::new(quotas)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn callers_whose_budget_is_whole_are_forgotten() {
        let quota = Quota {
            limit: std::num::NonZeroU32::new(2).unwrap(),
            window: Duration::from_millis(20),
        };
        let limiter = MemoryRateLimiter::new(Quotas::off().with(Class::Reads, Some(quota)));
        for n in 0..100 {
            limiter
                .check(Class::Reads, &format!("caller-{n}"))
                .await
                .unwrap();
        }
        let (_, keyed) = limiter.classes[Class::Reads.index()].as_ref().unwrap();
        assert_eq!(keyed.len(), 100);
        tokio::time::sleep(Duration::from_millis(50)).await;
        limiter.sweep();
        assert_eq!(keyed.len(), 0);
    }
}
