//! SQLite repository (placeholder, being written).
#![allow(missing_docs, unused_variables)]

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{Claim, PublishedBuild, Repository, RepositoryError};
use crate::model::*;

/// The SQLite repository.
#[derive(Debug, Clone)]
pub struct SqliteRepository {}

impl SqliteRepository {
    /// Open (creating if needed) the database at `url` and run migrations.
    pub async fn connect(url: &str) -> Result<Self, RepositoryError> {
        todo!()
    }
}

#[async_trait]
impl Repository for SqliteRepository {
    async fn create_deployment(&self, new: &NewDeployment) -> Result<Deployment, RepositoryError> {
        todo!()
    }
    async fn get_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        todo!()
    }
    async fn list_deployments(
        &self,
        page: &PageRequest,
    ) -> Result<Page<Deployment>, RepositoryError> {
        todo!()
    }
    async fn claim_deployment(
        &self,
        id: &DeploymentId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, RepositoryError> {
        todo!()
    }
    async fn renew_lease(
        &self,
        id: &DeploymentId,
        attempt: i64,
        lease: Duration,
    ) -> Result<(), RepositoryError> {
        todo!()
    }
    async fn release_claim(&self, id: &DeploymentId, attempt: i64) -> Result<(), RepositoryError> {
        todo!()
    }
    async fn publish(
        &self,
        id: &DeploymentId,
        attempt: i64,
        build: &PublishedBuild,
    ) -> Result<Deployment, RepositoryError> {
        todo!()
    }
    async fn fail_deployment(
        &self,
        id: &DeploymentId,
        attempt: i64,
        error: &DeploymentError,
    ) -> Result<Deployment, RepositoryError> {
        todo!()
    }
    async fn delete_deployment(&self, id: &DeploymentId) -> Result<Deployment, RepositoryError> {
        todo!()
    }
    async fn append_log(
        &self,
        id: &DeploymentId,
        lines: &[LogLine],
    ) -> Result<(), RepositoryError> {
        todo!()
    }
    async fn logs(&self, id: &DeploymentId) -> Result<Vec<LogLine>, RepositoryError> {
        todo!()
    }
    async fn find_file(
        &self,
        id: &DeploymentId,
        path: &str,
    ) -> Result<Option<FileEntry>, RepositoryError> {
        todo!()
    }
    async fn list_files(&self, id: &DeploymentId) -> Result<Vec<FileEntry>, RepositoryError> {
        todo!()
    }
    async fn touch_blobs(&self, blobs: &[BlobRef]) -> Result<(), RepositoryError> {
        todo!()
    }
    async fn claim_unreferenced_blobs(
        &self,
        unused_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ContentHash>, RepositoryError> {
        todo!()
    }
    async fn forget_blobs(&self, hashes: &[ContentHash]) -> Result<(), RepositoryError> {
        todo!()
    }
    async fn stalled_deployments(
        &self,
        older_than: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        todo!()
    }
    async fn ping(&self) -> Result<(), RepositoryError> {
        todo!()
    }
}
