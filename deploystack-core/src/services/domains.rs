//! Custom domains of projects: adding them, proving them (on demand and in the background),
//! removing them, bringing a project's list in line with a desired one, and what a domain's
//! host serves.
//!
//! The pieces — names, redirect graphs, tokens, the DNS look-up, the backoff — are
//! [`crate::domains`]; this module applies the rules that need the repository: a name is
//! one project's at most, it is never the platform's own (`<x>.<base-domain>`, the public
//! URL's host), a redirect targets another domain of the same project and the redirects
//! form a DAG, a domain that redirects waits until every domain it leads through is
//! verified.
//!
//! # Why are the rules checked here and not in the repository?
//! Whether a redirect closes a cycle is a property of the whole list, which one SQL
//! constraint cannot express in both engines. The service reads the list, checks the graph
//! and then writes; two racing requests could still, together, leave a cycle or a dangling
//! redirect behind. [`resolve_host`] is therefore defensive: a domain serves only when
//! following its redirects ends, within a bound, at a verified domain of the same project;
//! anything else is "not ready", never another site.
//!
//! # Why is verification sticky?
//! Once the record was seen, the domain stays verified even if the record is later removed,
//! as on Vercel and GitHub Pages: users remove the TXT record after setup, and a site must
//! not drop off because of a DNS hiccup. Removing the domain is how to give it up.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;

use crate::config::Config;
use crate::domains::{
    DomainName, DomainSpec, DomainVerifier, InvalidDomain, Readiness, RedirectError, RedirectGraph,
    RedirectStatus, VerificationToken, VerifyOutcome,
};
use crate::events::{Event, emit_best_effort};
use crate::model::{Change, ChangeAction, ChangeKind, Domain, NewDomain, ProjectName};
use crate::repository::{Repository, RepositoryError};
use crate::services::Services;
use crate::services::hosts::HostTarget;

/// Most due domains one background pass checks.
pub const RECHECK_BATCH: u32 = 20;

/// How long a claimed domain is not due for anyone else: longer than a pass of
/// [`RECHECK_BATCH`] concurrent look-ups takes (each waits at most
/// [`DomainVerifier::DEFAULT_TIMEOUT`]).
pub const RECHECK_HOLD: Duration = Duration::from_secs(60);

/// Longest chain of redirects followed when resolving a host.
pub const MAX_REDIRECT_HOPS: usize = 32;

/// Why a domain operation was refused, in terms an API maps to a status. Variants that are
/// about one input name it in `field` (`name`, `redirect`, `domains[2].name`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// No project by that name.
    #[error("no project named {0}")]
    ProjectNotFound(ProjectName),
    /// The project has no such domain.
    #[error("project {project} has no domain {domain}")]
    NotFound {
        /// The project.
        project: ProjectName,
        /// The domain asked for.
        domain: String,
    },
    /// Not a usable domain name (the message says why).
    #[error("{field}: {source}")]
    Invalid {
        /// The input field.
        field: String,
        /// What is wrong.
        source: InvalidDomain,
    },
    /// A redirect status that is not 301, 302, 307 or 308.
    #[error("{field}: redirect_status must be 301, 302, 307 or 308, not {status}")]
    InvalidStatus {
        /// The input field.
        field: String,
        /// The status given.
        status: u16,
    },
    /// The name is the platform's own: the base domain, a name under it, or the public
    /// URL's host.
    #[error("{field}: {name} {reason}; use a domain of your own")]
    Reserved {
        /// The input field.
        field: String,
        /// The name.
        name: DomainName,
        /// Whose it is.
        reason: String,
    },
    /// The name is in use, by this project or another (which one is not said).
    #[error("{field}: the domain {name} is already in use{by_this}", by_this = if *.this_project { " by this project" } else { "" })]
    Taken {
        /// The input field.
        field: String,
        /// The name.
        name: DomainName,
        /// Whether this project has it (another's is never named).
        this_project: bool,
    },
    /// The redirects are inconsistent: unknown target, duplicate, cycle (spelt out).
    #[error("{field}: {source}")]
    Redirect {
        /// The input field.
        field: String,
        /// What is wrong.
        source: RedirectError,
    },
    /// Other domains of the project redirect to this one: remove or change them first.
    #[error(
        "{name} cannot be removed while {} redirect{} to it; remove or change {} first",
        join(by), if by.len() == 1 { "s" } else { "" }, if by.len() == 1 { "that redirect" } else { "those redirects" }
    )]
    InUse {
        /// The domain.
        name: DomainName,
        /// The domains that redirect to it.
        by: Vec<DomainName>,
    },
    /// The DNS resolver could not be set up (configuration).
    #[error("cannot look domains up: {0}")]
    Verifier(String),
    /// The repository failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

