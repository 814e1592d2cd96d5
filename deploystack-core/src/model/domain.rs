//! Custom domains as stored: a project's name for its production on the wider internet,
//! the proof that the name is the project's, and when to look for that proof again.
//!
//! The pieces a domain is made of — its validated name, its token, its redirect status —
//! live in [`crate::domains`]; this is the record the repository keeps of them.
//!
//! # Why is the check state stored with the domain?
//! Any node's maintenance loop re-checks pending domains. With `next_check_at` and the
//! number of checks so far in the row, "which domains are due" is one indexed query, a claim
//! is one compare-and-set that moves `next_check_at` ahead, and the backoff survives
//! restarts; nothing about re-checks lives in one process's memory.

use time::OffsetDateTime;

use super::ProjectName;
use crate::domains::{DomainName, RedirectStatus, VerificationToken};

/// A custom domain of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The name (ASCII, lowercase): unique across projects.
    pub name: DomainName,
    /// The project whose production it serves.
    pub project: ProjectName,
    /// Another domain of the same project this one redirects to; `None`: it serves.
    pub redirect: Option<DomainName>,
    /// The redirect's status; set exactly when `redirect` is.
    pub redirect_status: Option<RedirectStatus>,
    /// What its TXT record at `_deploystack.<name>` must hold.
    pub token: VerificationToken,
    /// When the record was first found; `None` while verification is pending. Only
    /// verified domains serve.
    pub verified_at: Option<OffsetDateTime>,
    /// How many times the record was looked up, on demand or in the background.
    pub check_attempts: u32,
    /// When a background re-check is due; `None` once verified.
    pub next_check_at: Option<OffsetDateTime>,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// When its redirect or its verification last changed.
    pub updated_at: OffsetDateTime,
}

impl Domain {
    /// Whether its record was found.
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

/// A domain to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDomain {
    /// The name.
    pub name: DomainName,
    /// Its project, which must exist.
    pub project: ProjectName,
    /// Where it redirects, if anywhere.
    pub redirect: Option<DomainName>,
    /// The redirect's status; only with `redirect`.
    pub redirect_status: Option<RedirectStatus>,
    /// Its verification token, generated once.
    pub token: VerificationToken,
    /// How long after now (the repository's clock) the first background check is due.
    pub first_check_in: std::time::Duration,
}
