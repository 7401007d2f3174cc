//! FlowMesh's `/health` and `/ready` in FlowMesh's HTTP form (compat/flowmesh.md §5.2, §7.2: code 200, not gRPC's
//! 0), for any method.

use super::json::{encode, ok};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::any;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", any(health)).route("/ready", any(ready))
}

async fn health() -> Response {
    ok(json!({"status": {"code": 200, "message": "healthy"}}))
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        ok(json!({"status": {"code": 200, "message": "ready"}, "ready": true}))
    } else {
        encode(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": {"code": 503, "message": "not ready"}, "ready": false}),
        )
    }
}
