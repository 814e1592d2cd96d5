//! `RedisQueue` against a real Redis (`REDIS_URL`): the queue conformance suite, then what
//! only a shared, restartable engine can get wrong — two processes on one queue, leases
//! reclaimed from a crashed holder, dead letters, a consumer group lost under the queue, a
//! Redis restart and a Redis that is not there.
//!
//! Each queue gets its own key prefix, deleted when the test ends (also when it fails), so
//! these tests share a Redis with each other and with anyone else. The restart test starts
//! its own `redis-server` on a free port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_redis::redis;
use deploystack_core::model::DeploymentId;
use deploystack_core::queue::{DeadLetter, Delivery, Job, Queue, QueueError, RedisQueue};
use deploystack_core::testing::env::{redis_url, unique_name};
use futures_util::future::join_all;

/// A lease that outlives every test.
const LONG_LEASE: Duration = Duration::from_secs(30);
/// A lease that runs out within a test.
const SHORT_LEASE: Duration = Duration::from_millis(300);
/// How long to wait for something that should come.
const WAIT: Duration = Duration::from_secs(3);
/// How long a Redis that came back may take to be usable again.
const RECOVERY: Duration = Duration::from_secs(10);

/// A key prefix on the shared Redis whose keys are deleted when this is dropped.
struct Prefix {
    url: String,
    name: String,
}

impl Prefix {
    fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: unique_name("dsq"),
        }
    }

    /// A queue on this prefix.
    async fn queue(&self, max_deliveries: u32) -> RedisQueue {
        RedisQueue::connect(&self.url, &self.name, max_deliveries)
            .await
            .unwrap()
    }

    /// The key of this prefix's job stream (see the adapter's module docs).
    fn jobs_key(&self) -> String {
        format!("{}:queue:jobs", self.name)
    }

    /// Runs one raw command on the shared Redis, as an operator (or a restart) would.
    async fn command(&self, command: &redis::Cmd) -> redis::Value {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        command.query_async(&mut connection).await.unwrap()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        // Blocking is fine here: a test is over, or failing.
        let deleted = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut connection| {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.name))
                    .query(&mut connection)?;
                if !keys.is_empty() {
                    redis::cmd("DEL").arg(&keys).query::<()>(&mut connection)?;
                }
                Ok(())
            });
        if let Err(err) = deleted {
            eprintln!("could not delete the keys of {}: {err}", self.name);
        }
    }
}

fn new_job() -> Job {
    Job {
        deployment_id: DeploymentId::random(),
    }
}

async fn reserve(queue: &RedisQueue, consumer: &str, lease: Duration) -> Option<Delivery> {
    queue.reserve(consumer, lease, WAIT).await.unwrap()
}

