//! Redis [`Queue`]: the job queue of a cluster, on Redis Streams with a consumer group.
//!
//! # Why Redis Streams
//! A stream read through a consumer group already is an at-least-once queue: `XREADGROUP`
//! hands each entry to one consumer and keeps it in the group's pending entries list (PEL)
//! with a delivery counter until `XACK`, and `XCLAIM` moves a pending entry to another
//! consumer. What Streams lack — a lease per delivery, delayed retries, a dead-letter list —
//! this adapter adds with a few more keys, and every operation runs as one Lua script, so it
//! is atomic however many nodes share the queue.
//!
//! # Keys
//! Everything lives under `{prefix}:queue:`, so installations and tests can share one Redis
//! (and the read cache, which uses the same prefix, keeps out of the way):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `…:jobs` | stream, group `workers` | jobs waiting (not yet read by the group) and in flight (in the PEL); fields `job` (JSON) and `prior` (deliveries before this entry) |
//! | `…:leases` | sorted set | entry id → lease deadline, in Redis milliseconds |
//! | `…:holders` | hash | entry id → token of the delivery that holds it |
//! | `…:delayed` | sorted set | nacked jobs → due time; a member is `entry-id\|deliveries\|job` |
//! | `…:dead` | stream | dead letters, oldest first; fields `job` and `deliveries` |
//!
//! A delivery id is `entry-id/token`, the token fresh for every delivery. A delivery is live
//! while the holders hash still names its token, its lease deadline is in the future, and
//! the group still has the entry pending — so a delivery whose lease ran out, or whose entry
//! went to another consumer, or whose group was lost, gets [`QueueError::LeaseLost`].
//!
//! # How each operation stays atomic
//! Redis runs a script to the end before serving anything else, and every script reads the
//! clock with `TIME`, so all nodes agree on when a lease runs out whatever their own clocks
//! say. The scripts never raise an error after their first write (commands that can fail on
//! a lost group run under `pcall`), because Redis does not roll back a failed script.
//! - **enqueue**: one `XADD`.
//! - **reserve**: one script does the upkeep below, then claims an expired entry (`XCLAIM`,
//!   delivery counter + 1) or reads a new one (`XREADGROUP … >`), and records the lease and
//!   the token — the delivery exists exactly when its lease does. If the group is gone (a
//!   Redis restart without persistence, `XGROUP DESTROY`) the script recreates it
//!   (`XGROUP CREATE … 0 MKSTREAM`) first; entries still in the stream are then delivered
//!   again, which at-least-once allows.
//! - **heartbeat / ack / nack**: one script each checks that the delivery is live and then
//!   moves the deadline, or removes the entry (`XACK` + `XDEL`, so the stream only holds live
//!   work), or removes it and puts the job back — into the stream, into the delayed set, or
//!   into the dead-letter stream once it used `max_deliveries`.
//! - **depth**: one script does the upkeep and counts, so the numbers add up.
//!
//! Upkeep, at the start of `reserve` and `depth`: delayed jobs that fell due are appended to
//! the stream, and entries whose lease ran out on their last allowed delivery are
//! dead-lettered. As in [`super::MemoryQueue`] there is no background task that could stop
//! running: recovery happens whenever anyone asks for work.
//!
//! # Waiting
//! Scripts cannot block, so a `reserve` that found nothing waits outside: an `XREAD BLOCK`
//! on the stream after the last id the script saw, which any `XADD` (an enqueue, a nack, a
//! due job promoted) ends at once on every node, for at most the time until the next known
//! deadline and never past the caller's `wait`. A blocked read consumes nothing, so
//! cancelling `reserve` mid-wait loses no job. Changes that add no entry — a delayed retry or
//! a short lease created by another node after the look — are noticed within [`SLICE`].
//!
//! # Connections
//! Two deadpool pools of multiplexed connections: one for the scripts and commands, one for
//! the blocking reads, so waiting reservers can never starve heartbeats of connections.
//! Connecting, waiting for a pooled connection and every reply have timeouts, so an
//! unreachable Redis is [`QueueError::Unavailable`] within seconds, never a hang. A pooled
//! connection is checked with a `PING` before each use and replaced if broken, so after a
//! Redis restart the next operation runs on a fresh connection.
//!
//! # Limits
//! - The keys must not be evicted (`maxmemory-policy noeviction`, as for any broker): an
//!   entry whose lease record vanished would stay pending until the repository's reconciler
//!   enqueues its deployment again.
//! - Not for Redis Cluster: the scripts touch several keys, which must then share a slot.
//! - `rediss://` needs redis-rs's TLS support, which this build leaves out.
//! - Durability is whatever the Redis server is configured for (`appendonly yes` keeps all
//!   but the last second). Jobs lost anyway are recovered by the repository's reconciler,
//!   which enqueues again every deployment still `QUEUED`.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncConnectionConfig, Script};
use deadpool_redis::{Manager, Pool, PoolConfig, Runtime, Timeouts};
use tokio::time::Instant;

