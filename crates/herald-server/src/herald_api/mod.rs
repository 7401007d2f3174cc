//! Herald's own admin API, on the admin listener next to FlowMesh's routes, for what FlowMesh has no route for:
//! the dashboard's overview of relay topics, NATS connections and addressed-event recipients, and KV entries with
//! their sizes and expiry times. Authentication is off on the admin listener, as for FlowMesh's HTTP API.
//!
//! - [`overview`]: `GET /api/herald/overview`.
//! - [`kv_entries`]: `GET /api/herald/kv/{tenant}/{namespace}/{name}/entries`.
//! - [`error`]: engine errors as FlowMesh's JSON error body.
//!
//! Like every front-end, these handlers only read the request, make engine (or NATS registry) calls and encode.

mod kv_entries;
mod overview;

use crate::state::AppState;
use axum::Router;
use axum::routing::get;

/// The most entries any list in these answers holds; the full count is given next to a capped list.
pub const LIST_CAP: usize = 1_000;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/herald/overview", get(overview::overview))
        .route("/api/herald/kv/{tenant}/{namespace}/{name}/entries", get(kv_entries::entries))
        .with_state(state)
}
