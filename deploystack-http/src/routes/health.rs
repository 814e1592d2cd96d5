//! Liveness and readiness for load balancers and orchestrators.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use deploystack_core::breaker::BreakerState;
use deploystack_core::services::disk;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency: `repository`, `storage` and `queue` are `ok` or `unavailable`,
    /// `disk` is `ok` or `low`; each circuit breaker, `breaker:<name>` (`breaker:storage`,
    /// `breaker:queue`, `breaker:cache`), is `closed`, `open` or `half_open`.
    pub checks: BTreeMap<String, &'static str>,
    /// Why the disk check failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /healthz`: the process is up and answering.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process answers", body = Health)),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: 200 when the repository, storage and queue all answer, no circuit breaker
/// is open and the data directory has at least `min_free_disk_bytes` free, else 503 naming
/// what is wrong (details go to the log; a low disk also says so in `message`, as uploads are
/// refused meanwhile).
///
/// The pings go through the breakers: while one is open its ping fails at once, and once its
/// cool-down is over the ping is the probe that closes it again. A half-open breaker is
/// ready: it is about to find out, and refusing traffic would only delay that.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness",
    description = "200 when the repository, storage and queue answer, no circuit breaker is open (`breaker:<name>` is `closed`, `open` or `half_open`) and the data directory has at least `min_free_disk_bytes` free; 503 naming what is wrong otherwise.",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: `checks` says what is wrong", body = Readiness),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let services = &state.services;
    let (repository, storage, queue) = tokio::join!(
        services.repository.ping(),
        services.storage.ping(),
        services.queue.ping()
    );
    let mut checks = BTreeMap::new();
    let mut ready = true;
    for (name, result) in [
        ("repository", repository.map_err(|e| e.to_string())),
        ("storage", storage.map_err(|e| e.to_string())),
        ("queue", queue.map_err(|e| e.to_string())),
    ] {
        let status = match result {
            Ok(()) => "ok",
            Err(err) => {
                tracing::warn!(check = name, error = %err, "readiness check failed");
                ready = false;
                "unavailable"
            }
        };
        checks.insert(name.to_owned(), status);
    }
    for breaker in &services.breakers {
        let state = breaker.state();
        if state == BreakerState::Open {
            ready = false;
        }
        checks.insert(breaker.readiness_check(), state.as_str());
    }
    let config = &services.config;
    let disk = disk::check_floor(&config.data_dir, config.min_free_disk_bytes);
    let mut message = None;
    match &disk {
        Ok(()) => {
            checks.insert("disk".to_owned(), "ok");
        }
        Err(low) => {
            tracing::warn!(
                free = low.free,
                floor = low.floor,
                "readiness check failed: disk"
            );
            checks.insert("disk".to_owned(), "low");
            message = Some(low.to_string());
            ready = false;
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        checks,
        message,
    };
    (status, Json(body))
}
