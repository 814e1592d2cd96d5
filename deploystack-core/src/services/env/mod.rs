//! A project's environment variables: create, read, change and delete them, bring them in
//! line with a desired-state document ([`sync`]), hand a build its own ([`for_build`]), and
//! move every stored value to a new key ([`rotate`]).
//!
//! # Sealed at rest, opened here
//! Every value — of every type — is sealed with [`Services::keyring`] before it reaches the
//! repository, and opened here only when someone may see it: a build, a `?decrypt=true` read
//! of an `encrypted` value, or [`sync`] comparing a document with what is stored. The
//! repository (and so the database, its backups and the read cache) only ever holds
//! `v1:<key-id>:…` texts; see [`crate::secrets`] for the threat model.
//!
//! # Who sees a value
//! - `plain`: every answer shows it.
//! - `encrypted`: answers show it only when asked (`decrypt`); build logs mask it.
//! - `sensitive`: no answer ever shows it again, whatever is asked; build logs mask it.
//!   A sensitive variable becomes readable (`plain`/`encrypted`) only together with a new
//!   value: changing only its type would reveal the stored secret, so that is refused
//!   (Vercel refuses the change outright; we allow it when the caller gives the value,
//!   which also lets a desired-state document change any type, since it always gives it).
//!
//! # Deletes
//! A delete of a variable that does not exist (a repeated delete) is `NotFound`, as for
//! deployments and projects: the API answers 404 and nothing changes.
//!
//! # Upload-time variables
//! Variables given with an upload (`env=`, `sensitive_env=`) belong to that one deployment
//! and are stored with it (`deployments.build_env`), sealed by [`seal_upload_env`] in the
//! ingest, and opened by [`for_build`]. Why at the service layer and not in the SQL adapters:
//! the repository stores what it is given and never holds a key, so an embedder's repository
//! gets sealed values too without doing anything, and the one place that knows the key is
//! the one place that seals and opens. Rows written before sealing existed hold plaintext;
//! [`for_build`] reads both (a value is sealed when it has the sealed form, see
//! [`Keyring::is_sealed`]), and [`rotate`] seals them.

mod build;
mod rules;
mod sync;

pub use build::{for_build, open_upload_value, seal_upload_env};
pub use sync::{sync, validate_desired};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::model::{
    EnvTarget, EnvVarId, EnvVarType, EnvVarUpdate, NewEnvVar, ProjectName, ResealReport,
    SealedEnvVar,
};
use crate::repository::{MAX_PROJECT_ENV_VARS, RepositoryError};
use crate::secrets::{Keyring, SecretsError};
use crate::services::Services;

use rules::{check_key, check_value, invalid, normalize_targets};

/// Why a variable operation was refused, in terms an API maps to a status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// No project by that name.
    #[error("no project named {0}")]
    ProjectNotFound(ProjectName),
    /// No variable with that id in the project.
    #[error("no variable with id {0} in this project")]
    NotFound(EnvVarId),
    /// The input breaks a rule; names the field (`key`, `env[2].targets`).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the caller's input spells it.
        field: String,
        /// What is wrong (never a value).
        message: String,
    },
    /// Another variable of the same key already has one of the targets.
    #[error("{field}: {message}")]
    Conflict {
        /// The field to change (`key`, `targets`, `env[2].key`).
        field: String,
        /// Which key and target collide.
        message: String,
    },
    /// A stored value does not open: its key is not configured, or it was altered. The
    /// message names the key id, never the value.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The repository failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

/// A variable as callers see it: `value` is `None` when its type keeps it hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct ProjectEnvVar {
    /// Its id.
    pub id: EnvVarId,
    /// Its name in the build's environment.
    pub key: String,
    /// The value, when this read may show it (see the module docs).
    pub value: Option<String>,
    /// Where it applies, sorted.
    pub targets: Vec<EnvTarget>,
    /// Who may read the value back.
    pub kind: EnvVarType,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl std::fmt::Debug for ProjectEnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectEnvVar")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("value", &self.value.as_ref().map(|_| "<hidden>"))
            .field("targets", &self.targets)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A variable as a caller wants it: what `POST …/env` creates and what a desired-state
