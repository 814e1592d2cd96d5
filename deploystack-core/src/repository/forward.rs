//! `Arc<R>` and `Box<R>` are repositories when `R` is: every call goes to the one inside.
//!
//! # Why?
//! [`Services`](crate::Services) holds an `Arc<dyn Repository>`. A decorator generic over
//! its inner repository (`Timed<R: Repository>`) can then wrap that field as it is —
//! `Timed::new(services.repository.clone())` — instead of needing a hand-written
//! `impl Repository for Arc<dyn Repository>` in every embedder, which the orphan rule forbids
//! anyway.
//!
//! One forwarding impl per aggregate's trait, kept apart from the traits so that when the
//! port grows, forgetting a method fails to compile here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::domains::{DomainName, RedirectStatus};
use crate::model::{ApiToken, NewToken, TokenHash, TokenId};
use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, Domain, EncodedVariant,
    EnvVarId, EnvVarUpdate, FileEntry, LogLine, ManifestEntry, NewDeployment, NewDomain, NewEnvVar,
    NewProject, Page, PageRequest, ProductionChange, ProductionReason, Project, ProjectName,
    ProjectUpdate, ResealReport, Retention, SealedEnvVar, StoredLogLine,
};

/// Every trait of the port for `$wrapper<R>`, each method calling `R`'s.
macro_rules! forward_repository {
    ($wrapper:ident) => {
        #[async_trait]
        impl<R: DeploymentRepository + ?Sized> DeploymentRepository for $wrapper<R> {
            async fn create_deployment(
                &self,
                new: &NewDeployment,
            ) -> Result<Deployment, RepositoryError> {
                (**self).create_deployment(new).await
            }

            async fn get_deployment(
                &self,
                id: &DeploymentId,
            ) -> Result<Deployment, RepositoryError> {
                (**self).get_deployment(id).await
            }

            async fn list_deployments(
                &self,
                page: &PageRequest,
            ) -> Result<Page<Deployment>, RepositoryError> {
                (**self).list_deployments(page).await
            }

            async fn claim_deployment(
                &self,
                id: &DeploymentId,
                worker: &str,
                lease: Duration,
            ) -> Result<Option<Claim>, RepositoryError> {
                (**self).claim_deployment(id, worker, lease).await
            }

            async fn renew_lease(
                &self,
                id: &DeploymentId,
                attempt: i64,
                lease: Duration,
            ) -> Result<(), RepositoryError> {
                (**self).renew_lease(id, attempt, lease).await
            }

            async fn release_claim(
                &self,
                id: &DeploymentId,
                attempt: i64,
            ) -> Result<(), RepositoryError> {
                (**self).release_claim(id, attempt).await
            }

            async fn publish(
                &self,
                id: &DeploymentId,
                attempt: i64,
                build: &PublishedBuild,
            ) -> Result<Deployment, RepositoryError> {
                (**self).publish(id, attempt, build).await
            }

            async fn fail_deployment(
                &self,
                id: &DeploymentId,
                attempt: i64,
                error: &DeploymentError,
            ) -> Result<Deployment, RepositoryError> {
                (**self).fail_deployment(id, attempt, error).await
            }

            async fn delete_deployment(
                &self,
                id: &DeploymentId,
            ) -> Result<Deployment, RepositoryError> {
                (**self).delete_deployment(id).await
            }

            async fn cancel_deployment(
                &self,
                id: &DeploymentId,
            ) -> Result<Deployment, RepositoryError> {
                (**self).cancel_deployment(id).await
            }

            async fn stalled_deployments(
                &self,
                older_than: OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<DeploymentId>, RepositoryError> {
                (**self).stalled_deployments(older_than, limit).await
            }

            async fn count_deployments(
                &self,
                project: &ProjectName,
                status: DeploymentStatus,
            ) -> Result<u64, RepositoryError> {
                (**self).count_deployments(project, status).await
            }
        }

        #[async_trait]
        impl<R: LogRepository + ?Sized> LogRepository for $wrapper<R> {
            async fn append_log(
                &self,
                id: &DeploymentId,
                lines: &[LogLine],
            ) -> Result<(), RepositoryError> {
                (**self).append_log(id, lines).await
            }

            async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError> {
                (**self).logs(id).await
            }

            async fn logs_after(
                &self,
                id: &DeploymentId,
                after: i64,
                limit: u32,
            ) -> Result<Vec<StoredLogLine>, RepositoryError> {
                (**self).logs_after(id, after, limit).await
            }
        }

        #[async_trait]
        impl<R: FileRepository + ?Sized> FileRepository for $wrapper<R> {
            async fn find_file(
                &self,
                id: &DeploymentId,
                path: &str,
            ) -> Result<Option<FileEntry>, RepositoryError> {
                (**self).find_file(id, path).await
            }

            async fn list_files(
                &self,
                id: &DeploymentId,
            ) -> Result<Vec<FileEntry>, RepositoryError> {
                (**self).list_files(id).await
            }

            async fn list_source_files(
                &self,
                id: &DeploymentId,
            ) -> Result<Vec<ManifestEntry>, RepositoryError> {
                (**self).list_source_files(id).await
            }

            async fn known_encodings(
                &self,
                hashes: &[ContentHash],
            ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError> {
                (**self).known_encodings(hashes).await
            }

            async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError> {
                (**self).touch_blobs(blobs).await
            }

            async fn claim_unreferenced_blobs(
                &self,
                unused_since: OffsetDateTime,
                limit: u32,
            ) -> Result<Vec<ContentHash>, RepositoryError> {
                (**self).claim_unreferenced_blobs(unused_since, limit).await
            }

            async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
                (**self).forget_blobs(hashes).await
            }
        }

        #[async_trait]
        impl<R: EnvRepository + ?Sized> EnvRepository for $wrapper<R> {
            async fn create_env_var(
                &self,
                project: &ProjectName,
                new: &NewEnvVar,
            ) -> Result<SealedEnvVar, RepositoryError> {
                (**self).create_env_var(project, new).await
            }

            async fn list_env_vars(
                &self,
                project: &ProjectName,
            ) -> Result<Vec<SealedEnvVar>, RepositoryError> {
                (**self).list_env_vars(project).await
            }

            async fn get_env_var(
                &self,
                project: &ProjectName,
                id: &EnvVarId,
            ) -> Result<SealedEnvVar, RepositoryError> {
                (**self).get_env_var(project, id).await
            }

            async fn update_env_var(
                &self,
                project: &ProjectName,
                id: &EnvVarId,
                update: &EnvVarUpdate,
            ) -> Result<SealedEnvVar, RepositoryError> {
                (**self).update_env_var(project, id, update).await
            }

            async fn delete_env_var(
                &self,
                project: &ProjectName,
                id: &EnvVarId,
            ) -> Result<(), RepositoryError> {
                (**self).delete_env_var(project, id).await
            }

            async fn reseal_all(
                &self,
                keyring: &crate::secrets::Keyring,
            ) -> Result<ResealReport, RepositoryError> {
                (**self).reseal_all(keyring).await
            }
        }

        #[async_trait]
        impl<R: ProjectRepository + ?Sized> ProjectRepository for $wrapper<R> {
            async fn expired_previews(
                &self,
                name: &ProjectName,
                retention: &Retention,
            ) -> Result<Vec<DeploymentId>, RepositoryError> {
                (**self).expired_previews(name, retention).await
            }

            async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError> {
                (**self).create_project(new).await
            }

            async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError> {
                (**self).get_project(name).await
            }

            async fn list_projects(
                &self,
                page: &PageRequest,
            ) -> Result<Page<Project>, RepositoryError> {
                (**self).list_projects(page).await
            }

            async fn update_project(
                &self,
                name: &ProjectName,
                update: &ProjectUpdate,
            ) -> Result<Project, RepositoryError> {
                (**self).update_project(name, update).await
            }

            async fn delete_project(
                &self,
                name: &ProjectName,
            ) -> Result<Vec<DeploymentId>, RepositoryError> {
                (**self).delete_project(name).await
            }

            async fn move_production(
                &self,
                name: &ProjectName,
                to: &DeploymentId,
                reason: ProductionReason,
                by: Option<String>,
            ) -> Result<Project, RepositoryError> {
                (**self).move_production(name, to, reason, by).await
            }

            async fn production_history(
                &self,
                name: &ProjectName,
                limit: u32,
            ) -> Result<Vec<ProductionChange>, RepositoryError> {
                (**self).production_history(name, limit).await
            }
        }

        #[async_trait]
        impl<R: DomainRepository + ?Sized> DomainRepository for $wrapper<R> {
            async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError> {
                (**self).create_domain(new).await
            }

            async fn get_domain(&self, name: &DomainName) -> Result<Domain, RepositoryError> {
                (**self).get_domain(name).await
            }

            async fn list_domains(
                &self,
                project: &ProjectName,
            ) -> Result<Vec<Domain>, RepositoryError> {
                (**self).list_domains(project).await
            }

            async fn set_domain_redirect(
                &self,
                name: &DomainName,
                redirect: Option<DomainName>,
                status: Option<RedirectStatus>,
            ) -> Result<Domain, RepositoryError> {
                (**self).set_domain_redirect(name, redirect, status).await
            }

            async fn delete_domain(&self, name: &DomainName) -> Result<(), RepositoryError> {
                (**self).delete_domain(name).await
            }

            async fn record_domain_check(
                &self,
                name: &DomainName,
                found: bool,
                retry_in: Duration,
            ) -> Result<Domain, RepositoryError> {
                (**self).record_domain_check(name, found, retry_in).await
            }

            async fn claim_due_domains(
                &self,
                limit: u32,
                hold: Duration,
            ) -> Result<Vec<Domain>, RepositoryError> {
                (**self).claim_due_domains(limit, hold).await
            }
        }

        #[async_trait]
        impl<R: IdempotencyKeys + ?Sized> IdempotencyKeys for $wrapper<R> {
            async fn reserve_idempotency_key(
                &self,
                scope: &str,
                key: &str,
                lock: Duration,
                ttl: Duration,
            ) -> Result<Reservation, RepositoryError> {
                (**self)
                    .reserve_idempotency_key(scope, key, lock, ttl)
                    .await
            }

            async fn complete_idempotency_key(
                &self,
                scope: &str,
                key: &str,
                token: &str,
                fingerprint: &ContentHash,
                answer: &StoredAnswer,
            ) -> Result<(), RepositoryError> {
                (**self)
                    .complete_idempotency_key(scope, key, token, fingerprint, answer)
                    .await
            }

            async fn release_idempotency_key(
                &self,
                scope: &str,
                key: &str,
                token: &str,
            ) -> Result<(), RepositoryError> {
                (**self).release_idempotency_key(scope, key, token).await
            }

            async fn purge_idempotency_keys(
                &self,
                before: OffsetDateTime,
            ) -> Result<u64, RepositoryError> {
                (**self).purge_idempotency_keys(before).await
            }
        }

        #[async_trait]
        impl<R: TokenRepository + ?Sized> TokenRepository for $wrapper<R> {
            async fn create_token(&self, new: &NewToken) -> Result<ApiToken, RepositoryError> {
                (**self).create_token(new).await
            }

            async fn list_tokens(&self) -> Result<Vec<ApiToken>, RepositoryError> {
                (**self).list_tokens().await
            }

            async fn find_token(&self, hash: &TokenHash) -> Result<ApiToken, RepositoryError> {
                (**self).find_token(hash).await
            }

            async fn revoke_token(&self, id: &TokenId) -> Result<(), RepositoryError> {
                (**self).revoke_token(id).await
            }

            async fn touch_token(
                &self,
                id: &TokenId,
                granularity: Duration,
            ) -> Result<(), RepositoryError> {
                (**self).touch_token(id, granularity).await
            }
        }

        #[async_trait]
        impl<R: Repository + ?Sized> Repository for $wrapper<R> {
            async fn ping(&self) -> Result<(), RepositoryError> {
                (**self).ping().await
            }
        }
    };
}

forward_repository!(Arc);
forward_repository!(Box);

#[cfg(all(test, feature = "testing", feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::repository::SqliteRepository;

    #[tokio::test]
    async fn a_repository_behind_arc_or_box_passes_the_repository_suite() {
        // What `Services` holds, used as a repository in its own right.
        let shared: Arc<dyn Repository> =
            Arc::new(SqliteRepository::connect("sqlite::memory:").await.unwrap());
        crate::testing::repository::run_all(&shared).await;
        let boxed = Box::new(SqliteRepository::connect("sqlite::memory:").await.unwrap());
        crate::testing::repository::run_all(&boxed).await;
    }
}
