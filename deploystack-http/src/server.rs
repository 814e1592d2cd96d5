//! The connection loop: accept, hand each connection to hyper's HTTP/1 server with the
//! hardening limits, and drain on shutdown. What happens to a request once hyper has parsed
//! it is the business of the tower stack ([`crate::middleware`]); this module only deals in
//! connections.
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
//! - **Threads** (`serve_threads`, one per core by default): one single-threaded event loop
//!   per thread on the shared listening socket, with connections balanced between them; see
//!   [`run`] and `Balancer`.
//!
//! Graceful shutdown matches `axum::serve`: stop accepting, let each connection finish its
//! in-flight request (idle ones close at once), then return.
//!
//! ## Why one shared listening socket rather than one `SO_REUSEPORT` socket per thread?
//! [`crate::serve`] takes a socket the caller bound, so tests can bind port 0 and the binary
//! can report the address it got; per-thread `SO_REUSEPORT` sockets would have to be bound
//! here, beside it, and only work if the caller's socket had the option too. The kernel
//! spreads `SO_REUSEPORT` connections by a hash of their addresses, which balances no better
//! than luck, so the `Balancer` would still be needed. Measured side by side, per-thread
//! sockets were neither faster nor cheaper per request (`benches/RESULTS.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deploystack_core::config::Config;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::caller::Peer;
use crate::middleware::Stack;

/// How many connections each serve thread has open: what the `Balancer` evens out, and
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

/// What every serve thread shares: the request stack, hyper's connection settings, the
/// connection cap and the balancer.
#[derive(Clone)]
struct Shared {
    stack: Stack,
    builder: Arc<http1::Builder>,
    permits: Arc<Semaphore>,
    balancer: Arc<Balancer>,
    stop: CancellationToken,
}

/// Serve every request with `stack` on `listener` until `stop` is cancelled, then wait for
/// open connections to finish their requests. `open` holds one count per serve thread.
///
/// Each serve thread runs a single-threaded runtime of its own with its own accept loop on a
/// duplicate of the listening socket, and serves its connections itself. This is nginx's
/// model of one event loop per core: a connection's requests never wait for another thread
/// to pick up its task, and the caller's runtime (the API's background work, builds) never
/// shares a thread with serving. Which thread the kernel wakes for a new connection is luck,
/// though, so the `Balancer` evens the threads' shares out.
pub async fn run(
    listener: TcpListener,
    stack: Stack,
    open: Connections,
    config: &Config,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout())
        .max_header_size(config.max_header_bytes.max(1))
        .keep_alive(true);
    let threads = open.0.len();
    let (balancer, inboxes) = Balancer::new(open);
    let shared = Shared {
        stack,
        builder: Arc::new(builder),
        permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        balancer: Arc::new(balancer),
        stop,
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

/// Evens out the serve threads' connections.
///
/// Every thread waits on the same listening socket, and the kernel wakes whichever it
/// likes: when a client opens many connections at once, one thread often accepts most of
/// them (seen: 7 against 38 of 64, and 40 against 1). On a machine whose cores only serve,
/// that thread then queues every request while the other core idles. So the thread that
/// accepts a connection keeps it only if no other thread serves at least two connections
/// fewer; otherwise it hands the connection to the least busy thread through that thread's
/// inbox (like Envoy's "exact balance"). The slack of one keeps hand-offs, which cost a
/// wake-up of the other thread, to the connections that actually even the load out.
struct Balancer {
    /// Open connections per thread, counted from the moment one is assigned.
    open: Connections,
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
    /// A balancer over one thread per count in `open`, and each thread's inbox.
    fn new(open: Connections) -> (Self, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (senders, receivers) = (0..open.0.len()).map(|_| mpsc::unbounded_channel()).unzip();
        let balancer = Self {
            open,
            inboxes: Vec::into_boxed_slice(senders),
        };
        (balancer, receivers)
    }

    /// Which thread serves the connection that thread `accepting` just accepted: itself,
    /// unless another thread has at least two connections fewer. The connection is counted
    /// for the chosen thread at once, so the next choice sees it.
    fn assign(self: &Arc<Self>, accepting: usize, permit: OwnedSemaphorePermit) -> Ticket {
        let thread = self.choose(accepting);
        self.open.0[thread].fetch_add(1, Ordering::Relaxed);
        Ticket {
            _permit: permit,
            balancer: Arc::clone(self),
            thread,
        }
    }

    /// The thread [`Balancer::assign`] picks for the current counts.
    fn choose(&self, accepting: usize) -> usize {
        let open = &self.open;
        match (0..open.0.len()).min_by_key(|&thread| open.count(thread)) {
            Some(least) if open.count(least) + 1 < open.count(accepting) => least,
            _ => accepting,
        }
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
            let ticket = shared.balancer.assign(index, permit);
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
/// request finish.
fn serve(shared: &Shared, connections: &TaskTracker, tcp: TcpStream, ticket: Ticket) {
    // Handlers that record who did something read the peer from the request.
    let peer = tcp.peer_addr().ok().map(Peer);
    let stack = shared
        .stack
        .clone()
        .map_request(move |mut request: Request<Incoming>| {
            if let Some(peer) = peer {
                request.extensions_mut().insert(peer);
            }
            request
        });
    let service = TowerToHyperService::new(stack);
    let connection = shared.builder.serve_connection(TokioIo::new(tcp), service);
    let stop = shared.stop.clone();
    connections.spawn(async move {
        let _ticket = ticket;
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = result {
            // Timeouts, oversized heads and clients that hang up: routine on the internet.
            tracing::debug!(error = %err, "connection ended with an error");
        }
    });
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

    /// The counts after `connections` new connections that thread 1 all accepted.
    fn counts_after_a_burst(connections: usize) -> Vec<usize> {
        let (balancer, _inboxes) = Balancer::new(Connections::new(2));
        let balancer = Arc::new(balancer);
        let permits = Arc::new(Semaphore::new(connections));
        let tickets: Vec<_> = (0..connections)
            .map(|_| balancer.assign(1, Arc::clone(&permits).try_acquire_owned().unwrap()))
            .collect();
        let counts = balancer.open.per_thread();
        drop(tickets);
        assert_eq!(balancer.open.per_thread(), vec![0, 0], "tickets give back");
        counts
    }

    #[test]
    fn a_lucky_accepting_thread_keeps_at_most_two_connections_more() {
        assert_eq!(counts_after_a_burst(1), vec![0, 1]);
        assert_eq!(counts_after_a_burst(3), vec![1, 2]);
        assert_eq!(counts_after_a_burst(64), vec![31, 33]);
    }
}
