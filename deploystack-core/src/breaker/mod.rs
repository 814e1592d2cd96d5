//! Circuit breakers: stop calling a backend that is failing, answer at once instead, and
//! try it again after a cool-down.
//!
//! When S3 or Redis goes away, every call to it waits for its own timeouts and retries —
//! seconds each — and requests pile up behind them. A [`Breaker`] watches the outcomes of
//! the calls to one backend; once too many fail it *opens*, and calls fail at once with
//! [`BreakerOpen`] (the API answers 503 with `Retry-After`) without touching the backend.
//! After `breaker_cooldown_secs` it lets one call through as a probe: success closes it,
//! failure opens it for another cool-down. The rules are in `machine.rs`.
//!
//! Breakers are decorators over the ports, like the caches: [`BreakerStorage`] around a
//! [`Storage`](crate::storage::Storage), [`BreakerQueue`] around a
//! [`Queue`](crate::queue::Queue), and the Redis layer of the read cache guards its calls
//! with one (`CachedRepository::with_breaker`). [`Services::from_config`](crate::Services)
//! puts them around the S3 storage and the Redis queue and cache only: a local directory or
//! memory does not go away on its own. An embedder that builds [`Services`](crate::Services)
//! itself wraps its own adapters the same way and lists the breakers in
//! `Services::breakers`, which `/readyz` and `/metrics` report.
//!
//! # What counts as a failure
//! Only the backend being unreachable or failing (`Unavailable`): a missing object, a lost
//! lease or a full disk is an answer, not an outage, and counts as a success.
//!
//! # Retries
//! The calls that are retried — S3 requests (by `object_store`, configured from
//! [`RetryPolicy`]) and the queue operations that may be repeated — retry *inside* the
//! breaker: one call is one outcome, however many attempts it took, and an open breaker
//! retries nothing.
//!
//! # Why our own module rather than a crate?
//! The Rust circuit-breaker crates are either unmaintained or tied to one framework (tower
//! layers over `Service`, not async trait methods), and the state machine is a hundred lines
//! that property tests cover whole (`machine.rs`).

mod machine;
mod queue;
mod retry;
mod storage;

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use self::machine::{Admission, Machine, Ticket, Transition};

pub use self::queue::BreakerQueue;
pub use self::retry::RetryPolicy;
pub use self::storage::BreakerStorage;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Share of failed calls, in percent (1–100), at which the breaker opens
    /// (`breaker_failure_threshold`).
    pub failure_percent: u8,
    /// Fewest calls in a window before the share is judged (`breaker_min_calls`): two
    /// failures out of two calls at start-up are not an outage.
    pub min_calls: u32,
    /// Length of the window calls are counted in (`breaker_window_secs`).
    pub window: Duration,
    /// How long an open breaker refuses calls before it lets a probe through
    /// (`breaker_cooldown_secs`).
    pub cooldown: Duration,
}

