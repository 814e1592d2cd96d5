//! Liveness and readiness for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// `GET /healthz`: the process is up and answering.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the repository, storage and queue all answer, else 503 naming the
/// ones that do not (details go to the log).
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
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks })),
    )
}
