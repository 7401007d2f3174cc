//! The eleven queue routes under `/api/v1/queues` (compat/flowmesh.md §5.4), over the engine's `Queues`. Routing
//! is exact, so ACK, NACK and DLQ replay reach their own handlers rather than FlowMesh's enqueue (D16).

use super::errors::ApiError;
use super::json::{self, ok};
use super::request::{Body, HeadersField, Target, bytes_field, headers_field};
use super::resource_list;
use crate::grpc::flowmesh::{long_poll, receive_until_shutdown};
use crate::observe;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use herald_engine::{ReceiveOptions, RetryPolicy};
use herald_types::ResourceKind;
use serde::Deserialize;
use serde_json::json;
use std::time::Instant;

const QUEUE: ResourceKind = ResourceKind::Queue;
const BASE: &str = "/api/v1/queues/{tenant}/{namespace}/{name}";
/// `GET .../dlq/jobs` lists at most this many, whatever `max_jobs` says (§5.4).
const MAX_DLQ_LISTING: i64 = 100;

pub fn routes() -> Router<AppState> {
    let at = |suffix: &str| format!("{BASE}{suffix}");
    Router::new()
        .route("/api/v1/queues", get(list))
        .route("/api/v1/queues/", get(list))
        .route(&at("/jobs"), post(enqueue))
        .route(&at("/reserve"), post(reserve))
        .route(&at("/receive"), post(receive))
        .route(&at("/jobs/{job_id}/ack"), post(ack))
        .route(&at("/jobs/{job_id}/nack"), post(nack))
        .route(&at("/stats"), get(stats))
        .route(&at("/retry-policy"), get(get_retry_policy).put(set_retry_policy))
        .route(&at("/dlq/jobs"), get(list_dlq))
        .route(&at("/dlq/jobs/{job_id}/replay"), post(replay_dlq))
}

type Answer = Result<Response, ApiError>;