use super::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// The consumer group every node reads through. One group: all workers share the jobs.
const GROUP: &str = "workers";

/// Longest a waiting `reserve` blocks before looking again; bounds how late it notices a
/// change that adds no stream entry.
const SLICE: Duration = Duration::from_millis(500);

/// How long to wait for a TCP connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for a reply to a command or script; they all finish in microseconds, so
/// anything this slow means Redis is gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait for a pooled connection, or for a new one to be made or checked.
const POOL_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections for scripts and commands. Each call holds one only for a round trip.
const COMMAND_CONNECTIONS: usize = 16;

/// Connections for blocking reads: one per waiting `reserve` of this process. A reserver
/// that finds them all busy sleeps its slice instead, which is slower but still correct.
const WAIT_CONNECTIONS: usize = 64;

/// Stands in for "never", as in the memory queue: 30 years in milliseconds still adds to a
/// Redis timestamp without losing precision in Lua's doubles.
const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Helpers every script shares. The key and argument order is the same for all scripts:
/// `KEYS` = jobs, leases, holders, delayed, dead; `ARGV[1]` = group, `ARGV[2]` =
/// max_deliveries, then the operation's own arguments.
macro_rules! prelude {
    () => {
        r#"
local jobs, leases, holders, delayed, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group = ARGV[1]
local max_deliveries = tonumber(ARGV[2])

-- Redis's clock in milliseconds: the one clock every node agrees on.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The fields of stream entry `id` as a table, or nil if the entry is gone.
local function entry_fields(id)
  local found = redis.call('XRANGE', jobs, id, id)
  if #found == 0 then return nil end
  local fields, flat = {}, found[1][2]
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  return fields
end

-- How often the group has delivered entry `id`; 0 if it is not pending (or the group is
-- gone, hence pcall: a script must not fail after it has written).
local function pending_count(id)
  local pending = redis.pcall('XPENDING', jobs, group, id, id, 1)
  if type(pending) ~= 'table' or pending.err or #pending == 0 then return 0 end
  return tonumber(pending[1][4])
end

local function forget_lease(id)
  redis.call('ZREM', leases, id)
  redis.call('HDEL', holders, id)
end

-- Takes entry `id` out for good: off the PEL, out of the stream, no lease.
local function remove(id)
  redis.pcall('XACK', jobs, group, id)
  redis.call('XDEL', jobs, id)
  forget_lease(id)
end

local function bury(job, deliveries)
  redis.call('XADD', dead, '*', 'job', job, 'deliveries', deliveries)
end

-- Whether the delivery `token` of entry `id` is live at `now`.
local function held(id, token, now)
  if redis.call('HGET', holders, id) ~= token then return false end
  local deadline = redis.call('ZSCORE', leases, id)
  if not deadline or tonumber(deadline) <= now then return false end
  return pending_count(id) > 0
end

-- Appends due delayed jobs to the stream and settles expired leases: a lease whose entry or
-- group is gone is dropped, an entry that used its last delivery is dead-lettered. Returns
-- the expired entries that may be delivered again ({id, job, deliveries so far, pel count})
-- and how many jobs were dead-lettered. Bounded per call so a backlog cannot stall Redis.
local function upkeep(now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)
  for _, member in ipairs(due) do
    redis.call('ZREM', delayed, member)
    local deliveries, job = string.match(member, '^[^|]*|([^|]*)|(.*)$')
    if job then redis.call('XADD', jobs, '*', 'job', job, 'prior', deliveries) end
  end
  local claimable, buried = {}, 0
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    local fields = entry_fields(id)
    local count = pending_count(id)
    if not fields then
      -- The entry was deleted under us: nothing left to deliver.
      redis.pcall('XACK', jobs, group, id)
      forget_lease(id)
    elseif count == 0 then
      -- The group was lost and recreated: the entry will be read again as new.
      forget_lease(id)
    else
      local job = fields.job or ''
      local deliveries = (tonumber(fields.prior) or 0) + count
      if deliveries >= max_deliveries then
        bury(job, deliveries)
        remove(id)
        buried = buried + 1
      else
        table.insert(claimable, {id, job, deliveries, count})
      end
    end
  end
  return claimable, buried
end
"#
    };
}

