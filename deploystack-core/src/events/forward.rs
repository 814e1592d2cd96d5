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