async fn list(State(s): State<AppState>, t: Target) -> Answer {
    let queues = resource_list(&s, QUEUE, &t).await?;
    Ok(ok(json!({"status": "success", "message": "queues retrieved successfully", "queues": queues})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EnqueueBody {
    payload: Option<String>,
    delay_seconds: i64,
    headers: HeadersField,
}

async fn enqueue(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(QUEUE)?;
    let req: EnqueueBody = body.required()?;
    let payload = bytes_field(req.payload)?;
    // The engine checks `payload cannot be empty` and `delay_seconds cannot be negative`, as for gRPC.
    let started = Instant::now();
    let (job_id, seq) = s.engine.queues.enqueue(&path, payload, req.delay_seconds, headers_field(req.headers)).await?;
    observe::enqueued(&s, &path, seq, started.elapsed()).await;
    Ok(ok(json!({"status": "success", "message": "job enqueued successfully", "job_id": job_id, "seq": seq})))
}

/// The optional body of `reserve` and `receive`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ReceiveBody {
    max_jobs: i64,
    visibility_timeout_seconds: i64,
    long_poll_timeout_seconds: i64,
}

/// Body values overridden by the query's `visibility_timeout` and `long_poll_timeout` (and `max_jobs` for receive)
/// whenever those parse as integers.
fn receive_options(t: &Target, body: &Body, max_jobs_from_query: bool) -> Result<ReceiveOptions, ApiError> {
    let b: ReceiveBody = body.optional()?;
    let max_jobs = if max_jobs_from_query { t.int_override("max_jobs").unwrap_or(b.max_jobs) } else { 1 };
    let visibility = t.int_override("visibility_timeout").unwrap_or(b.visibility_timeout_seconds);
    let poll = t.int_override("long_poll_timeout").unwrap_or(b.long_poll_timeout_seconds);
    Ok(ReceiveOptions {
        // The engine clamps to 1..=100 (§3.4); the clamp here only keeps an i64 from wrapping into range.
        max_jobs: max_jobs.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        visibility_timeout_seconds: visibility,
        long_poll: long_poll(poll),
    })
}

async fn reserve(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(QUEUE)?;
    let options = receive_options(&t, &body, false)?;
    let started = Instant::now();
    let job = receive_until_shutdown(&s, &path, options).await?.into_iter().next();
    observe::reserved(&s, &path, job.as_ref(), started.elapsed());
    // D1: an empty queue is a normal answer without a `job` key.
    Ok(ok(match job {
        Some(j) => json!({"status": "success", "message": "job reserved successfully", "job": json::job(j)}),
        None => json!({"status": "success", "message": "no jobs available"}),
    }))
}

async fn receive(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(QUEUE)?;
    let options = receive_options(&t, &body, true)?;
    let jobs = receive_until_shutdown(&s, &path, options).await?;
    Ok(ok(json!({"status": "success", "message": "jobs received successfully", "jobs": json::jobs(jobs)})))
}

/// The `{job_id}` segment of ack, nack and DLQ replay. The router matches an empty segment there
/// (`.../jobs//ack`), which is the HTTP form of an empty `job_id`: refused with gRPC's text (§3.4) rather than
/// acknowledged as an unknown id.
fn job_id(t: &Target) -> Result<&str, ApiError> {
    match t.segment("job_id") {
        "" => Err(ApiError::invalid("job_id is required")),
        id => Ok(id),
    }
}

async fn ack(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(QUEUE)?;
    s.engine.queues.ack(&path, job_id(&t)?).await?;
    observe::acked(&s, &path).await;
    Ok(ok(json!({"status": "success", "message": "job acknowledged successfully"})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NackBody {
    delay_seconds: i64,
}

async fn nack(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(QUEUE)?;
    let id = job_id(&t)?;
    let req: NackBody = body.optional()?;
    // A negative delay means "use the backoff", as over gRPC (§3.4). Exhausted attempts answer 412, after the
    // dead-lettering was observed (the call fails, yet both queues changed).
    let nacked = s.engine.queues.nack(&path, id, req.delay_seconds.max(0)).await;
    observe::nacked(&s, &path, &nacked).await;
    nacked?;
    Ok(ok(json!({"status": "success", "message": "job NACKed successfully"})))
}

async fn stats(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(QUEUE)?;
    let stats = s.engine.queues.stats(&path).await?;
    observe::queue_stats_read(&s, &path, &stats);
    Ok(ok(json!({
        "status": "success",
        "message": "queue statistics retrieved successfully",
        "stats": json::stats(stats),
    })))
}

/// The flat RetryPolicy body; absent fields are zero, which the engine's checks then reject with their texts.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PolicyBody {
    max_attempts: i32,
    initial_backoff_seconds: i64,
    max_backoff_seconds: i64,
    backoff_multiplier: f64,
    backoff_strategy: String,
}

async fn set_retry_policy(State(s): State<AppState>, t: Target, body: Body) -> Answer {
    let path = t.resource(QUEUE)?;
    let p: PolicyBody = body.required()?;
    let policy = RetryPolicy {
        max_attempts: p.max_attempts,
        initial_backoff_seconds: p.initial_backoff_seconds,
        max_backoff_seconds: p.max_backoff_seconds,
        backoff_multiplier: p.backoff_multiplier,
        backoff_strategy: p.backoff_strategy,
    };
    s.engine.queues.set_retry_policy(&path, policy).await?;
    Ok(ok(json!({"status": "ok", "message": "retry policy set successfully"})))
}

async fn get_retry_policy(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(QUEUE)?;
    let policy = s.engine.queues.retry_policy(&path).await?;
    Ok(ok(json!({"status": "ok", "policy": json::policy(policy)})))
}

async fn list_dlq(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(QUEUE)?;
    // Non-integer or non-positive values are ignored (§5.4).
    let max = t.int_override("max_jobs").filter(|m| *m > 0).map_or(MAX_DLQ_LISTING, |m| m.min(MAX_DLQ_LISTING));
    let jobs = s.engine.queues.list_dlq(&path, max as i32).await?;
    Ok(ok(json!({"status": "ok", "jobs": json::jobs(jobs)})))
}

async fn replay_dlq(State(s): State<AppState>, t: Target) -> Answer {
    let path = t.resource(QUEUE)?;
    let (job_id, seq) = s.engine.queues.replay_dlq(&path, job_id(&t)?).await?;
    observe::dlq_replayed(&s, &path, seq).await;
    Ok(ok(json!({"status": "ok", "message": "job replayed successfully", "job_id": job_id, "seq": seq})))
}
