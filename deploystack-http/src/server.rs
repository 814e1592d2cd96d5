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
//!   per thread on the shared listening socket; see [`run`].
//!
//! Graceful shutdown matches `axum::serve`: stop accepting, let each connection finish its
//! in-flight request (idle ones close at once), then return.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use deploystack_core::config::Config;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dispatch::App;

/// What every accept loop shares: the app, hyper's connection settings and the connection
/// cap.
#[derive(Clone)]
struct Shared {
    app: App,
    builder: Arc<http1::Builder>,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
}

/// Serve `app` on `listener` until `stop` is cancelled, then wait for open connections to
/// finish their requests.
///
/// With more than one serve thread (`serve_threads`), each thread runs a single-threaded
/// runtime with its own accept loop on a duplicate of the listening socket; the kernel hands
/// each new connection to one of them, and that thread alone serves it. This is nginx's
/// model of one event loop per core: a connection's requests never wait for another thread
/// to pick up its task, which keeps tail latency flat under load.
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
    let shared = Shared {
        app,
        builder: Arc::new(builder),
        permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        stop,
    };
    let threads = config.serve_threads();
    if threads <= 1 {
        accept_loop(listener, shared).await;
        return Ok(());
    }
    let listener = listener.into_std()?;
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads {
        let listener = listener.try_clone()?;
        let shared = shared.clone();
        let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("deploystack-http-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, shared).await,
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

/// Accept connections until `stop`, serve each on this thread's runtime, then wait until
/// every connection it accepted has finished.
async fn accept_loop(listener: TcpListener, shared: Shared) {
    let Shared {
        app,
        builder,
        permits,
        stop,
    } = shared;
    let connections = TaskTracker::new();
    loop {
        // The permit is taken before `accept`, so past the cap connections wait in the
        // kernel's queue rather than costing a task each.
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // Only a closed semaphore fails, and nothing closes it.
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            () = stop.cancelled() => break,
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
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(app.handle(request.map(Body::new)).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(tcp), service);
        let stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
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
    drop(listener);
    connections.close();
    connections.wait().await;
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
