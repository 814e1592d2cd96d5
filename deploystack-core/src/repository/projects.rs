//! The projects aggregate of the [`Repository`](super::Repository) port: projects, their
//! production pointer and its history.
//!
//! # Contract
//! - Names are unique: `create_project` answers `Conflict` for a name that exists.
//! - A production move (`move_production`, and `publish` of a production deployment) changes
//!   the pointer and appends its history row in one transaction, with `from` read under the
//!   same lock: the history is a chain (each row's `from` is the previous row's `to`) however
//!   many moves race, and a move that is refused leaves no trace.
//! - `publish` moves production to a production-target deployment of an existing project in
//!   the transaction that makes it `READY`, unless production is pinned.
//! - `delete_project` marks every deployment of the project deleted (as `delete_deployment`
//!   does, manifests dropped), and drops the project, its history and its environment
//!   variables, in one transaction.

use async_trait::async_trait;

use super::RepositoryError;
use crate::model::{
    DeploymentId, NewProject, Page, PageRequest, ProductionChange, ProductionReason, Project,
    ProjectName, ProjectUpdate, Retention,
};

/// Projects and their production.
#[async_trait]
pub trait ProjectRepository: Send + Sync {
    /// Insert a project without production. `Conflict` if the name is taken.
    async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError>;

    /// One project. `NotFound` if there is none by that name.
    async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError>;

    /// Projects in name order.
    async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>, RepositoryError>;

    /// Replace the settings given in `update`, keep the others. `NotFound` if unknown.
    async fn update_project(
        &self,
        name: &ProjectName,
        update: &ProjectUpdate,
    ) -> Result<Project, RepositoryError>;

    /// Delete the project: its deployments are marked deleted (queued and building ones
    /// canceled, manifests dropped), its history and its row removed. Returns the ids of the
    /// deployments this deleted, so callers can evict and announce them. `NotFound` if
    /// unknown (a repeated delete).
    async fn delete_project(
        &self,
        name: &ProjectName,
    ) -> Result<Vec<DeploymentId>, RepositoryError>;

    /// Make `to` production of `name` and append the history row (recording `by`, who asked),
    /// pinned for a rollback and unpinned otherwise. Only a `READY`, live deployment of that project can be production:
    /// anything else is `Conflict` and changes nothing. `NotFound` if the project is unknown.
    /// Moving to the deployment already in production still records the row (and the pin).
    async fn move_production(
        &self,
        name: &ProjectName,
        to: &DeploymentId,
        reason: ProductionReason,
        by: Option<String>,
    ) -> Result<Project, RepositoryError>;

    /// The previews of `name` that `retention` lets go: live preview deployments in a final
    /// status that were never production, beyond the newest `keep_previews` of them or
    /// created more than `max_age_days` days ago (by the repository's clock). Production, and
    /// every deployment production was ever assigned to, is never among them.
    async fn expired_previews(
        &self,
        name: &ProjectName,
        retention: &Retention,
    ) -> Result<Vec<DeploymentId>, RepositoryError>;

    /// The history of production assignments of `name`, newest first, at most `limit` rows.
    async fn production_history(
        &self,
        name: &ProjectName,
        limit: u32,
    ) -> Result<Vec<ProductionChange>, RepositoryError>;
}
