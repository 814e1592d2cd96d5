//! Liveness and readiness for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use deploystack_core::services::disk;
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /healthz`: the process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the repository, storage and queue all answer and the data
/// directory has at least `min_free_disk_bytes` free, else 503 naming what is wrong (details
/// go to the log; a low disk also says so in `message`, as uploads are refused meanwhile).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let services = &state.services;
    let (repository, storage, queue) = tokio::join!(
        services.repository.ping(),
        services.storage.ping(),
        services.queue.ping()
    );
    let mut checks = serde_json::Map::new();
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
        checks.insert(name.to_owned(), json!(status));
    }
    let config = &services.config;
    let disk = disk::check_floor(&config.data_dir, config.min_free_disk_bytes);
    let mut message = None;
    match &disk {
        Ok(()) => {
            checks.insert("disk".to_owned(), json!("ok"));
        }
        Err(low) => {
            tracing::warn!(
                free = low.free,
                floor = low.floor,
                "readiness check failed: disk"
            );
            checks.insert("disk".to_owned(), json!("low"));
            message = Some(low.to_string());
            ready = false;
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body =
        json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    if let Some(message) = message {
        body["message"] = json!(message);
    }
    (status, Json(body))
}
