//! The shared layer in Redis: values with a time to live, and invalidations over pub/sub.
//!
//! Everything lives under `<redis_prefix>:cache:`, so installations sharing a Redis stay apart:
//! - `deployment:<id>`: the deployment record as JSON, `SET … EX <ttl>`. Reads fill it with
//!   `NX` and changes overwrite it, so a slow reader can never put back what a delete replaced.
//! - `files:<id>`: a hash of manifest lookups, path → JSON entry (or `null`, no such file). It
//!   expires `ttl` after its first lookup, and one `DEL` drops all of a deployment's lookups.
//!   A lookup is only trusted after the deployment's record said `READY`, so a stale hash of a
//!   deleted deployment is never served.
//! - channel `invalidations`: `<node> <deployment-id>` after each change of a deployment, and
//!   `<node> project:<name>` after each change of a project (its production moved), and
//!   `<node> domain:<name>` after each change of a custom domain, to every
//!   node's listener; a node skips its own messages (it evicted before publishing).
//!
//! Commands go through a deadpool pool with one-second timeouts, so a stuck Redis slows a
//! miss by at most that much before the read goes to the repository. The subscription has its
//! own connection, watched by a ping every few seconds: a silent network failure is noticed
//! even when nothing is published.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, aio::PubSub};
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use futures_util::StreamExt;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{CacheError, Counters, Local};
use crate::breaker::{Breaker, RetryPolicy};
use crate::model::{Deployment, DeploymentId, FileEntry, ProjectName};

/// How an invalidation names a project rather than a deployment: `<node> project:<name>`.
const PROJECT_PREFIX: &str = "project:";
/// How an invalidation names a custom domain: `<node> domain:<name>`.
const DOMAIN_PREFIX: &str = "domain:";

/// Longest wait for a pooled connection, a new connection or a command's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for a subscription to be set up.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the listener checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Pauses between attempts to subscribe again: the shared backoff with jitter (so the nodes
/// of a cluster do not all come back at the same instant after a Redis restart), from up to
/// 100 ms growing to at most 5 s. The listener tries for as long as it runs, so only the
/// pauses are taken from the policy, not its bounds.
const RESUBSCRIBE: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    max_elapsed: Duration::MAX,
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(5),
};

/// Adds a manifest lookup to a deployment's hash and starts the hash's time to live with its
/// first field, so the hash expires at most `ttl` after it was created, like every entry.
const FILL_FILE: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
";

/// Redis key and channel names of one installation.
#[derive(Debug, Clone)]
struct Keys {
    base: String,
    channel: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let base = format!("{prefix}:cache");
        let channel = format!("{base}:invalidations");
        Self { base, channel }
    }

    fn deployment(&self, id: &DeploymentId) -> String {
        format!("{}:deployment:{id}", self.base)
    }

    fn files(&self, id: &DeploymentId) -> String {
        format!("{}:files:{id}", self.base)
    }
}

/// The shared layer of one node. Dropping it stops its listener.
pub(super) struct RedisLayer {
    pool: Pool,
    keys: Keys,
    ttl_secs: u64,
    /// Tags this node's invalidations so its listener can skip them.
    node: String,
    fill_file: redis::Script,
    /// Refuses commands at once while Redis is failing, so a miss goes straight to the
    /// repository instead of waiting for a connection timeout (`crate::breaker`).
    breaker: Option<Arc<Breaker>>,
    _listener: DropGuard,
}