#[track_caller]
fn assert_lease_lost(result: Result<(), QueueError>, what: &str) {
    assert!(
        matches!(result, Err(QueueError::LeaseLost)),
        "{what}: expected LeaseLost, got {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_queue_passes_the_queue_suite() {
    let Some(url) = redis_url() else { return };
    let prefixes = Mutex::new(Vec::new());
    deploystack_core::testing::queue::run_all(|| {
        let prefix = Prefix::new(&url);
        let name = prefix.name.clone();
        prefixes.lock().unwrap().push(prefix);
        let url = url.clone();
        async move {
            let max = deploystack_core::testing::queue::MAX_DELIVERIES;
            Arc::new(RedisQueue::connect(&url, &name, max).await.unwrap()) as Arc<dyn Queue>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_queue_never_get_the_same_job() {
    let Some(url) = redis_url() else { return };
    let prefix = Prefix::new(&url);
    // Two instances stand for two processes: nothing is shared but Redis.
    let nodes = [prefix.queue(3).await, prefix.queue(3).await];
    let jobs: Vec<Job> = (0..40).map(|_| new_job()).collect();

    let producer = async {
        for (n, job) in jobs.iter().enumerate() {
            nodes[n % 2].enqueue(job).await.unwrap();
        }
    };
    let consumers = (0..6).map(|n| {
        let node = &nodes[n % 2];
        async move {
            let consumer = format!("node{}-worker{n}", n % 2);
            let mut taken = Vec::new();
            while let Some(delivery) = node
                .reserve(&consumer, LONG_LEASE, Duration::from_millis(600))
                .await
                .unwrap()
            {
                taken.push(delivery);
            }
            taken
        }
    });
    let (taken, ()) = tokio::join!(join_all(consumers), producer);
    let taken: Vec<Delivery> = taken.into_iter().flatten().collect();

    assert!(taken.iter().all(|delivery| delivery.deliveries == 1));
    let mut taken_ids: Vec<_> = taken.iter().map(|d| d.job.deployment_id).collect();
    let mut job_ids: Vec<_> = jobs.iter().map(|job| job.deployment_id).collect();
    taken_ids.sort();
    job_ids.sort();
    assert_eq!(taken_ids, job_ids, "each job reaches exactly one consumer");
    // Held, not acked: both nodes see every job in flight.
    for node in &nodes {
        assert_eq!(node.depth().await.unwrap().in_flight, 40);
    }
    // Either node may ack a delivery the other handed out: the delivery id says it all.
    for (n, delivery) in taken.iter().enumerate() {
        nodes[(n + 1) % 2].ack(delivery).await.unwrap();
    }
    assert_eq!(nodes[0].depth().await.unwrap(), Default::default());
}

#[tokio::test]
async fn a_crashed_holders_job_goes_to_another_process_and_its_old_delivery_is_dead() {
    let Some(url) = redis_url() else { return };
    let prefix = Prefix::new(&url);
    let (crashed, survivor) = (prefix.queue(5).await, prefix.queue(5).await);
    let job = new_job();
    crashed.enqueue(&job).await.unwrap();

    let first = reserve(&crashed, "crashed", SHORT_LEASE).await.unwrap();
    // The holder stops heartbeating (it crashed); the other process takes the job over.
    let second = reserve(&survivor, "survivor", SHORT_LEASE).await.unwrap();
    assert_eq!((&second.job, second.deliveries), (&job, 2));
    // Reclaimed again from the survivor, by the process that "crashed" and came back.
    let third = reserve(&crashed, "restarted", LONG_LEASE).await.unwrap();
    assert_eq!((&third.job, third.deliveries), (&job, 3));

    for stale in [&first, &second] {
        assert_lease_lost(
            crashed.heartbeat(stale, LONG_LEASE).await,
            "heartbeat of a reclaimed delivery",
        );
        assert_lease_lost(survivor.ack(stale).await, "ack of a reclaimed delivery");
        assert_lease_lost(
            survivor.nack(stale, Duration::ZERO).await,
            "nack of a reclaimed delivery",
        );
    }
    survivor.heartbeat(&third, LONG_LEASE).await.unwrap();
    survivor.ack(&third).await.unwrap();
    assert_eq!(crashed.depth().await.unwrap(), Default::default());
}

#[tokio::test]
async fn a_job_that_uses_up_its_deliveries_is_dead_lettered() {
    let Some(url) = redis_url() else { return };
    let prefix = Prefix::new(&url);
    let queue = prefix.queue(3).await;
    let (failing, crashing) = (new_job(), new_job());
    queue.enqueue(&failing).await.unwrap();
    queue.enqueue(&crashing).await.unwrap();

    // `failing` is nacked with a delay every time; `crashing` lets its lease run out.
    let mut deliveries: HashMap<DeploymentId, u32> = HashMap::new();
    while deliveries.values().filter(|&&n| n == 3).count() < 2 {
        let delivery = reserve(&queue, "w", SHORT_LEASE).await.expect("a job");
        let count = deliveries.entry(delivery.job.deployment_id).or_default();
        *count += 1;
        assert_eq!(delivery.deliveries, *count, "every delivery counts");
        if delivery.job == failing {
            queue
                .nack(&delivery, Duration::from_millis(100))
                .await
                .unwrap();
        }
    }

    // The crashing job's last lease still has to run out.
    assert_eq!(
        queue
            .reserve("w", LONG_LEASE, SHORT_LEASE * 3)
            .await
            .unwrap(),
        None
    );
    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.waiting, depth.in_flight, depth.dead), (0, 0, 2));
    // Which died first depends on timing; that both did, with every delivery counted, not.
    let mut dead = queue.dead_letters(10).await.unwrap();
    dead.sort_by_key(|letter| letter.job.deployment_id);
    let mut expected = [failing, crashing].map(|job| DeadLetter { job, deliveries: 3 });
    expected.sort_by_key(|letter| letter.job.deployment_id);
    assert_eq!(dead, expected);
}

#[tokio::test]
async fn a_consumer_group_lost_under_the_queue_is_recreated() {
    let Some(url) = redis_url() else { return };
    let prefix = Prefix::new(&url);
    let queue = prefix.queue(3).await;

    // The group destroyed while a job is in flight: the job is delivered again, and the old
    // delivery is no longer valid.
    let in_flight = new_job();
    queue.enqueue(&in_flight).await.unwrap();
    let old = reserve(&queue, "a", LONG_LEASE).await.unwrap();
    prefix
        .command(
            redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(prefix.jobs_key())
                .arg("workers"),
        )
        .await;
    assert_lease_lost(
        queue.heartbeat(&old, LONG_LEASE).await,
        "heartbeat after the group was lost",
    );
    let again = reserve(&queue, "b", LONG_LEASE).await.expect("redelivered");
    assert_eq!(again.job, in_flight);
    assert_lease_lost(queue.ack(&old).await, "ack after the group was lost");
    queue.ack(&again).await.unwrap();

    // The whole stream deleted (as a Redis restart without persistence would): new work
    // flows again.
    let held = {
        queue.enqueue(&new_job()).await.unwrap();
        reserve(&queue, "a", LONG_LEASE).await.unwrap()
    };
    prefix
        .command(redis::cmd("DEL").arg(prefix.jobs_key()))
        .await;
    assert_lease_lost(queue.ack(&held).await, "ack after the stream was deleted");
    let fresh = new_job();
    queue.enqueue(&fresh).await.unwrap();
    let delivery = reserve(&queue, "a", LONG_LEASE).await.expect("new work");
    assert_eq!((&delivery.job, delivery.deliveries), (&fresh, 1));
    queue.ack(&delivery).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), Default::default());
}

/// A `redis-server` of this test's own, killed when dropped (also when the test fails).
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts a server without persistence on `port` (0: any free port).
    fn start(port: u16) -> Self {
        let port = if port == 0 { free_port() } else { port };
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the server answers a PING.
    async fn ready(&self) {
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = tokio::time::Instant::now() + RECOVERY;
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_works_again_after_redis_restarts() {
    // It runs its own server, but like every Redis test it runs where Redis is provided.
    if redis_url().is_none() {
        return;
    }
    let mut server = PrivateRedis::start(0);
    server.ready().await;
    let queue = RedisQueue::connect(&server.url(), &unique_name("dsq"), 3)
        .await
        .unwrap();
    queue.enqueue(&new_job()).await.unwrap();
    let delivery = reserve(&queue, "a", LONG_LEASE).await.unwrap();
    queue.ack(&delivery).await.unwrap();

    server.kill();
    let down = tokio::time::timeout(RECOVERY, queue.enqueue(&new_job()))
        .await
        .expect("an operation on a Redis that is gone must not hang");
    assert!(matches!(down, Err(QueueError::Unavailable(_))), "{down:?}");
    assert!(matches!(
        tokio::time::timeout(RECOVERY, queue.reserve("a", LONG_LEASE, WAIT))
            .await
            .expect("reserve must not hang either"),
        Err(QueueError::Unavailable(_))
    ));

    // Same port, empty memory: the stream and group are gone, the connections broken.
    let server = PrivateRedis::start(server.port);
    server.ready().await;
    let job = new_job();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while let Err(err) = queue.enqueue(&job).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not recover: {err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = reserve(&queue, "a", LONG_LEASE).await.expect("the job");
    assert_eq!((&delivery.job, delivery.deliveries), (&job, 1));
    queue.ack(&delivery).await.unwrap();
    queue.ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_a_hang() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let connected = tokio::time::timeout(RECOVERY, RedisQueue::connect(&url, "dsq", 3))
        .await
        .expect("connect must give up on its own");
    assert!(
        matches!(connected, Err(QueueError::Unavailable(_))),
        "{:?}",
        connected.map(|_| ())
    );
}
