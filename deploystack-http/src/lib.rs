//! # deploystack-http
//!
//! DeployStack's HTTP surface: uploads, the deployments API, health checks and the serving of
//! deployed sites, plus the `deploystack-server` binary.
//!
//! ## Layout
//! - [`serve`]: the entry point — takes a bound listener, the services and a shutdown future;
//!   runs in-process build workers when the queue only exists in this process.
//! - [`routes`]: the router, one module per area (upload, deployments, health, metrics,
//!   site).
//! - [`state`]: what handlers share. [`error`]: JSON errors.
//!
//! ## Why take a listener?
//! The caller binds, so tests bind port 0 and read the address back, and the binary logs the
//! address it really got.

#![warn(missing_docs)]

pub mod error;
pub mod routes;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use deploystack_core::Services;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use routes::router;
pub use state::AppState;

/// The public URL when none is configured: the bound address, with a wildcard address
/// replaced by loopback so the URL can be opened.
pub fn default_public_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// Serve on `listener` until `shutdown` resolves, then stop accepting, finish in-flight
/// requests, let in-process builds finish (or hand them back), and return.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let public_url = services
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(addr));
    let stop = CancellationToken::new();
    let workers = services.embedded_workers();
    let worker_pool = (workers > 0).then(|| {
        tokio::spawn(deploystack_worker::run(
            services.clone(),
            workers,
            stop.clone().cancelled_owned(),
        ))
    });
    let app = router(AppState::new(services, public_url.clone()));
    tracing::info!(%addr, %public_url, workers, "listening on http://{addr}");
    // Small responses must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let stop_http = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop_http.cancel();
        })
        .await?;
    stop.cancel();
    if let Some(pool) = worker_pool {
        let _ = pool.await;
    }
    Ok(())
}
