//! Rate limits: how many requests of a class one caller may make per minute.
//!
//! A [`RateLimiter`] counts requests by class ([`Class`]: deploys, other API writes, API
//! reads) and caller (a string the HTTP layer makes from the token or the client's
//! address) and says whether each one is within its [`Quota`]. Both adapters implement the
//! Generic Cell Rate Algorithm (GCRA): a caller may spend the whole quota at once (a burst of
//! `limit` requests), after which one request comes back every `window / limit`. No
//! fixed-window edge lets a caller double the rate, and the state per caller is one
//! timestamp — the *theoretical arrival time* (TAT).
//!
//! Adapters:
//! - [`MemoryRateLimiter`] (always built): the `governor` crate, one keyed limiter per class;
//!   one process's own counts.
//! - `RedisRateLimiter` (feature `redis`): one atomic Lua script per check, so every server
//!   of a cluster draws on the same budget.
//! - [`FallbackRateLimiter`]: a decorator that answers from a second limiter (the in-memory
//!   one) while the first (Redis) fails, so a Redis outage loosens the limits to per-server
//!   ones instead of refusing or waving through every request.
//!
//! [`Services::from_config`](crate::Services::from_config) picks them from the queue URL, as
//! it picks the queue: `redis://…` shares the limits through that Redis (behind the
//! fallback), anything else keeps them in memory.
//!
//! # Contract
//! - `check` counts the request when it is allowed and does not count it when it is refused:
//!   a client that keeps asking while refused does not push its own budget further away.
//! - A refused [`Decision`] says when the next request will be allowed (`retry_after`); a
//!   request made after that long is allowed unless another of the same caller and class took
//!   the place first.
//! - A class whose quota is off answers `Ok(None)` and counts nothing.

mod fallback;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Config;

pub use fallback::FallbackRateLimiter;
pub use memory::MemoryRateLimiter;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::RedisRateLimiter;

/// What kind of request is counted; each class has its own quota and its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Uploads: creating a deployment (the expensive request: a body to store, a build).
    Deploys,
    /// Every other API write (`POST`, `PUT`, `PATCH`, `DELETE`).
    Writes,
    /// API reads (`GET`, `HEAD`).
    Reads,
}

impl Class {
    /// Every class, in a fixed order.
    pub const ALL: [Class; 3] = [Class::Deploys, Class::Writes, Class::Reads];

    /// The name clients see in the `RateLimit` headers and operators in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Deploys => "deploys",
            Class::Writes => "writes",
            Class::Reads => "reads",
        }
    }

    fn index(self) -> usize {
        match self {
            Class::Deploys => 0,
            Class::Writes => 1,
            Class::Reads => 2,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `limit` requests per `window`, all of which may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most requests in one window, and the largest burst.
    pub limit: NonZeroU32,
    /// The window; one request comes back every `window / limit`.
    pub window: Duration,
}

impl Quota {
    /// `limit` requests a minute; `None` for 0 (off).
    pub fn per_minute(limit: u32) -> Option<Self> {
        Some(Self {
            limit: NonZeroU32::new(limit)?,
            window: Duration::from_secs(60),
        })
    }

    /// How long one request's place takes to come back: `window / limit` (at least 1 µs).
    pub fn interval(&self) -> Duration {
        (self.window / self.limit.get()).max(Duration::from_micros(1))
    }
}

/// The quota of each class; `None`: not limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quotas([Option<Quota>; 3]);

impl Quotas {
    /// The three settings `rate_limit_{deploys,writes,reads}_per_minute` (0 = off).
    pub fn from_config(config: &Config) -> Self {
        Self([
            Quota::per_minute(config.rate_limit_deploys_per_minute),
            Quota::per_minute(config.rate_limit_writes_per_minute),
            Quota::per_minute(config.rate_limit_reads_per_minute),
        ])
    }

    /// Nothing limited.
    pub fn off() -> Self {
        Self::default()
    }

    /// The same quotas, with `class` limited to `quota` (`None`: not limited).
    pub fn with(mut self, class: Class, quota: Option<Quota>) -> Self {
        self.0[class.index()] = quota;
        self
    }

    /// The quota of `class`.
    pub fn get(&self, class: Class) -> Option<Quota> {
        self.0[class.index()]
    }
}

/// The answer to one request: allowed or not, and the numbers the `RateLimit` headers show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The class counted.
    pub class: Class,
    /// Its quota.
    pub quota: Quota,
    /// Whether the request may go ahead (it was counted).
    pub allowed: bool,
    /// How many more requests the caller may make at once now.
    pub remaining: u32,
    /// How long until the caller's whole quota is back.
    pub reset: Duration,
    /// How long until the next request will be allowed; zero when this one was.
    pub retry_after: Duration,
}

/// Why a limiter could not decide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The shared store (Redis) cannot be reached or answered nonsense.
    #[error("rate limits unavailable: {0}")]
    Unavailable(String),
}

/// Counts requests per class and caller against their quotas. See the module docs for the
/// contract.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Count one request of `class` by `caller`, if its quota allows it. `Ok(None)`: the class
    /// is not limited.
    async fn check(&self, class: Class, caller: &str) -> Result<Option<Decision>, RateLimitError>;
}

#[async_trait]
impl<L: RateLimiter + ?Sized> RateLimiter for std::sync::Arc<L> {
    async fn check(&self, class: Class, caller: &str) -> Result<Option<Decision>, RateLimitError> {
        (**self).check(class, caller).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_turns_a_class_off_and_settings_map_to_their_class() {
        let config = Config {
            rate_limit_deploys_per_minute: 5,
            rate_limit_writes_per_minute: 0,
            rate_limit_reads_per_minute: 600,
            ..Config::default()
        };
        let quotas = Quotas::from_config(&config);
        assert_eq!(quotas.get(Class::Deploys).map(|q| q.limit.get()), Some(5));
        assert_eq!(quotas.get(Class::Writes), None);
        let reads = quotas.get(Class::Reads).unwrap();
        assert_eq!(reads.limit.get(), 600);
        assert_eq!(reads.interval(), Duration::from_millis(100));
        assert_eq!(Quotas::off().get(Class::Reads), None);
    }

    #[test]
    fn class_names_are_the_header_names() {
        let names: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["deploys", "writes", "reads"]);
    }
}
