//! The nine stream routes under `/api/v1/streams` (compat/flowmesh.md §5.3), over the engine's `Streams`.

use super::errors::ApiError;
use super::json::{self, ok};
use super::request::{Body, HeadersField, Target, bytes_field, headers_field};
use super::resource_list;
use crate::observe;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use herald_engine::EventIn;
use herald_types::ResourceKind;
use herald_types::resource::check_consumer_group;
use serde::Deserialize;
use serde_json::json;
use std::time::Instant;

const STREAM: ResourceKind = ResourceKind::Stream;
const BASE: &str = "/api/v1/streams/{tenant}/{namespace}/{name}";

pub fn routes() -> Router<AppState> {
    let at = |suffix: &str| format!("{BASE}{suffix}");
    Router::new()
        .route("/api/v1/streams", get(list))
        .route("/api/v1/streams/", get(list))
        .route(&at("/events"), post(write_events))
        .route(&at("/messages"), get(read_messages))
        .route(&at("/offsets/latest"), get(latest_offset))
        .route(&at("/stats"), get(stats))
        .route(&at("/consumer-groups"), get(groups))
        .route(&at("/consumer-groups/{group}/offsets"), post(commit_offset).get(committed_offset))
        .route(&at("/consumer-groups/{group}/state"), get(group_state))
}

type Answer = Result<Response, ApiError>;

/// The tails of the stream routes after `{tenant}/{namespace}/{name}`, with their methods; `*` is the group.
const ROUTE_TAILS: [(Method, &[&str]); 8] = [
    (Method::POST, &["events"]),
    (Method::GET, &["messages"]),
    (Method::GET, &["offsets", "latest"]),
    (Method::GET, &["stats"]),
    (Method::GET, &["consumer-groups"]),
    (Method::POST, &["consumer-groups", "*", "offsets"]),
    (Method::GET, &["consumer-groups", "*", "offsets"]),
    (Method::GET, &["consumer-groups", "*", "state"]),
];

/// A request for one of the stream routes whose path has fewer than three components before the route's tail
/// (`POST /api/v1/streams/t1/events`): 400 with FlowMesh's text naming the decoded URL path (§5.3), where any
/// other unmatched path is a 404. `path` is the percent-decoded request path; empty segments are skipped, as
/// FlowMesh's path parser skips them.
pub(super) fn short_path(method: &Method, path: &str) -> Option<ApiError> {
    let rest = path.strip_prefix("/api/v1/streams/")?;
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let short = ROUTE_TAILS.iter().any(|(m, tail)| {
        m == method
            && segments.len() >= tail.len()
            && segments.len() - tail.len() < 3
            && segments[segments.len() - tail.len()..].iter().zip(tail.iter()).all(|(s, t)| *t == "*" || s == t)
    });
    short.then(|| {
        ApiError::invalid(format!("invalid resource path '{path}': path must include tenant, namespace, and name"))
    })
}

