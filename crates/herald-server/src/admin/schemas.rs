//! The schema routes of compat/flowmesh.md §5.6, as FlowMesh intended them (D16; FlowMesh's own are unreachable):
//! register, list, get and delete under both `/api/v1/schemas` and `/api/v1/{tenant}/schemas`, and attaching a
//! schema to a stream or a queue with `PUT …/{tenant}/{namespace}/{name}/schema`, over the engine's `Schemas`.
//!
//! The tenant is the path segment when the route has one; otherwise `?tenant=`, then (for POST) the body's
//! `tenant`. The request checks are the engine's `schemas::checks`, the ones gRPC runs, so both transports answer
//! alike; the statuses are the listener's one mapping (400 validation, 404 not found, 409 duplicate version).
//!
//! A `definition` may arrive three ways (§5.6), told apart by its JSON type:
//! - a JSON object (or any JSON value but a string): the document itself, stored as the exact text the client sent;
//! - a string whose first non-blank character is `{` or `[`: the JSON text of the document. Base64's alphabet has
//!   neither character, so such a string can never be base64;
//! - any other string: padded standard base64 of the document's text (what FlowMesh's handler decodes), with the
//!   byte fields' error text when it is not.
//!
//! Answers give the definition back as its JSON text in a string and `created_at` in Unix ns.

use super::errors::ApiError;
use super::json::{self, ok};
use super::request::{Body, Target, bytes_field};
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, put};
use herald_engine::schemas::checks;
use herald_types::ResourceKind;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for base in ["/api/v1/schemas", "/api/v1/{tenant}/schemas"] {
        r = r
            .route(base, get(list).post(register))
            .route(&format!("{base}/"), get(list).post(register))
            .route(&format!("{base}/{{schema_id}}/{{version}}"), get(get_one).delete(delete));
    }
    r.route("/api/v1/streams/{tenant}/{namespace}/{name}/schema", put(attach_to_stream))
        .route("/api/v1/queues/{tenant}/{namespace}/{name}/schema", put(attach_to_queue))
}

type Answer = Result<Response, ApiError>;

/// The tenant: the path segment, else `?tenant=`, else the body's `tenant` (POST). Empty when none is given, which
/// the checks answer with `tenant is required`.
fn tenant<'a>(t: &'a Target, from_body: Option<&'a str>) -> &'a str {
    match t.segment("tenant") {
        "" => t.query("tenant").or(from_body).unwrap_or(""),
        segment => segment,
    }
}

/// The `v{version}` segment: `v0` (or any `v` with a non-positive number) means the latest version for GET.
fn version(t: &Target) -> Result<i32, ApiError> {
    t.segment("version")
        .strip_prefix('v')
        .and_then(|n| n.parse::<i32>().ok())
        .ok_or_else(|| ApiError::invalid("invalid version parameter"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterBody {
    tenant: Option<String>,
    schema_id: String,
    schema_type: String,
    version: i32,
    definition: Option<Box<RawValue>>,
}

/// The document's bytes from any of the three forms (module docs); absent or `null` is empty.
fn definition(raw: Option<Box<RawValue>>) -> Result<Bytes, ApiError> {
    let Some(raw) = raw else { return Ok(Bytes::new()) };
    let text = raw.get();
    if !text.starts_with('"') {
        return Ok(Bytes::copy_from_slice(text.as_bytes()));
    }
    let s: String = serde_json::from_str(text).map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?;
    if s.trim_start().starts_with(['{', '[']) {
        return Ok(Bytes::from(s));
    }
    bytes_field(Some(s))
}

async fn register(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let req: RegisterBody = body.required()?;
    let tenant = tenant(&t, req.tenant.as_deref());
    let definition = definition(req.definition)?;
    checks::register(tenant, &req.schema_id, &req.schema_type, req.version, &definition)?;
    s.engine.schemas.register(tenant, &req.schema_id, &req.schema_type, req.version, definition).await?;
    Ok(ok(json!({"status": "success", "message": "schema registered successfully"})))
}

async fn list(State(s): State<AppState>, t: Target) -> Answer {
    let tenant = tenant(&t, None);
    checks::tenant(tenant)?;
    let schemas = s.engine.schemas.list(tenant, t.query("schema_id")).await?;
    let schemas: Vec<_> = schemas.into_iter().map(json::schema).collect();
    Ok(ok(json!({"status": "success", "schemas": schemas})))
}

async fn get_one(State(s): State<AppState>, t: Target) -> Answer {
    let tenant = tenant(&t, None);
    let schema_id = t.segment("schema_id");
    checks::get(tenant, schema_id)?;
    let schema = s.engine.schemas.get(tenant, schema_id, version(&t)?).await?;
    Ok(ok(json!({"status": "success", "schema": json::schema(schema)})))
}

async fn delete(State(s): State<AppState>, t: Target) -> Answer {
    let tenant = tenant(&t, None);
    let schema_id = t.segment("schema_id");
    let version = version(&t)?;
    checks::delete(tenant, schema_id, version)?;
    s.engine.schemas.delete(tenant, schema_id, version).await?;
    Ok(ok(json!({"status": "success", "message": "schema deleted successfully"})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AttachBody {
    schema_id: String,
    /// `0` (or absent): the latest version, resolved now.
    version: i32,
}

async fn attach_to_stream(s: State<AppState>, t: Target, body: Body) -> Answer {
    attach(s, t, body, ResourceKind::Stream).await
}

async fn attach_to_queue(s: State<AppState>, t: Target, body: Body) -> Answer {
    attach(s, t, body, ResourceKind::Queue).await
}

/// §3.6's order: `schema_id`, then the path components; the engine answers a missing resource with 404
/// `resource not found: <path>`.
async fn attach(State(s): State<AppState>, t: Target, body: Body, kind: ResourceKind) -> Answer {
    let req: AttachBody = body.required()?;
    checks::schema_id(&req.schema_id)?;
    let path = t.resource(kind)?;
    s.engine.schemas.attach(&path, &req.schema_id, req.version).await?;
    Ok(ok(json!({"status": "success", "message": "schema attached to resource successfully"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Option<Box<RawValue>> {
        Some(RawValue::from_string(s.to_owned()).unwrap())
    }

    #[test]
    fn definitions_in_all_three_forms() {
        let doc = r#"{"type":"object"}"#;
        assert_eq!(definition(raw(doc)).unwrap(), Bytes::from(doc));
        assert_eq!(definition(raw(&serde_json::to_string(doc).unwrap())).unwrap(), Bytes::from(doc));
        assert_eq!(definition(raw(r#"" \n[1]""#)).unwrap(), Bytes::from(" \n[1]"));
        assert_eq!(definition(raw(r#""eyJ0eXBlIjoib2JqZWN0In0=""#)).unwrap(), Bytes::from(doc));
        assert_eq!(definition(raw("true")).unwrap(), Bytes::from("true"));
        assert_eq!(definition(None).unwrap(), Bytes::new());
        let e = definition(raw(r#""not base64!""#)).unwrap_err().0.message;
        assert_eq!(e, "invalid request body: illegal base64 data at input byte 3");
    }
}
