//! The admin HTTP listener (default 127.0.0.1:8090): FlowMesh's `/health` and `/ready` in FlowMesh's HTTP form
//! (compat/flowmesh.md §5.2, §7.2: code 200, not gRPC's 0), the live feed `/ws` ([`crate::feed::ws`]) and
//! `/metrics` ([`crate::flowmesh_metrics`]). The FlowMesh REST API and the dashboard join them in a later milestone.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::json;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", any(health))
        .route("/ready", any(ready))
        .with_state(state.clone())
        .merge(crate::feed::ws::router(state.clone()))
        .merge(crate::flowmesh_metrics::router(state))
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": {"code": 200, "message": "healthy"}}))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": {"code": 200, "message": "ready"}, "ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": {"code": 503, "message": "not ready"}, "ready": false})),
        )
    }
}
