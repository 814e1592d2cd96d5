//! What every handler shares.

use std::sync::Arc;

use deploystack_core::Services;
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
}

impl AppState {
    /// State over `services`, answering with URLs under `public_url`.
    pub fn new(services: Services, public_url: impl Into<String>) -> Self {
        let connections = Connections::new(services.config.serve_threads());
        let uploads = (services.config.max_connections / 2).max(1);
        Self {
            services,
            public_url: Arc::from(public_url.into().trim_end_matches('/')),
            shutdown: CancellationToken::new(),
            connections,
            requests: Arc::default(),
            uploads: Arc::new(tokio::sync::Semaphore::new(uploads)),
        }
    }

    /// The same state, with long-lived answers ending when `shutdown` fires.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Where a deployment is served.
    pub fn deployment_url(&self, id: &DeploymentId) -> String {
        format!("{}/{id}/", self.public_url)
    }

    /// The API resource of a deployment.
    pub fn status_url(&self, id: &DeploymentId) -> String {
        format!("{}/api/v1/deployments/{id}", self.public_url)
    }
}
