//! # deploystack-http
//!
//! DeployStack's HTTP surface: uploads, the deployments API, health checks and the serving of
//! deployed sites, plus the `deploystack-server` binary (feature `server`).
//!
//! ## Layout
//! - [`serve`]: the entry point — takes a bound listener, the services and a shutdown future;
//!   runs in-process build workers when the queue only exists in this process.
//! - [`server`]: the connection layer — hyper's HTTP/1 server with the hardening limits
//!   (header read timeout, header size), one event loop per serve thread, the connection
//!   cap, balance between threads and graceful shutdown.
//! - [`middleware`]: the one tower stack every request passes — request accounting, the
//!   body read timeout, the request timeout.
//! - [`dispatch`]: the application inside the stack — request-target length, host
//!   validation, deployment hosts (`<id>.<base-domain>`) versus the platform.
//! - [`routes`]: the router, one module per area (upload, deployments, health, metrics,
//!   site; warm site answers are built once and kept with the cached resolution; protected
//!   deployments' login page and cookie check run before them, in `routes::site::protection`).
//! - [`state`]: what handlers share. [`error`]: JSON errors.
//!
//! ## Feature flags
//! Every feature is also described beside its definition in `Cargo.toml`.
//! - `server` (default): the `deploystack-server` binary — clap, anyhow and the log setup
//!   (`deploystack-core`'s `cli`). The library never needs them: an embedder that only calls
//!   [`serve`] depends on this crate with `default-features = false`.
//! - `sqlite` (default): `deploystack-core`'s SQLite repository, the default
//!   `DEPLOYSTACK_DATABASE_URL`. Keep it (`features = ["sqlite"]`) beside
//!   `default-features = false` unless you bring your own repository.
//! - `postgres`, `redis`, `s3`: the cluster engines, forwarded to `deploystack-core`.
//!
//! ## Re-exported crates
//! The types of this crate's public signatures come from [`axum`] (the router and its
//! handlers), [`http`] (requests, responses, status codes), [`hyper`] (the connections and
//! their bodies) and [`tower`] (the request stack's `Service` and `Layer`); each is
//! re-exported here in the version this crate uses. The rest — `tokio` included — comes
//! from `deploystack_core`'s re-exports.
//!
//! ## Embedding: your own build strategy, served
//! A [`BuildStrategy`](deploystack_core::build::BuildStrategy) of your own, registered
//! before the built-in presets and served with in-process builders; `deploystack_core`'s
//! `embedding` module has the whole guide.
//!
//! ```rust
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! # #[cfg(feature = "sqlite")]
//! #[deploystack_core::tokio::main(crate = "deploystack_core::tokio")]
//! async fn main() -> std::io::Result<()> {
//!     use std::sync::Arc;
//!
//!     use deploystack_core::async_trait;
//!     use deploystack_core::build::{
//!         BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
//!     };
//!     use deploystack_core::tokio::net::TcpListener;
//!     use deploystack_core::{Config, Services};
//!
//!     /// Publishes `shout.txt`, upper-cased, as the home page.
//!     struct Shout;
//!
//!     #[async_trait]
//!     impl BuildStrategy for Shout {
//!         fn name(&self) -> &str {
//!             "shout"
//!         }
//!
//!         async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
//!             Ok(source.has_file("shout.txt").then(|| Detection {
//!                 strategy: "shout".into(),
//!                 reason: "shout.txt found".into(),
//!             }))
//!         }
//!
//!         async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
//!             let text = std::fs::read_to_string(ctx.source.root().join("shout.txt"))?;
//!             if text.trim().is_empty() {
//!                 // A code made at run time: it becomes the deployment's `error.code`.
//!                 return Err(BuildError::failed(format!("{}_empty", self.name()), "nothing to shout"));
//!             }
//!             let out = ctx.work_dir.join("out");
//!             std::fs::create_dir_all(&out)?;
//!             std::fs::write(out.join("index.html"), text.to_uppercase())?;
//!             Ok(BuildOutput { dir: out })
//!         }
//!     }
//!
//!     let services = Services::in_memory(Config::default())
//!         .await
//!         .map_err(std::io::Error::other)?
//!         .with_strategy(Arc::new(Shout));
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     // A real program waits for a signal here; this example stops at once.
//!     deploystack_http::serve(listener, services, async {}).await
//! }
//! ```
//!
//! ## Why take a listener?
//! The caller binds, so tests bind port 0 and read the address back, and the binary logs the
//! address it really got.
//!
//! ## Why serve connections by hand rather than with `axum::serve`?
//! `axum::serve` exposes no hyper connection settings. The header read timeout that stops
//! slowloris clients only works with a timer on hyper's connection builder, and the header
//! size limit and the connection cap need the builder and the accept loop too.

#![warn(missing_docs)]
// docs.rs builds with `--cfg docsrs` (see Cargo.toml) and marks what needs a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod caller;
pub mod dispatch;
pub mod error;
pub mod middleware;
pub mod routes;
pub mod server;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use deploystack_core::Services;
use deploystack_core::services::hosts::ProjectHostResolver;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use dispatch::App;
use middleware::StackSettings;
pub use routes::router;
pub use state::AppState;

/// The router and handler types of [`routes`].
pub use axum;
/// Requests, responses, headers and status codes (the `http` crate, as axum re-exports it).
pub use axum::http;
/// The connections [`server`] serves and their request bodies.
pub use hyper;
/// `Service` and `Layer`, the shape of the [`middleware`] stack.
pub use tower;

/// The host of a URL (`https://deploy.example.com:8443/` → `deploy.example.com`).
fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    (!host.is_empty()).then_some(host)
}

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
///
/// Fails at once if the configured base domain is not a DNS name.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let config = services.config.clone();
    let base_domain = config
        .base_domain()
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    let auth = config
        .auth_mode(addr)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(addr));
    let stop = CancellationToken::new();
    let workers = services.embedded_workers();
    let worker_pool = (workers > 0).then(|| {
        tokio::spawn(deploystack_core::services::workers::run(
            services.clone(),
            workers,
            stop.clone().cancelled_owned(),
        ))
    });
    let state = AppState::new(services, public_url.clone())
        .with_shutdown(stop.clone())
        .with_auth(auth);
    let connections = state.connections.clone();
    let settings = StackSettings {
        stats: Arc::clone(&state.requests),
        request_timeout: config.request_timeout(),
        body_read_timeout: config.body_read_timeout(),
    };
    let repository = Arc::clone(&state.services.repository);
    let app = App::new(
        state,
        Arc::new(
            ProjectHostResolver::new(base_domain, repository)
                .with_platform_host(host_of(&public_url)),
        ),
    );
    let stack = middleware::stack(app, settings);
    tracing::info!(%addr, %public_url, workers, %auth, "listening on http://{addr}");
    let stop_http = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_http.cancel();
    });
    let served = server::run(listener, stack, connections, &config, stop.clone()).await;
    stop.cancel();
    if let Some(pool) = worker_pool {
        let _ = pool.await;
    }
    served
}
