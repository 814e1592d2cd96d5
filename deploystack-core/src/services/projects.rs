//! Projects: creating, changing and deleting them, and moving their production (promote,
//! rollback) with the checks that give a caller a precise answer.
//!
//! The repository guarantees the atomicity of a move (it re-checks the deployment in the
//! move's transaction); this module checks first so a refusal says *why* (not ready, another
//! project's, deleted), and announces what changed through the `EventSink`. Every server
//! serves the new production at once: a move goes through the read cache's decorator
//! (`crate::cache`), which evicts the project on every node.

use crate::events::{Event, emit_best_effort};
use crate::model::{
    BuildSettings, DeploymentId, DeploymentStatus, InvalidProject, NewProject, Page, PageRequest,
    ProductionChange, ProductionReason, Project, ProjectName, ProjectUpdate, ProtectionRequest,
    Retention,
};
use crate::repository::RepositoryError;
use crate::services::Services;
use crate::services::ingest::validate_settings;

/// Most history rows one request returns.
pub const HISTORY_LIMIT: u32 = 1_000;

/// Why a project operation was refused, in terms an API maps to a status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError {
    /// No project by that name.
    #[error("no project named {0}")]
    NotFound(ProjectName),
    /// The name is taken.
    #[error("a project named {0} already exists")]
    NameTaken(ProjectName),
    /// A setting is out of range; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the API spells it.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The deployment named cannot be production: unknown, another project's, deleted, or
    /// not `READY`. The message says which.
    #[error("{0}")]
    NotEligible(String),
    /// A rollback without a target found no earlier production deployment still serving.
    #[error("project {0} has no earlier production deployment to roll back to")]
    NothingToRollBackTo(ProjectName),
    /// The project is not protected, so it has no bypass secret to replace.
    #[error("project {0} is not protected")]
    NotProtected(ProjectName),
    /// The repository failed.
    #[error(transparent)]
    Repository(RepositoryError),
}

impl From<InvalidProject> for ProjectError {
    fn from(invalid: InvalidProject) -> Self {
        Self::Invalid {
            field: invalid.field.to_owned(),
            message: invalid.message.to_owned(),
        }
    }
}

/// A repository error about project `name`.
fn about(name: &ProjectName) -> impl Fn(RepositoryError) -> ProjectError + '_ {
    move |err| match err {
        RepositoryError::NotFound => ProjectError::NotFound(name.clone()),
        other => ProjectError::Repository(other),
    }
}

/// Create a project. `NameTaken` if it exists. `by` says who asked (as the history names
/// callers); the `ProjectCreated` event carries it.
pub async fn create(
    services: &Services,
    new: NewProject,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    check_name(&new.name)?;
    new.retention.validate()?;
    validate_build_settings(&new.build_settings)?;
    let project = services
        .repository
        .create_project(&new)
        .await
        .map_err(|err| match err {
            RepositoryError::Conflict(_) => ProjectError::NameTaken(new.name.clone()),
            other => ProjectError::Repository(other),
        })?;
    emit_best_effort(
        services.events.as_ref(),
        Event::ProjectCreated {
            project: project.name.clone(),
            by: by.map(str::to_owned),
        },
    )
    .await;
    Ok(project)
}

/// The project named `name`, created with default settings if it does not exist yet — what
/// an upload naming a new project does, as `vercel deploy` does. Safe to race: the loser of
/// two concurrent creates reads the winner's project.
pub async fn get_or_create(
    services: &Services,
    name: &ProjectName,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    match services.repository.get_project(name).await {
        Ok(project) => return Ok(project),
        Err(RepositoryError::NotFound) => {}
        Err(err) => return Err(ProjectError::Repository(err)),
    }
    let new = NewProject {
        name: name.clone(),
        build_settings: BuildSettings::default(),
        retention: Retention::default(),
    };
    match create(services, new, by).await {
        Err(ProjectError::NameTaken(_)) => get(services, name).await,
        other => other,
    }
}

/// One project.
pub async fn get(services: &Services, name: &ProjectName) -> Result<Project, ProjectError> {
    services
        .repository
        .get_project(name)
        .await
        .map_err(about(name))
}

/// Projects in name order.
pub async fn list(services: &Services, page: &PageRequest) -> Result<Page<Project>, ProjectError> {
    services
        .repository
        .list_projects(page)
        .await
        .map_err(|err| match err {
            RepositoryError::Conflict(_) => ProjectError::Invalid {
                field: "cursor".into(),
                message: "not a cursor this listing handed out".into(),
            },
            other => ProjectError::Repository(other),
        })
}

/// Change the settings `update` gives.
pub async fn update(
    services: &Services,
    name: &ProjectName,
    update: ProjectUpdate,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    update_with_protection(services, name, update, None, by)
        .await
        .map(|updated| updated.project)
}

