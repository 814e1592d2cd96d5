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

use serde::Deserialize;

use crate::config::Config;
use crate::domains::{
    DomainName, DomainSpec, InvalidDomain, Readiness, RedirectError, RedirectGraph, RedirectStatus,
    VerificationToken, VerifyOutcome,
};
use crate::model::{Domain, NewDomain, ProjectName};
use crate::repository::{Repository, RepositoryError};
use crate::services::Services;
use crate::services::hosts::HostTarget;

mod sync;
#[cfg(all(test, feature = "sqlite"))]
mod tests;
mod verification;

pub use sync::sync;
pub use verification::{recheck_due, verify};

/// Most due domains one background pass checks.
pub const RECHECK_BATCH: u32 = 20;

/// How long a claimed domain is not due for anyone else: longer than a pass of
/// [`RECHECK_BATCH`] concurrent look-ups takes (each waits at most
/// [`DomainVerifier::DEFAULT_TIMEOUT`](crate::domains::DomainVerifier::DEFAULT_TIMEOUT)).
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
    by: Option<&str>,
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

/// Remove a domain from the project; it stops serving on every node at once. Refused while
/// other domains of the project redirect to it. `by` says who asked.
pub async fn delete(
    services: &Services,
    project: &ProjectName,
    name: &str,
    by: Option<&str>,
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
async fn announce(services: &Services, project: &ProjectName, by: Option<&str>) {
    crate::services::projects::announce_update(services, project, by).await;
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
