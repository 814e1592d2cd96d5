//! Queue conformance suite: what every [`Queue`] adapter must do.
//!
//! # What a check needs
//! Every check takes a **fresh, empty** queue configured with
//! **`max_deliveries` = [`MAX_DELIVERIES`] (3)**: nothing enqueued, nothing in flight, no dead
//! letters, and no consumer other than the check itself. Each check asserts that at its start.
//! [`run_all`] builds one such queue per check through the factory it is given; for a shared
//! engine, have the factory give each queue its own keys (a random stream name, say).
//!
//! # Time
//! The checks run on real time with leases of a few hundred milliseconds, because tokio's
//! paused clock does not reach an engine's own clock (Redis expires leases by its time, not
//! ours). The whole suite takes about five seconds. Timing assertions are loose — a loaded CI
//! machine must not fail them — and check the order of events rather than durations.
//!
//! # Concurrency
//! Checks borrow the queue, so they run concurrent consumers as futures polled together
//! (`join`) rather than spawned tasks. For an adapter this is real concurrency: its requests
//! are in flight at the same time, and a blocking `reserve` must not stall an `enqueue`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::model::DeploymentId;
use crate::queue::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// The `max_deliveries` every queue handed to this suite must be configured with.
pub const MAX_DELIVERIES: u32 = 3;

/// A lease that runs out within a check.
const SHORT_LEASE: Duration = Duration::from_millis(300);
/// A lease that outlives any check.
const LONG_LEASE: Duration = Duration::from_secs(30);
/// How long to wait when the answer should be "nothing".
const SHORT_WAIT: Duration = Duration::from_millis(300);
/// How long to wait for something that should come.
const LONG_WAIT: Duration = Duration::from_secs(2);
/// How late `reserve` may return after its wait before the suite calls it hung.
const HANG_SLACK: Duration = Duration::from_secs(5);

/// Runs every check, each on a fresh queue from `make` (see the module docs for what that
/// queue must be).
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Queue>>,
{
    macro_rules! run {
        ($($check:ident),* $(,)?) => {$(
            eprintln!("queue conformance: {}", stringify!($check));
            let queue = make().await;
            $check(&*queue).await;
        )*};
    }
    run!(
        reserve_returns_an_enqueued_job,
        reserve_on_an_empty_queue_returns_none,
        jobs_are_delivered_in_fifo_order,
        a_leased_job_is_not_delivered_to_another_consumer,
        a_job_whose_lease_runs_out_is_delivered_again,
        heartbeats_keep_the_lease,
        ack_removes_the_job_for_good,
        a_nacked_job_comes_back_after_retry_after,
        a_job_nacked_after_its_last_delivery_is_dead_lettered,
        a_job_whose_last_lease_runs_out_is_dead_lettered,
        dead_letters_are_listed_oldest_first,
        depth_counts_waiting_and_in_flight_jobs,
        an_enqueue_wakes_a_waiting_reserve,
        concurrent_reservers_get_each_job_exactly_once,
        ping_succeeds,
    );
}

/// An enqueued job is reserved at once, delivered for the first time.
pub async fn reserve_returns_an_enqueued_job(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    enqueue(queue, &job).await;

    let delivery = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
        .await
        .expect("an enqueued job is ready at once");
    assert_eq!(delivery.job, job);
    assert_eq!(delivery.deliveries, 1, "the first delivery counts as 1");
    assert!(!delivery.delivery_id.is_empty(), "a delivery has an id");
    queue.ack(&delivery).await.expect("ack");
}

/// With nothing to deliver, `reserve` gives up after its wait (or at once with no wait).
pub async fn reserve_on_an_empty_queue_returns_none(queue: &dyn Queue) {
    assert_fresh(queue).await;
    assert_eq!(reserve(queue, "a", LONG_LEASE, Duration::ZERO).await, None);
    assert_eq!(reserve(queue, "a", LONG_LEASE, SHORT_WAIT).await, None);
}

/// Jobs come out in the order they went in.
pub async fn jobs_are_delivered_in_fifo_order(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let jobs: Vec<Job> = (0..5).map(|_| new_job()).collect();
    for job in &jobs {
        enqueue(queue, job).await;
    }
    let mut delivered = Vec::new();
    for _ in &jobs {
        let delivery = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
            .await
            .expect("every enqueued job is ready");
        queue.ack(&delivery).await.expect("ack");
        delivered.push(delivery.job);
    }
    assert_eq!(delivered, jobs);
}