/// document lists (`{key, value, targets, type}`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredEnvVar {
    /// Its name.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Where it applies: a non-empty set of `production`, `preview`, `development`.
    pub targets: Vec<EnvTarget>,
    /// `plain`, `encrypted` (the default) or `sensitive`.
    #[serde(rename = "type", default)]
    pub kind: EnvVarType,
}

impl std::fmt::Debug for DesiredEnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredEnvVar")
            .field("key", &self.key)
            .field("targets", &self.targets)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What `PATCH …/env/{id}` changes; `None` keeps the stored one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVarPatch {
    /// A new value.
    pub value: Option<String>,
    /// New targets.
    pub targets: Option<Vec<EnvTarget>>,
    /// A new type (leaving `sensitive` needs a new value).
    pub kind: Option<EnvVarType>,
}

impl std::fmt::Debug for EnvVarPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVarPatch")
            .field("value", &self.value.as_ref().map(|_| "<hidden>"))
            .field("targets", &self.targets)
            .field("kind", &self.kind)
            .finish()
    }
}

/// A repository error about `project`'s variable `id` (if any).
fn about<'a>(
    project: &'a ProjectName,
    id: Option<&'a EnvVarId>,
) -> impl Fn(RepositoryError) -> EnvError + 'a {
    move |err| match (err, id) {
        (RepositoryError::NotFound, Some(id)) => EnvError::NotFound(*id),
        (RepositoryError::NotFound, None) => EnvError::ProjectNotFound(project.clone()),
        (RepositoryError::Conflict(message), _) => EnvError::Conflict {
            field: "key".into(),
            message,
        },
        (other, _) => EnvError::Repository(other),
    }
}

/// `sealed` as a caller may see it: the value opened when its type and `decrypt` allow.
fn reveal(
    keyring: &Keyring,
    sealed: SealedEnvVar,
    decrypt: bool,
) -> Result<ProjectEnvVar, EnvError> {
    let value = match sealed.kind {
        EnvVarType::Plain => Some(keyring.open(&sealed.sealed_value)?),
        EnvVarType::Encrypted if decrypt => Some(keyring.open(&sealed.sealed_value)?),
        EnvVarType::Encrypted | EnvVarType::Sensitive => None,
    };
    Ok(ProjectEnvVar {
        id: sealed.id,
        key: sealed.key,
        value,
        targets: sealed.targets,
        kind: sealed.kind,
        created_at: sealed.created_at,
        updated_at: sealed.updated_at,
    })
}

async fn announce(services: &Services, project: &ProjectName, by: Option<&str>) {
    crate::services::projects::announce_update(services, project, by).await;
}

/// Check one variable of a create; `prefix` is prepended to field names (`env[2].`).
fn checked(var: &DesiredEnvVar, prefix: &str) -> Result<Vec<EnvTarget>, EnvError> {
    check_key(&var.key, &format!("{prefix}key"))?;
    check_value(&var.value, &format!("{prefix}value"))?;
    normalize_targets(&var.targets, &format!("{prefix}targets"))
}

/// Create a variable. `Conflict` if another of its key has one of its targets. `by` says
/// who asked (as the history names callers); the `ProjectUpdated` event carries it.
pub async fn create(
    services: &Services,
    project: &ProjectName,
    var: DesiredEnvVar,
    by: Option<&str>,
) -> Result<ProjectEnvVar, EnvError> {
    let targets = checked(&var, "")?;
    let existing = services
        .repository
        .list_env_vars(project)
        .await
        .map_err(about(project, None))?;
    if existing.len() >= MAX_PROJECT_ENV_VARS {
        return Err(invalid(
            "key",
            format!("a project has at most {MAX_PROJECT_ENV_VARS} variables; delete some first"),
        ));
    }
    let new = NewEnvVar {
        id: EnvVarId::random(),
        key: var.key,
        sealed_value: services.keyring.seal(&var.value)?,
        targets,
        kind: var.kind,
    };
    let created = services
        .repository
        .create_env_var(project, &new)
        .await
        .map_err(about(project, None))?;
    announce(services, project, by).await;
    reveal(&services.keyring, created, false)
}

