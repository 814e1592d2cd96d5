//! Bringing a project's domains in line with a desired list (the desired-state `PUT`).

use std::collections::BTreeMap;

use super::{DomainError, announce, check_desired, create, position, project_domains};
use crate::domains::{DomainName, DomainSpec};
use crate::model::{Change, ChangeAction, ChangeKind, Domain, ProjectName};
use crate::repository::RepositoryError;
use crate::services::Services;

/// Bring the project's domains in line with `desired`, a full list: create what is
/// missing (in the order of application, targets first), change redirects that differ,
/// remove what is not listed. Domains that stay keep their token and their verification.
/// Applying the same list twice answers no changes the second time. The whole list is
/// checked ([`check_desired`]) before anything is written. `by` says who asked.
pub async fn sync(
    services: &Services,
    project: &ProjectName,
    desired: &[DomainSpec],
    by: Option<&str>,
) -> Result<Vec<Change>, DomainError> {
    let current = project_domains(services, project).await?;
    let graph = check_desired(services, project, desired).await?;
    let current: BTreeMap<&DomainName, &Domain> = current.iter().map(|d| (&d.name, d)).collect();
    let mut changes = Vec::new();
    for name in graph.order() {
        let Some(n) = position(desired, name) else {
            continue;
        };
        let spec = &desired[n];
        let status = spec
            .redirect
            .as_ref()
            .map(|_| spec.redirect_status.unwrap_or_default());
        match current.get(name) {
            None => {
                create(services, project, spec, &format!("domains[{n}].name")).await?;
                changes.push(Change::new(
                    ChangeAction::Created,
                    ChangeKind::Domain,
                    name.as_str(),
                ));
            }
            Some(domain)
                if domain.redirect != spec.redirect || domain.redirect_status != status =>
            {
                services
                    .repository
                    .set_domain_redirect(name, spec.redirect.clone(), status)
                    .await
                    .map_err(DomainError::Repository)?;
                changes.push(Change::new(
                    ChangeAction::Updated,
                    ChangeKind::Domain,
                    name.as_str(),
                ));
            }
            Some(_) => {}
        }
    }
    for name in current.keys() {
        if position(desired, name).is_none() {
            match services.repository.delete_domain(name).await {
                Ok(()) | Err(RepositoryError::NotFound) => {}
                Err(err) => return Err(DomainError::Repository(err)),
            }
            changes.push(Change::new(
                ChangeAction::Deleted,
                ChangeKind::Domain,
                name.as_str(),
            ));
        }
    }
    if !changes.is_empty() {
        announce(services, project, by).await;
    }
    Ok(changes)
}
