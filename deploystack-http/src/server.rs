//! The connection loop: accept, hand each connection to hyper's HTTP/1 server with the
//! hardening limits, and drain on shutdown.
//!
//! - **Connection cap** (`max_connections`): a semaphore permit is taken *before* `accept`,
//!   so past the cap new connections wait in the kernel's accept queue (and are refused by
//!   the kernel once that queue is full) instead of costing a task, buffers and a file
//!   descriptor each. The same permits tell shutdown when every connection is gone.
//! - **Header read timeout** (`header_read_timeout_secs`): hyper arms it whenever it starts
//!   waiting for a request head — on a new connection and between keep-alive requests — so
//!   it closes slowloris clients and idle keep-alive connections alike. It needs the timer
//!   set on the builder; without one hyper silently never fires it.
//! - **Header size** (`max_header_bytes`): request line plus headers; hyper answers 431 and
//!   closes the connection.
//!
//! - **Threads** (`serve_threads`, one per core by default): one single-threaded event loop
//!   per thread on the shared listening socket, each pinned to a core of its own, with every
//!   connection served on the core that receives its packets, and moved when its client
//!   settles on another core ([`Homing`]); see [`run`], [`cores`] and [`Balancer`].
//!
//! Graceful shutdown matches `axum::serve`: stop accepting, let each connection finish its
//! in-flight request (idle ones close at once), then return.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use deploystack_core::config::Config;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::App;
use crate::{express, sendfile};

mod cores;
use cores::Cores;

/// How many connections each serve thread has open: what the [`Balancer`] evens out, and
/// what `/metrics` shows (`deploystack_http_connections`). Cheap to clone; clones share the
/// counts.
#[derive(Clone, Debug)]
pub struct Connections(Arc<[AtomicUsize]>);

impl Connections {
    /// Counts for `threads` serve threads (at least one), all zero.
    pub fn new(threads: usize) -> Self {
        Self((0..threads.max(1)).map(|_| AtomicUsize::new(0)).collect())
    }

    /// Open connections per serve thread, in thread order.
    pub fn per_thread(&self) -> Vec<usize> {
        self.0
            .iter()
            .map(|open| open.load(Ordering::Relaxed))
            .collect()
    }

    fn count(&self, thread: usize) -> usize {
        self.0[thread].load(Ordering::Relaxed)
    }
}

/// What every serve thread shares: the app, hyper's connection settings, the connection cap
/// and the balancer.
#[derive(Clone)]
struct Shared {
    app: App,
    builder: Arc<http1::Builder>,
    permits: Arc<Semaphore>,
    balancer: Arc<Balancer>,
    stop: CancellationToken,
    /// The limits the express lane applies itself.
    limits: express::Limits,
    /// The serve threads' cores, to steer each connection to the thread on its core.
    cores: Cores,
}

/// Serve `app` on `listener` until `stop` is cancelled, then wait for open connections to
/// finish their requests.
///
/// Each serve thread (`serve_threads`, one too) runs a single-threaded runtime of its own
/// with its own accept loop on a duplicate of the listening socket, and serves its
/// connections itself. This is nginx's model of one event loop per core: a connection's
/// requests never wait for another thread to pick up its task, which keeps tail latency flat
/// under load, and the caller's runtime (the API's background work, builds) never shares a
/// thread with serving. With `serve_cpu_affinity` each thread is pinned to a core and takes
/// the connections that arrive on it ([`cores`]); the [`Balancer`] keeps the threads' shares
/// from drifting far apart either way.
pub async fn run(
    listener: TcpListener,
    app: App,
    config: &Config,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout())
        .max_header_size(config.max_header_bytes.max(1))
        .keep_alive(true);
    // The app's state holds the counts, so `/metrics` reads the same ones.
    let open = app.state().connections.clone();
    let threads = open.0.len();
    // `serve_cpu_affinity` is gone from the settings; the pinning it chose goes next.
    let cores = Cores::plan(threads, false);
    let (balancer, inboxes) = Balancer::new(open, cores.pinned());
    let shared = Shared {
        app,
        builder: Arc::new(builder),
        permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        balancer: Arc::new(balancer),
        stop,
        limits: express::Limits {
            header_read_timeout: config.header_read_timeout(),
            max_header_bytes: config.max_header_bytes.max(1),
        },
        cores,
    };
    let listener = listener.into_std()?;
    let mut finished = Vec::with_capacity(threads);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let listener = listener.try_clone()?;
        let shared = shared.clone();
        let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("ds-serve-{index}"))
            .spawn(move || {
                shared.cores.pin_current(index);
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve_thread(index, listener, inbox, shared).await,
                        Err(err) => tracing::error!(error = %err, "cannot use the listener"),
                    }
                });
                drop(done);
            })?;
        finished.push(finished_rx);
    }
    drop(listener);
    for thread in finished {
        // An error only means the thread ended (its sender was dropped); either way it is done.
        let _ = thread.await;
    }
    Ok(())
}

