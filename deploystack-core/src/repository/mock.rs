//! `MockRepository`: a mockall mock of the whole port, one `impl` block per aggregate, for
//! downstream unit tests (feature `mock`).

use std::collections::HashMap;
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

mockall::mock! {
    /// A mock of [`Repository`]: set expectations with `expect_<method>`.
    pub Repository {}
    #[async_trait]
    impl DeploymentRepository for Repository {
        async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError>;
        async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;
        async fn list_deployments(
            &self,
            page: &PageRequest,
        ) -> Result<Page<Deployment>, RepositoryError>;
        async fn claim_deployment(
            &self,
            id: &DeploymentId,
            worker: &str,
            lease: Duration,
        ) -> Result<Option<Claim>, RepositoryError>;
        async fn renew_lease(
            &self,
            id: &DeploymentId,
            attempt: i64,
            lease: Duration,
        ) -> Result<(), RepositoryError>;
        async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError>;
        async fn publish(
            &self,
            id: &DeploymentId,
            attempt: i64,
            build: &PublishedBuild,
        ) -> Result<Deployment, RepositoryError>;
        async fn fail_deployment(
            &self,
            id: &DeploymentId,
            attempt: i64,
            error: &DeploymentError,
        ) -> Result<Deployment, RepositoryError>;
        async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;
        async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError>;
        async fn stalled_deployments(
            &self,
            older_than: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<DeploymentId>, RepositoryError>;
        async fn count_deployments(
            &self,
            project: &ProjectName,
            status: DeploymentStatus,
        ) -> Result<u64, RepositoryError>;
    }
    #[async_trait]
    impl LogRepository for Repository {
        async fn append_log(&self, id: &DeploymentId, lines: &[LogLine])
        -> Result<(), RepositoryError>;
        async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError>;
        async fn logs_after(
            &self,
            id: &DeploymentId,
            after: i64,
            limit: u32,
        ) -> Result<Vec<StoredLogLine>, RepositoryError>;
    }
    #[async_trait]
    impl FileRepository for Repository {
        async fn find_file(
            &self,
            id: &DeploymentId,
            path: &str,
        ) -> Result<Option<FileEntry>, RepositoryError>;
        async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError>;
        async fn list_source_files(
            &self,
            id: &DeploymentId,
        ) -> Result<Vec<ManifestEntry>, RepositoryError>;
        async fn known_encodings(
            &self,
            hashes: &[ContentHash],
        ) -> Result<HashMap<ContentHash, Vec<EncodedVariant>>, RepositoryError>;
        async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError>;
        async fn claim_unreferenced_blobs(
            &self,
            unused_since: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<ContentHash>, RepositoryError>;
        async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError>;
    }
    #[async_trait]
    impl ProjectRepository for Repository {
        async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError>;
        async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError>;
        async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>, RepositoryError>;
        async fn update_project(
            &self,
            name: &ProjectName,
            update: &ProjectUpdate,
        ) -> Result<Project, RepositoryError>;
        async fn delete_project(&self, name: &ProjectName)
        -> Result<Vec<DeploymentId>, RepositoryError>;
        async fn move_production(
            &self,
            name: &ProjectName,
            to: &DeploymentId,
            reason: ProductionReason,
            by: Option<String>,
        ) -> Result<Project, RepositoryError>;
        async fn expired_previews(
            &self,
            name: &ProjectName,
            retention: &Retention,
        ) -> Result<Vec<DeploymentId>, RepositoryError>;
        async fn production_history(
            &self,
            name: &ProjectName,
            limit: u32,
        ) -> Result<Vec<ProductionChange>, RepositoryError>;
    }
    #[async_trait]
    impl DomainRepository for Repository {
        async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError>;
        async fn get_domain(&self, name: &DomainName) -> Result<Domain, RepositoryError>;
        async fn list_domains(&self, project: &ProjectName) -> Result<Vec<Domain>, RepositoryError>;
        async fn set_domain_redirect(
            &self,
            name: &DomainName,
            redirect: Option<DomainName>,
            status: Option<RedirectStatus>,
        ) -> Result<Domain, RepositoryError>;
        async fn delete_domain(&self, name: &DomainName) -> Result<(), RepositoryError>;
        async fn record_domain_check(
            &self,
            name: &DomainName,
            found: bool,
            retry_in: Duration,
        ) -> Result<Domain, RepositoryError>;
        async fn claim_due_domains(
            &self,
            limit: u32,
            hold: Duration,
        ) -> Result<Vec<Domain>, RepositoryError>;
    }
    #[async_trait]
    impl EnvRepository for Repository {
        async fn create_env_var(
            &self,
            project: &ProjectName,
            new: &NewEnvVar,
        ) -> Result<SealedEnvVar, RepositoryError>;
        async fn list_env_vars(
            &self,
            project: &ProjectName,
        ) -> Result<Vec<SealedEnvVar>, RepositoryError>;
        async fn get_env_var(
            &self,
            project: &ProjectName,
            id: &EnvVarId,
        ) -> Result<SealedEnvVar, RepositoryError>;
        async fn update_env_var(
            &self,
            project: &ProjectName,
            id: &EnvVarId,
            update: &EnvVarUpdate,
        ) -> Result<SealedEnvVar, RepositoryError>;
        async fn delete_env_var(
            &self,
            project: &ProjectName,
            id: &EnvVarId,
        ) -> Result<(), RepositoryError>;
        async fn reseal_all(
            &self,
            keyring: &crate::secrets::Keyring,
        ) -> Result<ResealReport, RepositoryError>;
    }
    #[async_trait]
    impl IdempotencyKeys for Repository {
        async fn reserve_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            lock: Duration,
            ttl: Duration,
        ) -> Result<Reservation, RepositoryError>;
        async fn complete_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            token: &str,
            fingerprint: &ContentHash,
            answer: &StoredAnswer,
        ) -> Result<(), RepositoryError>;
        async fn release_idempotency_key(
            &self,
            scope: &str,
            key: &str,
            token: &str,
        ) -> Result<(), RepositoryError>;
        async fn purge_idempotency_keys(
            &self,
            before: OffsetDateTime,
        ) -> Result<u64, RepositoryError>;
    }
    #[async_trait]
    impl TokenRepository for Repository {
        async fn create_token(&self, new: &NewToken) -> Result<ApiToken, RepositoryError>;
        async fn list_tokens(&self) -> Result<Vec<ApiToken>, RepositoryError>;
        async fn find_token(&self, hash: &TokenHash) -> Result<ApiToken, RepositoryError>;
        async fn revoke_token(&self, id: &TokenId) -> Result<(), RepositoryError>;
        async fn touch_token(
            &self,
            id: &TokenId,
            granularity: Duration,
        ) -> Result<(), RepositoryError>;
    }
    #[async_trait]
    impl Repository for Repository {
        async fn ping(&self) -> Result<(), RepositoryError>;
    }
}
