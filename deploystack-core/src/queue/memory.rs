//! In-memory [`Queue`]: the job queue of a single-process install, and of tests.
//!
//! # Why it exists
//! The embedded shape of DeployStack (one binary, SQLite, a local directory) should not need a
//! broker. This queue gives it the full contract — leases, redelivery, dead letters — with
//! nothing to run, and gives tests a queue whose clock they can pause.
//!
//! # Limits
//! - **Lost on exit.** Jobs live in this process's memory. Nothing that matters is lost: the
//!   repository is the source of truth, and on start its reconciler re-enqueues every
//!   deployment that is still `QUEUED`.
//! - **One process only.** Consumers in other processes cannot reach it, so
//!   [`Queue::is_in_process`] is `true` and the server runs the build workers itself.
//! - Dead letters are kept until the process exits. They are few: only jobs that used up
//!   every delivery end there.
//!
//! # How it works
//! All state sits behind one [`std::sync::Mutex`], held for a few collection operations and
//! never across an `.await`, so every operation is atomic. Jobs that are ready wait in FIFO
//! order; nacked jobs wait in a map ordered by due time; delivered jobs sit in a map keyed by
//! a fresh delivery id, each with its lease deadline.
//!
//! There is no background task. Every operation first promotes what is due — delayed jobs
//! whose time has come, and expired leases (redelivered, or dead-lettered after the last
//! allowed delivery) — so recovery cannot stall because some loop stopped running. A
//! reserver with nothing to take sleeps until the next enqueue or nack ([`Notify`]) or until
//! the earliest due time, whichever is first.
//!
//! Time is tokio's clock ([`tokio::time::Instant`]), so tests can `pause` and `advance` it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// What [`MemoryQueue::default`] allows; the same as the configuration's default.
const DEFAULT_MAX_DELIVERIES: u32 = 5;

/// Stands in for "never": a lease or wait of `Duration::MAX` would overflow an `Instant`.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// The in-memory queue. See the module docs for what it is for and its limits.
#[derive(Debug)]
pub struct MemoryQueue {
    /// Everything the queue holds, behind one lock so that each operation is atomic.
    state: Mutex<State>,
    /// Wakes waiting reservers when a job may have become ready sooner than they planned to
    /// look again (an enqueue, a nack, a shortened lease).
    wake: Notify,
    /// How many deliveries a job gets; after the last one it is dead-lettered instead of
    /// delivered again. At least 1.
    max_deliveries: u32,
}

/// A job between deliveries.
#[derive(Debug)]
struct Pending {
    /// The job itself.
    job: Job,
    /// How many times it has been delivered so far.
    deliveries: u32,
}

/// A delivered job and the lease its consumer holds on it.
#[derive(Debug)]
struct Lease {
    /// The job, with its delivery count (this delivery included).
    pending: Pending,
    /// When the lease runs out unless a heartbeat extends it.
    until: Instant,
    /// Delivery order, to requeue leases that expire at the same instant in a stable order.
    seq: u64,
}

/// The queue's contents.
#[derive(Debug, Default)]
struct State {
    /// Jobs that can be delivered now, oldest first.
    ready: VecDeque<Pending>,
    /// Nacked jobs by due time; `seq` keeps jobs due at the same instant in nack order.
    delayed: BTreeMap<(Instant, u64), Pending>,
    /// Delivered jobs by delivery id.
    in_flight: HashMap<String, Lease>,
    /// Jobs that used up their deliveries, oldest first.
    dead: Vec<DeadLetter>,
    /// Source of the `seq` numbers above.
    next_seq: u64,
}

/// What a reserver found under the lock.
enum Look {
    /// A job, now leased to it.
    Delivered(Delivery),
    /// Nothing ready; something may become ready at this instant (a delayed job or a lease).
    Empty { next_due: Option<Instant> },
}

impl MemoryQueue {
    /// A queue that delivers a job at most `max_deliveries` times: a job delivered that many
    /// times and then nacked, or whose last lease runs out, goes to the dead-letter list.
    /// `0` is treated as `1`, since a job must be delivered at least once.
    pub fn new(max_deliveries: u32) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            max_deliveries: max_deliveries.max(1),
        }
    }

    /// Locks the state, recovering it if a thread panicked while holding the lock.
    ///
    /// Recovering is sound because every critical section only moves entries between
    /// collections with calls that do not panic in practice; the worst a panic could leave
    /// behind is a job taken out and not yet put back, i.e. a lost message, which the
    /// repository's reconciler covers like any other.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state after promoting whatever is due, and wakes reservers if the
    /// promotion made jobs ready.
    fn with_state<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let now = Instant::now();
        let (result, promoted) = {
            let mut state = self.lock();
            let promoted = state.promote(now, self.max_deliveries);
            (f(&mut state, now), promoted)
        };
        if promoted {
            self.wake.notify_waiters();
        }
        result
    }
}