impl RedisLayer {
    /// Connect to the Redis at `url`, subscribe to invalidations (before returning, so no
    /// change is missed once the cache is in use) and start the listener, which evicts from
    /// `local`.
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        ttl: Duration,
        local: Arc<Local>,
    ) -> Result<Self, CacheError> {
        let mut config = deadpool_redis::Config::from_url(url);
        config.pool = Some(PoolConfig {
            timeouts: Timeouts {
                wait: Some(COMMAND_TIMEOUT),
                create: Some(COMMAND_TIMEOUT),
                recycle: Some(COMMAND_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| CacheError::Unavailable(format!("invalid Redis settings: {err}")))?;
        let client = redis::Client::open(url)
            .map_err(|err| CacheError::Unavailable(format!("invalid Redis URL: {err}")))?;
        let keys = Keys::new(prefix);
        let subscription = subscribe(&client, &keys.channel).await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let stop = CancellationToken::new();
        let listener = Listener {
            client,
            channel: keys.channel.clone(),
            node: node.clone(),
            local,
        };
        tokio::spawn(listener.run(subscription, stop.clone()));
        Ok(Self {
            pool,
            keys,
            ttl_secs: ttl.as_secs().max(1),
            node,
            fill_file: redis::Script::new(FILL_FILE),
            breaker: None,
            _listener: stop.drop_guard(),
        })
    }

    /// Guard every later command with `breaker`.
    pub(super) fn guard(&mut self, breaker: Arc<Breaker>) {
        self.breaker = Some(breaker);
    }

    /// Run `command` through the breaker, if there is one. Only an unreachable Redis counts
    /// as a failure; a value that does not decode is Redis answering.
    async fn guarded<T>(
        &self,
        command: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        match &self.breaker {
            Some(breaker) => {
                breaker
                    .call(
                        |err| matches!(err, CacheError::Unavailable(_)),
                        |open| CacheError::Unavailable(open.to_string()),
                        command,
                    )
                    .await
            }
            None => command.await,
        }
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, CacheError> {
        self.pool
            .get()
            .await
            .map_err(|err| CacheError::Unavailable(err.to_string()))
    }

    /// The cached record of `id`, if some node stored it.
    pub(super) async fn deployment(
        &self,
        id: &DeploymentId,
    ) -> Result<Option<Deployment>, CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.keys.deployment(id))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            raw.map(|bytes| decode(&bytes)).transpose()
        })
        .await
    }

    /// Store a settled record read from the repository, unless one is there already: a change
    /// may have written a newer one since this read.
    pub(super) async fn fill_deployment(&self, deployment: &Deployment) -> Result<(), CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            redis::cmd("SET")
                .arg(self.keys.deployment(&deployment.id))
                .arg(encode(deployment)?)
                .arg("EX")
                .arg(self.ttl_secs)
                .arg("NX")
                .query_async::<redis::Value>(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// The cached lookup of `path` in the manifest of `id`: `Some(None)` is a cached "no such
    /// file", `None` a miss.
    pub(super) async fn file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<Option<FileEntry>>, CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            let raw: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(self.keys.files(id))
                .arg(path)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            raw.map(|bytes| decode(&bytes)).transpose()
        })
        .await
    }

    /// Store a lookup in a `READY` manifest.
    pub(super) async fn fill_file(
        &self,
        id: &DeploymentId,
        path: &str,
        entry: Option<&FileEntry>,
    ) -> Result<(), CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            self.fill_file
                .key(self.keys.files(id))
                .arg(path)
                .arg(encode(&entry)?)
                .arg(self.ttl_secs)
                .invoke_async::<redis::Value>(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Project `name` changed: tell every node. Projects are not stored in Redis, so there is
    /// nothing else to drop.
    pub(super) async fn project_changed(&self, name: &ProjectName) -> Result<(), CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            redis::cmd("PUBLISH")
                .arg(&self.keys.channel)
                .arg(format!("{} {PROJECT_PREFIX}{name}", self.node))
                .query_async::<redis::Value>(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Domain `name` changed: tell every node. Domains are not stored in Redis either.
    pub(super) async fn domain_changed(
        &self,
        name: &crate::domains::DomainName,
    ) -> Result<(), CacheError> {
        self.guarded(async {
            let mut connection = self.connection().await?;
            redis::cmd("PUBLISH")
                .arg(&self.keys.channel)
                .arg(format!("{} {DOMAIN_PREFIX}{name}", self.node))
                .query_async::<redis::Value>(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Deployment `id` changed: in one transaction, store its new record (`now`, if settled)
    /// or drop the old one, drop its manifest lookups, and tell every node.
    pub(super) async fn changed(
        &self,
        id: &DeploymentId,
        now: Option<&Deployment>,
    ) -> Result<(), CacheError> {
        self.guarded(async {
            let mut pipe = redis::pipe();
            pipe.atomic();
            match now {
                Some(deployment) => pipe
                    .cmd("SET")
                    .arg(self.keys.deployment(id))
                    .arg(encode(deployment)?)
                    .arg("EX")
                    .arg(self.ttl_secs)
                    .ignore(),
                None => pipe.cmd("DEL").arg(self.keys.deployment(id)).ignore(),
            };
            pipe.cmd("DEL").arg(self.keys.files(id)).ignore();
            pipe.cmd("PUBLISH")
                .arg(&self.keys.channel)
                .arg(format!("{} {id}", self.node))
                .ignore();
            let mut connection = self.connection().await?;
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(unavailable)
        })
        .await
    }
}

fn unavailable(err: redis::RedisError) -> CacheError {
    CacheError::Unavailable(err.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CacheError> {
    serde_json::to_vec(value).map_err(|err| CacheError::Corrupt(err.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CacheError> {
    serde_json::from_slice(bytes).map_err(|err| CacheError::Corrupt(err.to_string()))
}

/// A fresh subscription to `channel` on its own connection.
async fn subscribe(client: &redis::Client, channel: &str) -> Result<PubSub, CacheError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(SUBSCRIBE_TIMEOUT, attempt).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(err)) => Err(CacheError::Unavailable(format!(
            "cannot subscribe to cache invalidations: {err}"
        ))),
        Err(_) => Err(CacheError::Unavailable(
            "timed out subscribing to cache invalidations".to_owned(),
        )),
    }
}

/// The background task that applies other nodes' invalidations to this node's in-process
/// layer, and keeps that layer out of use while it cannot.
struct Listener {
    client: redis::Client,
    channel: String,
    node: String,
    local: Arc<Local>,
}

impl Listener {
    async fn run(self, first: PubSub, stop: CancellationToken) {
        let mut subscription = Some(first);
        let mut attempt = 0;
        loop {
            let pubsub = match subscription.take() {
                Some(pubsub) => pubsub,
                None => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RESUBSCRIBE.delay(attempt)) => {}
                    }
                    match subscribe(&self.client, &self.channel).await {
                        Ok(pubsub) => {
                            // Invalidations published while we were away are lost: start over.
                            self.local.resync();
                            tracing::info!(
                                "cache: subscribed to invalidations again; emptied the in-process cache"
                            );
                            attempt = 0;
                            pubsub
                        }
                        Err(err) => {
                            tracing::debug!(error = %err, "cache: still cannot subscribe");
                            attempt = attempt.saturating_add(1);
                            continue;
                        }
                    }
                }
            };
            let lost = self.follow(pubsub, &stop).await;
            if stop.is_cancelled() {
                return;
            }
            self.local.distrust();
            tracing::warn!(
                reason = %lost,
                "cache: lost the invalidation subscription; serving without the in-process cache until it is back"
            );
        }
    }

    /// Apply messages until the subscription is lost (returns why) or `stop` fires.
    async fn follow(&self, pubsub: PubSub, stop: &CancellationToken) -> String {
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate; the subscription was just confirmed.
        ping.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return "stopping".to_owned(),
                message = messages.next() => match message {
                    Some(message) => self.apply(&message),
                    None => return "the connection closed".to_owned(),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return err.to_string(),
                        Err(_) => return "Redis did not answer a ping in time".to_owned(),
                    }
                }
            }
        }
    }

    fn apply(&self, message: &redis::Msg) {
        let payload = String::from_utf8_lossy(message.get_payload_bytes());
        let Some((node, id)) = payload.split_once(' ') else {
            tracing::debug!(%payload, "cache: ignoring a malformed invalidation");
            return;
        };
        if node == self.node {
            return;
        }
        if let Some(name) = id.strip_prefix(DOMAIN_PREFIX) {
            match crate::domains::DomainName::parse(name) {
                Ok(name) => {
                    self.local.forget_domain(&name);
                    Counters::bump(&self.local.counters.invalidations_received);
                }
                Err(_) => tracing::debug!(%payload, "cache: ignoring a malformed invalidation"),
            }
            return;
        }
        if let Some(name) = id.strip_prefix(PROJECT_PREFIX) {
            match name.parse::<ProjectName>() {
                Ok(name) => {
                    self.local.forget_project(&name);
                    Counters::bump(&self.local.counters.invalidations_received);
                }
                Err(_) => tracing::debug!(%payload, "cache: ignoring a malformed invalidation"),
            }
            return;
        }
        match id.parse::<DeploymentId>() {
            Ok(id) => {
                self.local.forget(id);
                Counters::bump(&self.local.counters.invalidations_received);
            }
            Err(_) => tracing::debug!(%payload, "cache: ignoring a malformed invalidation"),
        }
    }
}
