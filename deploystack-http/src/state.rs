//! What every handler shares.

use std::sync::Arc;

use deploystack_core::Services;
use deploystack_core::config::AuthMode;
use deploystack_core::model::DeploymentId;
use tokio_util::sync::CancellationToken;

use crate::middleware::RequestStats;
use crate::server::Connections;

/// Shared state of the router: the services and how to spell public URLs.
///
/// Cloned for every request (axum's `State`), so every field is an `Arc` underneath: a clone
/// costs reference counts, never an allocation.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Every port.
    pub services: Services,
    /// Base of returned URLs, without a trailing slash (`http://127.0.0.1:8000`).
    pub public_url: Arc<str>,
    /// Fires when the server shuts down. Answers that stream for as long as a build runs
    /// (`logs?follow=true`) end on it, so a graceful shutdown is not held up by them.
    pub shutdown: CancellationToken,
    /// Open connections per serve thread (`serve_threads` of the configuration), kept by
    /// `crate::server` and shown on `/metrics`.
    pub connections: Connections,
    /// Uploads being received now, at most half of `max_connections`: uploads hold their
    /// connection for as long as the client sends, so they must never take every one
    /// (`crate::routes::upload`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Requests in flight and answered, kept by the accounting layer
    /// (`crate::middleware::accounting`) and shown on `/metrics`.
    pub requests: Arc<RequestStats>,
    /// Who may call the API without a token (`auth`, as it applies to the bound address;
    /// see `crate::middleware::auth`).
    pub auth: AuthMode,
    /// How host-based addresses are spelled: `(scheme, base domain, ":port" or "")`, from
    /// the public URL's scheme and port and the configured base domain.
    hosts: Arc<(String, String, String)>,
    /// Protected deployments' signing key and wrong-password throttle
    /// (`crate::routes::site::protection`).
    pub protection: Arc<crate::routes::site::protection::Guard>,
}

impl AppState {
    /// State over `services`, answering with URLs under `public_url`.
    pub fn new(services: Services, public_url: impl Into<String>) -> Self {
        let connections = Connections::new(services.config.serve_threads());
        let uploads = (services.config.max_connections / 2).max(1);
        let public_url: Arc<str> = Arc::from(public_url.into().trim_end_matches('/'));
        let base = services
            .config
            .base_domain()
            .map_or_else(|_| "localhost".to_owned(), |base| base.as_str().to_owned());
        let (scheme, port) = match public_url.parse::<axum::http::Uri>() {
            Ok(uri) => (
                uri.scheme_str().unwrap_or("http").to_owned(),
                uri.port_u16()
                    .map_or_else(String::new, |port| format!(":{port}")),
            ),
            Err(_) => ("http".to_owned(), String::new()),
        };
        // An embedder that drives the router without `serve` gets the mode of the
        // configured listen address; `serve` sets the one of the address it bound.
        let auth = services
            .config
            .auth_mode(services.config.listen)
            .unwrap_or(AuthMode::Required);
        let protection = Arc::new(crate::routes::site::protection::Guard::new(
            &services.keyring,
            scheme == "https",
        ));
        Self {
            auth,
            protection,
            hosts: Arc::new((scheme, base, port)),
            services,
            public_url,
            shutdown: CancellationToken::new(),
            connections,
            requests: Arc::default(),
            uploads: Arc::new(tokio::sync::Semaphore::new(uploads)),
        }
    }

    /// The same state, with `auth` in effect.
    pub fn with_auth(mut self, auth: AuthMode) -> Self {
        self.auth = auth;
        self
    }

    /// The same state, with long-lived answers ending when `shutdown` fires.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Where a deployment is served: its own origin, `http://<id>.<base-domain>[:port]/`,
    /// where root-absolute asset paths (`/assets/app.js`, what bundlers emit) work.
    pub fn deployment_url(&self, id: &DeploymentId) -> String {
        self.host_url(&id.to_string())
    }

    /// Whether `host` (lowercase, without port) is deployment `id`'s own host,
    /// `<id>.<base-domain>`, rather than its project's host or a custom domain.
    pub fn is_deployment_host(&self, host: &str, id: &DeploymentId) -> bool {
        let (_, base, _) = &*self.hosts;
        host.strip_suffix(base.as_str())
            .and_then(|front| front.strip_suffix('.'))
            .is_some_and(|label| label.parse::<DeploymentId>().ok().as_ref() == Some(id))
    }

    /// The path-based address of a deployment, `<public-url>/<id>/`, on the platform's host.
    pub fn path_url(&self, id: &DeploymentId) -> String {
        format!("{}/{id}/", self.public_url)
    }

    /// The address of the host `<label>.<base-domain>` (a deployment id or a project name).
    pub fn host_url(&self, label: &str) -> String {
        let (scheme, base, port) = &*self.hosts;
        format!("{scheme}://{label}.{base}{port}/")
    }

    /// The origin of host `host` (a custom domain) as visitors reach it:
    /// `<scheme>://<host>[:port]`, with the public URL's scheme and port.
    pub fn origin_of(&self, host: &str) -> String {
        let (scheme, _, port) = &*self.hosts;
        format!("{scheme}://{host}{port}")
    }

    /// The API resource of a deployment.
    pub fn status_url(&self, id: &DeploymentId) -> String {
        format!("{}/api/v1/deployments/{id}", self.public_url)
    }
}