impl BreakerSettings {
    /// The breakers the settings ask for, or `None` when `breaker_min_calls` is 0 (off).
    pub fn from_config(config: &crate::Config) -> Option<Self> {
        (config.breaker_min_calls > 0).then(|| Self {
            failure_percent: config.breaker_failure_threshold.clamp(1, 100),
            min_calls: config.breaker_min_calls,
            window: Duration::from_secs(config.breaker_window_secs.max(1)),
            cooldown: Duration::from_secs(config.breaker_cooldown_secs.max(1)),
        })
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass and are counted.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// One probe call is let through; the others fail at once.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`, as `/readyz` and `/metrics` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call refused by an open breaker, without touching the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{breaker} is failing; calls are refused for {}s", retry_after_secs(*.retry_after))]
pub struct BreakerOpen {
    /// Which breaker refused (`storage`, `queue`, `cache`).
    pub breaker: &'static str,
    /// When the breaker may let calls through again: the rest of its cool-down.
    pub retry_after: Duration,
}

impl BreakerOpen {
    /// [`Self::retry_after`] in whole seconds, rounded up and at least 1: what `Retry-After`
    /// says.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// What a breaker has done since the process started, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerStats {
    /// Its name (`storage`, `queue`, `cache`).
    pub name: &'static str,
    /// Where it stands now.
    pub state: BreakerState,
    /// How often it opened (from closed or after a failed probe).
    pub opened: u64,
    /// How often its cool-down ended (it went half-open).
    pub half_opened: u64,
    /// How often a probe closed it.
    pub closed: u64,
    /// Calls refused without touching the backend.
    pub refused: u64,
}

/// One circuit breaker, shared by every call to one backend. See the module docs.
pub struct Breaker {
    name: &'static str,
    machine: Mutex<Machine>,
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    /// A closed breaker named `name` (`storage`; it appears in logs, `/readyz` as
    /// `breaker:<name>` and `/metrics`). A fixed name, like the names of the other checks.
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        Self {
            name,
            machine: Mutex::new(Machine::new(settings, Instant::now())),
            opened: AtomicU64::new(0),
            half_opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `breaker:<name>`: its entry in `/readyz`'s checks.
    pub fn readiness_check(&self) -> String {
        format!("breaker:{}", self.name)
    }

    /// Where it stands now (an open breaker whose cool-down is over is half-open).
    pub fn state(&self) -> BreakerState {
        let (state, transition) = self.lock().state(Instant::now());
        self.note(transition);
        state
    }

    /// Its counters now.
    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            name: self.name,
            state: self.state(),
            opened: self.opened.load(Ordering::Relaxed),
            half_opened: self.half_opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Run `call` if the breaker lets it through, and count its outcome: an error for which
    /// `is_failure` says true is a failure, anything else a success. Refused, it answers
    /// `refused(BreakerOpen)` at once. If the returned future is dropped before `call` ends,
    /// the call counts as nothing (and a probe frees its slot).
    pub async fn call<T, E>(
        &self,
        is_failure: impl FnOnce(&E) -> bool,
        refused: impl FnOnce(BreakerOpen) -> E,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let admission = {
            let (admission, transition) = self.lock().admit(Instant::now());
            self.note(transition);
            admission
        };
        let ticket = match admission {
            Admission::Allowed(ticket) => ticket,
            Admission::Refused { retry_after } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(refused(BreakerOpen {
                    breaker: self.name,
                    retry_after: if retry_after.is_zero() {
                        // A probe is running; it will have answered within a second or so.
                        Duration::from_secs(1)
                    } else {
                        retry_after
                    },
                }));
            }
        };
        let mut pending = Pending {
            breaker: self,
            ticket: Some(ticket),
        };
        let result = call.await;
        let failed = result.as_ref().err().is_some_and(is_failure);
        pending.finish(failed);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        // The machine has no invariant a panic could break halfway (every method sets the
        // state in one assignment), so a poisoned lock is still sound to use.
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count and log a change of state.
    fn note(&self, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else {
            return;
        };
        let counter = match to {
            BreakerState::Open => &self.opened,
            BreakerState::HalfOpen => &self.half_opened,
            BreakerState::Closed => &self.closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match to {
            BreakerState::Open => tracing::warn!(
                breaker = self.name,
                %from,
                %to,
                "circuit breaker opened: calls fail at once until the cool-down ends"
            ),
            BreakerState::HalfOpen => tracing::info!(
                breaker = self.name,
                %from,
                %to,
                "circuit breaker half-open: the next call probes the backend"
            ),
            BreakerState::Closed => tracing::info!(
                breaker = self.name,
                %from,
                %to,
                "circuit breaker closed: the backend answers again"
            ),
        }
    }
}

/// A call admitted and not yet finished: dropped unfinished, it is abandoned.
struct Pending<'a> {
    breaker: &'a Breaker,
    ticket: Option<Ticket>,
}

impl Pending<'_> {
    fn finish(&mut self, failed: bool) {
        if let Some(ticket) = self.ticket.take() {
            let transition = self.breaker.lock().record(ticket, failed, Instant::now());
            self.breaker.note(transition);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.breaker.lock().abandon(ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_percent: 50,
            min_calls: 2,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
        }
    }

    #[derive(Debug, PartialEq)]
    enum Error {
        Down,
        Missing,
        Refused(BreakerOpen),
    }

    async fn call(breaker: &Breaker, outcome: Result<(), Error>) -> Result<(), Error> {
        breaker
            .call(|e| *e == Error::Down, Error::Refused, async { outcome })
            .await
    }

    #[tokio::test]
    async fn answers_are_not_failures_and_an_outage_opens_the_breaker() {
        let breaker = Breaker::new("storage", settings());
        for _ in 0..5 {
            assert_eq!(
                call(&breaker, Err(Error::Missing)).await,
                Err(Error::Missing)
            );
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        let fresh = Breaker::new("storage", settings());
        call(&fresh, Err(Error::Down)).await.unwrap_err();
        call(&fresh, Err(Error::Down)).await.unwrap_err();
        assert_eq!(fresh.state(), BreakerState::Open);
        let Err(Error::Refused(open)) = call(&fresh, Ok(())).await else {
            panic!("an open breaker let a call through");
        };
        assert_eq!(open.breaker, "storage");
        assert_eq!(open.retry_after_secs(), 30);
        let stats = fresh.stats();
        assert_eq!((stats.opened, stats.refused), (1, 1));
        assert_eq!(fresh.readiness_check(), "breaker:storage");
    }

    #[tokio::test]
    async fn a_cancelled_call_counts_as_nothing() {
        let breaker = Breaker::new("queue", settings());
        let never = breaker.call(
            |_: &Error| true,
            Error::Refused,
            std::future::pending::<Result<(), Error>>(),
        );
        // Dropped after its first poll, the way a timed-out request drops it.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), never)
                .await
                .is_err()
        );
        call(&breaker, Err(Error::Down)).await.unwrap_err();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1_200)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
