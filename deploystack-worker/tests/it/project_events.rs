//! What a project's life announces through the `EventSink`, in the order it happens: an
//! embedder that feeds a chat channel or an audit log from these events relies on each one.

use deploystack_core::Config;
use deploystack_core::events::Event;
use deploystack_core::model::{
    DeploymentId, DeploymentStatus, NewProject, ProductionReason, ProjectName, ProjectUpdate,
    Retention, Target,
};
use deploystack_core::services::ingest::{UploadOptions, accept_upload};
use deploystack_core::services::projects;
use tokio::sync::broadcast::Receiver;

use crate::support::{Pool, services, temp_file, wait_for_status, zip_bytes};

/// The project events received so far (deployment life-cycle events are left out).
fn project_events(events: &mut Receiver<Event>) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(
            event,
            Event::ProjectCreated { .. }
                | Event::ProjectUpdated { .. }
                | Event::ProjectDeleted { .. }
                | Event::DeploymentPromoted { .. }
                | Event::DeploymentRolledBack { .. }
        ) {
            seen.push(event);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_life_is_announced_step_by_step() {
    let services = services(Config::default()).await;
    let mut events = services.broadcast.subscribe();
    let pool = Pool::start(&services, 1);
    let shop: ProjectName = "shop".parse().unwrap();

    projects::create(
        &services,
        NewProject {
            name: shop.clone(),
            build_settings: Default::default(),
            retention: Retention::default(),
        },
        Some("token admin (1)"),
    )
    .await
    .unwrap();
    let deploy = |marker: &'static str| {
        let services = services.clone();
        let shop = shop.clone();
        async move {
            let archive = temp_file(&zip_bytes(&[("index.html", marker.as_bytes())]));
            let options = UploadOptions {
                project: Some(shop),
                target: Target::Production,
                ..UploadOptions::default()
            };
            let deployment = accept_upload(&services, archive.path(), options)
                .await
                .unwrap();
            wait_for_status(&services, &deployment.id, DeploymentStatus::Ready).await;
            deployment.id
        }
    };
    let first = deploy("first").await;
    let second = deploy("second").await;
    let rolled = projects::rollback(&services, &shop, None, Some("test"))
        .await
        .unwrap();
    assert_eq!(rolled.production.unwrap().deployment_id, first);
    projects::promote(&services, &shop, &second, None)
        .await
        .unwrap();
    projects::update(
        &services,
        &shop,
        ProjectUpdate {
            retention: Some(Retention {
                keep_previews: Some(5),
                max_age_days: None,
            }),
            ..ProjectUpdate::default()
        },
        Some("token ops (2)"),
    )
    .await
    .unwrap();
    projects::delete(&services, &shop, Some("token admin (1)"))
        .await
        .unwrap();

    let promoted =
        |to: DeploymentId, from: Option<DeploymentId>, reason| Event::DeploymentPromoted {
            project: shop.clone(),
            deployment_id: to,
            from,
            reason,
            by: None,
        };
    let want = vec![
        Event::ProjectCreated {
            project: shop.clone(),
            by: Some("token admin (1)".to_owned()),
        },
        promoted(first, None, ProductionReason::Deploy),
        promoted(second, Some(first), ProductionReason::Deploy),
        Event::DeploymentRolledBack {
            project: shop.clone(),
            deployment_id: first,
            from: Some(second),
            // Who asked, as the history records it.
            by: Some("test".to_owned()),
        },
        promoted(second, Some(first), ProductionReason::Promote),
        Event::ProjectUpdated {
            project: shop.clone(),
            by: Some("token ops (2)".to_owned()),
        },
        Event::ProjectDeleted {
            project: shop.clone(),
            deployments: 2,
            by: Some("token admin (1)".to_owned()),
        },
    ];
    assert_eq!(project_events(&mut events), want);
    pool.shut_down().await;
}