fn join(names: &[DomainName]) -> String {
    names
        .iter()
        .map(DomainName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl DomainError {
    /// A stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ProjectNotFound(_) => "project_not_found",
            Self::NotFound { .. } => "domain_not_found",
            Self::Invalid { .. } => "invalid_domain",
            Self::InvalidStatus { .. } => "invalid_redirect_status",
            Self::Reserved { .. } => "domain_reserved",
            Self::Taken { .. } => "domain_taken",
            Self::Redirect { source, .. } => source.code(),
            Self::InUse { .. } => "domain_in_use",
            Self::Verifier(_) => "dns_unavailable",
            Self::Repository(_) => "repository",
        }
    }

    /// The input field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. }
            | Self::InvalidStatus { field, .. }
            | Self::Reserved { field, .. }
            | Self::Taken { field, .. }
            | Self::Redirect { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// A domain as a client gives it, before validation: `{name, redirect?, redirect_status?}`.
/// Parsed by [`parse_input`], whose errors name the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// The domain, e.g. `www.example.com` (internationalised names are accepted and stored
    /// as punycode).
    pub name: String,
    /// Another domain of the same project to redirect to.
    #[serde(default)]
    pub redirect: Option<String>,
    /// 301, 302, 307 or 308 (default 308); only with `redirect`.
    #[serde(default)]
    pub redirect_status: Option<u16>,
}

/// A domain with where it stands in the project's order of application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    /// The stored domain.
    pub domain: Domain,
    /// Whether it is applied (serves or redirects), waits for a target, or is pending.
    pub readiness: Readiness,
}

/// What an on-demand check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The look-up's outcome.
    pub outcome: VerifyOutcome,
    /// A sentence for the user: what was expected, what was found, what to do.
    pub message: String,
}

/// Parse one client-given domain; `prefix` is put in front of field names (`""` for a
/// single domain, `"domains[2]."` inside a list).
pub fn parse_input(input: &DomainInput, prefix: &str) -> Result<DomainSpec, DomainError> {
    let name = DomainName::parse(&input.name).map_err(|source| DomainError::Invalid {
        field: format!("{prefix}name"),
        source,
    })?;
    let redirect = input
        .redirect
        .as_deref()
        .map(DomainName::parse)
        .transpose()
        .map_err(|source| DomainError::Invalid {
            field: format!("{prefix}redirect"),
            source,
        })?;
    let redirect_status = input
        .redirect_status
        .map(RedirectStatus::try_from)
        .transpose()
        .map_err(|invalid| DomainError::InvalidStatus {
            field: format!("{prefix}redirect_status"),
            status: invalid.0,
        })?;
    Ok(DomainSpec {
        name,
        redirect,
        redirect_status,
    })
}

/// Parse a whole list as a desired-state document gives it, fields named
/// `domains[<n>].<field>`.
pub fn parse_inputs(inputs: &[DomainInput]) -> Result<Vec<DomainSpec>, DomainError> {
    inputs
        .iter()
        .enumerate()
        .map(|(n, input)| parse_input(input, &format!("domains[{n}].")))
        .collect()
}

/// Why `name` is the platform's own, if it is: the base domain or a name under it, or the
/// host of the public URL.
fn reserved(config: &Config, name: &DomainName) -> Option<String> {
    if let Ok(base) = config.base_domain() {
        let base = base.as_str();
        if name.as_str() == base
            || name
                .as_str()
                .strip_suffix(base)
                .is_some_and(|front| front.ends_with('.'))
        {
            return Some(format!(
                "is under the platform's base domain {base}, whose names are the platform's"
            ));
        }
    }
    let public_host = config
        .public_url
        .as_deref()
        .and_then(|url| url.split_once("://"))
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(rest));
    if public_host.is_some_and(|host| host.eq_ignore_ascii_case(name.as_str())) {
        return Some("is the platform's own host (its public URL)".to_owned());
    }
    None
}

/// Check a whole desired list without touching the repository: no reserved names, no
/// duplicates, every redirect to a listed domain, no cycle (spelt out). Fields are named
/// `domains[<n>].<field>`; cycles and duplicates are about `domains` as a whole.
pub fn validate_desired(
    config: &Config,
    desired: &[DomainSpec],
) -> Result<RedirectGraph, DomainError> {
    for (n, spec) in desired.iter().enumerate() {
        if let Some(reason) = reserved(config, &spec.name) {
            return Err(DomainError::Reserved {
                field: format!("domains[{n}].name"),
                name: spec.name.clone(),
                reason,
            });
        }
    }
    RedirectGraph::new(desired).map_err(|source| {
        let field = match &source {
            RedirectError::UnknownTarget { from, .. } => position(desired, from)
                .map_or("domains".to_owned(), |n| format!("domains[{n}].redirect")),
            RedirectError::StatusWithoutRedirect(name) => position(desired, name)
                .map_or("domains".to_owned(), |n| {
                    format!("domains[{n}].redirect_status")
                }),
            _ => "domains".to_owned(),
        };
        DomainError::Redirect { field, source }
    })
}

