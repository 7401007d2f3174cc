//! Herald's own admin API, on the admin listener next to FlowMesh's routes, for what FlowMesh has no route for:
//! the dashboard's overview of relay topics, NATS connections and addressed-event recipients, and KV entries with
//! their sizes and expiry times. They follow the admin listener's authentication (off unless `[auth] http`).
//!
//! - [`overview`]: `GET /api/herald/overview`, and the same snapshot pushed once a second as the opt-in
//!   `herald.overview` feed event while a `/ws` connection subscribes to it ([`follow_overview`]).
//! - [`kv_entries`]: `GET /api/herald/kv/{tenant}/{namespace}/{name}/entries`.
//!
//! Like every front-end, these handlers only read the request, make engine (or NATS registry) calls and encode.

mod kv_entries;
mod overview;

use crate::state::AppState;
use axum::Router;
use axum::routing::get;
use std::time::Duration;

/// The most entries any list in these answers holds; the full count is given next to a capped list.
pub const LIST_CAP: usize = 1_000;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/herald/overview", get(overview::overview))
        .route("/api/herald/kv/{tenant}/{namespace}/{name}/entries", get(kv_entries::entries))
        .with_state(state)
}

/// How often `herald.overview` is pushed to the connections that subscribed to it.
pub const OVERVIEW_PERIOD: Duration = Duration::from_secs(1);

/// Pushes the overview to subscribed `/ws` connections every [`OVERVIEW_PERIOD`] until shutdown. Nothing is
/// computed while nobody subscribed (one atomic load per period when no connection is open).
pub fn follow_overview(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(OVERVIEW_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !state.feed.wants_overview() {
                continue;
            }
            match overview::snapshot(&state).await {
                Ok(o) => state.feed.herald_overview(&o),
                Err(e) => tracing::warn!(error = %e.message, "herald.overview: the snapshot failed"),
            }
        }
    })
}