/// While a lease is live, nobody else gets the job.
pub async fn a_leased_job_is_not_delivered_to_another_consumer(queue: &dyn Queue) {
    assert_fresh(queue).await;
    enqueue(queue, &new_job()).await;
    let delivery = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
        .await
        .expect("a job");

    assert_eq!(reserve(queue, "b", LONG_LEASE, SHORT_WAIT).await, None);
    queue.ack(&delivery).await.expect("the lease is still held");
}

/// A lease that runs out without a heartbeat hands the job to the next consumer, as a new
/// delivery; the old delivery can no longer heartbeat, ack or nack.
pub async fn a_job_whose_lease_runs_out_is_delivered_again(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    enqueue(queue, &job).await;
    let first = reserve(queue, "a", SHORT_LEASE, Duration::ZERO)
        .await
        .expect("a job");

    let second = reserve(queue, "b", LONG_LEASE, LONG_WAIT)
        .await
        .expect("the job comes back once the lease runs out");
    assert_eq!(second.job, job);
    assert_eq!(second.deliveries, 2);
    assert_ne!(second.delivery_id, first.delivery_id);

    assert_lease_lost(queue.ack(&first).await, "ack of the lost delivery");
    assert_lease_lost(
        queue.heartbeat(&first, LONG_LEASE).await,
        "heartbeat of the lost delivery",
    );
    assert_lease_lost(
        queue.nack(&first, Duration::ZERO).await,
        "nack of the lost delivery",
    );
    queue.ack(&second).await.expect("ack of the new delivery");
    assert_eq!(depth(queue).await, QueueDepth::default());
}

/// Heartbeats keep a job leased well past its first lease.
pub async fn heartbeats_keep_the_lease(queue: &dyn Queue) {
    assert_fresh(queue).await;
    enqueue(queue, &new_job()).await;
    let lease = Duration::from_millis(400);
    let delivery = reserve(queue, "a", lease, Duration::ZERO)
        .await
        .expect("a job");

    // Heartbeat every 100 ms for as long as `b` waits: three times the original lease.
    let keep_alive = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            queue
                .heartbeat(&delivery, lease)
                .await
                .expect("a heartbeat within the lease keeps it");
        }
    };
    let other = reserve(queue, "b", LONG_LEASE, lease * 3);
    let stolen = tokio::select! {
        stolen = other => stolen,
        () = keep_alive => unreachable!("the heartbeat loop never ends"),
    };
    assert_eq!(stolen, None, "a heartbeated job went to another consumer");
    queue.ack(&delivery).await.expect("the lease is still held");
}

/// An acked job is gone: never delivered again, and its delivery is spent.
pub async fn ack_removes_the_job_for_good(queue: &dyn Queue) {
    assert_fresh(queue).await;
    enqueue(queue, &new_job()).await;
    let delivery = reserve(queue, "a", SHORT_LEASE, Duration::ZERO)
        .await
        .expect("a job");
    queue.ack(&delivery).await.expect("ack");
    assert_eq!(depth(queue).await, QueueDepth::default());

    // Wait past the lease: an acked job must not come back when it would have run out.
    assert_eq!(reserve(queue, "b", LONG_LEASE, SHORT_LEASE * 2).await, None);
    assert_lease_lost(queue.ack(&delivery).await, "a second ack");
    assert_lease_lost(
        queue.heartbeat(&delivery, LONG_LEASE).await,
        "heartbeat after ack",
    );
    assert_lease_lost(
        queue.nack(&delivery, Duration::ZERO).await,
        "nack after ack",
    );
}

