//! The six KV routes under `/api/v1/kv` (compat/flowmesh.md §5.5), over the engine's `Kv`. The key is the whole
//! remainder of the path after `/keys/`, so keys containing `/` are reachable too (the contract's MAY).

use super::duration;
use super::errors::ApiError;
use super::json::{b64, ok};
use super::request::{Body, Target, bytes_field};
use super::resource_list;
use crate::observe;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_types::ResourceKind;
use serde::Deserialize;
use serde_json::json;

const KV: ResourceKind = ResourceKind::Kv;
const BASE: &str = "/api/v1/kv/{tenant}/{namespace}/{name}";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/kv", get(list))
        .route("/api/v1/kv/", get(list))
        .route(&format!("{BASE}/keys"), get(list_keys))
        .route(&format!("{BASE}/keys/{{*key}}"), get(get_key).put(set_key).delete(delete_key).head(key_exists))
}

type Answer = Result<Response, ApiError>;

async fn list(State(s): State<AppState>, t: Target) -> Answer {
    let stores = resource_list(&s, KV, &t).await?;
    Ok(ok(json!({"status": "success", "message": "KV stores retrieved successfully", "stores": stores})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SetBody {
    value: Option<String>,
    ttl_seconds: i64,
}

async fn set_key(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(KV)?;
    let req: SetBody = body.required()?;
    let value = bytes_field(req.value)?;
    // `?ttl=` (Go duration syntax) counts only when the body gives no TTL; an unparsable one is ignored.
    let ttl = match req.ttl_seconds {
        0 => t.query("ttl").and_then(duration::parse_seconds).unwrap_or(0),
        n => n,
    };
    // The engine checks `value cannot be empty` and the one-year TTL cap, as for gRPC.
    let key = t.segment("key");
    s.engine.kv.set(&path, key, value, ttl).await?;
    observe::kv_set(&s, &path, key);
    Ok(ok(json!({"status": "success", "message": "key-value pair set successfully"})))
}

async fn get_key(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(KV)?;
    let value = s.engine.kv.get(&path, t.segment("key")).await?;
    Ok(ok(json!({"status": "success", "message": "value retrieved successfully", "value": b64(&value)})))
}

async fn delete_key(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(KV)?;
    let key = t.segment("key");
    s.engine.kv.delete(&path, key).await?;
    observe::kv_deleted(&s, &path, key);
    Ok(ok(json!({"status": "success", "message": "key deleted successfully"})))
}

/// HEAD answers with a status only: 200 when the key exists, 404 when it or its store does not. (Error answers
/// keep their JSON headers; HTTP sends no body for HEAD.)
async fn key_exists(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(KV)?;
    Ok(match s.engine.kv.exists(&path, t.segment("key")).await? {
        true => StatusCode::OK.into_response(),
        false => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn list_keys(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(KV)?;
    let keys = s.engine.kv.list_keys(&path, t.query("prefix").unwrap_or("")).await?;
    // Always a list: FlowMesh sends `null` for none, which clients must accept anyway (§5.5).
    Ok(ok(json!({"status": "success", "message": "keys listed successfully", "keys": keys})))
}
