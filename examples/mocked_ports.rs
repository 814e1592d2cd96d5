//! Unit-testing pipeline logic against mocked ports.
//!
//! Every port has a mockall mock behind the `mock` feature of `deploystack-core`
//! (`MockRepository`, `MockStorage`, `MockQueue`, `MockBuildStrategy`, `MockEventSink`). This
//! example checks two rules of the build pipeline without a database, a disk or a queue:
//!
//! 1. A duplicate delivery — the repository's claim finds nothing to claim — is acknowledged
//!    and builds nothing: storage is never touched.
//! 2. When the repository is down, the job is not acknowledged but handed back with a retry
//!    delay, so it is built later.
//!
//! Run the checks with `cargo test --example mocked_ports`, or `cargo run --example
//! mocked_ports` to see them narrated.

use std::sync::Arc;
use std::time::Duration;

use deploystack_core::Config;
use deploystack_core::Services;
use deploystack_core::model::DeploymentId;
use deploystack_core::queue::{Delivery, Job, MockQueue};
use deploystack_core::repository::{MockRepository, RepositoryError};
use deploystack_core::services::pipeline::{Outcome, Pipeline};
use deploystack_core::storage::MockStorage;
use tokio_util::sync::CancellationToken;

fn delivery() -> Delivery {
    Delivery {
        delivery_id: "d-1".to_owned(),
        job: Job {
            deployment_id: DeploymentId::random(),
        },
        deliveries: 1,
    }
}

fn services(repository: MockRepository, queue: MockQueue) -> Services {
    // MockStorage with no expectations: any call to it fails the test.
    Services::new(
        Config::default(),
        Arc::new(repository),
        Arc::new(MockStorage::new()),
        Arc::new(queue),
    )
}

/// Rule 1: a delivery with nothing to claim is acked, and nothing is built.
async fn duplicate_delivery_is_acked_and_builds_nothing() -> Outcome {
    let delivery = delivery();
    let id = delivery.job.deployment_id;
    let mut repository = MockRepository::new();
    repository
        .expect_claim_deployment()
        .withf(move |claimed, _worker, _lease| *claimed == id)
        .times(1)
        .returning(|_, _, _| Ok(None));
    let mut queue = MockQueue::new();
    queue.expect_ack().times(1).returning(|_| Ok(()));
    queue.expect_nack().never();

    let pipeline = Pipeline::new(services(repository, queue), "example-worker");
    pipeline.process(&delivery, &CancellationToken::new()).await
}

/// Rule 2: when the repository is down, the job is nacked with a delay, never acked.
async fn repository_outage_retries_later() -> Outcome {
    let delivery = delivery();
    let mut repository = MockRepository::new();
    repository
        .expect_claim_deployment()
        .times(1)
        .returning(|_, _, _| Err(RepositoryError::Unavailable("connection refused".into())));
    let mut queue = MockQueue::new();
    queue.expect_ack().never();
    queue
        .expect_nack()
        .withf(|_, retry_after| *retry_after >= Duration::from_secs(1))
        .times(1)
        .returning(|_, _| Ok(()));

    let pipeline = Pipeline::new(services(repository, queue), "example-worker");
    pipeline.process(&delivery, &CancellationToken::new()).await
}

#[tokio::main]
async fn main() {
    println!(
        "duplicate delivery → {:?} (acked, storage untouched)",
        duplicate_delivery_is_acked_and_builds_nothing().await
    );
    println!(
        "repository outage  → {:?} (nacked with a backoff)",
        repository_outage_retries_later().await
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicate_delivery() {
        assert_eq!(
            duplicate_delivery_is_acked_and_builds_nothing().await,
            Outcome::Skipped
        );
    }

    #[tokio::test]
    async fn repository_outage() {
        assert_eq!(repository_outage_retries_later().await, Outcome::Retrying);
    }
}