/// A job nacked with a delay is invisible until the delay is over, then delivered again.
pub async fn a_nacked_job_comes_back_after_retry_after(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    enqueue(queue, &job).await;
    let first = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
        .await
        .expect("a job");
    let retry_after = Duration::from_millis(400);
    let nacked_at = Instant::now();
    queue.nack(&first, retry_after).await.expect("nack");

    assert_eq!(
        depth(queue).await,
        QueueDepth {
            waiting: 1,
            ..QueueDepth::default()
        },
        "a delayed job counts as waiting"
    );
    assert_eq!(reserve(queue, "b", LONG_LEASE, Duration::ZERO).await, None);
    let second = reserve(queue, "b", LONG_LEASE, LONG_WAIT)
        .await
        .expect("the job comes back once due");
    assert!(
        nacked_at.elapsed() >= retry_after / 2,
        "the job came back after {:?}, long before its retry_after",
        nacked_at.elapsed()
    );
    assert_eq!((second.job.clone(), second.deliveries), (job, 2));
    assert_lease_lost(queue.ack(&first).await, "ack of the nacked delivery");
    queue.ack(&second).await.expect("ack");
}

/// A job nacked on its last allowed delivery is dead-lettered, not delivered again.
pub async fn a_job_nacked_after_its_last_delivery_is_dead_lettered(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    enqueue(queue, &job).await;
    for expected in 1..=MAX_DELIVERIES {
        let delivery = reserve(queue, "a", LONG_LEASE, LONG_WAIT)
            .await
            .expect("a job with deliveries left");
        assert_eq!(delivery.deliveries, expected);
        queue.nack(&delivery, Duration::ZERO).await.expect("nack");
    }

    assert_eq!(
        depth(queue).await,
        QueueDepth {
            dead: 1,
            ..QueueDepth::default()
        }
    );
    assert_eq!(
        dead_letters(queue, 10).await,
        vec![DeadLetter {
            job,
            deliveries: MAX_DELIVERIES
        }]
    );
    assert_eq!(reserve(queue, "a", LONG_LEASE, SHORT_WAIT).await, None);
}

/// A job whose lease runs out on its last allowed delivery is dead-lettered too: a job that
/// kills its worker every time must not circulate forever.
pub async fn a_job_whose_last_lease_runs_out_is_dead_lettered(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    enqueue(queue, &job).await;
    let lease = Duration::from_millis(200);
    for expected in 1..=MAX_DELIVERIES {
        let delivery = reserve(queue, "a", lease, LONG_WAIT)
            .await
            .expect("the job, once the previous lease ran out");
        assert_eq!(delivery.deliveries, expected);
    }

    assert_eq!(reserve(queue, "a", LONG_LEASE, lease * 2).await, None);
    assert_eq!(
        depth(queue).await,
        QueueDepth {
            dead: 1,
            ..QueueDepth::default()
        }
    );
    assert_eq!(
        dead_letters(queue, 10).await,
        vec![DeadLetter {
            job,
            deliveries: MAX_DELIVERIES
        }]
    );
}

/// Dead letters come oldest first, at most `limit` of them.
pub async fn dead_letters_are_listed_oldest_first(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let jobs = [new_job(), new_job()];
    for job in &jobs {
        enqueue(queue, job).await;
        for _ in 0..MAX_DELIVERIES {
            let delivery = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
                .await
                .expect("a job with deliveries left");
            queue.nack(&delivery, Duration::ZERO).await.expect("nack");
        }
    }

    let dead_jobs = |letters: Vec<DeadLetter>| -> Vec<Job> {
        letters.into_iter().map(|letter| letter.job).collect()
    };
    assert_eq!(dead_jobs(dead_letters(queue, 10).await), jobs.to_vec());
    assert_eq!(dead_jobs(dead_letters(queue, 1).await), jobs[..1].to_vec());
    assert_eq!(dead_letters(queue, 0).await, Vec::new());
}

/// `depth` counts waiting jobs (delayed ones included) and jobs in flight.
pub async fn depth_counts_waiting_and_in_flight_jobs(queue: &dyn Queue) {
    assert_fresh(queue).await;
    for _ in 0..3 {
        enqueue(queue, &new_job()).await;
    }
    let expect = |waiting, in_flight| QueueDepth {
        waiting,
        in_flight,
        dead: 0,
    };
    assert_eq!(depth(queue).await, expect(3, 0));

    let first = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
        .await
        .expect("a job");
    assert_eq!(depth(queue).await, expect(2, 1));

    queue.nack(&first, LONG_LEASE).await.expect("nack");
    assert_eq!(depth(queue).await, expect(3, 0));

    let second = reserve(queue, "a", LONG_LEASE, Duration::ZERO)
        .await
        .expect("a job");
    assert_eq!(depth(queue).await, expect(2, 1));
    queue.ack(&second).await.expect("ack");
    assert_eq!(depth(queue).await, expect(2, 0));
}

