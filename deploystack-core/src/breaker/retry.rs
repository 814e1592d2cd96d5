//! Bounded exponential backoff with jitter: the one retry policy of the calls that retry.
//!
//! - **S3 requests** retry inside `object_store`, whose own backoff is exponential with
//!   decorrelated jitter; [`RetryPolicy::object_store`] gives it our bounds instead of its
//!   default of ten retries over up to three minutes, which made every request wait minutes
//!   for an S3 that was down.
//! - **Queue operations** that may be repeated retry in [`super::BreakerQueue`] with
//!   [`RetryPolicy::run`].
//! - The read cache's **invalidation listener** takes its pauses between attempts to
//!   subscribe again from [`RetryPolicy::delay`] (it never gives up, so only the pauses).
//!
//! The first two stop at `retry_max_attempts` attempts or once `retry_max_secs` have passed,
//! whichever comes first, so a call that fails takes at most about that long before the
//! breaker counts it.
//!
//! ## Why full jitter?
//! Each pause is a random time between zero and the exponential step (capped): clients that
//! failed together do not come back together, which is what brings an overloaded backend
//! back (the "full jitter" of AWS's "Exponential Backoff and Jitter").
//!
//! ## Why not the `backon` crate?
//! Forty lines over `rand`, already a dependency, against a new crate; and the S3 half of
//! the retries is `object_store`'s anyway.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often and for how long a failing call is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (`retry_max_attempts`); 1 tries once.
    pub max_attempts: u32,
    /// Longest time from the first attempt after which no new one starts
    /// (`retry_max_secs`).
    pub max_elapsed: Duration,
    /// The first step of the backoff; each further step doubles it.
    pub first_delay: Duration,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts within ten seconds, pauses from up to 100 ms growing to at most 2 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(10),
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The policy of `retry_max_attempts` and `retry_max_secs`.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            max_attempts: config.retry_max_attempts.max(1),
            max_elapsed: Duration::from_secs(config.retry_max_secs),
            ..Self::default()
        }
    }

    /// The pause before attempt `attempt + 1` (attempt 1 is the first): a random time up to
    /// `first_delay · 2^(attempt-1)`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        step.mul_f64(rand::random::<f64>())
    }

    /// Run `call` until it succeeds, fails with an error `retryable` refuses, or the policy's
    /// attempts or time are used up; the last error is returned.
    pub async fn run<T, E, F, Fut>(
        &self,
        retryable: impl Fn(&E) -> bool,
        mut call: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) => {
                    let pause = self.delay(attempt);
                    let out_of_time = start.elapsed() + pause >= self.max_elapsed;
                    if attempt >= self.max_attempts || out_of_time || !retryable(&err) {
                        return Err(err);
                    }
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The same bounds for `object_store`'s own retries of S3 requests.
    #[cfg(feature = "s3")]
    pub(crate) fn object_store(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: self.first_delay,
                max_backoff: self.max_delay,
                base: 2.0,
            },
            max_retries: self.max_attempts.saturating_sub(1) as usize,
            retry_timeout: self.max_elapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every pause is within the exponential step of its attempt, and never past the cap.
        #[test]
        fn pauses_stay_within_their_step(attempt in 1u32..64) {
            let policy = RetryPolicy::default();
            let pause = policy.delay(attempt);
            let step = policy.first_delay.saturating_mul(1 << (attempt - 1).min(20));
            prop_assert!(pause <= step.min(policy.max_delay));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_stops_at_the_attempt_bound_and_on_a_final_error() {
        let policy = RetryPolicy {
            max_attempts: 3,
            max_elapsed: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let tries = AtomicU32::new(0);
        let result: Result<(), &str> = policy
            .run(
                |_| true,
                || async {
                    tries.fetch_add(1, Ordering::Relaxed);
                    Err("down")
                },
            )
            .await;
        assert_eq!(result, Err("down"));
        assert_eq!(tries.load(Ordering::Relaxed), 3);

        tries.store(0, Ordering::Relaxed);
        let _ = policy
            .run(
                |_| false,
                || async {
                    tries.fetch_add(1, Ordering::Relaxed);
                    Err::<(), _>("lease lost")
                },
            )
            .await;
        assert_eq!(
            tries.load(Ordering::Relaxed),
            1,
            "a final error is not retried"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn it_stops_when_the_time_is_used_up() {
        let policy = RetryPolicy {
            max_attempts: 1_000,
            max_elapsed: Duration::from_secs(5),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
        };
        let start = Instant::now();
        let tries = AtomicU32::new(0);
        let _ = policy
            .run(
                |_| true,
                || async {
                    tries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Err::<(), _>("slow and down")
                },
            )
            .await;
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "{:?}",
            start.elapsed()
        );
        assert!(tries.load(Ordering::Relaxed) < 1_000);
    }

    #[tokio::test]
    async fn a_success_ends_the_retries() {
        let tries = AtomicU32::new(0);
        let value = RetryPolicy::default()
            .run(
                |_: &&str| true,
                || async {
                    if tries.fetch_add(1, Ordering::Relaxed) < 1 {
                        Err("blip")
                    } else {
                        Ok(7)
                    }
                },
            )
            .await;
        assert_eq!(value, Ok(7));
    }
}