/// What [`update_with_protection`] did.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The project as it is now.
    pub project: Project,
    /// The bypass secret made because protection was just turned on: shown once, only its
    /// hash is kept.
    pub bypass_secret: Option<String>,
}

/// Change the settings `update` gives and, if `protection` is given, the project's
/// protection (`services::protection::plan`: the same protection again changes nothing).
/// Everything is checked before anything is written. `by` says who asked.
pub async fn update_with_protection(
    services: &Services,
    name: &ProjectName,
    mut update: ProjectUpdate,
    protection: Option<&ProtectionRequest>,
    by: Option<&str>,
) -> Result<Updated, ProjectError> {
    if let Some(retention) = &update.retention {
        retention.validate()?;
    }
    if let Some(settings) = &update.build_settings {
        validate_build_settings(settings)?;
    }
    let mut bypass_secret = None;
    if let Some(requested) = protection {
        crate::services::protection::validate(requested)?;
        let current = get(services, name).await?;
        let planned = crate::services::protection::plan(&current.protection, requested).await;
        if let Some(stored) = &planned.protection
            && stored.mode != crate::model::ProtectionMode::None
            && stored.password_hash.is_none()
        {
            return Err(ProjectError::Repository(RepositoryError::Unavailable(
                "the operating system's random source failed while hashing a password".into(),
            )));
        }
        update.protection = planned.protection;
        bypass_secret = planned.bypass_secret;
        if update == ProjectUpdate::default() {
            return Ok(Updated {
                project: current,
                bypass_secret,
            });
        }
    }
    let project = services
        .repository
        .update_project(name, &update)
        .await
        .map_err(about(name))?;
    announce_update(services, name, by).await;
    if update.retention.is_some() {
        enforce_retention(services, name).await?;
    }
    Ok(Updated {
        project,
        bypass_secret,
    })
}

/// Replace the bypass secret of a protected project: the old one stops working at once (on
/// every node: the write evicts the project from every read cache). Returns the new secret,
/// which only this answer shows.
pub async fn rotate_bypass(
    services: &Services,
    name: &ProjectName,
    by: Option<&str>,
) -> Result<(Project, String), ProjectError> {
    let current = get(services, name).await?;
    if current.protection.mode == crate::model::ProtectionMode::None {
        return Err(ProjectError::NotProtected(name.clone()));
    }
    let secret = crate::services::protection::new_bypass_secret();
    let update = ProjectUpdate {
        protection: Some(crate::model::Protection {
            bypass_hash: Some(crate::services::protection::bypass_hash(&secret)),
            ..current.protection
        }),
        ..ProjectUpdate::default()
    };
    let project = services
        .repository
        .update_project(name, &update)
        .await
        .map_err(about(name))?;
    announce_update(services, name, by).await;
    Ok((project, secret))
}

/// Delete a project and its deployments: their URLs answer 410 at once, their sources are
/// removed, their blobs go by garbage collection. Returns the deleted deployments. `by`
/// says who asked.
pub async fn delete(
    services: &Services,
    name: &ProjectName,
    by: Option<&str>,
) -> Result<Vec<DeploymentId>, ProjectError> {
    let deleted = services
        .repository
        .delete_project(name)
        .await
        .map_err(about(name))?;
    for id in &deleted {
        // The source of a deployment lives at a key derived from its id.
        let key = crate::services::ingest::source_key(id);
        if let Err(err) = services.storage.delete(&key).await {
            tracing::warn!(%id, error = %err, "could not remove the source of a deleted deployment");
        }
    }
    emit_best_effort(
        services.events.as_ref(),
        Event::ProjectDeleted {
            project: name.clone(),
            deployments: deleted.len() as u64,
            by: by.map(str::to_owned),
        },
    )
    .await;
    Ok(deleted)
}

/// Tell the event sinks that `project` changed (`ProjectUpdated`) on behalf of `by`: its
/// settings, or its variables or domains (`services::env`, `services::domains`).
pub(crate) async fn announce_update(services: &Services, project: &ProjectName, by: Option<&str>) {
    emit_best_effort(
        services.events.as_ref(),
        Event::ProjectUpdated {
            project: project.clone(),
            by: by.map(str::to_owned),
        },
    )
    .await;
}

/// Make a `READY` deployment of the project (a preview too) production, unpinning it. `by`
/// says who asked; the history keeps it.
pub async fn promote(
    services: &Services,
    name: &ProjectName,
    to: &DeploymentId,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    move_to(services, name, to, ProductionReason::Promote, by).await
}

/// Roll production back to `to`, or to the previous production deployment still serving,
/// and pin it until the next promote. `by` says who asked; the history keeps it.
pub async fn rollback(
    services: &Services,
    name: &ProjectName,
    to: Option<&DeploymentId>,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    let to = match to {
        Some(to) => *to,
        None => previous_production(services, name).await?,
    };
    move_to(services, name, &to, ProductionReason::Rollback, by).await
}