/// A `reserve` waiting on an empty queue returns as soon as a job is enqueued, long before
/// its wait is over.
pub async fn an_enqueue_wakes_a_waiting_reserve(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let job = new_job();
    let start = Instant::now();
    // A wait much longer than the wake-up takes even on a loaded machine, so "woke up" and
    // "slept through" cannot be mistaken for each other.
    let wait = Duration::from_secs(10);
    let (delivery, ()) = tokio::join!(reserve(queue, "a", LONG_LEASE, wait), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        enqueue(queue, &job).await;
    });
    let elapsed = start.elapsed();

    let delivery = delivery.expect("the enqueued job");
    assert_eq!(delivery.job, job);
    assert!(
        elapsed < wait / 2,
        "reserve returned after {elapsed:?}: it slept through the enqueue"
    );
    queue.ack(&delivery).await.expect("ack");
}

/// Consumers reserving at the same time, while jobs arrive, get each job exactly once.
pub async fn concurrent_reservers_get_each_job_exactly_once(queue: &dyn Queue) {
    assert_fresh(queue).await;
    let jobs: Vec<Job> = (0..20).map(|_| new_job()).collect();

    let producer = async {
        for job in &jobs {
            enqueue(queue, job).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let consumers = (0..4).map(|n| async move {
        let consumer = format!("consumer-{n}");
        let mut taken = Vec::new();
        // Stop after a quiet spell far longer than the producer's pace.
        while let Some(delivery) = reserve(queue, &consumer, LONG_LEASE, SHORT_WAIT * 2).await {
            queue.ack(&delivery).await.expect("ack");
            taken.push(delivery);
        }
        taken
    });
    let (taken, ()) = tokio::join!(join_all(consumers), producer);

    let taken: Vec<Delivery> = taken.into_iter().flatten().collect();
    assert!(
        taken.iter().all(|delivery| delivery.deliveries == 1),
        "a job was delivered twice"
    );
    let mut taken_ids: Vec<DeploymentId> = taken.iter().map(|d| d.job.deployment_id).collect();
    let mut job_ids: Vec<DeploymentId> = jobs.iter().map(|job| job.deployment_id).collect();
    taken_ids.sort();
    job_ids.sort();
    assert_eq!(
        taken_ids, job_ids,
        "each job must reach exactly one consumer"
    );
    assert_eq!(depth(queue).await, QueueDepth::default());
}

/// `ping` succeeds on a working queue.
pub async fn ping_succeeds(queue: &dyn Queue) {
    queue.ping().await.expect("ping");
}

fn new_job() -> Job {
    Job {
        deployment_id: DeploymentId::random(),
    }
}

async fn assert_fresh(queue: &dyn Queue) {
    assert_eq!(
        depth(queue).await,
        QueueDepth::default(),
        "the suite needs a fresh, empty queue for each check"
    );
}

async fn enqueue(queue: &dyn Queue, job: &Job) {
    queue.enqueue(job).await.expect("enqueue");
}

/// `reserve`, failing the check if it errs or overstays its wait.
async fn reserve(
    queue: &dyn Queue,
    consumer: &str,
    lease: Duration,
    wait: Duration,
) -> Option<Delivery> {
    tokio::time::timeout(wait + HANG_SLACK, queue.reserve(consumer, lease, wait))
        .await
        .unwrap_or_else(|_| panic!("reserve with a wait of {wait:?} did not return"))
        .expect("reserve")
}

async fn depth(queue: &dyn Queue) -> QueueDepth {
    queue.depth().await.expect("depth")
}

async fn dead_letters(queue: &dyn Queue, limit: u32) -> Vec<DeadLetter> {
    queue.dead_letters(limit).await.expect("dead letters")
}

#[track_caller]
fn assert_lease_lost(result: Result<(), QueueError>, what: &str) {
    assert!(
        matches!(result, Err(QueueError::LeaseLost)),
        "{what}: expected LeaseLost, got {result:?}"
    );
}
