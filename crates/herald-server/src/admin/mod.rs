//! The admin HTTP listener (default 127.0.0.1:8090): FlowMesh's `/health` and `/ready` and its REST API for
//! streams, queues, KV, schemas and replay sessions (compat/flowmesh.md §5), and the web dashboard at `/ui` (`crate::ui`), unauthenticated as
//! in FlowMesh (§4.2).
//!
//! Each area is a module with its own `routes()`, merged here; a route is an exact segment pattern (D16), never a
//! substring test. The routes only read the request's shape (`request`), make one engine call and write the answer
//! (`json`); errors go through the one code → status mapping in `errors`. Unknown paths, and known paths with a
//! method they do not serve, answer 404 (FlowMesh never answers 405): JSON under `/api/`, Go's plain text elsewhere;
//! a stream route with fewer than three path components before its tail answers 400 with FlowMesh's text instead
//! (`streams::short_path`).

mod auth;
mod duration;
mod errors;
mod health;
mod json;
mod kv;
mod queues;
mod replay;
mod request;
mod schemas;
mod streams;
mod whole_body;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
pub(crate) use errors::ApiError;
use herald_types::{HeraldError, ResourceKind};
pub(crate) use json::replay_session_superset;
use request::Target;
use serde_json::Value;

/// Request bodies above this are refused with 413. FlowMesh sets no limit; this leaves room for a base64-encoded
/// batch as large as the gRPC listener's 4 MiB messages, several times over.
const MAX_BODY_BYTES: usize = 32 << 20;

/// `http_auth`: require the gRPC side's tokens on everything but health, readiness, metrics and the dashboard's
/// files (`[auth] http`, off by default as in FlowMesh; see `auth.rs`).
pub fn router(state: AppState, http_auth: bool) -> Router {
    let auth_state = state.clone();
    let router = Router::new()
        .merge(health::routes())
        .merge(streams::routes())
        .merge(queues::routes())
        .merge(kv::routes())
        .merge(schemas::routes())
        .merge(replay::routes())
        .merge(crate::ui::router())
        .with_state(state.clone())
        // The live feed and the metrics carry their own state.
        .merge(crate::feed::ws::router(state.clone()))
        .merge(crate::flowmesh_metrics::router(state.clone()))
        .merge(crate::herald_api::router(state))
        // Merge further areas above this line: the 404-for-any-method rule below applies to the routes registered
        // before it.
        .method_not_allowed_fallback(not_found)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let router =
        if http_auth { router.layer(axum::middleware::from_fn_with_state(auth_state, auth::require)) } else { router };
    // Outermost, so that no answer (not even a refused token) leaves a body unread.
    router.layer(axum::middleware::from_fn(whole_body::read_first))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if let Some(e) = streams::short_path(&method, &path) {
        return e.into_response();
    }
    if uri.path().starts_with("/api/") {
        ApiError(HeraldError::not_found("404 page not found")).into_response()
    } else {
        (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

/// The resources of one kind for the list routes, sorted by path (D15), with `?tenant=` and `?namespace=` as exact
/// filters.
async fn resource_list(state: &AppState, kind: ResourceKind, t: &Target) -> Result<Value, ApiError> {
    let tenant = t.query("tenant");
    let namespace = t.query("namespace");
    let list = state.engine.resources.list(Some(kind)).await?;
    let list = list
        .into_iter()
        .filter(|c| tenant.is_none_or(|x| c.tenant == x) && namespace.is_none_or(|x| c.namespace == x))
        .collect();
    Ok(json::resources(list))
}
