//! The environment-variables aggregate of the [`Repository`](super::Repository) port: a
//! project's variables, stored sealed, and the rotation walk over every sealed value.
//!
//! # Contract
//! - Values are stored as given: the caller seals them (`crate::secrets::Keyring`), so no
//!   adapter ever sees or writes a plaintext value. Only [`EnvRepository::reseal_all`] is
//!   handed a keyring, to move values between keys.
//! - Per project, no two variables with the same key share a target: `create_env_var` and
//!   `update_env_var` check it in the transaction that writes, and answer `Conflict` with a
//!   message naming the key and the target, so two racing writes cannot both succeed.
//! - Every method naming a project answers `NotFound` when it does not exist; a variable id
//!   of another project is `NotFound` too.
//! - Deleting a project deletes its variables in the same transaction (`delete_project`).
//! - `reseal_all` rewrites one row at a time, each only if it still holds the value that was
//!   read (a compare-and-set), so a variable written meanwhile — already under the current
//!   key — is never overwritten with an older value. Running it again finishes an interrupted
//!   run.

use async_trait::async_trait;

use super::RepositoryError;
use crate::model::{EnvVarId, EnvVarUpdate, NewEnvVar, ProjectName, ResealReport, SealedEnvVar};
use crate::secrets::Keyring;

/// Most variables one project may have.
pub const MAX_PROJECT_ENV_VARS: usize = 500;

/// A project's environment variables, sealed.
#[async_trait]
pub trait EnvRepository: Send + Sync {
    /// Insert a variable. `NotFound` if the project is unknown; `Conflict` if a variable with
    /// the same key already has one of its targets.
    async fn create_env_var(
        &self,
        project: &ProjectName,
        new: &NewEnvVar,
    ) -> Result<SealedEnvVar, RepositoryError>;

    /// Every variable of the project, by key, then creation. `NotFound` if the project is
    /// unknown.
    async fn list_env_vars(
        &self,
        project: &ProjectName,
    ) -> Result<Vec<SealedEnvVar>, RepositoryError>;

    /// One variable. `NotFound` if the project or the variable is unknown.
    async fn get_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<SealedEnvVar, RepositoryError>;

    /// Replace what `update` gives, keep the rest. `NotFound` as `get_env_var`; `Conflict`
    /// as `create_env_var` when new targets collide with another variable of the same key.
    async fn update_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
        update: &EnvVarUpdate,
    ) -> Result<SealedEnvVar, RepositoryError>;

    /// Delete a variable. `NotFound` as `get_env_var` (a repeated delete).
    async fn delete_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<(), RepositoryError>;

    /// Move every sealed value — project variables and deployments' upload-time variables —
    /// to `keyring`'s current key. An upload-time value that is not sealed at all (written
    /// before sealing existed) is sealed. A value that does not open is logged, counted as
    /// failed and left as it was. See the module docs for the row-by-row compare-and-set.
    async fn reseal_all(&self, keyring: &Keyring) -> Result<ResealReport, RepositoryError>;
}