/// `ARGV[3]` consumer, `ARGV[4]` lease in ms, `ARGV[5]` token of the new delivery.
/// Returns `{'job', entry id, job, deliveries, buried}` or
/// `{'wait', ms until the next deadline or -1, last stream id, buried}`.
const RESERVE: &str = concat!(
    prelude!(),
    r#"
local consumer, token = ARGV[3], ARGV[5]
-- (Re)create the group Redis lost (a restart without persistence, XGROUP DESTROY) before
-- anything is written. Looked up rather than created blindly: a BUSYGROUP error on every
-- reserve would drown real errors in the server's error statistics.
local has_group = false
if redis.call('EXISTS', jobs) == 1 then
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', jobs)) do
    for i = 1, #info, 2 do
      if info[i] == 'name' and info[i + 1] == group then has_group = true end
    end
  end
end
if not has_group then redis.call('XGROUP', 'CREATE', jobs, group, '0', 'MKSTREAM') end
local now = now_ms()
local claimable, buried = upkeep(now)
local lease_until = now + tonumber(ARGV[4])

local function lease(id)
  redis.call('ZADD', leases, lease_until, id)
  redis.call('HSET', holders, id, token)
end

-- A lease that ran out first: that job has waited longest.
for _, c in ipairs(claimable) do
  local claimed = redis.call('XCLAIM', jobs, group, consumer, 0, c[1], 'RETRYCOUNT', c[4] + 1)
  if #claimed > 0 then
    lease(c[1])
    return {'job', c[1], c[2], tostring(c[3] + 1), tostring(buried)}
  end
  -- Cannot happen (upkeep saw the entry); never leave it pending without a lease.
  remove(c[1])
end

local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', jobs, '>')
if read then
  local entry = read[1][2][1]
  local fields, flat = {}, entry[2]
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  lease(entry[1])
  local deliveries = (tonumber(fields.prior) or 0) + 1
  return {'job', entry[1], fields.job or '', tostring(deliveries), tostring(buried)}
end

-- Nothing to deliver. Forget consumers of workers long gone, so the group does not grow
-- with every worker restart; a consumer that comes back is recreated by its next read.
local consumers = redis.pcall('XINFO', 'CONSUMERS', jobs, group)
if consumers.err then consumers = {} end
for _, info in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #info, 2 do
    if info[i] == 'name' then name = info[i + 1]
    elseif info[i] == 'pending' then pending = info[i + 1]
    elseif info[i] == 'idle' then idle = info[i + 1] end
  end
  if name and pending == 0 and idle and idle > 3600000 then
    redis.call('XGROUP', 'DELCONSUMER', jobs, group, name)
  end
end

local next_due = -1
for _, key in ipairs({delayed, leases}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local due = math.max(tonumber(first[2]) - now, 0)
    if next_due < 0 or due < next_due then next_due = due end
  end
end
local last_id = '0-0'
local info = redis.call('XINFO', 'STREAM', jobs)
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last_id = info[i + 1] end
end
return {'wait', tostring(next_due), last_id, tostring(buried)}
"#
);

/// `ARGV[3]` entry id, `ARGV[4]` token, `ARGV[5]` lease in ms. Returns 1, or 0 if lost.
const HEARTBEAT: &str = concat!(
    prelude!(),
    r#"
local now = now_ms()
if not held(ARGV[3], ARGV[4], now) then return 0 end
redis.call('ZADD', leases, now + tonumber(ARGV[5]), ARGV[3])
return 1
"#
);

/// `ARGV[3]` entry id, `ARGV[4]` token. Returns 1, or 0 if lost.
const ACK: &str = concat!(
    prelude!(),
    r#"
if not held(ARGV[3], ARGV[4], now_ms()) then return 0 end
remove(ARGV[3])
return 1
"#
);

/// `ARGV[3]` entry id, `ARGV[4]` token, `ARGV[5]` retry-after in ms.
/// Returns 1 (will be delivered again), 2 (dead-lettered), or 0 if lost.
const NACK: &str = concat!(
    prelude!(),
    r#"
local id, retry_after = ARGV[3], tonumber(ARGV[5])
local now = now_ms()
if not held(id, ARGV[4], now) then return 0 end
local fields = entry_fields(id) or {}
local job = fields.job or ''
local deliveries = (tonumber(fields.prior) or 0) + pending_count(id)
remove(id)
if deliveries >= max_deliveries then
  bury(job, deliveries)
  return 2
end
if retry_after <= 0 then
  -- Behind the jobs already waiting, so a failing job cannot starve them.
  redis.call('XADD', jobs, '*', 'job', job, 'prior', deliveries)
else
  -- The old entry id keeps the member unique even if the same job is nacked twice.
  redis.call('ZADD', delayed, now + retry_after, id .. '|' .. deliveries .. '|' .. job)
end
return 1
"#
);

/// No arguments of its own. Returns `{waiting, in_flight, dead}`.
const DEPTH: &str = concat!(
    prelude!(),
    r#"
local now = now_ms()
upkeep(now)
local pel = 0
local summary = redis.pcall('XPENDING', jobs, group)
if type(summary) == 'table' and not summary.err then pel = tonumber(summary[1]) end
-- Leases that ran out are waiting for their next delivery, not in flight.
local expired = math.min(redis.call('ZCOUNT', leases, '-inf', now), pel)
local unread = math.max(redis.call('XLEN', jobs) - pel, 0)
return {unread + redis.call('ZCARD', delayed) + expired, pel - expired, redis.call('XLEN', dead)}
"#
);

/// The keys of one queue, all under its prefix.
#[derive(Debug, Clone)]
struct Keys {
    /// The stream of waiting and delivered jobs, read through [`GROUP`].
    jobs: String,
    /// Lease deadlines by entry id.
    leases: String,
    /// Delivery tokens by entry id: which delivery holds an entry.
    holders: String,
    /// Nacked jobs by due time.
    delayed: String,
    /// The dead-letter stream.
    dead: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{prefix}:queue:{name}");
        Self {
            jobs: key("jobs"),
            leases: key("leases"),
            holders: key("holders"),
            delayed: key("delayed"),
            dead: key("dead"),
        }
    }

    /// In the order the scripts expect them.
    fn in_script_order(&self) -> [&str; 5] {
        [
            &self.jobs,
            &self.leases,
            &self.holders,
            &self.delayed,
            &self.dead,
        ]
    }
}

