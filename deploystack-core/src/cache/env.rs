//! Environment variables pass through the read cache: only the API and a build's start read
//! them, never the serving path, and a value that changes must count at once for the next
//! build on any node — so there is nothing worth caching and nothing to evict.

use async_trait::async_trait;

use super::CachedRepository;
use crate::model::{EnvVarId, EnvVarUpdate, NewEnvVar, ProjectName, ResealReport, SealedEnvVar};
use crate::repository::{EnvRepository, RepositoryError};
use crate::secrets::Keyring;

#[async_trait]
impl EnvRepository for CachedRepository {
    async fn create_env_var(
        &self,
        project: &ProjectName,
        new: &NewEnvVar,
    ) -> Result<SealedEnvVar, RepositoryError> {
        self.inner.create_env_var(project, new).await
    }

    async fn list_env_vars(
        &self,
        project: &ProjectName,
    ) -> Result<Vec<SealedEnvVar>, RepositoryError> {
        self.inner.list_env_vars(project).await
    }

    async fn get_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<SealedEnvVar, RepositoryError> {
        self.inner.get_env_var(project, id).await
    }

    async fn update_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
        update: &EnvVarUpdate,
    ) -> Result<SealedEnvVar, RepositoryError> {
        self.inner.update_env_var(project, id, update).await
    }

    async fn delete_env_var(
        &self,
        project: &ProjectName,
        id: &EnvVarId,
    ) -> Result<(), RepositoryError> {
        self.inner.delete_env_var(project, id).await
    }

    /// Deployment records this process caches keep the upload-time values they were read
    /// with; those still open as long as the old key is configured, and the rotation
    /// command runs in a process of its own, whose cache starts empty.
    async fn reseal_all(&self, keyring: &Keyring) -> Result<ResealReport, RepositoryError> {
        self.inner.reseal_all(keyring).await
    }
}
