//! What a build receives: its project's variables for its target, then the upload's own.
//!
//! # Which moment counts
//! The variables are read when the build *starts* (the worker's claim, before the source is
//! extracted), not when the upload is accepted: a variable changed while a deployment waits
//! in the queue counts for that deployment; one changed after its build started counts from
//! the next build on. A retried attempt reads them again. This is what Vercel does too
//! (variables apply to new deployments), and it keeps queued builds from carrying copies of
//! secrets around.
//!
//! # Precedence
//! Project variables whose targets include the deployment's target (`production` or
//! `preview`; `development` never reaches a build), then the upload's variables, which add
//! to them and override a project variable of the same name. Values of `encrypted` and
//! `sensitive` project variables, and `sensitive` upload values, are masked in the build log
//! (they are handed to the build as [`EnvVar`]s marked sensitive).

use super::EnvError;
use crate::model::{Deployment, EnvTarget, EnvVar};
use crate::repository::RepositoryError;
use crate::secrets::{Keyring, SecretsError};
use crate::services::Services;

/// The upload's variables with their values sealed, as ingest stores them.
pub fn seal_upload_env(keyring: &Keyring, env: Vec<EnvVar>) -> Result<Vec<EnvVar>, SecretsError> {
    env.into_iter()
        .map(|var| {
            Ok(EnvVar {
                value: keyring.seal(&var.value)?,
                ..var
            })
        })
        .collect()
}

/// An upload-time value as stored: opened when sealed, as it is when it was stored in
/// plaintext before sealing existed (see [`Keyring::is_sealed`]).
pub fn open_upload_value(keyring: &Keyring, stored: &str) -> Result<String, SecretsError> {
    if Keyring::is_sealed(stored) {
        keyring.open(stored)
    } else {
        Ok(stored.to_owned())
    }
}

/// Every variable the build of `deployment` receives, values opened; see the module docs.
pub async fn for_build(
    services: &Services,
    deployment: &Deployment,
) -> Result<Vec<EnvVar>, EnvError> {
    let keyring = &services.keyring;
    let mut env: Vec<EnvVar> = Vec::new();
    if let Some(project) = &deployment.project {
        let target = EnvTarget::of_deployment(deployment.target);
        let stored = match services.repository.list_env_vars(project).await {
            Ok(stored) => stored,
            // The project was deleted meanwhile; the delete cancels this build anyway.
            Err(RepositoryError::NotFound) => Vec::new(),
            Err(err) => return Err(EnvError::Repository(err)),
        };
        for var in stored.into_iter().filter(|v| v.targets.contains(&target)) {
            env.push(EnvVar {
                value: keyring.open(&var.sealed_value)?,
                sensitive: var.kind.is_masked(),
                name: var.key,
            });
        }
    }
    for var in &deployment.env {
        let value = open_upload_value(keyring, &var.value)?;
        let upload = EnvVar {
            name: var.name.clone(),
            value,
            sensitive: var.sensitive,
        };
        match env.iter_mut().find(|v| v.name == upload.name) {
            Some(project_var) => *project_var = upload,
            None => env.push(upload),
        }
    }
    Ok(env)
}