/// The scripts, hashed once; redis-rs sends `EVALSHA` and loads a script again when the
/// server has forgotten it (after a restart).
#[derive(Debug)]
struct Scripts {
    /// Upkeep, then claim an expired entry or read a new one, and lease it.
    reserve: Script,
    /// Check the delivery, move its deadline.
    heartbeat: Script,
    /// Check the delivery, remove the entry.
    ack: Script,
    /// Check the delivery, remove the entry, put the job back (or dead-letter it).
    nack: Script,
    /// Upkeep, then count.
    depth: Script,
}

/// The Redis queue. See the module docs for the layout and why each operation is atomic.
#[derive(Debug)]
pub struct RedisQueue {
    /// Connections for scripts and plain commands.
    commands: Pool,
    /// Connections for blocking reads, kept apart so waiting reservers never hold up a
    /// heartbeat or an ack.
    waits: Pool,
    /// Where this queue's data lives.
    keys: Keys,
    /// Deliveries a job gets before it is dead-lettered; at least 1.
    max_deliveries: u32,
    /// One script per operation.
    scripts: Scripts,
}

/// What the reserve script found.
enum Look {
    /// An entry, now leased to the caller.
    Delivered {
        /// The stream entry id, the first half of the delivery id.
        entry: String,
        /// The job as stored, still to be decoded.
        job: String,
        /// Deliveries of this job so far, this one included.
        deliveries: u32,
    },
    /// Nothing to deliver.
    Empty {
        /// How long until a delayed job or a lease falls due, if any will.
        next_due: Option<Duration>,
        /// The stream's last id: a blocking read after it wakes on the next entry.
        last_id: String,
    },
}