/// The history of production, newest first.
pub async fn history(
    services: &Services,
    name: &ProjectName,
) -> Result<Vec<ProductionChange>, ProjectError> {
    services
        .repository
        .production_history(name, HISTORY_LIMIT)
        .await
        .map_err(about(name))
}

/// After a publish: announce a production move the publish made (the repository makes it in
/// the publish's transaction, and the read cache's decorator has evicted the project on every
/// node), then apply the project's retention policy.
pub async fn published(services: &Services, deployment_id: &DeploymentId) {
    let Ok(deployment) = services.repository.get_deployment(deployment_id).await else {
        return;
    };
    let Some(name) = &deployment.project else {
        return;
    };
    announce_deploy(services, name, deployment_id).await;
    if let Err(err) = enforce_retention(services, name).await {
        tracing::warn!(project = %name, error = %err, "could not apply the retention policy");
    }
}

/// Delete the previews of `name` its retention policy lets go (see
/// `ProjectRepository::expired_previews`): production and every former production are kept.
/// Returns the deleted ones. Runs after each publish of one of its deployments and after a
/// change of the policy.
pub async fn enforce_retention(
    services: &Services,
    name: &ProjectName,
) -> Result<Vec<DeploymentId>, ProjectError> {
    let project = get(services, name).await?;
    if project.retention == Retention::default() {
        return Ok(Vec::new());
    }
    let expired = services
        .repository
        .expired_previews(name, &project.retention)
        .await
        .map_err(about(name))?;
    for id in &expired {
        crate::services::deployments::delete(services, id, None)
            .await
            .map_err(ProjectError::Repository)?;
    }
    if !expired.is_empty() {
        tracing::info!(project = %name, deleted = expired.len(), "retention deleted previews");
    }
    Ok(expired)
}

