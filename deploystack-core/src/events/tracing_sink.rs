//! Events as structured log lines, so a plain `deploystack-server` shows what happens.

use async_trait::async_trait;

use super::{Event, EventError, EventSink};

/// Writes every event as one `tracing` info line with target `deploystack::events`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEventSink;

#[async_trait]
impl EventSink for TracingEventSink {
    async fn emit(&self, event: &Event) -> Result<(), EventError> {
        let json = serde_json::to_string(event).unwrap_or_default();
        tracing::info!(target: "deploystack::events", deployment_id = event.deployment_id().map(tracing::field::display), event = %json, "event");
        Ok(())
    }
}