impl Default for MemoryQueue {
    /// A queue with five deliveries per job, as in the default configuration.
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DELIVERIES)
    }
}

impl State {
    /// Hands out the next sequence number.
    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Makes due delayed jobs ready and takes back expired leases, in the order they became
    /// due. Returns whether any job became ready.
    fn promote(&mut self, now: Instant, max_deliveries: u32) -> bool {
        let mut due: Vec<(Instant, u64, Pending, bool)> = Vec::new();
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, seq), pending) = entry.remove_entry();
            due.push((at, seq, pending, false));
        }
        let expired: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, lease)| lease.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(lease) = self.in_flight.remove(&id) {
                due.push((lease.until, lease.seq, lease.pending, true));
            }
        }
        due.sort_by_key(|(at, seq, _, _)| (*at, *seq));

        let mut promoted = false;
        for (_, _, pending, was_leased) in due {
            if was_leased {
                tracing::info!(
                    deployment_id = %pending.job.deployment_id,
                    deliveries = pending.deliveries,
                    "lease expired without ack"
                );
            }
            if pending.deliveries >= max_deliveries {
                self.bury(pending);
            } else {
                self.ready.push_back(pending);
                promoted = true;
            }
        }
        promoted
    }

    /// Moves a job that used up its deliveries to the dead-letter list.
    fn bury(&mut self, pending: Pending) {
        tracing::warn!(
            deployment_id = %pending.job.deployment_id,
            deliveries = pending.deliveries,
            "job dead-lettered after its last delivery"
        );
        self.dead.push(DeadLetter {
            job: pending.job,
            deliveries: pending.deliveries,
        });
    }

    /// Leases the oldest ready job, or says when to look again.
    fn take(&mut self, now: Instant, lease: Duration) -> Look {
        let Some(mut pending) = self.ready.pop_front() else {
            let next_delayed = self.delayed.keys().next().map(|(at, _)| *at);
            let next_expiry = self.in_flight.values().map(|lease| lease.until).min();
            let next_due = match (next_delayed, next_expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return Look::Empty { next_due };
        };
        pending.deliveries += 1;
        let delivery = Delivery {
            delivery_id: uuid::Uuid::new_v4().simple().to_string(),
            job: pending.job.clone(),
            deliveries: pending.deliveries,
        };
        let seq = self.take_seq();
        self.in_flight.insert(
            delivery.delivery_id.clone(),
            Lease {
                pending,
                until: after(now, lease),
                seq,
            },
        );
        Look::Delivered(delivery)
    }
}