impl RedisQueue {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`) and
    /// checks that it answers. Keys go under `{prefix}:queue:`; a job is delivered at most
    /// `max_deliveries` times (`0` counts as `1`) before it is dead-lettered.
    ///
    /// Fails with [`QueueError::Misconfigured`] for a URL that cannot work and with
    /// [`QueueError::Unavailable`] if Redis does not answer within a few seconds.
    pub async fn connect(url: &str, prefix: &str, max_deliveries: u32) -> Result<Self, QueueError> {
        let commands = pool(url, REPLY_TIMEOUT, COMMAND_CONNECTIONS, POOL_TIMEOUT)?;
        // A blocking read may take a whole slice before Redis answers. Zero wait: a reserver
        // finding every wait connection busy sleeps instead of queuing for one.
        let waits = pool(url, SLICE + REPLY_TIMEOUT, WAIT_CONNECTIONS, Duration::ZERO)?;
        let queue = Self {
            commands,
            waits,
            keys: Keys::new(prefix),
            max_deliveries: max_deliveries.max(1),
            scripts: Scripts {
                reserve: Script::new(RESERVE),
                heartbeat: Script::new(HEARTBEAT),
                ack: Script::new(ACK),
                nack: Script::new(NACK),
                depth: Script::new(DEPTH),
            },
        };
        queue.ping().await?;
        Ok(queue)
    }

    /// A connection for a command or script.
    async fn connection(&self) -> Result<deadpool_redis::Connection, QueueError> {
        self.commands
            .get()
            .await
            .map_err(|err| QueueError::Unavailable(format!("no connection to Redis: {err}")))
    }

    /// Runs `script` with this queue's keys, the shared arguments and `args`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        args: &[&str],
    ) -> Result<T, QueueError> {
        let mut invocation = script.prepare_invoke();
        for key in self.keys.in_script_order() {
            invocation.key(key);
        }
        invocation.arg(GROUP).arg(self.max_deliveries);
        for arg in args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection().await?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(redis_error)
    }

    /// Runs the reserve script once.
    async fn look(&self, consumer: &str, lease: Duration, token: &str) -> Result<Look, QueueError> {
        let reply: Vec<String> = self
            .run(
                &self.scripts.reserve,
                &[consumer, &millis(lease).to_string(), token],
            )
            .await?;
        let corrupt = || QueueError::Corrupt(format!("unexpected reply to reserve: {reply:?}"));
        let buried = match reply.first().map(String::as_str) {
            Some("job") => reply.get(4),
            Some("wait") => reply.get(3),
            _ => None,
        };
        if let Some(buried) = buried.and_then(|n| n.parse::<u64>().ok())
            && buried > 0
        {
            tracing::warn!(
                jobs = buried,
                "jobs dead-lettered: their last lease ran out without ack"
            );
        }
        match reply.as_slice() {
            [kind, entry, job, deliveries, _] if kind == "job" => Ok(Look::Delivered {
                entry: entry.clone(),
                job: job.clone(),
                deliveries: deliveries.parse().map_err(|_| corrupt())?,
            }),
            [kind, due, last_id, _] if kind == "wait" => Ok(Look::Empty {
                next_due: due.parse::<u64>().ok().map(Duration::from_millis),
                last_id: last_id.clone(),
            }),
            _ => Err(corrupt()),
        }
    }

    /// Waits up to `block` for an entry after `last_id`. Errors only shorten the wait: the
    /// next look reports them.
    async fn wait_for_entry(&self, last_id: &str, block: Duration) {
        let Ok(connection) = self.waits.get().await else {
            tokio::time::sleep(block).await;
            return;
        };
        let mut guard = BlockedConnection(Some(connection));
        let Some(connection) = guard.0.as_mut() else {
            return;
        };
        let result: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(&self.keys.jobs)
            .arg(last_id)
            .query_async(connection)
            .await;
        // Finished: the connection is idle again and may go back to the pool.
        let finished = guard.0.take();
        drop(finished);
        if let Err(err) = result {
            tracing::debug!(error = %err, "blocking read failed");
            tokio::time::sleep(block).await;
        }
    }

    /// Deletes everything this queue holds — waiting, delayed and in-flight jobs, dead
    /// letters — in one step, as SQS's `PurgeQueue` does. For tests, benchmarks and taking an
    /// installation down; deliveries in flight then get [`QueueError::LeaseLost`].
    pub async fn purge(&self) -> Result<(), QueueError> {
        let mut connection = self.connection().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(&self.keys.in_script_order())
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    /// Splits a delivery id into the entry id and the token; `None` if it is not one of ours.
    fn parse_delivery(delivery: &Delivery) -> Option<(&str, &str)> {
        delivery
            .delivery_id
            .split_once('/')
            .filter(|(entry, token)| !entry.is_empty() && !token.is_empty())
    }
}

/// A wait connection in the middle of a blocking read. Dropped before the read finishes (the
/// caller cancelled `reserve`), Redis still has the read blocked on it, and the next user
/// would queue behind it — so it is taken out of the pool and closed instead.
struct BlockedConnection(Option<deadpool_redis::Connection>);

impl Drop for BlockedConnection {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(deadpool_redis::Connection::take(connection));
        }
    }
}

/// A pool of connections to `url` whose replies time out after `reply_timeout`, holding at
/// most `size` connections, whose callers wait at most `wait` for one.
fn pool(
    url: &str,
    reply_timeout: Duration,
    size: usize,
    wait: Duration,
) -> Result<Pool, QueueError> {
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(reply_timeout));
    let manager = Manager::new_with_config(url, connection).map_err(|err| {
        QueueError::Misconfigured(format!("cannot use the Redis URL {}: {err}", redact(url)))
    })?;
    let mut config = PoolConfig::new(size);
    config.timeouts = Timeouts {
        wait: Some(wait),
        create: Some(POOL_TIMEOUT),
        recycle: Some(POOL_TIMEOUT),
    };
    Pool::builder(manager)
        .config(config)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|err| QueueError::Misconfigured(format!("cannot build the Redis pool: {err}")))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://…{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// Every Redis error is the queue being unavailable to the caller: a connection that broke,
/// a reply that timed out, or a server refusing (out of memory, read-only replica, a key of
/// the wrong type) — all things an operator fixes while callers retry.
fn redis_error(err: redis::RedisError) -> QueueError {
    QueueError::Unavailable(format!("Redis: {err}"))
}

/// `duration` in whole milliseconds, with "forever" capped as in the module constants.
fn millis(duration: Duration) -> u64 {
    duration.min(FOREVER).as_millis() as u64
}

fn lease_lost_unless(held: i64) -> Result<(), QueueError> {
    if held == 0 {
        Err(QueueError::LeaseLost)
    } else {
        Ok(())
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        let json = serde_json::to_string(job)
            .map_err(|err| QueueError::Corrupt(format!("cannot encode the job: {err}")))?;
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("XADD")
            .arg(&self.keys.jobs)
            .arg("*")
            .arg("job")
            .arg(json)
            .arg("prior")
            .arg(0)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        let give_up = Instant::now() + wait.min(FOREVER);
        loop {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let (entry, job, deliveries) = match self.look(consumer, lease, &token).await? {
                Look::Delivered {
                    entry,
                    job,
                    deliveries,
                } => (entry, job, deliveries),
                Look::Empty { next_due, last_id } => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Ok(None);
                    }
                    let mut block = (give_up - now).min(SLICE);
                    if let Some(due) = next_due {
                        block = block.min(due);
                    }
                    // `BLOCK 0` would mean forever.
                    self.wait_for_entry(&last_id, block.max(Duration::from_millis(1)))
                        .await;
                    continue;
                }
            };
            let delivery_id = format!("{entry}/{token}");
            let job = match serde_json::from_str::<Job>(&job) {
                Ok(job) => job,
                Err(err) => {
                    // It can never be built; jobs are hints, and the reconciler enqueues
                    // again whatever deployment this was. Drop it so it stops coming back.
                    tracing::error!(entry, error = %err, "dropping a job that cannot be decoded");
                    let _: Result<i64, _> = self.run(&self.scripts.ack, &[&entry, &token]).await;
                    return Err(QueueError::Corrupt(format!("job {entry}: {err}")));
                }
            };
            if deliveries > 1 {
                tracing::info!(
                    consumer,
                    deployment_id = %job.deployment_id,
                    deliveries,
                    "job delivered again"
                );
            }
            return Ok(Some(Delivery {
                delivery_id,
                job,
                deliveries,
            }));
        }
    }

    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        let (entry, token) = Self::parse_delivery(delivery).ok_or(QueueError::LeaseLost)?;
        let held: i64 = self
            .run(
                &self.scripts.heartbeat,
                &[entry, token, &millis(lease).to_string()],
            )
            .await?;
        lease_lost_unless(held)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (entry, token) = Self::parse_delivery(delivery).ok_or(QueueError::LeaseLost)?;
        let held: i64 = self.run(&self.scripts.ack, &[entry, token]).await?;
        lease_lost_unless(held)
    }

    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError> {
        let (entry, token) = Self::parse_delivery(delivery).ok_or(QueueError::LeaseLost)?;
        let outcome: i64 = self
            .run(
                &self.scripts.nack,
                &[entry, token, &millis(retry_after).to_string()],
            )
            .await?;
        if outcome == 2 {
            tracing::warn!(
                deployment_id = %delivery.job.deployment_id,
                deliveries = delivery.deliveries,
                "job dead-lettered after its last delivery"
            );
        }
        lease_lost_unless(outcome)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let (waiting, in_flight, dead): (u64, u64, u64) =
            self.run(&self.scripts.depth, &[]).await?;
        Ok(QueueDepth {
            waiting,
            in_flight,
            dead,
        })
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut connection = self.connection().await?;
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        entries
            .into_iter()
            .map(|(id, fields)| {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.as_str())
                };
                let corrupt = |what: &str| QueueError::Corrupt(format!("dead letter {id}: {what}"));
                let job = serde_json::from_str::<Job>(field("job").unwrap_or_default())
                    .map_err(|err| corrupt(&err.to_string()))?;
                let deliveries = field("deliveries")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| corrupt("no delivery count"))?;
                Ok(DeadLetter { job, deliveries })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix() {
        let keys = Keys::new("staging");
        for key in keys.in_script_order() {
            assert!(key.starts_with("staging:queue:"), "{key}");
        }
    }

    #[test]
    fn a_delivery_id_splits_into_entry_and_token() {
        let delivery = |id: &str| Delivery {
            delivery_id: id.to_owned(),
            job: Job {
                deployment_id: crate::model::DeploymentId::random(),
            },
            deliveries: 1,
        };
        assert_eq!(
            RedisQueue::parse_delivery(&delivery("1700000000000-0/abc")),
            Some(("1700000000000-0", "abc"))
        );
        assert_eq!(RedisQueue::parse_delivery(&delivery("no-token")), None);
        assert_eq!(RedisQueue::parse_delivery(&delivery("/abc")), None);
        assert_eq!(RedisQueue::parse_delivery(&delivery("1-0/")), None);
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://…@host:6379/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn forever_fits_a_lua_number() {
        // Redis time (ms since 1970) plus "forever" must stay exact in a double and print
        // without an exponent.
        assert!(millis(Duration::MAX) < 1 << 50);
    }

    #[tokio::test]
    async fn a_malformed_url_is_a_configuration_error() {
        let err = RedisQueue::connect("redis://host:notaport", "p", 3)
            .await
            .unwrap_err();
        assert!(matches!(err, QueueError::Misconfigured(_)), "{err:?}");
    }
}