fn position(desired: &[DomainSpec], name: &DomainName) -> Option<usize> {
    desired.iter().position(|spec| &spec.name == name)
}

/// [`validate_desired`], plus what needs the repository: no listed name belongs to another
/// project. Writes nothing.
pub async fn check_desired(
    services: &Services,
    project: &ProjectName,
    desired: &[DomainSpec],
) -> Result<RedirectGraph, DomainError> {
    let graph = validate_desired(&services.config, desired)?;
    for (n, spec) in desired.iter().enumerate() {
        match services.repository.get_domain(&spec.name).await {
            Ok(domain) if &domain.project != project => {
                return Err(DomainError::Taken {
                    field: format!("domains[{n}].name"),
                    name: spec.name.clone(),
                    this_project: false,
                });
            }
            Ok(_) | Err(RepositoryError::NotFound) => {}
            Err(err) => return Err(DomainError::Repository(err)),
        }
    }
    Ok(graph)
}

/// The project's domains, failing with `ProjectNotFound` for an unknown project.
async fn project_domains(
    services: &Services,
    project: &ProjectName,
) -> Result<Vec<Domain>, DomainError> {
    services
        .repository
        .get_project(project)
        .await
        .map_err(|err| match err {
            RepositoryError::NotFound => DomainError::ProjectNotFound(project.clone()),
            other => DomainError::Repository(other),
        })?;
    services
        .repository
        .list_domains(project)
        .await
        .map_err(DomainError::Repository)
}

/// Each domain with its readiness, in name order, by the rule [`resolve_host`] serves by: a
/// domain is ready when it is verified and following its redirects ends, within
/// [`MAX_REDIRECT_HOPS`], at a verified domain of the project; otherwise it waits for the
/// first domain along the way that is not verified (or missing, or a loop left by a race).
fn with_readiness(domains: Vec<Domain>) -> Vec<DomainState> {
    let by_name: BTreeMap<&DomainName, &Domain> = domains.iter().map(|d| (&d.name, d)).collect();
    let readiness = |domain: &Domain| {
        if !domain.is_verified() {
            return Readiness::Unverified;
        }
        let mut next = domain.redirect.as_ref();
        for _ in 0..MAX_REDIRECT_HOPS {
            let Some(target) = next else {
                return Readiness::Ready;
            };
            match by_name.get(target) {
                Some(found) if found.is_verified() => next = found.redirect.as_ref(),
                _ => return Readiness::WaitingFor(target.clone()),
            }
        }
        Readiness::WaitingFor(
            domain
                .redirect
                .clone()
                .unwrap_or_else(|| domain.name.clone()),
        )
    };
    let states: Vec<Readiness> = domains.iter().map(readiness).collect();
    domains
        .into_iter()
        .zip(states)
        .map(|(domain, readiness)| DomainState { domain, readiness })
        .collect()
}

fn spec_of(domain: &Domain) -> DomainSpec {
    DomainSpec {
        name: domain.name.clone(),
        redirect: domain.redirect.clone(),
        redirect_status: domain.redirect_status,
    }
}

fn find(
    states: Vec<DomainState>,
    project: &ProjectName,
    name: &str,
) -> Result<DomainState, DomainError> {
    let wanted = DomainName::parse(name).ok();
    states
        .into_iter()
        .find(|state| Some(&state.domain.name) == wanted.as_ref())
        .ok_or_else(|| DomainError::NotFound {
            project: project.clone(),
            domain: name.to_owned(),
        })
}

/// The project's domains with their readiness, in name order.
pub async fn list(
    services: &Services,
    project: &ProjectName,
) -> Result<Vec<DomainState>, DomainError> {
    Ok(with_readiness(project_domains(services, project).await?))
}

/// One domain of the project, by its name as a client spells it (any case, Unicode or
/// punycode).
pub async fn get(
    services: &Services,
    project: &ProjectName,
    name: &str,
) -> Result<DomainState, DomainError> {
    find(list(services, project).await?, project, name)
}