/// `now + duration`, with durations beyond [`FOREVER`] meaning "never".
fn after(now: Instant, duration: Duration) -> Instant {
    now + duration.min(FOREVER)
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        self.with_state(|state, _| {
            state.ready.push_back(Pending {
                job: job.clone(),
                deliveries: 0,
            });
        });
        self.wake.notify_waiters();
        Ok(())
    }

    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        let give_up = after(Instant::now(), wait);
        loop {
            // Register for a wake-up before looking, so that an enqueue landing between the
            // look and the wait is not missed.
            let woken = self.wake.notified();
            let mut woken = std::pin::pin!(woken);
            woken.as_mut().enable();

            let next_due = match self.with_state(|state, now| state.take(now, lease)) {
                Look::Delivered(delivery) => {
                    tracing::debug!(
                        consumer,
                        deployment_id = %delivery.job.deployment_id,
                        deliveries = delivery.deliveries,
                        "job reserved"
                    );
                    return Ok(Some(delivery));
                }
                Look::Empty { next_due } => next_due,
            };
            if Instant::now() >= give_up {
                return Ok(None);
            }
            let look_again = next_due.map_or(give_up, |due| due.min(give_up));
            // Either outcome means "look again": woken, or something fell due, or time is up.
            let _ = tokio::time::timeout_at(look_again, woken).await;
        }
    }

    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        let shortened = self.with_state(|state, now| {
            let held = state
                .in_flight
                .get_mut(&delivery.delivery_id)
                .ok_or(QueueError::LeaseLost)?;
            let until = after(now, lease);
            let shortened = until < held.until;
            held.until = until;
            Ok::<_, QueueError>(shortened)
        })?;
        if shortened {
            // Waiting reservers planned to look again at the old deadline, which is now late.
            self.wake.notify_waiters();
        }
        Ok(())
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.with_state(|state, _| {
            state
                .in_flight
                .remove(&delivery.delivery_id)
                .map(|_| ())
                .ok_or(QueueError::LeaseLost)
        })
    }

    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError> {
        let max_deliveries = self.max_deliveries;
        self.with_state(|state, now| {
            let lease = state
                .in_flight
                .remove(&delivery.delivery_id)
                .ok_or(QueueError::LeaseLost)?;
            if lease.pending.deliveries >= max_deliveries {
                state.bury(lease.pending);
            } else if retry_after.is_zero() {
                // Behind the jobs already waiting, so a failing job cannot starve them.
                state.ready.push_back(lease.pending);
            } else {
                let seq = state.take_seq();
                state
                    .delayed
                    .insert((after(now, retry_after), seq), lease.pending);
            }
            Ok::<_, QueueError>(())
        })?;
        // Ready now, or due earlier than what waiting reservers planned for.
        self.wake.notify_waiters();
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(self.with_state(|state, _| QueueDepth {
            waiting: (state.ready.len() + state.delayed.len()) as u64,
            in_flight: state.in_flight.len() as u64,
            dead: state.dead.len() as u64,
        }))
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(self.with_state(|state, _| state.dead.iter().take(limit).cloned().collect()))
    }

    fn is_in_process(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The parts that depend on time, with tokio's clock paused: a paused runtime jumps to the
    //! next timer as soon as every task is idle, so these tests take no real time and their
    //! timings are exact.

    use super::*;
    use crate::model::DeploymentId;

    const LEASE: Duration = Duration::from_secs(30);
    const MS: Duration = Duration::from_millis(1);

    fn job() -> Job {
        Job {
            deployment_id: DeploymentId::random(),
        }
    }

    async fn reserve_now(queue: &MemoryQueue, consumer: &str) -> Option<Delivery> {
        queue
            .reserve(consumer, LEASE, Duration::ZERO)
            .await
            .expect("reserve")
    }

    async fn depth(queue: &MemoryQueue) -> (u64, u64, u64) {
        let depth = queue.depth().await.expect("depth");
        (depth.waiting, depth.in_flight, depth.dead)
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_lost_even_before_the_job_is_requeued() {
        let queue = MemoryQueue::new(3);
        let job = job();
        queue.enqueue(&job).await.expect("enqueue");
        let first = reserve_now(&queue, "a").await.expect("a job");

        tokio::time::advance(LEASE).await;

        // Nobody reserved in between, yet the lease is gone the moment it runs out.
        assert!(matches!(
            queue.heartbeat(&first, LEASE).await,
            Err(QueueError::LeaseLost)
        ));
        assert!(matches!(
            queue.ack(&first).await,
            Err(QueueError::LeaseLost)
        ));
        assert_eq!(depth(&queue).await, (1, 0, 0));
        let second = reserve_now(&queue, "b").await.expect("redelivered");
        assert_eq!((second.job, second.deliveries), (job, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_extends_the_lease_from_now() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let delivery = reserve_now(&queue, "a").await.expect("a job");

        tokio::time::advance(LEASE - MS).await;
        queue.heartbeat(&delivery, LEASE).await.expect("heartbeat");
        tokio::time::advance(LEASE - MS).await;

        assert_eq!(reserve_now(&queue, "b").await, None);
        queue.ack(&delivery).await.expect("still ours");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_runs_out_after_the_last_delivery_dead_letters_the_job() {
        let queue = MemoryQueue::new(2);
        let job = job();
        queue.enqueue(&job).await.expect("enqueue");
        for expected in 1..=2 {
            let delivery = reserve_now(&queue, "a").await.expect("a job");
            assert_eq!(delivery.deliveries, expected);
            tokio::time::advance(LEASE).await;
        }

        assert_eq!(reserve_now(&queue, "a").await, None);
        assert_eq!(depth(&queue).await, (0, 0, 1));
        let dead = queue.dead_letters(10).await.expect("dead letters");
        assert_eq!(dead, vec![DeadLetter { job, deliveries: 2 }]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reserve_takes_a_nacked_job_when_it_falls_due() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let first = reserve_now(&queue, "a").await.expect("a job");
        queue
            .nack(&first, Duration::from_secs(10))
            .await
            .expect("nack");

        let start = Instant::now();
        let second = queue
            .reserve("b", LEASE, Duration::from_secs(60))
            .await
            .expect("reserve")
            .expect("the job, once due");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(second.deliveries, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reserve_takes_a_job_whose_lease_runs_out() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let _lost = reserve_now(&queue, "a").await.expect("a job");

        let start = Instant::now();
        let second = queue
            .reserve("b", LEASE, Duration::from_secs(60))
            .await
            .expect("reserve")
            .expect("the job, once its lease ran out");
        assert_eq!(start.elapsed(), LEASE);
        assert_eq!(second.deliveries, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reserve_notices_a_nack_due_before_it_planned_to_look() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let first = reserve_now(&queue, "a").await.expect("a job");

        // `b` plans to look again when `a`'s 30 s lease runs out; the nack must move that up.
        let start = Instant::now();
        let (second, ()) =
            tokio::join!(queue.reserve("b", LEASE, Duration::from_secs(60)), async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                queue
                    .nack(&first, Duration::from_secs(2))
                    .await
                    .expect("nack");
            });
        assert!(second.expect("reserve").is_some());
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_reserve_notices_a_heartbeat_that_shortens_the_lease() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let first = reserve_now(&queue, "a").await.expect("a job");

        let start = Instant::now();
        let (second, ()) =
            tokio::join!(queue.reserve("b", LEASE, Duration::from_secs(60)), async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                queue
                    .heartbeat(&first, Duration::from_secs(2))
                    .await
                    .expect("heartbeat");
            });
        assert_eq!(second.expect("reserve").map(|d| d.deliveries), Some(2));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_become_ready_in_the_order_they_fall_due() {
        let queue = MemoryQueue::new(3);
        let (late, early) = (job(), job());
        queue.enqueue(&late).await.expect("enqueue");
        queue.enqueue(&early).await.expect("enqueue");
        let late_delivery = reserve_now(&queue, "a").await.expect("a job");
        let early_delivery = reserve_now(&queue, "a").await.expect("a job");
        queue
            .nack(&late_delivery, Duration::from_secs(5))
            .await
            .expect("nack");
        queue
            .nack(&early_delivery, Duration::from_secs(3))
            .await
            .expect("nack");

        tokio::time::advance(Duration::from_secs(10)).await;

        assert_eq!(reserve_now(&queue, "a").await.map(|d| d.job), Some(early));
        assert_eq!(reserve_now(&queue, "a").await.map(|d| d.job), Some(late));
    }

    #[tokio::test]
    async fn a_job_nacked_without_delay_goes_behind_the_waiting_ones() {
        let queue = MemoryQueue::new(3);
        let (first, second) = (job(), job());
        queue.enqueue(&first).await.expect("enqueue");
        queue.enqueue(&second).await.expect("enqueue");
        let delivery = reserve_now(&queue, "a").await.expect("a job");
        queue.nack(&delivery, Duration::ZERO).await.expect("nack");

        assert_eq!(reserve_now(&queue, "a").await.map(|d| d.job), Some(second));
        assert_eq!(reserve_now(&queue, "a").await.map(|d| d.job), Some(first));
    }

    #[tokio::test]
    async fn zero_max_deliveries_still_delivers_once() {
        let queue = MemoryQueue::new(0);
        queue.enqueue(&job()).await.expect("enqueue");
        let delivery = reserve_now(&queue, "a").await.expect("delivered once");
        queue.nack(&delivery, Duration::ZERO).await.expect("nack");
        assert_eq!(depth(&queue).await, (0, 0, 1));
    }

    #[tokio::test]
    async fn the_default_allows_five_deliveries() {
        let queue = MemoryQueue::default();
        queue.enqueue(&job()).await.expect("enqueue");
        for _ in 0..5 {
            let delivery = reserve_now(&queue, "a").await.expect("a job");
            queue.nack(&delivery, Duration::ZERO).await.expect("nack");
        }
        assert_eq!(depth(&queue).await, (0, 0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_endless_lease_or_wait_does_not_overflow() {
        let queue = MemoryQueue::new(3);
        queue.enqueue(&job()).await.expect("enqueue");
        let delivery = queue
            .reserve("a", Duration::MAX, Duration::MAX)
            .await
            .expect("reserve")
            .expect("a job");
        queue
            .heartbeat(&delivery, Duration::MAX)
            .await
            .expect("heartbeat");
        queue.nack(&delivery, Duration::MAX).await.expect("nack");
        assert_eq!(depth(&queue).await, (1, 0, 0));
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    use std::sync::Arc;

    use super::MemoryQueue;
    use crate::queue::Queue;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_queue_passes_the_queue_suite() {
        crate::testing::queue::run_all(|| async {
            Arc::new(MemoryQueue::new(crate::testing::queue::MAX_DELIVERIES)) as Arc<dyn Queue>
        })
        .await;
    }
}