/// Decides which serve thread serves a new connection, and keeps the threads' shares even.
///
/// Every thread waits on the same listening socket, and the kernel wakes whichever it
/// likes: when a client opens many connections at once, one thread often accepts most of
/// them (measured: 7 against 38 of 64, and 40 against 1). On a machine whose cores only
/// serve, that thread then queues every request while the other core idles.
///
/// So each connection has a *preferred* thread — with pinned threads the one on the core
/// its packets arrive on ([`cores`]), otherwise the one that accepted it — which keeps it
/// unless the preferred thread is too far ahead of the least busy one; then the least busy
/// thread gets it, through its inbox (like Envoy's "exact balance").
///
/// How far is too far depends on what the preference is worth. An accepting thread is
/// luck, so it may be at most two connections ahead: counts stay within two of each other,
/// and hand-offs, which cost a wake-up of the other thread, are kept to the connections that
/// even the load out. A core's thread serves that core's connections in microseconds, so it
/// may be ahead by two plus half the least busy thread's count (64 connections split at
/// worst 25 to 39): enough for the kernel's own spread, not for one busy core — a NIC with
/// a single queue, a proxy on one core — to take every connection.
struct Balancer {
    /// Open connections per thread, counted from the moment one is assigned.
    open: Connections,
    /// Whether the preferred thread is the connection's core's (pinned threads), not luck.
    steered: bool,
    /// Where to send a connection for each thread.
    inboxes: Box<[mpsc::UnboundedSender<Handoff>]>,
}

/// A connection on its way to the thread that will serve it.
struct Handoff {
    tcp: std::net::TcpStream,
    ticket: Ticket,
}

