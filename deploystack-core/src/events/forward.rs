//! `Arc<E>` and `Box<E>` are event sinks when `E` is: every event goes to the one inside.
//!
//! # Why?
//! [`Services`](crate::Services) holds an `Arc<dyn EventSink>`; a decorator generic over its
//! inner sink (a filter, a counter) can then wrap that field as it is.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Event, EventError, EventSink};

/// `impl EventSink for $wrapper<E>`, calling `E`'s.
macro_rules! forward_sink {
    ($wrapper:ident) => {
        #[async_trait]
        impl<E: EventSink + ?Sized> EventSink for $wrapper<E> {
            async fn emit(&self, event: &Event) -> Result<(), EventError> {
                (**self).emit(event).await
            }
        }
    };
}

forward_sink!(Arc);
forward_sink!(Box);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::events::BroadcastEventSink;
    use crate::model::DeploymentId;

    #[tokio::test]
    async fn a_sink_behind_arc_or_box_passes_the_events_suite_and_delivers() {
        let broadcast = BroadcastEventSink::new(16);
        let mut subscriber = broadcast.subscribe();
        let shared: Arc<dyn EventSink> = Arc::new(broadcast.clone());
        let boxed: Box<dyn EventSink> = Box::new(shared.clone());
        let event = Event::DeploymentReady {
            deployment_id: DeploymentId::random(),
        };
        boxed.emit(&event).await.unwrap();
        assert_eq!(subscriber.recv().await.unwrap(), event);
        crate::testing::events::run_all(Arc::new(shared)).await;
        crate::testing::events::run_all(Arc::new(boxed)).await;
    }
}