/// Add a domain to the project, unverified; its record is first looked up in the
/// background after `domain_recheck_secs`, or on demand with [`verify`]. `by` says who
/// asked (as the history names callers); the `ProjectUpdated` event carries it.
pub async fn add(
    services: &Services,
    project: &ProjectName,
    spec: DomainSpec,
    by: Option<String>,
) -> Result<DomainState, DomainError> {
    let existing = project_domains(services, project).await?;
    if let Some(reason) = reserved(&services.config, &spec.name) {
        return Err(DomainError::Reserved {
            field: "name".into(),
            name: spec.name,
            reason,
        });
    }
    if existing.iter().any(|d| d.name == spec.name) {
        return Err(DomainError::Taken {
            field: "name".into(),
            name: spec.name,
            this_project: true,
        });
    }
    let mut specs: Vec<DomainSpec> = existing.iter().map(spec_of).collect();
    specs.push(spec.clone());
    RedirectGraph::new(&specs).map_err(|source| DomainError::Redirect {
        field: match source {
            RedirectError::StatusWithoutRedirect(_) => "redirect_status",
            _ => "redirect",
        }
        .into(),
        source,
    })?;
    create(services, project, &spec, "name").await?;
    announce(services, project, by).await;
    get(services, project, spec.name.as_str()).await
}

async fn create(
    services: &Services,
    project: &ProjectName,
    spec: &DomainSpec,
    field: &str,
) -> Result<Domain, DomainError> {
    let new = NewDomain {
        name: spec.name.clone(),
        project: project.clone(),
        redirect: spec.redirect.clone(),
        redirect_status: spec
            .redirect
            .as_ref()
            .map(|_| spec.redirect_status.unwrap_or_default()),
        token: VerificationToken::generate(),
        first_check_in: services.config.recheck_schedule().first,
    };
    services
        .repository
        .create_domain(&new)
        .await
        .map_err(|err| match err {
            RepositoryError::Conflict(_) => DomainError::Taken {
                field: field.to_owned(),
                name: spec.name.clone(),
                this_project: false,
            },
            RepositoryError::NotFound => DomainError::ProjectNotFound(project.clone()),
            other => DomainError::Repository(other),
        })
}

/// Look the domain's record up now. A verified domain is answered as it is, without a
/// look-up (verification is sticky, see the module docs). The report says what was
/// expected and what was found. `by` says who asked; a `DomainVerified` event carries it.
pub async fn verify(
    services: &Services,
    project: &ProjectName,
    name: &str,
    by: Option<String>,
) -> Result<(DomainState, CheckReport), DomainError> {
    let state = get(services, project, name).await?;
    let domain = &state.domain;
    if domain.is_verified() {
        let outcome = VerifyOutcome::Verified;
        let message = outcome.explain(&domain.name, &domain.token);
        return Ok((state, CheckReport { outcome, message }));
    }
    let verifier = DomainVerifier::from_config(&services.config)
        .map_err(|err| DomainError::Verifier(err.to_string()))?;
    let outcome = check_and_record(services, &verifier, domain, by).await?;
    let message = outcome.explain(&domain.name, &domain.token);
    let state = get(services, project, name).await?;
    Ok((state, CheckReport { outcome, message }))
}

/// One look-up of `domain`'s record, recorded; announces a verification, made on behalf
/// of `by` (`None`: the background re-check).
async fn check_and_record(
    services: &Services,
    verifier: &DomainVerifier,
    domain: &Domain,
    by: Option<String>,
) -> Result<VerifyOutcome, DomainError> {
    let outcome = verifier.check(&domain.name, &domain.token).await;
    let retry_in = services
        .config
        .recheck_schedule()
        .delay(domain.check_attempts, rand::random());
    let recorded = services
        .repository
        .record_domain_check(&domain.name, outcome.is_verified(), retry_in)
        .await
        .map_err(DomainError::Repository)?;
    if outcome.is_verified() && !domain.is_verified() {
        tracing::info!(domain = %domain.name, project = %domain.project, "custom domain verified");
        emit_best_effort(
            services.events.as_ref(),
            Event::DomainVerified {
                project: recorded.project.clone(),
                domain: recorded.name.to_string(),
                by,
            },
        )
        .await;
    } else if let VerifyOutcome::LookupFailed { reason } = &outcome {
        tracing::debug!(domain = %domain.name, %reason, "custom domain look-up failed");
    }
    Ok(outcome)
}

/// One background pass: claim up to [`RECHECK_BATCH`] due pending domains (safe with
/// several nodes, see `DomainRepository::claim_due_domains`), look each up, record the
/// results. Returns how many were verified.
pub async fn recheck_due(services: &Services) -> Result<usize, DomainError> {
    let due = services
        .repository
        .claim_due_domains(RECHECK_BATCH, RECHECK_HOLD)
        .await
        .map_err(DomainError::Repository)?;
    if due.is_empty() {
        return Ok(0);
    }
    let verifier = DomainVerifier::from_config(&services.config)
        .map_err(|err| DomainError::Verifier(err.to_string()))?;
    let results = join_all(
        due.iter()
            .map(|domain| check_and_record(services, &verifier, domain, None)),
    )
    .await;
    let mut verified = 0;
    for result in results {
        match result {
            Ok(outcome) if outcome.is_verified() => verified += 1,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not record a domain check"),
        }
    }
    Ok(verified)
}

