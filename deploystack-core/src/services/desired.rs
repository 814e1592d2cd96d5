//! Desired state: `PUT /api/v1/projects/{name}` hands over a project's whole document, and
//! this module brings the project in line with it — creating what is missing, changing what
//! differs, removing what the document no longer lists — and says what it changed.
//!
//! # Why a whole document
//! Platform teams keep hundreds of sites in sync from another system (a CMS, a Terraform
//! run, a customer database). With a document they send what a project *should* be and need
//! not read it first, diff it and issue one call per difference; a retry after a timeout is
//! the same call again. A field the document leaves out means its empty value: no build
//! settings, no retention limit — a document is the whole truth, not a patch (`PATCH` is).
//!
//! # The rules
//! - Everything is checked before anything is written: a document with one bad field changes
//!   nothing and the error names the field.
//! - Applying the same document twice changes nothing the second time and answers an empty
//!   `changes`.
//! - Parts are applied in a fixed order — the project and its settings, then its variables,
//!   then its domains — each through the same service as its own API, so the rules (and the
//!   events) are the same whichever way a change arrives. Should the repository fail half-way,
//!   nothing is lost and the same document sent again finishes the work.

use crate::domains::DomainSpec;
use crate::model::{
    BuildSettings, Change, ChangeAction, ChangeKind, NewProject, Project, ProjectName,
    ProjectUpdate, ProtectionRequest, Retention,
};
use crate::services::Services;
use crate::services::domains::{self, DomainError};
use crate::services::env::{self, DesiredEnvVar, EnvError};
use crate::services::projects::{self, ProjectError};

/// Why an apply was refused or stopped: the error of the part it was applying, which names
/// the field (`retention.keep_previews`, `env[2].key`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DesiredError {
    /// The project or its settings.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// Its environment variables.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Its custom domains.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// A project's whole document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredProject {
    /// Overrides of detection; empty: detect everything.
    pub build_settings: BuildSettings,
    /// What to keep of its previews; default: keep everything.
    pub retention: Retention,
    /// Its environment variables, all of them.
    pub env: Vec<DesiredEnvVar>,
    /// Its protection; default: none. The password is compared with the stored hash, so the
    /// same document twice is no change.
    pub protection: ProtectionRequest,
    /// Its custom domains, all of them (parsed with `services::domains::parse_inputs`).
    pub domains: Vec<DomainSpec>,
}

/// What an apply did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The project as it is now.
    pub project: Project,
    /// Whether the document created it.
    pub created: bool,
    /// Every change made, in the order made; empty when it already matched.
    pub changes: Vec<Change>,
    /// The bypass secret made because the document turned protection on: shown once.
    pub bypass_secret: Option<String>,
}

/// Bring project `name` in line with `desired`, creating it if it does not exist. `by` says
/// who asked (as the history names callers); every event of the apply carries it.
pub async fn apply(
    services: &Services,
    name: &ProjectName,
    desired: DesiredProject,
    by: Option<&str>,
) -> Result<Applied, DesiredError> {
    projects::check_name(name)?;
    desired.retention.validate().map_err(ProjectError::from)?;
    projects::validate_build_settings(&desired.build_settings)?;
    env::validate_desired(&desired.env)?;
    crate::services::protection::validate(&desired.protection).map_err(ProjectError::from)?;
    // Names, redirects (cycles included) and domains other projects have: before any write.
    domains::check_desired(services, name, &desired.domains).await?;

    let mut changes = Vec::new();
    let (project, created) = match projects::get(services, name).await {
        Ok(project) => (project, false),
        Err(ProjectError::NotFound(_)) => {
            let new = NewProject {
                name: name.clone(),
                build_settings: desired.build_settings.clone(),
                retention: desired.retention,
            };
            match projects::create(services, new, by).await {
                Ok(project) => {
                    changes.push(Change::new(
                        ChangeAction::Created,
                        ChangeKind::Project,
                        name.as_str(),
                    ));
                    (project, true)
                }
                // A concurrent apply created it first: bring that one in line.
                Err(ProjectError::NameTaken(_)) => (projects::get(services, name).await?, false),
                Err(err) => return Err(err.into()),
            }
        }
        Err(err) => return Err(err.into()),
    };

    let mut update = ProjectUpdate::default();
    if project.build_settings != desired.build_settings {
        update.build_settings = Some(desired.build_settings.clone());
        changes.push(Change::new(
            ChangeAction::Updated,
            ChangeKind::BuildSettings,
            name.as_str(),
        ));
    }
    if project.retention != desired.retention {
        update.retention = Some(desired.retention);
        changes.push(Change::new(
            ChangeAction::Updated,
            ChangeKind::Retention,
            name.as_str(),
        ));
    }
    let planned = crate::services::protection::plan(&project.protection, &desired.protection).await;
    if let Some(protection) = planned.protection {
        if protection.mode != crate::model::ProtectionMode::None
            && protection.password_hash.is_none()
        {
            return Err(
                ProjectError::Repository(crate::repository::RepositoryError::Unavailable(
                    "the operating system's random source failed while hashing a password".into(),
                ))
                .into(),
            );
        }
        update.protection = Some(protection);
        changes.push(Change::new(
            ChangeAction::Updated,
            ChangeKind::Protection,
            name.as_str(),
        ));
    }
    let project = if update == ProjectUpdate::default() {
        project
    } else {
        projects::update(services, name, update, by).await?
    };
    changes.extend(env::sync(services, name, &desired.env, by).await?);
    changes.extend(domains::sync(services, name, &desired.domains, by).await?);

    Ok(Applied {
        project,
        created,
        changes,
        bypass_secret: planned.bypass_secret,
    })
}
