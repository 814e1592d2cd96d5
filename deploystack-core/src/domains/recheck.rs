//! When to look for a pending domain's record again.
//!
//! A user adds a domain, then edits their DNS, which takes from seconds to an hour to show
//! (the TTL of a cached "no such record"). So pending domains are re-checked often at first
//! and then less and less: 30 s, 1 min, 2 min, … doubling up to once an hour, and hourly
//! after that until the domain is verified or removed. Each delay is shortened by up to a
//! fifth at random, so domains added together (a bulk import) do not query DNS in lock-step.
//!
//! The schedule is a pure function of the attempt count and a random sample, so the projects
//! side can store `next_check_at` beside each domain and any node can pick due domains up.

use std::time::Duration;

use rand::Rng as _;
use time::OffsetDateTime;

/// The backoff of re-checks: `first`, doubling each attempt, capped at `max`, each delay cut
/// by up to `jitter` (a fraction) at random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecheckSchedule {
    /// The delay before the first re-check.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
    /// The largest fraction a delay is cut by at random, 0.0–1.0.
    pub jitter: f64,
}

impl Default for RecheckSchedule {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl RecheckSchedule {
    /// The delay after failed check number `attempt` (0 for the first), given `sample`, a
    /// uniform random number in `[0, 1)`: `min(first·2^attempt, max)·(1 − jitter·sample)`.
    /// Never longer than `max`, never shorter than `(1 − jitter)` of the unjittered delay.
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let base = self
            .first
            .checked_mul(2u32.saturating_pow(attempt.min(31)))
            .unwrap_or(self.max)
            .min(self.max);
        let cut = self.jitter.clamp(0.0, 1.0) * sample.clamp(0.0, 1.0);
        base.mul_f64(1.0 - cut)
    }

    /// When to check again after failed check number `attempt`, made at `now`.
    pub fn next_check_at(&self, now: OffsetDateTime, attempt: u32) -> OffsetDateTime {
        let sample: f64 = rand::rng().random();
        now + self.delay(attempt, sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delays_double_from_thirty_seconds_to_an_hour() {
        let schedule = RecheckSchedule::default();
        let secs: Vec<u64> = (0..10).map(|n| schedule.delay(n, 0.0).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(schedule.delay(u32::MAX, 0.0), Duration::from_secs(3600));
        assert_eq!(schedule.delay(0, 0.5).as_millis(), 27_000);
    }

    #[test]
    fn the_next_check_is_in_the_jittered_window() {
        let schedule = RecheckSchedule::default();
        let now = OffsetDateTime::now_utc();
        let next = schedule.next_check_at(now, 1);
        assert!(next > now + Duration::from_secs(47) && next <= now + Duration::from_secs(60));
    }

    proptest! {
        #[test]
        fn delays_stay_in_bounds_and_never_shrink_before_jitter(attempt in 0u32..64, sample in 0.0f64..1.0) {
            let schedule = RecheckSchedule::default();
            let delay = schedule.delay(attempt, sample);
            let base = schedule.delay(attempt, 0.0);
            prop_assert!(delay <= base && delay <= schedule.max);
            prop_assert!(delay >= base.mul_f64(0.8));
            prop_assert!(schedule.delay(attempt + 1, 0.0) >= base);
        }
    }
}