/// Remove a domain from the project; it stops serving on every node at once. Refused while
/// other domains of the project redirect to it. `by` says who asked.
pub async fn delete(
    services: &Services,
    project: &ProjectName,
    name: &str,
    by: Option<String>,
) -> Result<(), DomainError> {
    let states = list(services, project).await?;
    let redirecting: Vec<DomainName> = {
        let wanted = DomainName::parse(name).ok();
        states
            .iter()
            .filter(|s| s.domain.redirect.is_some() && s.domain.redirect == wanted)
            .map(|s| s.domain.name.clone())
            .collect()
    };
    let state = find(states, project, name)?;
    if !redirecting.is_empty() {
        return Err(DomainError::InUse {
            name: state.domain.name,
            by: redirecting,
        });
    }
    match services.repository.delete_domain(&state.domain.name).await {
        Ok(()) => {
            announce(services, project, by).await;
            Ok(())
        }
        // A concurrent delete won: that one announced it.
        Err(RepositoryError::NotFound) => Ok(()),
        Err(err) => Err(DomainError::Repository(err)),
    }
}

/// Tell the event sinks the project's domains changed, on behalf of `by`.
async fn announce(services: &Services, project: &ProjectName, by: Option<String>) {
    crate::services::projects::announce_update(services, project, by).await;
}

/// Bring the project's domains in line with `desired`, a full list: create what is
/// missing (in the order of application, targets first), change redirects that differ,
/// remove what is not listed. Domains that stay keep their token and their verification.
/// Applying the same list twice answers no changes the second time. The whole list is
/// checked ([`check_desired`]) before anything is written. `by` says who asked.
pub async fn sync(
    services: &Services,
    project: &ProjectName,
    desired: &[DomainSpec],
    by: Option<String>,
) -> Result<Vec<Change>, DomainError> {
    let current = project_domains(services, project).await?;
    let graph = check_desired(services, project, desired).await?;
    let current: BTreeMap<&DomainName, &Domain> = current.iter().map(|d| (&d.name, d)).collect();
    let mut changes = Vec::new();
    for name in graph.order() {
        let Some(n) = position(desired, name) else {
            continue;
        };
        let spec = &desired[n];
        let status = spec
            .redirect
            .as_ref()
            .map(|_| spec.redirect_status.unwrap_or_default());
        match current.get(name) {
            None => {
                create(services, project, spec, &format!("domains[{n}].name")).await?;
                changes.push(Change::new(
                    ChangeAction::Created,
                    ChangeKind::Domain,
                    name.as_str(),
                ));
            }
            Some(domain)
                if domain.redirect != spec.redirect || domain.redirect_status != status =>
            {
                services
                    .repository
                    .set_domain_redirect(name, spec.redirect.clone(), status)
                    .await
                    .map_err(DomainError::Repository)?;
                changes.push(Change::new(
                    ChangeAction::Updated,
                    ChangeKind::Domain,
                    name.as_str(),
                ));
            }
            Some(_) => {}
        }
    }
    for name in current.keys() {
        if position(desired, name).is_none() {
            match services.repository.delete_domain(name).await {
                Ok(()) | Err(RepositoryError::NotFound) => {}
                Err(err) => return Err(DomainError::Repository(err)),
            }
            changes.push(Change::new(
                ChangeAction::Deleted,
                ChangeKind::Domain,
                name.as_str(),
            ));
        }
    }
    if !changes.is_empty() {
        announce(services, project, by).await;
    }
    Ok(changes)
}

