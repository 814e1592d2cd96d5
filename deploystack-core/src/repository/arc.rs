//! Every aggregate's trait, and so [`Repository`], for `Arc<T>`: code that holds an
//! `Arc<SqliteRepository>` (or `Arc<dyn Repository>`) can pass it where a repository is
//! expected, such as to a decorator taking `R: Repository`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    Claim, DeploymentRepository, FileRepository, LogRepository, ProjectRepository, PublishedBuild,
    Repository, RepositoryError,
};
use crate::model::{
    BlobRef, ContentHash, Deployment, DeploymentError, DeploymentId, EncodedVariant, FileEntry,
    LogLine, NewDeployment, NewProject, Page, PageRequest, ProductionChange, ProductionReason,
    Project, ProjectName, ProjectUpdate, Retention, StoredLogLine,
};

#[async_trait]
impl<T: DeploymentRepository + ?Sized> DeploymentRepository for Arc<T> {
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        (**self).create_deployment(new).await
    }

    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
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

    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
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

    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        (**self).delete_deployment(id).await
    }

    async fn cancel_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        (**self).cancel_deployment(id).await
    }

    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        (**self).stalled_deployments(older_than, limit).await
    }
}

#[async_trait]
impl<T: LogRepository + ?Sized> LogRepository for Arc<T> {
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
impl<T: FileRepository + ?Sized> FileRepository for Arc<T> {
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        (**self).find_file(id, path).await
    }

    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        (**self).list_files(id).await
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
impl<T: ProjectRepository + ?Sized> ProjectRepository for Arc<T> {
    async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError> {
        (**self).create_project(new).await
    }

    async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError> {
        (**self).get_project(name).await
    }

    async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>, RepositoryError> {
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
    ) -> Result<Project, RepositoryError> {
        (**self).move_production(name, to, reason).await
    }

    async fn expired_previews(
        &self,
        name: &ProjectName,
        retention: &Retention,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        (**self).expired_previews(name, retention).await
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
impl<T: Repository + ?Sized> Repository for Arc<T> {
    async fn ping(&self) -> Result<(), RepositoryError> {
        (**self).ping().await
    }
}
