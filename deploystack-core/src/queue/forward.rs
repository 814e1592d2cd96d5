//! `Arc<Q>` and `Box<Q>` are queues when `Q` is: every call goes to the one inside.
//!
//! # Why?
//! [`Services`](crate::Services) holds an `Arc<dyn Queue>`; a decorator generic over its
//! inner queue can then wrap that field as it is, and decorators compose. The provided
//! method `is_in_process` is forwarded too: left to its default, a wrapped in-memory queue
//! would claim to be shared and the server would start no in-process workers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{DeadLetter, Delivery, Job, Queue, QueueDepth, QueueError};

/// `impl Queue for $wrapper<Q>`, each method calling `Q`'s.
macro_rules! forward_queue {
    ($wrapper:ident) => {
        #[async_trait]
        impl<Q: Queue + ?Sized> Queue for $wrapper<Q> {
            async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
                (**self).enqueue(job).await
            }

            async fn reserve(
                &self,
                consumer: &str,
                lease: Duration,
                wait: Duration,
            ) -> Result<Option<Delivery>, QueueError> {
                (**self).reserve(consumer, lease, wait).await
            }

            async fn heartbeat(
                &self,
                delivery: &Delivery,
                lease: Duration,
            ) -> Result<(), QueueError> {
                (**self).heartbeat(delivery, lease).await
            }

            async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
                (**self).ack(delivery).await
            }

            async fn nack(
                &self,
                delivery: &Delivery,
                retry_after: Duration,
            ) -> Result<(), QueueError> {
                (**self).nack(delivery, retry_after).await
            }

            async fn depth(&self) -> Result<QueueDepth, QueueError> {
                (**self).depth().await
            }

            async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
                (**self).dead_letters(limit).await
            }

            fn is_in_process(&self) -> bool {
                (**self).is_in_process()
            }

            async fn ping(&self) -> Result<(), QueueError> {
                (**self).ping().await
            }
        }
    };
}

forward_queue!(Arc);
forward_queue!(Box);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::queue::MemoryQueue;
    use crate::testing::queue::MAX_DELIVERIES;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_behind_arc_or_box_passes_the_queue_suite() {
        crate::testing::queue::run_all(|| async {
            let shared: Arc<dyn Queue> = Arc::new(MemoryQueue::new(MAX_DELIVERIES));
            Arc::new(shared) as Arc<dyn Queue>
        })
        .await;
        crate::testing::queue::run_all(|| async {
            let boxed: Box<dyn Queue> = Box::new(MemoryQueue::new(MAX_DELIVERIES));
            Arc::new(boxed) as Arc<dyn Queue>
        })
        .await;
    }

    #[test]
    fn a_wrapped_in_process_queue_still_says_so() {
        // Left to the trait's default, the server would start no workers for it.
        let shared: Arc<dyn Queue> = Arc::new(MemoryQueue::new(MAX_DELIVERIES));
        assert!(Arc::new(shared).is_in_process());
        assert!(Box::new(MemoryQueue::new(MAX_DELIVERIES)).is_in_process());
    }
}