/// What a request for host `name` gets, if `name` is a custom domain: `None` when no project
/// has it. A domain serves its project's production (or redirects) only when it is verified
/// and every domain its redirects lead through is a verified domain of the same project;
/// otherwise it is [`HostTarget::DomainNotReady`]. Reads go through whatever `repository`
/// is — in a server, the read cache, which every domain write invalidates on every node.
pub async fn resolve_host(
    repository: &dyn Repository,
    name: &DomainName,
) -> Result<Option<HostTarget>, RepositoryError> {
    let domain = match repository.get_domain(name).await {
        Ok(domain) => domain,
        Err(RepositoryError::NotFound) => return Ok(None),
        Err(err) => return Err(err),
    };
    if !domain.is_verified() {
        return Ok(Some(HostTarget::DomainNotReady));
    }
    let mut next = domain.redirect.clone();
    for _ in 0..MAX_REDIRECT_HOPS {
        let Some(target) = next else {
            return Ok(Some(match (&domain.redirect, domain.redirect_status) {
                (Some(to), status) => HostTarget::Redirect {
                    to: to.clone(),
                    status: status.unwrap_or_default(),
                },
                (None, _) => match repository.get_project(&domain.project).await {
                    Ok(project) => project
                        .production
                        .map_or(HostTarget::NoProduction, |production| {
                            HostTarget::Deployment(production.deployment_id)
                        }),
                    Err(RepositoryError::NotFound) => HostTarget::DomainNotReady,
                    Err(err) => return Err(err),
                },
            }));
        };
        let target = match repository.get_domain(&target).await {
            Ok(target) => target,
            Err(RepositoryError::NotFound) => return Ok(Some(HostTarget::DomainNotReady)),
            Err(err) => return Err(err),
        };
        if target.project != domain.project || !target.is_verified() {
            return Ok(Some(HostTarget::DomainNotReady));
        }
        next = target.redirect;
    }
    // Longer than any chain a DAG of this size allows: a cycle left by a race.
    Ok(Some(HostTarget::DomainNotReady))
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::model::NewProject;

    fn spec(name: &str, redirect: Option<&str>) -> DomainSpec {
        DomainSpec {
            name: DomainName::parse(name).expect("a valid domain"),
            redirect: redirect.map(|r| DomainName::parse(r).expect("a valid domain")),
            redirect_status: None,
        }
    }

    async fn services_with(projects: &[&str]) -> Services {
        let config = Config {
            public_url: Some("https://deploy.example.org".into()),
            base_domain: "sites.example.org".into(),
            ..Config::default()
        };
        let services = Services::in_memory(config).await.expect("services");
        for name in projects {
            crate::services::projects::create(
                &services,
                NewProject {
                    name: name.parse().expect("a project name"),
                    build_settings: Default::default(),
                    retention: Default::default(),
                },
                None,
            )
            .await
            .expect("create a project");
        }
        services
    }

    fn names(changes: &[Change]) -> Vec<(ChangeAction, &str)> {
        changes
            .iter()
            .map(|c| (c.action, c.name.as_str()))
            .collect()
    }

    #[test]
    fn inputs_are_parsed_with_the_field_at_fault_named() {
        let input = |name: &str, redirect: Option<&str>, status: Option<u16>| DomainInput {
            name: name.into(),
            redirect: redirect.map(Into::into),
            redirect_status: status,
        };
        let parsed = parse_input(
            &input("WWW.Example.COM.", Some("example.com"), Some(301)),
            "",
        )
        .unwrap();
        assert_eq!(parsed.name.as_str(), "www.example.com");
        assert_eq!(
            parsed.redirect_status,
            Some(RedirectStatus::MovedPermanently)
        );
        let err = parse_inputs(&[
            input("a.example", None, None),
            input("*.example", None, None),
        ])
        .unwrap_err();
        assert_eq!(err.field(), Some("domains[1].name"));
        assert_eq!(err.code(), "invalid_domain");
        let err = parse_input(&input("a.example", Some("http://b"), None), "").unwrap_err();
        assert_eq!(err.field(), Some("redirect"));
        let err = parse_input(&input("a.example", Some("b.example"), Some(303)), "").unwrap_err();
        assert_eq!(err.field(), Some("redirect_status"));
    }

    #[test]
    fn the_platforms_names_are_reserved_and_cycles_are_spelt_out() {
        let config = Config {
            public_url: Some("https://deploy.example.org:8443/".into()),
            base_domain: "sites.example.org".into(),
            ..Config::default()
        };
        for (n, name) in [
            "sites.example.org",
            "shop.sites.example.org",
            "deploy.example.org",
        ]
        .into_iter()
        .enumerate()
        {
            let mut list = vec![spec("fine.example", None)];
            list.insert(n.min(1), spec(name, None));
            let err = validate_desired(&config, &list).unwrap_err();
            assert_eq!(err.code(), "domain_reserved", "{name}");
            assert_eq!(
                err.field(),
                Some(format!("domains[{}].name", n.min(1)).as_str())
            );
        }
        let err = validate_desired(
            &config,
            &[
                spec("b.example", Some("c.example")),
                spec("a.example", Some("b.example")),
                spec("c.example", Some("a.example")),
            ],
        )
        .unwrap_err();
        assert_eq!(err.code(), "redirect_cycle");
        assert!(
            err.to_string()
                .contains("a.example → b.example → c.example → a.example"),
            "{err}"
        );
        let err = validate_desired(&config, &[spec("w.example", Some("x.example"))]).unwrap_err();
        assert_eq!(err.field(), Some("domains[0].redirect"));
        assert!(validate_desired(&config, &[spec("example.com", None)]).is_ok());
    }

    #[tokio::test]
    async fn sync_creates_updates_and_deletes_and_a_second_apply_changes_nothing() {
        let services = services_with(&["shop", "other"]).await;
        let shop: ProjectName = "shop".parse().unwrap();
        let desired = [
            spec("www.shop.example", Some("shop.example")),
            spec("shop.example", None),
        ];
        let changes = sync(&services, &shop, &desired, None).await.unwrap();
        // Targets first.
        assert_eq!(
            names(&changes),
            [
                (ChangeAction::Created, "shop.example"),
                (ChangeAction::Created, "www.shop.example")
            ]
        );
        assert!(
            sync(&services, &shop, &desired, None)
                .await
                .unwrap()
                .is_empty()
        );
        let token = get(&services, &shop, "shop.example")
            .await
            .unwrap()
            .domain
            .token;

        let desired = [
            DomainSpec {
                redirect_status: Some(RedirectStatus::Found),
                ..spec("www.shop.example", Some("shop.example"))
            },
            spec("shop.example", None),
            spec("blog.shop.example", None),
        ];
        let changes = sync(&services, &shop, &desired, None).await.unwrap();
        assert_eq!(
            names(&changes),
            [
                (ChangeAction::Created, "blog.shop.example"),
                (ChangeAction::Updated, "www.shop.example")
            ]
        );
        let changes = sync(&services, &shop, &[spec("shop.example", None)], None)
            .await
            .unwrap();
        let mut deleted = names(&changes);
        deleted.sort_by_key(|(_, name)| *name);
        assert_eq!(
            deleted,
            [
                (ChangeAction::Deleted, "blog.shop.example"),
                (ChangeAction::Deleted, "www.shop.example")
            ]
        );
        // A domain that stays keeps its token.
        let kept = get(&services, &shop, "shop.example").await.unwrap();
        assert_eq!(kept.domain.token, token);

        // Another project's name is refused before anything is written.
        let other: ProjectName = "other".parse().unwrap();
        let err = sync(
            &services,
            &other,
            &[spec("new.example", None), spec("shop.example", None)],
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "domain_taken");
        assert_eq!(err.field(), Some("domains[1].name"));
        assert!(!err.to_string().contains("shop "), "{err}");
        assert!(list(&services, &other).await.unwrap().is_empty());
        let err = sync(&services, &"nobody".parse().unwrap(), &[], None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "project_not_found");
    }

    /// The background pass claims due domains, looks each up, records the result with the
    /// next delay, and announces a verification.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_background_pass_verifies_due_domains_and_reschedules_the_others() {
        let dns = crate::testing::dns::DnsTestServer::start()
            .await
            .expect("dns server");
        let config = Config {
            dns_servers: vec![dns.addr()],
            domain_recheck_secs: 100,
            ..Config::default()
        };
        let services = Services::in_memory(config).await.expect("services");
        let project: ProjectName = "bg".parse().expect("name");
        crate::services::projects::create(
            &services,
            NewProject {
                name: project.clone(),
                build_settings: Default::default(),
                retention: Default::default(),
            },
            None,
        )
        .await
        .expect("project");
        let mut events = services.broadcast.subscribe();
        sync(
            &services,
            &project,
            &[spec("found.example", None), spec("missing.example", None)],
            None,
        )
        .await
        .expect("sync");
        for name in ["found.example", "missing.example"] {
            services
                .repository
                .record_domain_check(
                    &DomainName::parse(name).expect("name"),
                    false,
                    Duration::ZERO,
                )
                .await
                .expect("make it due now (one failed check so far)");
        }
        let found = get(&services, &project, "found.example")
            .await
            .expect("domain");
        dns.set_txt("_deploystack.found.example", &[found.domain.token.as_str()]);
        tokio::time::sleep(Duration::from_millis(10)).await;

        assert_eq!(recheck_due(&services).await.expect("recheck"), 1);
        let states = list(&services, &project).await.expect("list");
        let (found, missing) = (&states[0].domain, &states[1].domain);
        assert!(found.is_verified());
        assert_eq!(states[0].readiness, Readiness::Ready);
        assert!(!missing.is_verified());
        assert_eq!(missing.check_attempts, 2);
        let next = missing.next_check_at.expect("rescheduled");
        // The delay after the second failed check: 200 s, less up to a fifth.
        let wait = next - missing.updated_at.max(time::OffsetDateTime::now_utc());
        assert!(wait > time::Duration::seconds(150), "{wait}");
        // The sync announced its change first (`ProjectUpdated`); then the verification.
        let verified = loop {
            match events.recv().await.expect("an event") {
                Event::ProjectUpdated { .. } => {}
                other => break other,
            }
        };
        match verified {
            Event::DomainVerified {
                project,
                domain,
                by,
            } => {
                assert_eq!((project.as_str(), domain.as_str()), ("bg", "found.example"));
                assert_eq!(by, None, "the background re-check acts for nobody");
            }
            other => panic!("unexpected {other:?}"),
        }
        // Nothing is due any more.
        assert_eq!(recheck_due(&services).await.expect("recheck"), 0);
    }

    /// Redirects a race left dangling or looping make only their own domains wait.
    #[tokio::test]
    async fn a_dangling_or_looping_redirect_makes_only_its_domains_wait() {
        let services = services_with(&["race"]).await;
        let race: ProjectName = "race".parse().expect("name");
        sync(
            &services,
            &race,
            &[
                spec("serves.example", None),
                spec("a.example", None),
                spec("b.example", None),
                spec("c.example", None),
            ],
            None,
        )
        .await
        .expect("sync");
        let repo = services.repository.as_ref();
        let name = |n: &str| DomainName::parse(n).expect("name");
        for n in ["serves.example", "a.example", "b.example", "c.example"] {
            repo.record_domain_check(&name(n), true, Duration::ZERO)
                .await
                .expect("verify");
        }
        // What two racing requests could leave behind, written past the service's checks.
        let status = Some(RedirectStatus::PermanentRedirect);
        repo.set_domain_redirect(&name("a.example"), Some(name("b.example")), status)
            .await
            .expect("a → b");
        repo.set_domain_redirect(&name("b.example"), Some(name("a.example")), status)
            .await
            .expect("b → a");
        repo.set_domain_redirect(&name("c.example"), Some(name("gone.example")), status)
            .await
            .expect("c → gone");
        let states = list(&services, &race).await.expect("list");
        let of = |n: &str| {
            states
                .iter()
                .find(|s| s.domain.name.as_str() == n)
                .map(|s| s.readiness.clone())
                .expect("listed")
        };
        assert_eq!(of("serves.example"), Readiness::Ready);
        assert_eq!(of("c.example"), Readiness::WaitingFor(name("gone.example")));
        assert!(matches!(of("a.example"), Readiness::WaitingFor(_)));
        for n in ["a.example", "b.example", "c.example"] {
            assert_eq!(
                resolve_host(repo, &name(n)).await.expect("resolve"),
                Some(HostTarget::DomainNotReady),
                "{n}"
            );
        }
        assert_eq!(
            resolve_host(repo, &name("serves.example"))
                .await
                .expect("resolve"),
            Some(HostTarget::NoProduction)
        );
    }

    #[tokio::test]
    async fn a_host_serves_only_when_it_and_its_targets_are_verified() {
        let services = services_with(&["acme"]).await;
        let acme: ProjectName = "acme".parse().unwrap();
        sync(
            &services,
            &acme,
            &[
                spec("acme.example", None),
                spec("www.acme.example", Some("acme.example")),
            ],
            None,
        )
        .await
        .unwrap();
        let repo = services.repository.as_ref();
        let (apex, www) = (
            DomainName::parse("acme.example").unwrap(),
            DomainName::parse("www.acme.example").unwrap(),
        );
        let unknown = DomainName::parse("nobody.example").unwrap();
        assert_eq!(resolve_host(repo, &unknown).await.unwrap(), None);
        assert_eq!(
            resolve_host(repo, &www).await.unwrap(),
            Some(HostTarget::DomainNotReady)
        );
        repo.record_domain_check(&www, true, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            resolve_host(repo, &www).await.unwrap(),
            Some(HostTarget::DomainNotReady),
            "www waits for the apex"
        );
        let states = list(&services, &acme).await.unwrap();
        assert_eq!(states[1].readiness, Readiness::WaitingFor(apex.clone()));
        repo.record_domain_check(&apex, true, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            resolve_host(repo, &www).await.unwrap(),
            Some(HostTarget::Redirect {
                to: apex.clone(),
                status: RedirectStatus::PermanentRedirect
            })
        );
        // No production yet.
        assert_eq!(
            resolve_host(repo, &apex).await.unwrap(),
            Some(HostTarget::NoProduction)
        );
        let err = delete(&services, &acme, "acme.example", None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "domain_in_use");
        assert!(err.to_string().contains("www.acme.example"), "{err}");
        delete(&services, &acme, "WWW.acme.example", None)
            .await
            .unwrap();
        assert_eq!(resolve_host(repo, &www).await.unwrap(), None);
    }
}