/// Every variable of the project, by key; `decrypt` shows `encrypted` values too.
pub async fn list(
    services: &Services,
    project: &ProjectName,
    decrypt: bool,
) -> Result<Vec<ProjectEnvVar>, EnvError> {
    services
        .repository
        .list_env_vars(project)
        .await
        .map_err(about(project, None))?
        .into_iter()
        .map(|var| reveal(&services.keyring, var, decrypt))
        .collect()
}

/// One variable; `decrypt` shows an `encrypted` value too.
pub async fn get(
    services: &Services,
    project: &ProjectName,
    id: &EnvVarId,
    decrypt: bool,
) -> Result<ProjectEnvVar, EnvError> {
    let var = fetch(services, project, id).await?;
    reveal(&services.keyring, var, decrypt)
}

/// One stored variable, telling an unknown project from an unknown variable.
async fn fetch(
    services: &Services,
    project: &ProjectName,
    id: &EnvVarId,
) -> Result<SealedEnvVar, EnvError> {
    match services.repository.get_env_var(project, id).await {
        Ok(var) => Ok(var),
        Err(RepositoryError::NotFound) => {
            // Which of the two is missing decides the answer (project_not_found or not).
            services
                .repository
                .get_project(project)
                .await
                .map_err(about(project, None))?;
            Err(EnvError::NotFound(*id))
        }
        Err(err) => Err(about(project, Some(id))(err)),
    }
}

/// Change what `patch` gives. Leaving `sensitive` without a new value is `Invalid` (`type`).
/// `by` says who asked.
pub async fn update(
    services: &Services,
    project: &ProjectName,
    id: &EnvVarId,
    patch: EnvVarPatch,
    by: Option<&str>,
) -> Result<ProjectEnvVar, EnvError> {
    if let Some(value) = &patch.value {
        check_value(value, "value")?;
    }
    let targets = patch
        .targets
        .as_deref()
        .map(|targets| normalize_targets(targets, "targets"))
        .transpose()?;
    let current = fetch(services, project, id).await?;
    let reveals = current.kind == EnvVarType::Sensitive
        && patch.kind.is_some_and(|kind| kind != EnvVarType::Sensitive);
    if reveals && patch.value.is_none() {
        return Err(invalid(
            "type",
            format!(
                "{} is sensitive: its value is never shown again, so it becomes readable only \
                 with a new value (give value with type, or delete it and create it again)",
                current.key
            ),
        ));
    }
    let update = EnvVarUpdate {
        sealed_value: patch
            .value
            .as_deref()
            .map(|value| services.keyring.seal(value))
            .transpose()?,
        targets,
        kind: patch.kind,
    };
    let updated = services
        .repository
        .update_env_var(project, id, &update)
        .await
        .map_err(|err| match about(project, Some(id))(err) {
            EnvError::Conflict { message, .. } => EnvError::Conflict {
                field: "targets".into(),
                message,
            },
            other => other,
        })?;
    announce(services, project, by).await;
    reveal(&services.keyring, updated, false)
}

/// Delete a variable; `NotFound` when there is none (a repeated delete). `by` says who asked.
pub async fn delete(
    services: &Services,
    project: &ProjectName,
    id: &EnvVarId,
    by: Option<&str>,
) -> Result<(), EnvError> {
    match services.repository.delete_env_var(project, id).await {
        Ok(()) => {}
        Err(RepositoryError::NotFound) => {
            fetch(services, project, id).await?;
            return Err(EnvError::NotFound(*id));
        }
        Err(err) => return Err(about(project, Some(id))(err)),
    }
    announce(services, project, by).await;
    Ok(())
}

/// Re-encrypt every stored value (project variables and upload-time variables) under the
/// current key of [`Services::keyring`], opening older values with the previous keys; seal
/// upload-time values stored in plaintext before sealing existed. What
/// `deploystack-server secrets rotate` runs. Safe to run again: values already under the
/// current key are left alone.
pub async fn rotate(services: &Services) -> Result<ResealReport, EnvError> {
    services
        .repository
        .reseal_all(&services.keyring)
        .await
        .map_err(EnvError::Repository)
}

#[cfg(test)]
mod tests;