/// What an open connection holds until it closes: its permit under the connection cap and
/// its place in its thread's count.
struct Ticket {
    _permit: OwnedSemaphorePermit,
    balancer: Arc<Balancer>,
    thread: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.balancer.open.0[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// A balancer over one thread per count in `open`, and each thread's inbox; `steered`
    /// when connections prefer the thread on their core.
    fn new(open: Connections, steered: bool) -> (Self, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (senders, receivers) = (0..open.0.len()).map(|_| mpsc::unbounded_channel()).unzip();
        let balancer = Self {
            open,
            steered,
            inboxes: Vec::into_boxed_slice(senders),
        };
        (balancer, receivers)
    }

    /// Which thread serves a new connection that prefers thread `preferred`: that one,
    /// unless it is too far ahead of the least busy thread (see [`Balancer`]). The connection
    /// is counted for the chosen thread at once, so the next choice sees it.
    fn assign(self: &Arc<Self>, preferred: usize, permit: OwnedSemaphorePermit) -> Ticket {
        let thread = self.choose(preferred);
        self.open.0[thread].fetch_add(1, Ordering::Relaxed);
        Ticket {
            _permit: permit,
            balancer: Arc::clone(self),
            thread,
        }
    }

    /// The thread [`Balancer::assign`] picks for the current counts.
    fn choose(&self, preferred: usize) -> usize {
        let open = &self.open;
        let Some(least) = (0..open.0.len()).min_by_key(|&thread| open.count(thread)) else {
            return preferred;
        };
        // How far the preferred thread may be ahead of the least busy one, this connection
        // included.
        let fewest = open.count(least);
        let lead = if self.steered { 2 + fewest / 2 } else { 2 };
        if open.count(preferred) + 1 > fewest + lead {
            least
        } else {
            preferred
        }
    }

    /// Where a connection that thread `thread` serves should move: to the thread on the core
    /// its packets arrive on now, when that is another thread (its client moved to another
    /// core since it connected) and the balance lets that thread take one more.
    fn new_home(&self, cores: &Cores, tcp: &TcpStream, thread: usize) -> Option<usize> {
        let home = cores.thread_for(tcp)?;
        (home != thread && self.choose(home) == home).then_some(home)
    }

    /// Count `ticket`'s connection for `thread` from now on.
    fn move_ticket(&self, ticket: &mut Ticket, thread: usize) {
        self.open.0[thread].fetch_add(1, Ordering::Relaxed);
        self.open.0[ticket.thread].fetch_sub(1, Ordering::Relaxed);
        ticket.thread = thread;
    }

    /// Send `tcp` to the thread its ticket names. Fails (dropping the connection) only when
    /// that thread has stopped receiving, which happens at shutdown.
    fn hand_off(&self, tcp: TcpStream, ticket: Ticket) {
        let thread = ticket.thread;
        match tcp.into_std() {
            Ok(tcp) => {
                if self.inboxes[thread].send(Handoff { tcp, ticket }).is_err() {
                    tracing::debug!("a serve thread has stopped; dropping a handed-off connection");
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot hand a connection off"),
        }
    }
}

/// One serve thread: accept connections and receive the ones other threads hand over until
/// `stop`, serve each here, then wait until every connection of this thread has finished.
async fn serve_thread(
    index: usize,
    listener: TcpListener,
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    shared: Shared,
) {
    let connections = TaskTracker::new();
    let accepting = async {
        loop {
            // The permit is taken before `accept`, so past the cap connections wait in the
            // kernel's queue rather than costing a task each.
            let permit = tokio::select! {
                () = shared.stop.cancelled() => break,
                permit = shared.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // Only a closed semaphore fails, and nothing closes it.
                    Err(_) => break,
                },
            };
            let tcp = tokio::select! {
                () = shared.stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _peer)) => tcp,
                    Err(err) => {
                        accept_failed(&err).await;
                        continue;
                    }
                },
            };
            // Small responses must not wait for Nagle's algorithm.
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY");
            }
            // The thread on the core that received the connection, or this one.
            let preferred = shared.cores.thread_for(&tcp).unwrap_or(index);
            let ticket = shared.balancer.assign(preferred, permit);
            if ticket.thread == index {
                serve(&shared, &connections, tcp, ticket);
            } else {
                shared.balancer.hand_off(tcp, ticket);
            }
        }
    };
    // Hand-offs are received apart from accepting: a handed-off connection brings its own
    // permit, so it must not wait for this thread to get one.
    let receiving = async {
        loop {
            let handoff = tokio::select! {
                () = shared.stop.cancelled() => break,
                handoff = inbox.recv() => match handoff {
                    Some(handoff) => handoff,
                    None => break,
                },
            };
            match TcpStream::from_std(handoff.tcp) {
                Ok(tcp) => serve(&shared, &connections, tcp, handoff.ticket),
                Err(err) => tracing::debug!(error = %err, "cannot take a handed-off connection"),
            }
        }
    };
    tokio::join!(accepting, receiving);
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serve one connection on this thread until it closes, or until `stop` lets its in-flight
/// request finish: in the express lane while its requests have no body, then with hyper.
fn serve(shared: &Shared, connections: &TaskTracker, tcp: TcpStream, ticket: Ticket) {
    let shared = shared.clone();
    connections.spawn(async move {
        let mut ticket = ticket;
        let sent = Arc::clone(&shared.app.state().sendfile_bytes);
        let mut new_home = Homing::default();
        let should_move = |tcp: &TcpStream| {
            let seen = shared.balancer.new_home(&shared.cores, tcp, ticket.thread);
            new_home.observe(seen)
        };
        let outcome = express::serve(
            &tcp,
            &shared.app,
            shared.limits,
            &shared.stop,
            &sent,
            should_move,
        )
        .await;
        let read = match outcome {
            express::Outcome::Closed => return,
            express::Outcome::Handoff(read) => read,
            express::Outcome::Move => {
                if let Some(thread) = new_home.candidate {
                    shared.balancer.move_ticket(&mut ticket, thread);
                    shared.balancer.hand_off(tcp, ticket);
                }
                return;
            }
        };
        serve_with_hyper(&shared, tcp, read).await;
        drop(ticket);
    });
}

/// Whether a connection's client has settled on another core: a client thread that is not
/// pinned hops to an idle core now and then (the scheduler's wake-up placement), and a
/// connection that followed every hop would cost a hand-off each time for nothing. So a
/// connection moves only after [`Homing::CONFIRMATIONS`] checks in a row named the same new
/// home.
#[derive(Debug, Default)]
struct Homing {
    /// The thread the latest checks named.
    candidate: Option<usize>,
    /// How many checks in a row named it.
    seen: u32,
}

impl Homing {
    /// Checks in a row (each [`express::PLACEMENT_CHECK_EVERY`] answers apart) that must name
    /// the same thread before a connection moves there.
    const CONFIRMATIONS: u32 = 4;

