//! The eight replay-session routes under `/api/v1/replay/sessions` (compat/flowmesh.md §5.7), over the engine's
//! `Replays`, with D19's answers (create and get-one send the session plus a `session` member holding it).
//!
//! Two things differ from gRPC. JSON can leave a field out, so an absent bound is "not set" (an absent `end_offset`
//! is open-ended, not "stop after offset 0"). And the statuses: FlowMesh answers every state error of these routes
//! with 400, while the listener's one mapping sends FAILED_PRECONDITION to 412 (what a NACK past its attempts
//! answers, §5.4); [`state_error`] turns FAILED_PRECONDITION into 400 here and only here (D13).
//!
//! The `replay.session` events of §5.8 come from two places: the engine tells `observe::follow_replays` about every
//! stored change (start, pause, resume, stop, delete, and the replay task's progress and end, whichever transport or
//! task made them), and get-one, which changes nothing, publishes through `observe::replay_read`.

use super::errors::ApiError;
use super::json::{self, encode, ok};
use super::request::{Body, Target};
use crate::observe;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use herald_engine::replay::{NewReplay, ReplayEnd, ReplayStart, Replays};
use herald_types::{ErrorCode, HeraldError, ResourceKind, ResourcePath};
use serde::Deserialize;
use serde_json::json;

const SESSIONS: &str = "/api/v1/replay/sessions";

pub fn routes() -> Router<AppState> {
    let at = |suffix: &str| format!("{SESSIONS}{suffix}");
    Router::new()
        .route(SESSIONS, post(create).get(list))
        .route(&at("/"), post(create).get(list))
        .route(&at("/{id}"), get(get_one).delete(delete))
        .route(&at("/{id}/start"), post(start))
        .route(&at("/{id}/pause"), post(pause))
        .route(&at("/{id}/resume"), post(resume))
        .route(&at("/{id}/stop"), post(stop))
}

type Answer = Result<Response, ApiError>;

/// D13 on these routes: an illegal transition and "is not active" / "is already active" are 400, as FlowMesh
/// answers its state errors here; everything else keeps the listener's one mapping (404 for unknown sessions).
fn state_error(e: HeraldError) -> ApiError {
    if e.code == ErrorCode::FailedPrecondition {
        return ApiError(HeraldError::new(ErrorCode::InvalidArgument, e.message));
    }
    ApiError(e)
}

fn replays(s: &AppState) -> &dyn Replays {
    s.engine.replays.as_ref()
}

/// The create body. Every bound is optional: absent means "not set" (§5.7).
#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateBody {
    start_offset: Option<i64>,
    start_timestamp: Option<i64>,
    end_offset: Option<i64>,
    end_timestamp: Option<i64>,
    sandbox_consumer_group: String,
}

/// `?stream=tenant/namespace/name` (exactly three parts), checked like any stream path.
fn stream_param(t: &Target) -> Result<ResourcePath, ApiError> {
    let stream = t.query("stream").ok_or_else(|| ApiError::invalid("stream query parameter is required"))?;
    let parts: Vec<&str> = stream.split('/').collect();
    let [tenant, namespace, name] = parts[..] else {
        return Err(ApiError::invalid("invalid stream format, expected tenant/namespace/name"));
    };
    Ok(ResourcePath::new(tenant, namespace, ResourceKind::Stream, name)?)
}

async fn create(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = stream_param(&t)?;
    let req: CreateBody = body.required()?;
    // The gRPC order: the group's presence before the bounds (the engine checks the rest).
    if req.sandbox_consumer_group.is_empty() {
        return Err(ApiError::invalid("sandbox_consumer_group is required"));
    }
    // An absent offset is passed as −1 and an absent time as 0, which the contract's rules read as "not set".
    let start = ReplayStart::from_fields(req.start_offset.unwrap_or(-1), req.start_timestamp.unwrap_or(0))?;
    let end = ReplayEnd::from_fields(req.end_offset.unwrap_or(-1), req.end_timestamp.unwrap_or(0));
    let spec = NewReplay { start, end, sandbox_group: req.sandbox_consumer_group };
    let session = replays(&s).create(&path, spec).await?;
    Ok(encode(StatusCode::CREATED, &json::replay_session_superset(&session)))
}

/// `?stream=` compared with each session's full path; `tenant/namespace/name` (what the web UI sends) is read as
/// `tenant/namespace/stream/name` (D19). Like FlowMesh's, the filter is a plain comparison: a value of any other
/// shape matches nothing rather than failing.
async fn list(State(s): State<AppState>, t: Target) -> Answer {
    let wanted = t.query("stream").map(|f| match f.split('/').collect::<Vec<_>>()[..] {
        [tenant, namespace, name] => format!("{tenant}/{namespace}/stream/{name}"),
        _ => f.to_owned(),
    });
    let sessions = replays(&s).list(None).await?;
    let sessions: Vec<_> =
        sessions.iter().filter(|x| wanted.as_ref().is_none_or(|w| *w == x.stream)).map(json::replay_session).collect();
    Ok(ok(json!({"status": "success", "sessions": sessions})))
}

/// The `{id}` segment (never empty: the route needs a segment there).
fn id(t: &Target) -> &str {
    t.segment("id")
}

async fn get_one(State(s): State<AppState>, t: Target) -> Answer {
    let session = replays(&s).get(id(&t)).await?;
    observe::replay_read(&s, &session);
    Ok(ok(json::replay_session_superset(&session)))
}

async fn start(State(s): State<AppState>, t: Target) -> Answer {
    replays(&s).start(id(&t)).await.map_err(state_error)?;
    Ok(ok(json!({"status": "success", "message": "replay started successfully"})))
}

async fn pause(State(s): State<AppState>, t: Target) -> Answer {
    replays(&s).pause(id(&t)).await.map_err(state_error)?;
    Ok(ok(json!({"status": "success", "message": "replay paused successfully"})))
}

async fn resume(State(s): State<AppState>, t: Target) -> Answer {
    replays(&s).resume(id(&t)).await.map_err(state_error)?;
    Ok(ok(json!({"status": "success", "message": "replay resumed successfully"})))
}

async fn stop(State(s): State<AppState>, t: Target) -> Answer {
    replays(&s).stop(id(&t)).await.map_err(state_error)?;
    Ok(ok(json!({"status": "success", "message": "replay stopped successfully"})))
}

async fn delete(State(s): State<AppState>, t: Target) -> Answer {
    replays(&s).delete(id(&t)).await.map_err(state_error)?;
    Ok(ok(json!({"status": "success", "message": "replay session deleted successfully"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_state_errors_become_400() {
        let e = state_error(HeraldError::failed_precondition("replay session x is not active"));
        assert_eq!((e.0.code, e.0.message.as_str()), (ErrorCode::InvalidArgument, "replay session x is not active"));
        assert_eq!(state_error(HeraldError::not_found("replay session not found: x")).0.code, ErrorCode::NotFound);
    }
}