async fn list(State(s): State<AppState>, t: Target) -> Answer {
    let streams = resource_list(&s, STREAM, &t).await?;
    Ok(ok(json!({"status": "success", "message": "streams retrieved successfully", "streams": streams})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WriteBody {
    events: Option<Vec<EventBody>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EventBody {
    payload: Option<String>,
    headers: HeadersField,
}

async fn write_events(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(STREAM)?;
    let req: WriteBody = body.required()?;
    let events = req.events.unwrap_or_default();
    if events.is_empty() {
        return Err(ApiError::invalid("at least one event is required"));
    }
    let mut decoded = Vec::with_capacity(events.len());
    for e in events {
        decoded.push(EventIn { payload: bytes_field(e.payload)?, headers: headers_field(e.headers) });
    }
    if let Some(i) = decoded.iter().position(|e| e.payload.is_empty()) {
        return Err(ApiError::invalid(format!("event {i}: payload cannot be empty")));
    }
    let bytes = observe::payload_bytes(&decoded);
    let started = Instant::now();
    let offsets = s.engine.streams.append(&path, decoded).await?;
    observe::stream_written(&s, &path, &offsets, bytes, started.elapsed());
    Ok(ok(json!({"status": "success", "message": "events written successfully", "offsets": offsets})))
}

async fn read_messages(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let partition = t.partition()?;
    let offset = match t.int("offset") {
        None => return Err(ApiError::invalid("offset parameter is required")),
        Some(Ok(o)) if o >= 0 => o,
        Some(_) => return Err(ApiError::invalid("invalid offset parameter")),
    };
    let max_messages = match t.int("max_messages") {
        None => 100,
        Some(Ok(m)) if m > 0 => m.min(1000) as i32,
        Some(_) => return Err(ApiError::invalid("invalid max_messages parameter")),
    };
    let started = Instant::now();
    let messages = s.engine.streams.read(&path, partition, offset, max_messages).await?;
    observe::stream_read(&s, &path, partition, &messages, started.elapsed());
    let messages: Vec<_> = messages.into_iter().map(json::message).collect();
    Ok(ok(json!({"status": "success", "message": "messages read successfully", "messages": messages})))
}

async fn latest_offset(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let offset = s.engine.streams.latest_offset(&path, t.partition()?).await?;
    Ok(ok(json!({"status": "success", "message": "latest offset retrieved successfully", "offset": offset})))
}

async fn stats(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let partition = t.partition()?;
    let latest = s.engine.streams.latest_offset(&path, partition).await?;
    observe::stream_stats_read(&s, &path, partition, latest);
    Ok(ok(json!({
        "status": "success",
        "message": "stream statistics retrieved successfully",
        "stats": {"latest_offset": latest},
    })))
}

async fn groups(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let groups = s.engine.streams.list_groups(&path).await?;
    for g in &groups {
        observe::group_state(&s, &path, g);
    }
    let groups: Vec<_> = groups.into_iter().map(json::group_entry).collect();
    Ok(ok(json!({
        "status": "success",
        "message": "consumer groups retrieved successfully",
        "consumer_groups": groups,
    })))
}

/// The `{group}` segment, with the same rules as gRPC's `consumer_group` (non-empty, no `/`: D22).
fn group(t: &Target) -> Result<&str, ApiError> {
    let g = t.segment("group");
    check_consumer_group(g)?;
    Ok(g)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CommitBody {
    offset: i64,
}

async fn commit_offset(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(STREAM)?;
    let group = group(&t)?;
    let partition = t.partition()?;
    let req: CommitBody = body.required()?;
    s.engine.streams.commit_offset(&path, group, partition, req.offset).await?;
    observe::offset_committed(&s, &path, group, partition, req.offset);
    Ok(ok(json!({"status": "success", "message": "offset committed successfully"})))
}

async fn committed_offset(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let group = group(&t)?;
    let offset = s.engine.streams.committed_offset(&path, group, t.partition()?).await?;
    Ok(ok(json!({"status": "success", "message": "offset retrieved successfully", "offset": offset})))
}

async fn group_state(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(STREAM)?;
    let group = group(&t)?;
    let state = s.engine.streams.group_state(&path, group, t.partition()?).await?;
    observe::group_state(&s, &path, &state);
    Ok(ok(json!({
        "status": "success",
        "message": "consumer group state retrieved successfully",
        "state": json::group_state(state),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_are_told_apart_from_unknown_ones() {
        let short = |m: Method, p: &str| short_path(&m, p).map(|e| e.0.message);
        assert_eq!(
            short(Method::POST, "/api/v1/streams/t1/ns1/events").as_deref(),
            Some(
                "invalid resource path '/api/v1/streams/t1/ns1/events': path must include tenant, namespace, and name"
            )
        );
        assert!(short(Method::GET, "/api/v1/streams/t1//messages").is_some(), "empty segments are skipped");
        assert!(short(Method::GET, "/api/v1/streams/offsets/latest").is_some());
        assert!(short(Method::POST, "/api/v1/streams/t1/consumer-groups/g/offsets").is_some());
        assert!(short(Method::GET, "/api/v1/streams/ns1/consumer-groups/g/state").is_some());
        // The wrong method, no route tail, or a full path that matched nothing: an ordinary 404.
        assert!(short(Method::GET, "/api/v1/streams/t1/ns1/events").is_none());
        assert!(short(Method::GET, "/api/v1/streams/t1/ns1").is_none());
        assert!(short(Method::GET, "/api/v1/streams/t1/ns1/s/events/x").is_none());
        assert!(short(Method::POST, "/api/v1/queues/t1/ns1/jobs").is_none());
    }
}