/// Apply every project's retention policy that has an age limit: previews grow old without
/// a deploy, so an idle project's expired previews go too. The maintenance loop runs this
/// periodically; a project that fails is logged and the sweep goes on. Returns how many
/// deployments it deleted.
pub async fn sweep_retention(services: &Services) -> Result<usize, ProjectError> {
    let mut deleted = 0;
    let mut cursor = None;
    loop {
        let page = list(
            services,
            &PageRequest {
                limit: 100,
                cursor: cursor.take(),
            },
        )
        .await?;
        for project in page.items {
            if project.retention.max_age_days.is_none() {
                continue;
            }
            match enforce_retention(services, &project.name).await {
                Ok(expired) => deleted += expired.len(),
                // Deleted since it was listed.
                Err(ProjectError::NotFound(_)) => {}
                Err(err) => {
                    tracing::warn!(project = %project.name, error = %err, "could not apply the retention policy");
                }
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(deleted),
        }
    }
}

async fn announce_deploy(services: &Services, name: &ProjectName, deployment_id: &DeploymentId) {
    let Ok(history) = services.repository.production_history(name, 1).await else {
        return;
    };
    if let Some(change) = history.first()
        && change.to == *deployment_id
        && change.reason == ProductionReason::Deploy
    {
        emit_best_effort(
            services.events.as_ref(),
            Event::DeploymentPromoted {
                project: name.clone(),
                deployment_id: *deployment_id,
                from: change.from,
                reason: ProductionReason::Deploy,
                by: None,
            },
        )
        .await;
    }
}

async fn move_to(
    services: &Services,
    name: &ProjectName,
    to: &DeploymentId,
    reason: ProductionReason,
    by: Option<&str>,
) -> Result<Project, ProjectError> {
    let before = get(services, name).await?;
    check_eligible(services, name, to).await?;
    let project = services
        .repository
        .move_production(name, to, reason, by.map(str::to_owned))
        .await
        .map_err(|err| match err {
            RepositoryError::NotFound => ProjectError::NotFound(name.clone()),
            // Changed between the check and the move (deleted meanwhile).
            RepositoryError::Conflict(message) => ProjectError::NotEligible(message),
            other => ProjectError::Repository(other),
        })?;
    let from = before.production.map(|p| p.deployment_id);
    let event = match reason {
        ProductionReason::Rollback => Event::DeploymentRolledBack {
            project: name.clone(),
            deployment_id: *to,
            from,
            by: by.map(str::to_owned),
        },
        reason => Event::DeploymentPromoted {
            project: name.clone(),
            deployment_id: *to,
            from,
            reason,
            by: by.map(str::to_owned),
        },
    };
    emit_best_effort(services.events.as_ref(), event).await;
    Ok(project)
}

/// Why `id` cannot be production of `name`, if it cannot.
async fn check_eligible(
    services: &Services,
    name: &ProjectName,
    id: &DeploymentId,
) -> Result<(), ProjectError> {
    let deployment = match services.repository.get_deployment(id).await {
        Ok(deployment) => deployment,
        Err(RepositoryError::NotFound) => {
            return Err(ProjectError::NotEligible(format!(
                "deployment {id} does not exist"
            )));
        }
        Err(err) => return Err(ProjectError::Repository(err)),
    };
    if deployment.project.as_ref() != Some(name) {
        return Err(ProjectError::NotEligible(format!(
            "deployment {id} does not belong to project {name}"
        )));
    }
    if deployment.deleted_at.is_some() {
        return Err(ProjectError::NotEligible(format!(
            "deployment {id} was deleted"
        )));
    }
    if deployment.status != DeploymentStatus::Ready {
        return Err(ProjectError::NotEligible(format!(
            "deployment {id} is {}, only a READY deployment can be production",
            deployment.status.as_str()
        )));
    }
    Ok(())
}

/// The most recent production deployment before the current one that can still serve.
async fn previous_production(
    services: &Services,
    name: &ProjectName,
) -> Result<DeploymentId, ProjectError> {
    let project = get(services, name).await?;
    let current = project.production.map(|p| p.deployment_id);
    for change in history(services, name).await? {
        let candidates = [Some(change.to), change.from];
        for candidate in candidates.into_iter().flatten() {
            if Some(candidate) == current {
                continue;
            }
            if check_eligible(services, name, &candidate).await.is_ok() {
                return Ok(candidate);
            }
        }
    }
    Err(ProjectError::NothingToRollBackTo(name.clone()))
}

/// A name is a host label (`<name>.<base-domain>`); 32 hex characters already name a
/// deployment's host there, so a project may not take such a name.
pub fn check_name(name: &ProjectName) -> Result<(), ProjectError> {
    if name.as_str().parse::<DeploymentId>().is_ok() {
        return Err(ProjectError::Invalid {
            field: "name".into(),
            message: "32 hexadecimal characters name a deployment's host; choose another name"
                .into(),
        });
    }
    Ok(())
}

/// Build settings are checked by the rules uploads follow, with the field named
/// (`build_settings.build_command`).
pub(crate) fn validate_build_settings(settings: &BuildSettings) -> Result<(), ProjectError> {
    validate_settings(settings).map_err(|err| {
        let message = err.to_string();
        let setting = message.split(' ').next().unwrap_or_default();
        ProjectError::Invalid {
            field: format!("build_settings.{setting}"),
            message,
        }
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::Config;
    use crate::model::{DeploymentStatus, Target};
    use crate::services::ingest::{UploadOptions, accept_upload};

    #[tokio::test]
    async fn the_sweep_deletes_previews_that_grew_old_without_a_deploy() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let services = Services::from_config(config.clone()).await.unwrap();
        let name: ProjectName = "idle".parse().unwrap();
        create(
            &services,
            NewProject {
                name: name.clone(),
                build_settings: BuildSettings::default(),
                retention: Retention {
                    keep_previews: None,
                    max_age_days: Some(7),
                },
            },
            None,
        )
        .await
        .unwrap();
        let mut previews = Vec::new();
        for _ in 0..2 {
            let zip = crate::testing::fixtures::zip_bytes(&[("index.html", b"hi")]);
            let archive = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(archive.path(), zip).unwrap();
            let options = UploadOptions {
                project: Some(name.clone()),
                target: Target::Preview,
                ..UploadOptions::default()
            };
            let deployment = accept_upload(&services, archive.path(), options)
                .await
                .unwrap();
            crate::services::deployments::cancel(&services, &deployment.id, None)
                .await
                .unwrap();
            previews.push(deployment.id);
        }
        assert_eq!(sweep_retention(&services).await.unwrap(), 0, "both are new");

        // The first preview was made ten days ago.
        let pool = sqlx::SqlitePool::connect(&config.database_url())
            .await
            .unwrap();
        let ten_days_ms: i64 = 10 * 24 * 60 * 60 * 1000;
        sqlx::query("UPDATE deployments SET created_at = created_at - ?1 WHERE id = ?2")
            .bind(ten_days_ms)
            .bind(previews[0].to_string())
            .execute(&pool)
            .await
            .unwrap();

        assert_eq!(sweep_retention(&services).await.unwrap(), 1);
        let old = services
            .repository
            .get_deployment(&previews[0])
            .await
            .unwrap();
        assert!(old.deleted_at.is_some(), "{old:?}");
        let young = services
            .repository
            .get_deployment(&previews[1])
            .await
            .unwrap();
        assert_eq!(
            (young.deleted_at, young.status),
            (None, DeploymentStatus::Canceled)
        );
    }
}
