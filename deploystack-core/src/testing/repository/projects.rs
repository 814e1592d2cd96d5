//! The projects part of the `Repository` conformance suite: project CRUD, production moves
//! (with publish, promote, rollback and the pin), their atomicity, and project deletion.
//! Every check uses projects with random names, so it runs against a database in use.

use futures_util::future::join_all;

use super::{LONG_LEASE, claim, file, get, is_not_found, pause, publish};
use crate::model::{
    BuildSettings, Deployment, DeploymentId, DeploymentStatus, NewDeployment, NewProject,
    PageRequest, ProductionReason, ProjectName, ProjectUpdate, Protection, ProtectionMode,
    Retention, Target,
};
use crate::repository::{Repository, RepositoryError};

/// Run every projects check.
pub async fn run_projects(repo: &dyn Repository) {
    projects_are_created_read_updated_and_listed(repo).await;
    a_production_deployment_takes_production_when_it_is_published(repo).await;
    promote_unpins_and_rollback_pins(repo).await;
    refused_moves_change_nothing(repo).await;
    racing_moves_keep_the_history_a_chain(repo).await;
    deleting_a_project_deletes_its_deployments_and_history(repo).await;
    retention_expires_only_previews_that_were_never_production(repo).await;
    deployments_are_counted_by_project_and_status(repo).await;
}

