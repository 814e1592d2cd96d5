//! In-process fan-out of events to live subscribers (server-sent events, tests).

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Event, EventError, EventSink};

/// Broadcasts events to every current subscriber. A subscriber that falls behind by more than
/// the channel capacity misses the oldest events (it sees a `Lagged` error) instead of slowing
/// the pipeline down; with no subscriber events are dropped.
#[derive(Debug, Clone)]
pub struct BroadcastEventSink {
    sender: broadcast::Sender<Event>,
}

impl BroadcastEventSink {
    /// A sink whose subscribers may lag up to `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Default for BroadcastEventSink {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[async_trait]
impl EventSink for BroadcastEventSink {
    async fn emit(&self, event: &Event) -> Result<(), EventError> {
        // An error only means nobody listens right now, which is fine.
        let _ = self.sender.send(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeploymentId;

    #[tokio::test]
    async fn subscribers_receive_events_emitted_after_they_subscribed() {
        let sink = BroadcastEventSink::new(8);
        let id = DeploymentId::random();
        sink.emit(&Event::DeploymentReady { deployment_id: id })
            .await
            .unwrap();
        let mut rx = sink.subscribe();
        sink.emit(&Event::DeploymentCreated {
            deployment_id: id,
            by: None,
        })
        .await
        .unwrap();
        assert_eq!(
            rx.recv().await.unwrap(),
            Event::DeploymentCreated {
                deployment_id: id,
                by: None,
            }
        );
        assert!(rx.try_recv().is_err());
    }
}