    /// Record one check's answer (`None`: the connection is where it belongs); true when
    /// the connection should move to [`Homing::candidate`] now.
    fn observe(&mut self, home: Option<usize>) -> bool {
        if home.is_some() && home == self.candidate {
            self.seen += 1;
        } else {
            self.candidate = home;
            self.seen = u32::from(home.is_some());
        }
        self.seen >= Self::CONFIRMATIONS
    }
}

/// The rest of a connection, of which `read` was read already, served by hyper.
async fn serve_with_hyper(shared: &Shared, tcp: TcpStream, read: Bytes) {
    let app = shared.app.clone();
    let files = sendfile::Connection::new(Arc::clone(&app.state().sendfile_bytes));
    let io = sendfile::Io::new(tcp, read, files.clone());
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        let app = app.clone();
        let files = files.clone();
        async move {
            let mut response = app.handle(request.map(Body::new)).await;
            files.register(response.extensions_mut().remove::<sendfile::FileBacked>());
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = shared.builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shared.stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Timeouts, oversized heads and clients that hang up: routine on the internet.
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// Per-connection errors (the client gave up during the handshake) are not worth a pause;
/// anything else, such as running out of file descriptors, would spin the loop, so wait a
/// little for resources to come back.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %err, "cannot accept a connection; retrying shortly");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts after `connections` new connections that all prefer thread 1.
    fn counts_after_a_burst(steered: bool, connections: usize) -> Vec<usize> {
        let (balancer, _inboxes) = Balancer::new(Connections::new(2), steered);
        for _ in 0..connections {
            let thread = balancer.choose(1);
            balancer.open.0[thread].fetch_add(1, Ordering::Relaxed);
        }
        balancer.open.per_thread()
    }

    #[test]
    fn a_lucky_accepting_thread_keeps_at_most_two_connections_more() {
        assert_eq!(counts_after_a_burst(false, 64), [31, 33]);
        assert_eq!(counts_after_a_burst(false, 3), [1, 2]);
    }

    #[test]
    fn a_cores_thread_keeps_its_connections_until_half_again_ahead() {
        // A few connections all stay on their core's thread...
        assert_eq!(counts_after_a_burst(true, 2), [0, 2]);
        // ...but a burst that arrives on one core is shared, at worst 25 to 39 of 64.
        assert_eq!(counts_after_a_burst(true, 64), [25, 39]);
        let [fewest, most] = counts_after_a_burst(true, 1000)[..] else {
            unreachable!()
        };
        assert!(most <= fewest + 2 + fewest / 2, "{fewest} {most}");
    }

    #[test]
    fn a_connection_moves_only_once_its_client_has_settled_on_another_core() {
        let mut homing = Homing::default();
        // A client that hops to thread 1's core and back does not move its connection...
        assert!(!homing.observe(Some(1)));
        assert!(!homing.observe(Some(1)));
        assert!(!homing.observe(None));
        assert!(!homing.observe(Some(1)));
        assert!(!homing.observe(Some(0)));
        // ...one that stays there does, after `CONFIRMATIONS` checks in a row.
        let moved: Vec<bool> = (0..Homing::CONFIRMATIONS)
            .map(|_| homing.observe(Some(1)))
            .collect();
        assert_eq!(moved.iter().filter(|&&moved| moved).count(), 1);
        assert_eq!(moved.last(), Some(&true));
        assert_eq!(homing.candidate, Some(1));
    }

    #[test]
    fn a_moving_connection_changes_the_counts() {
        let (balancer, _inboxes) = Balancer::new(Connections::new(2), true);
        let balancer = Arc::new(balancer);
        let permits = Arc::new(Semaphore::new(1));
        let mut ticket = balancer.assign(0, permits.clone().try_acquire_owned().unwrap());
        assert_eq!(balancer.open.per_thread(), [1, 0]);
        balancer.move_ticket(&mut ticket, 1);
        assert_eq!(balancer.open.per_thread(), [0, 1]);
        drop(ticket);
        assert_eq!(balancer.open.per_thread(), [0, 0]);
        assert_eq!(permits.available_permits(), 1);
    }

    #[test]
    fn connections_on_the_quieter_core_stay_there() {
        let (balancer, _inboxes) = Balancer::new(Connections::new(2), true);
        balancer.open.0[1].store(10, Ordering::Relaxed);
        assert_eq!(balancer.choose(0), 0);
        // Far ahead of thread 1, thread 0 gives a new connection away.
        balancer.open.0[0].store(20, Ordering::Relaxed);
        assert_eq!(balancer.choose(0), 1);
    }
}
