//! The custom domains aggregate of the [`Repository`](super::Repository) port: each domain's
//! project, redirect, token and verification state, and the schedule of background checks.
//!
//! # Contract
//! - Names are unique across every project: `create_domain` answers `Conflict` for a name
//!   any project has (the message does not say which project).
//! - `create_domain` answers `NotFound` when the project does not exist.
//! - Deleting a project deletes its domains in the same transaction (`delete_project`).
//! - Once verified, a domain stays verified: `record_domain_check` never clears
//!   `verified_at`, and a verified domain is never due again.
//! - `claim_due_domains` is a compare-and-set: a domain it hands out is not due again for
//!   `hold` (by the repository's clock), so several nodes running the same loop never check
//!   the same domain at once. A claim that is never followed by `record_domain_check` (the
//!   node died) simply comes due again after `hold`.
//! - Whether redirects form a DAG is the caller's rule (`services::domains` checks the whole
//!   list before writing); the repository stores what it is given.

use std::time::Duration;

use async_trait::async_trait;

use super::RepositoryError;
use crate::domains::{DomainName, RedirectStatus};
use crate::model::{Domain, NewDomain, ProjectName};

/// Custom domains.
#[async_trait]
pub trait DomainRepository: Send + Sync {
    /// Add a domain, unverified, its first check due `first_check_in` from now. `NotFound`
    /// if the project is unknown, `Conflict` if any project has the name.
    async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError>;

    /// One domain, whichever its project. `NotFound` if no project has it.
    async fn get_domain(&self, name: &DomainName) -> Result<Domain, RepositoryError>;

    /// A project's domains in name order (empty for a project without domains, and for an
    /// unknown project).
    async fn list_domains(&self, project: &ProjectName) -> Result<Vec<Domain>, RepositoryError>;

    /// Set (or with `None`, remove) where `name` redirects; `status` is stored only with a
    /// redirect. `NotFound` if unknown.
    async fn set_domain_redirect(
        &self,
        name: &DomainName,
        redirect: Option<DomainName>,
        status: Option<RedirectStatus>,
    ) -> Result<Domain, RepositoryError>;

    /// Remove a domain. `NotFound` if unknown (a repeated delete).
    async fn delete_domain(&self, name: &DomainName) -> Result<(), RepositoryError>;

    /// Record one look-up of the domain's record: the attempt count goes up; found, the
    /// domain is verified (now, unless it already was) and no longer due; not found, the
    /// next check is due `retry_in` from now. `NotFound` if unknown.
    async fn record_domain_check(
        &self,
        name: &DomainName,
        found: bool,
        retry_in: Duration,
    ) -> Result<Domain, RepositoryError>;

    /// Up to `limit` unverified domains whose check is due, earliest first, each moved
    /// `hold` ahead so no other caller gets it meanwhile (see the module docs).
    async fn claim_due_domains(
        &self,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Domain>, RepositoryError>;
}
