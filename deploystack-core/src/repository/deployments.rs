//! The deployments aggregate of the [`Repository`](super::Repository) port: a deployment's
//! life from `QUEUED` to a final status, its lease and its fencing token.
//!
//! # Contract
//! - `claim_deployment` is a compare-and-set that bumps `attempt`; the returned attempt is a
//!   fencing token. `renew_lease`, `release_claim`, `publish` and `fail_deployment` only act
//!   when the token is still the current one, so a stale or zombie worker changes nothing.
//! - `publish` writes the whole file manifest and flips the status to `READY` in one
//!   transaction: a deployment is never visible half-published.
//! - `cancel_deployment` ends a `QUEUED` or `BUILDING` deployment in `CANCELED` and clears
//!   its lease in one compare-and-set, so the canceled attempt is fenced out like a stale one:
//!   its worker can publish or fail nothing afterwards.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Claim, PublishedBuild, RepositoryError};
use crate::model::{
    Deployment, DeploymentError, DeploymentId, DeploymentStatus, NewDeployment, Page, PageRequest,
    ProjectName,
};

/// Deployments: creation, listing, the claim/lease/fence protocol and the final statuses.
#[async_trait]
pub trait DeploymentRepository: Send + Sync {
    /// Insert a new `QUEUED` deployment. `Conflict` if the id exists.
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError>;

    /// One deployment, deleted ones included (check `deleted_at`). `NotFound` if unknown.
    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

    /// Live (not deleted) deployments, newest first.
    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError>;

    /// Compare-and-set: if the deployment is `QUEUED`, or `BUILDING` with an expired lease,
    /// and not deleted, make it `BUILDING` under `worker`, bump `attempt`, set the lease and
    /// record a build row for the new attempt. `None` when there is nothing to claim (a
    /// duplicate or stale delivery, a final or deleted deployment, a live lease elsewhere).
    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError>;

    /// Extend the lease of `attempt`. `LeaseLost` if it is no longer the current attempt or
    /// the deployment left `BUILDING`.
    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError>;

    /// Give the claim back: `BUILDING` → `QUEUED`, lease cleared, so the next delivery can
    /// claim it at once (used on shutdown). `LeaseLost` if `attempt` is stale.
    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError>;

    /// In one transaction fenced by `attempt`: write the manifest, the counts, finish the
    /// build row and set `READY`. `LeaseLost` if `attempt` is stale or the deployment is no
    /// longer `BUILDING` (deleted, canceled), in which case nothing is written.
    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError>;

    /// Fenced by `attempt`: set `ERROR` with `error` and finish the build row.
    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError>;

    /// Mark deleted (queued or building ones become `CANCELED`) and drop its file manifest,
    /// so it stops being served at once. Idempotent; returns the deployment as it now is.
    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

    /// Cancel a deployment that is `QUEUED` or `BUILDING` and not deleted: status `CANCELED`,
    /// lease cleared, the running attempt's build row finished as canceled. The attempt stays
    /// as it is but no longer passes the fence (`renew_lease`, `publish`, … answer
    /// `LeaseLost`), and nothing claims a canceled deployment. Returns the deployment as it
    /// now is. `NotFound` if unknown; [`RepositoryError::Final`] with the status it has if it
    /// is final already, or deleted.
    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;

    /// Deployments stuck in `QUEUED` since before `older_than`, or `BUILDING` with an expired
    /// lease: what a reconciler re-enqueues so nothing accepted is lost.
    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError>;

    /// How many live (not deleted) deployments of `project` have `status` now: ingest asks
    /// how many of a project's deployments are `QUEUED` before accepting another (the
    /// setting `max_queued_per_project`). 0 for a project that does not exist.
    async fn count_deployments(
        &self,
        project: &ProjectName,
        status: DeploymentStatus,
    ) -> Result<u64, RepositoryError>;
}
