//! Queue throughput: trivial jobs per second through `RedisQueue`, beside `MemoryQueue`, with
//! 1, 2 and 4 worker tasks that each loop reserve → ack.
//!
//! ```sh
//! cargo bench --bench queue_throughput --features redis               # 2,000 jobs per case
//! QUEUE_BENCH_JOBS=10000 REDIS_URL=redis://host:6379 cargo bench --bench queue_throughput --features redis
//! ```
//!
//! Redis comes from `REDIS_URL` (default `redis://127.0.0.1:6379`). Every case runs on a key
//! prefix of its own, purged afterwards, so the bench can share a Redis with anything else.
//! Each case is bounded: a fixed number of jobs, and at most 60 s to move them.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deploystack_core::model::DeploymentId;
use deploystack_core::queue::{Job, MemoryQueue, Queue, RedisQueue};

/// Longest one case may take; a case that hits it reports what it moved.
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// Long enough that no lease runs out during a case.
const LEASE: Duration = Duration::from_secs(300);

/// What one case measured.
struct Figures {
    /// Jobs enqueued per second by one producer.
    enqueued_per_sec: f64,
    /// Jobs reserved and acked per second by all workers together.
    processed_per_sec: f64,
    /// Jobs processed (less than asked only if the case hit its time limit).
    processed: u64,
}

/// Enqueues `jobs` jobs, then lets `workers` tasks reserve → ack until the queue is empty.
async fn run_case(queue: Arc<dyn Queue>, jobs: u64, workers: usize) -> Figures {
    let started = Instant::now();
    for _ in 0..jobs {
        let job = Job {
            deployment_id: DeploymentId::random(),
        };
        queue.enqueue(&job).await.unwrap();
    }
    let enqueued_per_sec = jobs as f64 / started.elapsed().as_secs_f64();

    let processed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + CASE_LIMIT;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|n| {
            let queue = queue.clone();
            let processed = processed.clone();
            tokio::spawn(async move {
                let consumer = format!("bench-{n}");
                while Instant::now() < deadline {
                    // Every job is already enqueued, so "nothing now" means "all done".
                    let Some(delivery) = queue
                        .reserve(&consumer, LEASE, Duration::ZERO)
                        .await
                        .unwrap()
                    else {
                        break;
                    };
                    queue.ack(&delivery).await.unwrap();
                    processed.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let processed = processed.load(Ordering::Relaxed);
    Figures {
        enqueued_per_sec,
        processed_per_sec: processed as f64 / elapsed.as_secs_f64(),
        processed,
    }
}

fn report(engine: &str, workers: usize, jobs: u64, figures: &Figures) {
    let partial = if figures.processed < jobs {
        format!("   (time limit: {} of {jobs} jobs)", figures.processed)
    } else {
        String::new()
    };
    println!(
        "{engine:<6} {workers} worker{}   enqueue {:>9.0} jobs/s   reserve+ack {:>9.0} jobs/s{partial}",
        if workers == 1 { " " } else { "s" },
        figures.enqueued_per_sec,
        figures.processed_per_sec,
    );
}

#[tokio::main]
async fn main() {
    let jobs: u64 = std::env::var("QUEUE_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        .clamp(1, 1_000_000);
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let run = std::process::id();

    println!("queue throughput, {jobs} trivial jobs per case, workers loop reserve → ack");
    for workers in [1, 2, 4] {
        let memory = Arc::new(MemoryQueue::new(5));
        report(
            "memory",
            workers,
            jobs,
            &run_case(memory, jobs, workers).await,
        );
    }
    for workers in [1, 2, 4] {
        let prefix = format!("dsbench_{run}_{workers}");
        let redis = Arc::new(
            RedisQueue::connect(&url, &prefix, 5)
                .await
                .unwrap_or_else(|err| panic!("no Redis at {url} (set REDIS_URL): {err}")),
        );
        let figures = run_case(redis.clone(), jobs, workers).await;
        redis.purge().await.unwrap();
        report("redis", workers, jobs, &figures);
    }
}
