//! [`RedisRateLimiter`]: rate limits every server of a cluster shares, in Redis.
//!
//! # One script per check
//! Each check is one Lua script ([`GCRA`]), which Redis runs to the end before serving anyone
//! else, so two servers checking the same caller at the same moment cannot both take its last
//! place. The script reads the clock with `TIME`, so servers need not agree on the time, and
//! implements GCRA exactly as governor does in [`super::MemoryRateLimiter`]: with `T` the
//! interval (`window / limit`) and `τ = T × (limit − 1)`, a request at `now` is allowed when
//! `now ≥ TAT − τ`, and then moves the caller's TAT to `max(TAT, now) + T`.
//!
//! # Keys
//! One string per class and caller, `{prefix}:ratelimit:{class}:{caller}`, holding the TAT in
//! microseconds of Redis's clock, set to expire when it is in the past (the caller's budget
//! is whole again then, which is what a missing key means). A limiter never holds more keys
//! than callers active within the last window; one key per script also works on Redis
//! Cluster.
//!
//! # Connections
//! A deadpool pool with short timeouts ([`TIMEOUT`]): a check is on the path of an API
//! request, so a Redis that does not answer fails it quickly, and
//! [`super::FallbackRateLimiter`] answers instead.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::Script;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};

use super::{Class, Decision, Quotas, RateLimitError, RateLimiter};

/// Longest wait for a pooled connection, a new connection or the script's answer.
const TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA for one request. `KEYS[1]`: the caller's key; `ARGV[1]`: the interval `T` in
/// microseconds; `ARGV[2]`: the limit. Returns `{allowed (0|1), remaining, retry_after_us,
/// reset_us}`. Numbers are doubles in Lua; microseconds since 1970 stay exact (below 2^53),
/// and are written with `%.0f` because `tostring` would round them to 14 digits.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local tau = interval * (limit - 1)
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
if now < tat - tau then
  return {0, 0, tat - tau - now, tat - now}
end
local next_tat = tat + interval
local ttl_ms = math.max(1, math.ceil((next_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return {1, math.floor((tau + interval - (next_tat - now)) / interval), 0, next_tat - now}
";

/// Rate limits in Redis, shared by every server using the same Redis and prefix. See the
/// module docs.
pub struct RedisRateLimiter {
    pool: Pool,
    /// `{prefix}:ratelimit`.
    base: String,
    quotas: Quotas,
    script: Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("base", &self.base)
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// Limits kept in the Redis at `url`, under `{prefix}:ratelimit:`. Connects lazily: a
    /// Redis that is down shows at the first check, not here.
    pub fn new(url: &str, prefix: &str, quotas: Quotas) -> Result<Self, RateLimitError> {
        let mut config = deadpool_redis::Config::from_url(url);
        config.pool = Some(PoolConfig {
            timeouts: Timeouts {
                wait: Some(TIMEOUT),
                create: Some(TIMEOUT),
                recycle: Some(TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| RateLimitError::Unavailable(format!("invalid Redis settings: {err}")))?;
        Ok(Self {
            pool,
            base: format!("{prefix}:ratelimit"),
            quotas,
            script: Script::new(GCRA),
        })
    }

    fn key(&self, class: Class, caller: &str) -> String {
        format!("{}:{class}:{caller}", self.base)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, class: Class, caller: &str) -> Result<Option<Decision>, RateLimitError> {
        let Some(quota) = self.quotas.get(class) else {
            return Ok(None);
        };
        let interval_us = u64::try_from(quota.interval().as_micros()).unwrap_or(u64::MAX);
        let run = async {
            let mut connection = self
                .pool
                .get()
                .await
                .map_err(|err| RateLimitError::Unavailable(err.to_string()))?;
            self.script
                .key(self.key(class, caller))
                .arg(interval_us)
                .arg(quota.limit.get())
                .invoke_async::<(i64, i64, i64, i64)>(&mut connection)
                .await
                .map_err(|err| RateLimitError::Unavailable(err.to_string()))
        };
        let (allowed, remaining, retry_after_us, reset_us) = tokio::time::timeout(TIMEOUT, run)
            .await
            .map_err(|_| RateLimitError::Unavailable("Redis did not answer in time".into()))??;
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        Ok(Some(Decision {
            class,
            quota,
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: micros(reset_us),
            retry_after: micros(retry_after_us),
        }))
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    use std::sync::Arc;

    use super::RedisRateLimiter;
    use crate::ratelimit::{Class, Quotas, RateLimiter};
    use crate::testing::{env, ratelimit as suite};

    #[tokio::test]
    async fn redis_limiter_passes_the_rate_limit_suite() {
        let Some(url) = env::redis_url() else { return };
        let prefix = env::unique_name("ratelimit");
        suite::run_all(&|quotas| {
            Arc::new(RedisRateLimiter::new(&url, &prefix, quotas).unwrap()) as Arc<dyn RateLimiter>
        })
        .await;
    }

    #[tokio::test]
    async fn two_limiters_on_one_redis_share_the_budget() {
        let Some(url) = env::redis_url() else { return };
        let prefix = env::unique_name("ratelimit");
        let quotas = Quotas::off().with(
            Class::Deploys,
            suite::quota(5, std::time::Duration::from_secs(60)).into(),
        );
        let a = RedisRateLimiter::new(&url, &prefix, quotas).unwrap();
        let b = RedisRateLimiter::new(&url, &prefix, quotas).unwrap();
        suite::instances_share_one_budget(&a, &b, 5).await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_quickly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let quotas = Quotas::off().with(Class::Reads, crate::ratelimit::Quota::per_minute(5));
        let limiter =
            RedisRateLimiter::new(&format!("redis://127.0.0.1:{port}"), "x", quotas).unwrap();
        let started = std::time::Instant::now();
        assert!(limiter.check(Class::Reads, "c").await.is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
}
