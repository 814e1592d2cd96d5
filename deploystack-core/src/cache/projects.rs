//! Projects and custom domains through the read cache: `get_project` and `get_domain` are
//! kept (project hosts and custom domains read them on every request), and every write of
//! either evicts what it changed, here and on every node (see the parent module's docs).

use super::*;

#[async_trait]
impl ProjectRepository for CachedRepository {
    async fn create_project(&self, new: &NewProject) -> Result<Project, RepositoryError> {
        self.inner.create_project(new).await
    }

    async fn get_project(&self, name: &ProjectName) -> Result<Project, RepositoryError> {
        let key = Key::Project(name.clone());
        if let Some(Value::Project(project)) = self.local.get(&key) {
            Counters::bump(&self.local.counters.local_hits);
            return Ok(Project::clone(&project));
        }
        Counters::bump(&self.local.counters.local_misses);
        let generation = self.local.generation();
        let project = self.inner.get_project(name).await?;
        self.local
            .fill(key, Value::Project(Arc::new(project.clone())), generation);
        Ok(project)
    }

    async fn list_projects(&self, page: &PageRequest) -> Result<Page<Project>, RepositoryError> {
        self.inner.list_projects(page).await
    }

    async fn update_project(
        &self,
        name: &ProjectName,
        update: &ProjectUpdate,
    ) -> Result<Project, RepositoryError> {
        let result = self.inner.update_project(name, update).await;
        self.project_changed(name).await;
        result
    }

    async fn delete_project(
        &self,
        name: &ProjectName,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        let result = self.inner.delete_project(name).await;
        self.project_changed(name).await;
        for id in result.iter().flatten() {
            self.changed(id, None).await;
        }
        result
    }

    async fn move_production(
        &self,
        name: &ProjectName,
        to: &DeploymentId,
        reason: ProductionReason,
        by: Option<String>,
    ) -> Result<Project, RepositoryError> {
        let result = self.inner.move_production(name, to, reason, by).await;
        // Evict even when the write reports an error: a commit whose answer was lost still
        // happened.
        self.project_changed(name).await;
        result
    }

    async fn expired_previews(
        &self,
        name: &ProjectName,
        retention: &Retention,
    ) -> Result<Vec<DeploymentId>, RepositoryError> {
        self.inner.expired_previews(name, retention).await
    }

    async fn production_history(
        &self,
        name: &ProjectName,
        limit: u32,
    ) -> Result<Vec<ProductionChange>, RepositoryError> {
        self.inner.production_history(name, limit).await
    }
}

#[async_trait]
impl DomainRepository for CachedRepository {
    async fn create_domain(&self, new: &NewDomain) -> Result<Domain, RepositoryError> {
        let result = self.inner.create_domain(new).await;
        // A cached "not found" of this name must go.
        self.domain_changed(&new.name).await;
        result
    }

    async fn get_domain(&self, name: &DomainName) -> Result<Domain, RepositoryError> {
        let key = Key::Domain(name.clone());
        if let Some(Value::Domain(domain)) = self.local.get(&key) {
            Counters::bump(&self.local.counters.local_hits);
            return domain
                .map(|domain| Domain::clone(&domain))
                .ok_or(RepositoryError::NotFound);
        }
        Counters::bump(&self.local.counters.local_misses);
        let generation = self.local.generation();
        let found = match self.inner.get_domain(name).await {
            Ok(domain) => Some(domain),
            Err(RepositoryError::NotFound) => None,
            Err(err) => return Err(err),
        };
        self.local
            .fill(key, Value::Domain(found.clone().map(Arc::new)), generation);
        found.ok_or(RepositoryError::NotFound)
    }

    async fn list_domains(&self, project: &ProjectName) -> Result<Vec<Domain>, RepositoryError> {
        self.inner.list_domains(project).await
    }

    async fn set_domain_redirect(
        &self,
        name: &DomainName,
        redirect: Option<DomainName>,
        status: Option<RedirectStatus>,
    ) -> Result<Domain, RepositoryError> {
        let result = self.inner.set_domain_redirect(name, redirect, status).await;
        self.domain_changed(name).await;
        result
    }

    async fn delete_domain(&self, name: &DomainName) -> Result<(), RepositoryError> {
        let result = self.inner.delete_domain(name).await;
        self.domain_changed(name).await;
        result
    }

    async fn record_domain_check(
        &self,
        name: &DomainName,
        found: bool,
        retry_in: Duration,
    ) -> Result<Domain, RepositoryError> {
        let result = self.inner.record_domain_check(name, found, retry_in).await;
        // Only a verification changes what a host serves; a failed check changes when the
        // next one is due, which nothing on the serving path reads.
        if found {
            self.domain_changed(name).await;
        }
        result
    }

    async fn claim_due_domains(
        &self,
        limit: u32,
        hold: Duration,
    ) -> Result<Vec<Domain>, RepositoryError> {
        self.inner.claim_due_domains(limit, hold).await
    }
}