/// Create (and `Conflict` on a taken name), get, update one setting, list in name order.
pub async fn projects_are_created_read_updated_and_listed(repo: &dyn Repository) {
    let name = random_name("crud");
    let settings = BuildSettings {
        build_command: Some("npm run build:site".into()),
        ..BuildSettings::default()
    };
    let retention = Retention {
        keep_previews: Some(3),
        max_age_days: None,
    };
    let created = repo
        .create_project(&NewProject {
            name: name.clone(),
            build_settings: settings.clone(),
            retention,
        })
        .await
        .expect("create_project failed");
    assert_eq!(created.name, name);
    assert_eq!(created.build_settings, settings);
    assert_eq!(created.retention, retention);
    assert_eq!(created.production, None);
    assert_eq!(repo.get_project(&name).await.expect("get_project"), created);

    let again = repo.create_project(&new_project(&name)).await;
    assert!(
        matches!(&again, Err(RepositoryError::Conflict(m)) if m.contains(name.as_str())),
        "{again:?}"
    );
    assert!(is_not_found(&repo.get_project(&random_name("none")).await));

    pause().await;
    let updated = repo
        .update_project(
            &name,
            &ProjectUpdate {
                build_settings: Some(BuildSettings::default()),
                retention: None,
                protection: None,
            },
        )
        .await
        .expect("update_project failed");
    assert_eq!(updated.build_settings, BuildSettings::default());
    assert_eq!(
        updated.retention, retention,
        "what the update leaves out stays"
    );
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(
        updated.protection,
        Protection::default(),
        "unprotected by default"
    );

    // Protection is stored whole, and kept by updates that leave it out.
    let protection = Protection {
        mode: ProtectionMode::Previews,
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        bypass_hash: Some("ab".repeat(32)),
    };
    let protected = repo
        .update_project(
            &name,
            &ProjectUpdate {
                protection: Some(protection.clone()),
                ..ProjectUpdate::default()
            },
        )
        .await
        .expect("update_project failed");
    assert_eq!(protected.protection, protection);
    let kept = repo
        .update_project(
            &name,
            &ProjectUpdate {
                retention: Some(retention),
                ..ProjectUpdate::default()
            },
        )
        .await
        .expect("update_project failed");
    assert_eq!(
        kept.protection, protection,
        "what the update leaves out stays"
    );
    assert_eq!(get_project(repo, &name).await.protection, protection);
    let off = repo
        .update_project(
            &name,
            &ProjectUpdate {
                protection: Some(Protection::default()),
                ..ProjectUpdate::default()
            },
        )
        .await
        .expect("update_project failed");
    assert_eq!(off.protection, Protection::default());
    assert!(is_not_found(
        &repo
            .update_project(&random_name("none"), &ProjectUpdate::default())
            .await
    ));

    // Three more with one prefix: a listing in pages of two returns each once, in name order.
    let prefix = random_name("list");
    let mut mine = Vec::new();
    for i in 0..3 {
        let name: ProjectName = format!("{prefix}-{i}").parse().expect("a valid name");
        repo.create_project(&new_project(&name))
            .await
            .expect("create_project failed");
        mine.push(name);
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo
            .list_projects(&PageRequest { limit: 2, cursor })
            .await
            .expect("list_projects failed");
        assert!(page.items.len() <= 2);
        listed.extend(page.items.into_iter().map(|p| p.name));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let sorted = {
        let mut sorted = listed.clone();
        sorted.sort();
        sorted.dedup();
        sorted
    };
    assert_eq!(listed, sorted, "name order, each once");
    let seen: Vec<_> = listed.into_iter().filter(|n| mine.contains(n)).collect();
    assert_eq!(seen, mine);
    let bad = repo
        .list_projects(&PageRequest {
            limit: 2,
            cursor: Some("Not A Name".into()),
        })
        .await;
    assert!(matches!(bad, Err(RepositoryError::Conflict(_))), "{bad:?}");
}

/// Publishing a production deployment of a project moves production in the same
/// transaction; a preview does not; an older production deployment finishing after a newer
/// one does not take production back.
pub async fn a_production_deployment_takes_production_when_it_is_published(repo: &dyn Repository) {
    let name = project(repo, "deploy").await;
    let first = ready(repo, &name, Target::Production).await;
    let project = repo.get_project(&name).await.expect("get_project");
    let production = project.production.expect("production after a publish");
    assert_eq!(production.deployment_id, first.id);
    assert!(!production.pinned);

    let preview = ready(repo, &name, Target::Preview).await;
    assert_eq!(production_of(repo, &name).await, Some(first.id));

    // Created in this order, published in the other.
    let older = created(repo, &name, Target::Production).await;
    pause().await;
    let newer = ready(repo, &name, Target::Production).await;
    assert_eq!(production_of(repo, &name).await, Some(newer.id));
    publish_one(repo, &older.id).await;
    assert_eq!(
        production_of(repo, &name).await,
        Some(newer.id),
        "a newer production deployment is not replaced by an older one"
    );

    let history = history(repo, &name).await;
    assert_eq!(
        history,
        vec![
            (Some(first.id), newer.id, ProductionReason::Deploy),
            (None, first.id, ProductionReason::Deploy),
        ]
    );
    let _ = preview;

    // A production deployment of a project that does not exist moves nothing and fails not.
    let orphan: ProjectName = random_name("orphan");
    let id = DeploymentId::random();
    repo.create_deployment(&NewDeployment {
        id,
        project: Some(orphan.clone()),
        target: Target::Production,
        source_key: format!("sources/{id}.zip"),
        source_files: Vec::new(),
        settings: BuildSettings::default(),
        env: Vec::new(),
        created_by: None,
    })
    .await
    .expect("create_deployment failed");
    publish_one(repo, &id).await;
    assert_eq!(get(repo, &id).await.status, DeploymentStatus::Ready);
    assert!(is_not_found(&repo.get_project(&orphan).await));
}

/// Vercel's rule: a rollback pins production, a new production deployment then becomes
/// READY without taking production, and the next promote unpins.
pub async fn promote_unpins_and_rollback_pins(repo: &dyn Repository) {
    let name = project(repo, "pin").await;
    let first = ready(repo, &name, Target::Production).await;
    let preview = ready(repo, &name, Target::Preview).await;

    let promoted = repo
        .move_production(&name, &preview.id, ProductionReason::Promote, None)
        .await
        .expect("promote");
    let production = promoted.production.expect("production");
    assert_eq!(
        production.deployment_id, preview.id,
        "a preview can be promoted"
    );
    assert!(!production.pinned);

    let rolled = repo
        .move_production(
            &name,
            &first.id,
            ProductionReason::Rollback,
            Some("ops (10.0.0.7)".into()),
        )
        .await
        .expect("rollback");
    let production = rolled.production.expect("production");
    assert_eq!(production.deployment_id, first.id);
    assert!(production.pinned);

    let third = ready(repo, &name, Target::Production).await;
    assert_eq!(get(repo, &third.id).await.status, DeploymentStatus::Ready);
    assert_eq!(
        production_of(repo, &name).await,
        Some(first.id),
        "pinned: a new production deployment does not move production"
    );

    let promoted = repo
        .move_production(&name, &third.id, ProductionReason::Promote, None)
        .await
        .expect("promote");
    assert!(!promoted.production.expect("production").pinned);
    let fourth = ready(repo, &name, Target::Production).await;
    assert_eq!(
        production_of(repo, &name).await,
        Some(fourth.id),
        "unpinned"
    );

    assert_eq!(
        history(repo, &name).await,
        vec![
            (Some(third.id), fourth.id, ProductionReason::Deploy),
            (Some(first.id), third.id, ProductionReason::Promote),
            (Some(preview.id), first.id, ProductionReason::Rollback),
            (Some(first.id), preview.id, ProductionReason::Promote),
            (None, first.id, ProductionReason::Deploy),
        ]
    );
    let who: Vec<Option<String>> = repo
        .production_history(&name, 10)
        .await
        .expect("production_history")
        .into_iter()
        .map(|change| change.by)
        .collect();
    assert_eq!(
        who,
        [None, None, Some("ops (10.0.0.7)".to_owned()), None, None],
        "who moved production is recorded with the move"
    );
}

/// Only a READY, live deployment of the project can become production; any other move is
/// refused whole: production and history stay as they were.
pub async fn refused_moves_change_nothing(repo: &dyn Repository) {
    let name = project(repo, "refuse").await;
    let live = ready(repo, &name, Target::Production).await;
    let before = repo.get_project(&name).await.expect("get_project");
    let history_before = history(repo, &name).await;

    let queued = created(repo, &name, Target::Preview).await;
    let deleted = ready(repo, &name, Target::Preview).await;
    repo.delete_deployment(&deleted.id)
        .await
        .expect("delete_deployment");
    let other = project(repo, "other").await;
    let foreign = ready(repo, &other, Target::Preview).await;
    for (what, id) in [
        ("a queued deployment", queued.id),
        ("a deleted deployment", deleted.id),
        ("another project's deployment", foreign.id),
        ("an unknown deployment", DeploymentId::random()),
    ] {
        let moved = repo
            .move_production(&name, &id, ProductionReason::Promote, None)
            .await;
        assert!(
            matches!(moved, Err(RepositoryError::Conflict(_))),
            "{what}: {moved:?}"
        );
    }
    let unknown = repo
        .move_production(
            &random_name("none"),
            &live.id,
            ProductionReason::Promote,
            None,
        )
        .await;
    assert!(is_not_found(&unknown), "{unknown:?}");
    assert!(is_not_found(
        &repo.production_history(&random_name("none"), 10).await
    ));

    assert_eq!(repo.get_project(&name).await.expect("get_project"), before);
    assert_eq!(history(repo, &name).await, history_before);
}

/// Moves racing on one project serialize: every history row's `from` is the row before's
/// `to`, and production is the last row's `to`.
pub async fn racing_moves_keep_the_history_a_chain(repo: &dyn Repository) {
    let name = project(repo, "race").await;
    let a = ready(repo, &name, Target::Production).await;
    let b = ready(repo, &name, Target::Preview).await;
    let moves = (0..12).map(|i| {
        let (to, reason) = if i % 2 == 0 {
            (b.id, ProductionReason::Promote)
        } else {
            (a.id, ProductionReason::Rollback)
        };
        let name = name.clone();
        async move { repo.move_production(&name, &to, reason, None).await }
    });
    for result in join_all(moves).await {
        result.expect("a racing move failed");
    }
    let mut rows = history(repo, &name).await;
    rows.reverse();
    assert_eq!(rows.len(), 13, "the deploy and twelve moves");
    for pair in rows.windows(2) {
        assert_eq!(pair[1].0, Some(pair[0].1), "broken chain: {rows:?}");
    }
    let last = rows.last().map(|row| row.1);
    assert_eq!(production_of(repo, &name).await, last);
}

/// Deleting a project deletes (and cancels) its deployments, drops their manifests, its
/// history and itself, and leaves other projects alone; a second delete is `NotFound`.
pub async fn deleting_a_project_deletes_its_deployments_and_history(repo: &dyn Repository) {
    let name = project(repo, "delete").await;
    let served = ready(repo, &name, Target::Production).await;
    let queued = created(repo, &name, Target::Preview).await;
    let building = created(repo, &name, Target::Preview).await;
    claim(repo, &building.id, "worker", LONG_LEASE).await;
    let neighbour = project(repo, "neighbour").await;
    let kept = ready(repo, &neighbour, Target::Production).await;

    let mut deleted = repo.delete_project(&name).await.expect("delete_project");
    deleted.sort_by_key(ToString::to_string);
    let mut expected = vec![served.id, queued.id, building.id];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(deleted, expected);

    let served_now = get(repo, &served.id).await;
    assert!(served_now.deleted_at.is_some());
    assert_eq!(served_now.status, DeploymentStatus::Ready);
    assert!(
        repo.list_files(&served.id)
            .await
            .expect("list_files")
            .is_empty(),
        "manifests are dropped, so nothing is served"
    );
    for id in [queued.id, building.id] {
        let now = get(repo, &id).await;
        assert!(now.deleted_at.is_some());
        assert_eq!(now.status, DeploymentStatus::Canceled);
    }
    assert!(is_not_found(&repo.get_project(&name).await));
    assert!(is_not_found(&repo.production_history(&name, 10).await));
    assert!(is_not_found(&repo.delete_project(&name).await));

    let neighbour_now = repo.get_project(&neighbour).await.expect("neighbour");
    assert_eq!(
        neighbour_now.production.map(|p| p.deployment_id),
        Some(kept.id)
    );
    assert!(get(repo, &kept.id).await.deleted_at.is_none());

    // The name is free again, with no history.
    let reborn = repo
        .create_project(&new_project(&name))
        .await
        .expect("create_project after delete");
    assert_eq!(reborn.production, None);
    assert!(history(repo, &name).await.is_empty());
}

/// A random valid project name starting with `prefix`.
pub(super) fn random_name(prefix: &str) -> ProjectName {
    let id = DeploymentId::random().to_string();
    format!("{prefix}-{}", &id[..12])
        .parse()
        .expect("a valid project name")
}

fn new_project(name: &ProjectName) -> NewProject {
    NewProject {
        name: name.clone(),
        build_settings: BuildSettings::default(),
        retention: Retention::default(),
    }
}

/// `count_deployments` counts a project's live deployments in one status: not those of other
/// projects, not deleted ones, and 0 for a project that does not exist.
pub async fn deployments_are_counted_by_project_and_status(repo: &dyn Repository) {
    let busy = project(repo, "count").await;
    let other = project(repo, "count-other").await;
    let count = |name: ProjectName, status: DeploymentStatus| async move {
        repo.count_deployments(&name, status)
            .await
            .expect("count_deployments failed")
    };
    assert_eq!(count(busy.clone(), DeploymentStatus::Queued).await, 0);
    let mut queued = Vec::new();
    for _ in 0..4 {
        queued.push(created(repo, &busy, Target::Preview).await);
    }
    created(repo, &other, Target::Preview).await;
    assert_eq!(count(busy.clone(), DeploymentStatus::Queued).await, 4);
    claim(repo, &queued[0].id, "count-worker", LONG_LEASE).await;
    repo.delete_deployment(&queued[1].id)
        .await
        .expect("delete_deployment failed");
    assert_eq!(count(busy.clone(), DeploymentStatus::Queued).await, 2);
    assert_eq!(count(busy.clone(), DeploymentStatus::Building).await, 1);
    assert_eq!(count(busy, DeploymentStatus::Ready).await, 0);
    assert_eq!(count(other, DeploymentStatus::Queued).await, 1);
    assert_eq!(
        count(random_name("count-none"), DeploymentStatus::Queued).await,
        0
    );
}

/// A new project with a random name.
pub(super) async fn project(repo: &dyn Repository, prefix: &str) -> ProjectName {
    let name = random_name(prefix);
    repo.create_project(&new_project(&name))
        .await
        .expect("create_project failed");
    name
}

/// A `QUEUED` deployment of `project`.
async fn created(repo: &dyn Repository, project: &ProjectName, target: Target) -> Deployment {
    let id = DeploymentId::random();
    repo.create_deployment(&NewDeployment {
        id,
        project: Some(project.clone()),
        target,
        source_key: format!("sources/{id}.zip"),
        source_files: Vec::new(),
        settings: BuildSettings::default(),
        env: Vec::new(),
        created_by: None,
    })
    .await
    .expect("create_deployment failed")
}

/// A `READY` deployment of `project`.
async fn ready(repo: &dyn Repository, project: &ProjectName, target: Target) -> Deployment {
    let deployment = created(repo, project, target).await;
    publish_one(repo, &deployment.id).await;
    deployment
}

async fn publish_one(repo: &dyn Repository, id: &DeploymentId) {
    let attempt = claim(repo, id, "worker", LONG_LEASE).await.attempt;
    publish(
        repo,
        id,
        attempt,
        &[file("index.html", &format!("<p>{id}</p>"))],
    )
    .await;
}

async fn production_of(repo: &dyn Repository, name: &ProjectName) -> Option<DeploymentId> {
    repo.get_project(name)
        .await
        .expect("get_project failed")
        .production
        .map(|p| p.deployment_id)
}

/// The history, newest first, as (from, to, reason).
async fn history(
    repo: &dyn Repository,
    name: &ProjectName,
) -> Vec<(Option<DeploymentId>, DeploymentId, ProductionReason)> {
    repo.production_history(name, 100)
        .await
        .expect("production_history failed")
        .into_iter()
        .map(|change| (change.from, change.to, change.reason))
        .collect()
}

/// `expired_previews` lists the previews beyond the newest N that were never production;
/// production, former production, unfinished and deleted deployments are never listed.
pub async fn retention_expires_only_previews_that_were_never_production(repo: &dyn Repository) {
    let name = project(repo, "retain").await;
    let production = ready(repo, &name, Target::Production).await;
    pause().await;
    let once_production = ready(repo, &name, Target::Preview).await;
    repo.move_production(&name, &once_production.id, ProductionReason::Promote, None)
        .await
        .expect("promote");
    repo.move_production(&name, &production.id, ProductionReason::Promote, None)
        .await
        .expect("promote back");
    let mut previews = Vec::new();
    for _ in 0..4 {
        pause().await;
        previews.push(ready(repo, &name, Target::Preview).await.id);
    }
    pause().await;
    let building = created(repo, &name, Target::Preview).await;
    claim(repo, &building.id, "worker", LONG_LEASE).await;

    let keep_two = Retention {
        keep_previews: Some(2),
        max_age_days: None,
    };
    // Newest first among the never-production previews: the building one and previews[3] are
    // the two kept (an unfinished preview counts, but is never listed itself); the rest go.
    let expired = repo
        .expired_previews(&name, &keep_two)
        .await
        .expect("expired_previews");
    assert_eq!(expired, vec![previews[0], previews[1], previews[2]]);

    let keep_all = Retention::default();
    assert!(
        repo.expired_previews(&name, &keep_all)
            .await
            .expect("expired_previews")
            .is_empty()
    );
    let young = Retention {
        keep_previews: None,
        max_age_days: Some(1),
    };
    assert!(
        repo.expired_previews(&name, &young)
            .await
            .expect("expired_previews")
            .is_empty(),
        "nothing is a day old yet"
    );
}

async fn get_project(repo: &dyn Repository, name: &ProjectName) -> crate::model::Project {
    repo.get_project(name).await.expect("get_project failed")
}
