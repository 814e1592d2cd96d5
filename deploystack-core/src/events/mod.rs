//! The `EventSink` port: domain events for logs, live updates and (later) webhooks.
//!
//! # Contract
//! - `emit` must not block the pipeline: sinks buffer or drop, never wait on a slow consumer.
//! - Delivery is best effort: an event sink failing never fails a deployment. Callers log the
//!   error and go on. The repository, not the event stream, is the record of what happened.
//!
//! Adapters: [`TracingEventSink`] (structured log lines), [`BroadcastEventSink`] (in-process
//! subscribers, for live updates), and [`FanoutEventSink`] to send to several. `Arc<E>` and
//! `Box<E>` are sinks too (`forward`), so a decorator can wrap what
//! [`Services`](crate::Services) holds.

mod broadcast;
mod forward;
mod tracing_sink;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::model::{DeploymentId, DeploymentStatus, ProductionReason, ProjectName};

pub use broadcast::BroadcastEventSink;
pub use tracing_sink::TracingEventSink;

/// What can go wrong emitting an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The sink cannot take events now.
    #[error("event sink unavailable: {0}")]
    Unavailable(String),
}

/// Something that happened to a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Event {
    /// An upload was accepted and queued.
    DeploymentCreated {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A worker claimed the deployment, chose how to build it and starts the build.
    BuildStarted {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The attempt (fencing token).
        attempt: i64,
        /// The build strategy (framework preset) chosen: `static`, `vite`, ….
        preset: String,
        /// How long the deployment waited between its upload and this start, in
        /// milliseconds (queueing, earlier attempts, download and extraction).
        waited_ms: u64,
    },
    /// The build finished and its files were published.
    BuildCompleted {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The attempt.
        attempt: i64,
        /// The build strategy (framework preset) that built it.
        preset: String,
        /// Wall-clock time of the whole attempt, from claim to publish, in milliseconds.
        duration_ms: u64,
        /// Of which the strategy's build itself (install and build commands), in
        /// milliseconds.
        build_ms: u64,
        /// Files published.
        files: u64,
        /// Bytes published.
        bytes: u64,
        /// Blobs that had to be uploaded (the rest were already stored).
        new_blobs: u64,
    },
    /// The build failed for good.
    BuildFailed {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The attempt.
        attempt: i64,
        /// The build strategy (framework preset) chosen, if the attempt got that far.
        preset: Option<String>,
        /// Wall-clock time of the attempt until the failure, in milliseconds.
        duration_ms: u64,
        /// Stable error code.
        code: String,
        /// Error message.
        message: String,
    },
    /// The deployment was canceled while queued or building; nothing of it is published.
    DeploymentCanceled {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Its status when it was canceled (`QUEUED` or `BUILDING`).
        previous_status: DeploymentStatus,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The deployment is live.
    DeploymentReady {
        /// The deployment.
        deployment_id: DeploymentId,
    },
    /// The deployment was deleted.
    DeploymentDeleted {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Its status when it was deleted.
        previous_status: DeploymentStatus,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller (retention, a project delete).
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The deployment became its project's production, by a deploy or a promote.
    DeploymentPromoted {
        /// The project.
        project: ProjectName,
        /// The deployment now in production.
        deployment_id: DeploymentId,
        /// The deployment production left, if there was one.
        from: Option<DeploymentId>,
        /// `deploy` (it became READY) or `promote`.
        reason: ProductionReason,
        /// Who promoted it, as the history records it (`token ci (<id>)`); absent for a
        /// deploy.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Production was rolled back to the deployment, and is pinned until the next promote.
    DeploymentRolledBack {
        /// The project.
        project: ProjectName,
        /// The deployment now in production.
        deployment_id: DeploymentId,
        /// The deployment production left.
        from: Option<DeploymentId>,
        /// Who rolled it back, as the history records it (`token ci (<id>)`).
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A project was created (by the API, or by the first upload naming it).
    ProjectCreated {
        /// The project.
        project: ProjectName,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A project's settings changed.
    ProjectUpdated {
        /// The project.
        project: ProjectName,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A project was deleted, with its deployments.
    ProjectDeleted {
        /// The project.
        project: ProjectName,
        /// How many deployments its delete deleted.
        deployments: u64,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A custom domain's verification record was found: the domain serves (or redirects)
    /// once every domain it redirects through is verified too.
    DomainVerified {
        /// The project.
        project: ProjectName,
        /// The domain (ASCII).
        domain: String,
        /// Who did it, as the history names callers (`token ci (<id>)`, `api (127.0.0.1)`);
        /// absent when the library acted without a caller (the background re-check).
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

impl Event {
    /// The deployment the event is about; `None` for events about a whole project.
    pub fn deployment_id(&self) -> Option<DeploymentId> {
        match self {
            Event::DeploymentCreated { deployment_id, .. }
            | Event::BuildStarted { deployment_id, .. }
            | Event::BuildCompleted { deployment_id, .. }
            | Event::BuildFailed { deployment_id, .. }
            | Event::DeploymentCanceled { deployment_id, .. }
            | Event::DeploymentReady { deployment_id }
            | Event::DeploymentDeleted { deployment_id, .. }
            | Event::DeploymentPromoted { deployment_id, .. }
            | Event::DeploymentRolledBack { deployment_id, .. } => Some(*deployment_id),
            Event::ProjectCreated { .. }
            | Event::ProjectUpdated { .. }
            | Event::ProjectDeleted { .. }
            | Event::DomainVerified { .. } => None,
        }
    }
}

/// Receives domain events. See the module docs for the contract.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait EventSink: Send + Sync + 'static {
    /// Take one event without blocking on consumers.
    async fn emit(&self, event: &Event) -> Result<(), EventError>;
}

/// Sends every event to each of several sinks; one failing sink does not stop the others.
#[derive(Clone, Default)]
pub struct FanoutEventSink {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl FanoutEventSink {
    /// A fan-out to `sinks`.
    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> Self {
        Self { sinks }
    }
}

#[async_trait]
impl EventSink for FanoutEventSink {
    async fn emit(&self, event: &Event) -> Result<(), EventError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(err) = sink.emit(event).await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Emit `event` and log a failure instead of returning it: events never fail a flow.
pub async fn emit_best_effort(sink: &dyn EventSink, event: Event) {
    if let Err(err) = sink.emit(&event).await {
        tracing::warn!(error = %err, ?event, "could not emit event");
    }
}

#[cfg(all(test, feature = "testing"))]
mod conformance {
    use super::*;

    #[tokio::test]
    async fn tracing_sink_conforms() {
        crate::testing::events::run_all(Arc::new(TracingEventSink)).await;
    }

    #[tokio::test]
    async fn broadcast_sink_conforms_with_and_without_subscribers() {
        let sink = BroadcastEventSink::new(16);
        crate::testing::events::run_all(Arc::new(sink.clone())).await;
        let _slow_subscriber = sink.subscribe();
        crate::testing::events::run_all(Arc::new(sink)).await;
    }

    #[tokio::test]
    async fn fanout_sink_conforms() {
        let sink = FanoutEventSink::new(vec![
            Arc::new(TracingEventSink),
            Arc::new(BroadcastEventSink::new(4)),
        ]);
        crate::testing::events::run_all(Arc::new(sink)).await;
    }
}
