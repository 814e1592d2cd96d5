//! Bringing a project's variables in line with a full list — the `env` part of a
//! desired-state apply (`PUT /api/v1/projects/{name}`).
//!
//! A listed variable *is* a stored one when both have the same key and the same set of
//! targets. Stored variables the list does not have are deleted first (so a listed one may
//! take over their targets), then differing ones updated, then missing ones created. Values
//! are compared by opening the stored ones — sensitive ones included, inside this process
//! only — so applying the same list twice changes nothing and reports no change.

use super::rules::{invalid, label, shared};
use super::{DesiredEnvVar, EnvError, about, announce, checked};
use crate::model::{
    Change, ChangeAction, ChangeKind, EnvTarget, EnvVarId, EnvVarUpdate, NewEnvVar, ProjectName,
};
use crate::repository::MAX_PROJECT_ENV_VARS;
use crate::services::Services;

/// Check a whole list without writing anything: every variable follows the rules, at most
/// [`MAX_PROJECT_ENV_VARS`] of them, and no two of one key share a target. Fields are named
/// `env[i].key`, `env[i].value`, `env[i].targets`.
pub fn validate_desired(desired: &[DesiredEnvVar]) -> Result<(), EnvError> {
    normalized(desired).map(|_| ())
}

/// Each variable's targets, sorted, after checking the list.
fn normalized(desired: &[DesiredEnvVar]) -> Result<Vec<Vec<EnvTarget>>, EnvError> {
    if desired.len() > MAX_PROJECT_ENV_VARS {
        return Err(invalid(
            "env",
            format!(
                "{} variables given; a project has at most {MAX_PROJECT_ENV_VARS}",
                desired.len()
            ),
        ));
    }
    let mut all: Vec<Vec<EnvTarget>> = Vec::with_capacity(desired.len());
    for (i, var) in desired.iter().enumerate() {
        let targets = checked(var, &format!("env[{i}]."))?;
        for (j, earlier) in desired[..i].iter().enumerate() {
            if earlier.key == var.key
                && let Some(target) = shared(&all[j], &targets)
            {
                return Err(EnvError::Conflict {
                    field: format!("env[{i}].targets"),
                    message: format!(
                        "{} is listed twice for target {target} (env[{j}] and env[{i}])",
                        var.key
                    ),
                });
            }
        }
        all.push(targets);
    }
    Ok(all)
}

/// Make `project`'s variables exactly `desired`; returns what changed (nothing when they
/// already were). Checks the whole list first ([`validate_desired`]), so an invalid list
/// changes nothing; a repository failure midway leaves the changes made so far, and applying
/// the list again finishes the work. `by` says who asked.
pub async fn sync(
    services: &Services,
    project: &ProjectName,
    desired: &[DesiredEnvVar],
    by: Option<&str>,
) -> Result<Vec<crate::model::Change>, EnvError> {
    let targets = normalized(desired)?;
    let repository = &services.repository;
    let stored = repository
        .list_env_vars(project)
        .await
        .map_err(about(project, None))?;
    let mut changes = Vec::new();

    // Which stored variable each listed one is.
    let matches: Vec<Option<usize>> = desired
        .iter()
        .zip(&targets)
        .map(|(var, targets)| {
            stored
                .iter()
                .position(|s| s.key == var.key && &s.targets == targets)
        })
        .collect();

    for (n, var) in stored.iter().enumerate() {
        if matches.contains(&Some(n)) {
            continue;
        }
        repository
            .delete_env_var(project, &var.id)
            .await
            .map_err(about(project, Some(&var.id)))?;
        changes.push(change(ChangeAction::Deleted, &var.key, &var.targets));
    }

    for ((var, targets), found) in desired.iter().zip(&targets).zip(&matches) {
        let Some(n) = found else { continue };
        let current = &stored[*n];
        let same_value = services.keyring.open(&current.sealed_value)? == var.value;
        if same_value && current.kind == var.kind {
            continue;
        }
        let update = EnvVarUpdate {
            sealed_value: (!same_value)
                .then(|| services.keyring.seal(&var.value))
                .transpose()?,
            targets: None,
            kind: (current.kind != var.kind).then_some(var.kind),
        };
        repository
            .update_env_var(project, &current.id, &update)
            .await
            .map_err(about(project, Some(&current.id)))?;
        changes.push(change(ChangeAction::Updated, &var.key, targets));
    }

    for (i, ((var, targets), found)) in desired.iter().zip(&targets).zip(&matches).enumerate() {
        if found.is_some() {
            continue;
        }
        let new = NewEnvVar {
            id: EnvVarId::random(),
            key: var.key.clone(),
            sealed_value: services.keyring.seal(&var.value)?,
            targets: targets.clone(),
            kind: var.kind,
        };
        repository
            .create_env_var(project, &new)
            .await
            .map_err(|err| match about(project, None)(err) {
                EnvError::Conflict { message, .. } => EnvError::Conflict {
                    field: format!("env[{i}].targets"),
                    message,
                },
                other => other,
            })?;
        changes.push(change(ChangeAction::Created, &var.key, targets));
    }

    if !changes.is_empty() {
        announce(services, project, by).await;
    }
    Ok(changes)
}

fn change(action: ChangeAction, key: &str, targets: &[EnvTarget]) -> Change {
    Change::new(action, ChangeKind::Env, label(key, targets))
}
