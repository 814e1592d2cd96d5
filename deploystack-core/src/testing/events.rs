//! EventSink conformance: sinks take every kind of event and never block the pipeline.

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Event, EventSink};
use crate::model::{DeploymentId, DeploymentStatus, ProductionReason, ProjectName};

/// One event of every kind.
pub fn every_event() -> Vec<Event> {
    let id = DeploymentId::random();
    let project: ProjectName = "shop".parse().expect("a valid name");
    vec![
        Event::DeploymentCreated {
            deployment_id: id,
            by: None,
        },
        Event::BuildStarted {
            deployment_id: id,
            attempt: 1,
            preset: "static".into(),
            waited_ms: 40,
        },
        Event::BuildCompleted {
            deployment_id: id,
            attempt: 1,
            preset: "static".into(),
            duration_ms: 12,
            build_ms: 4,
            files: 3,
            bytes: 300,
            new_blobs: 2,
        },
        Event::BuildFailed {
            deployment_id: id,
            attempt: 2,
            preset: Some("vite".into()),
            duration_ms: 5,
            code: "build_failed".into(),
            message: "exit status 1".into(),
        },
        Event::DeploymentCanceled {
            deployment_id: id,
            previous_status: DeploymentStatus::Building,
            by: None,
        },
        Event::DeploymentReady { deployment_id: id },
        Event::DeploymentDeleted {
            deployment_id: id,
            previous_status: DeploymentStatus::Ready,
            by: None,
        },
        Event::DeploymentPromoted {
            project: project.clone(),
            deployment_id: id,
            from: None,
            reason: ProductionReason::Deploy,
            by: None,
        },
        Event::DeploymentRolledBack {
            project: project.clone(),
            deployment_id: id,
            from: Some(DeploymentId::random()),
            by: Some("token ci (6f1c0b5e9d2a4c7f8e3b1a0d9c8b7a6f)".into()),
        },
        Event::ProjectCreated {
            project: project.clone(),
            by: None,
        },
        Event::ProjectUpdated {
            project: project.clone(),
            by: None,
        },
        Event::ProjectDeleted {
            project,
            deployments: 3,
            by: None,
        },
    ]
}

/// Every check, in order.
pub async fn run_all(sink: Arc<dyn EventSink>) {
    accepts_every_kind_of_event(sink.as_ref()).await;
    does_not_block_without_consumers(sink.as_ref()).await;
    takes_events_from_many_tasks_at_once(sink).await;
}

/// Every variant is accepted.
pub async fn accepts_every_kind_of_event(sink: &dyn EventSink) {
    for event in every_event() {
        sink.emit(&event)
            .await
            .unwrap_or_else(|err| panic!("{event:?} was refused: {err}"));
    }
}

/// Ten thousand events with nobody reading do not stall: a sink buffers or drops. (The
/// timeout only turns a hang into a failure; it is not a speed target.)
pub async fn does_not_block_without_consumers(sink: &dyn EventSink) {
    let event = Event::DeploymentReady {
        deployment_id: DeploymentId::random(),
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..10_000 {
            sink.emit(&event).await.expect("emit failed");
        }
    })
    .await
    .expect("emitting without consumers blocked");
}

/// Several tasks emitting at once all succeed.
pub async fn takes_events_from_many_tasks_at_once(sink: Arc<dyn EventSink>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                for event in every_event() {
                    sink.emit(&event).await.expect("emit failed");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("emitting task panicked");
    }
}
