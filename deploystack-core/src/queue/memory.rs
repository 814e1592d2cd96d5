//! In-memory queue (placeholder, being written).
#![allow(missing_docs, unused_variables)]

use std::time::Duration;

use async_trait::async_trait;

use super::*;

/// The in-memory queue.
#[derive(Debug)]
pub struct MemoryQueue {}

impl MemoryQueue {
    /// A queue that dead-letters a job after `max_deliveries` deliveries.
    pub fn new(max_deliveries: u32) -> Self {
        todo!()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        todo!()
    }
    async fn reserve(
        &self,
        consumer: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Option<Delivery>, QueueError> {
        todo!()
    }
    async fn heartbeat(&self, delivery: &Delivery, lease: Duration) -> Result<(), QueueError> {
        todo!()
    }
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        todo!()
    }
    async fn nack(&self, delivery: &Delivery, retry_after: Duration) -> Result<(), QueueError> {
        todo!()
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        todo!()
    }
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        todo!()
    }
    fn is_in_process(&self) -> bool {
        true
    }
    async fn ping(&self) -> Result<(), QueueError> {
        Ok(())
    }
}
