//! `POST /api/v1/messages` and `/api/v1/messages/bulk` (contract §2.4, §4.4): validate, rate-limit, get-or-create
//! the topic, check the idempotency key, store, fan out (the engine does both under the topic's order), answer.

use super::caller::{Caller, ClientIp};
use super::limits::Limited;
use super::validate::{self as v, Body};
use super::wire::{ApiError, ApiResult, json_response, live_frame, z_form};
use super::{Ctx, RelayCtx};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use herald_engine::relay::api::{IdemClaim, IdemEndpoint, RelayMessageIn};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a repeat waits for the first request holding its idempotency key (§4.4: bounded).
const IDEM_WAIT: Duration = Duration::from_secs(30);

/// One validated `Message` (§1.4). `ttl` is validated and ignored, as in the reference.
pub struct MessageIn {
    pub topic: String,
    pub payload: String,
    pub metadata: Option<String>,
}

/// Validates a `Message` object at `loc`, appending every problem to `errors`.
fn message(raw: &RawValue, loc: &[Value], errors: &mut Vec<Value>) -> Option<MessageIn> {
    let at = |field: &str| {
        let mut l = loc.to_vec();
        l.push(json!(field));
        l
    };
    let b = match Body::parse(raw.get().as_bytes()) {
        Ok(b) => b,
        Err(_) => {
            errors.push(v::err(
                "model_attributes_type",
                loc,
                "Input should be a valid dictionary or object to extract fields from",
                serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            ));
            return None;
        }
    };
    let whole = b.whole();
    let before = errors.len();
    let topic = match b.get("topic") {
        None => {
            errors.push(v::missing(&at("topic"), &whole));
            None
        }
        Some(r) => v::topic(r, &at("topic")).map_err(|e| errors.push(e)).ok(),
    };
    let payload = match b.get("payload") {
        None => {
            errors.push(v::missing(&at("payload"), &whole));
            None
        }
        Some(r) => v::object_text(r, &at("payload")).map_err(|e| errors.push(e)).ok(),
    };
    if let Some(r) = b.get("ttl").filter(|r| r.get().trim() != "null") {
        match v::integer(r, &at("ttl")) {
            Err(e) => errors.push(e),
            Ok(n) if n <= 0 => errors.push(v::err_ctx(
                "greater_than",
                &at("ttl"),
                "Input should be greater than 0",
                serde_json::from_str(r.get()).unwrap_or(Value::Null),
                json!({"gt": 0}),
            )),
            Ok(_) => {}
        }
    }
    let metadata = match b.get("metadata") {
        None => None,
        Some(r) => match v::metadata(r, &at("metadata")) {
            Ok(m) => m,
            Err(e) => {
                errors.extend(e);
                None
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    Some(MessageIn { topic: topic?, payload: payload?, metadata })
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string).filter(|k| !k.is_empty())
}

/// The reference answers 500 here [DEFECT]; the contract asks for 422 and nothing stored.
fn wrong_endpoint() -> ApiError {
    ApiError::detail(StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key was used for a different endpoint")
}

/// What to do about an idempotency key: process the request, or answer with a stored body.
enum Idem {
    Process(Option<String>),
    Replay(Bytes),
}

async fn claim(ctx: &RelayCtx, user: &str, key: Option<String>, endpoint: IdemEndpoint) -> ApiResult<Idem> {
    let Some(key) = key else { return Ok(Idem::Process(None)) };
    match ctx.relay.idem_claim(user, &key, endpoint).await? {
        IdemClaim::Claimed => Ok(Idem::Process(Some(key))),
        IdemClaim::Done { endpoint: e, .. } | IdemClaim::InFlight { endpoint: e } if e != endpoint => {
            Err(wrong_endpoint())
        }
        IdemClaim::Done { body, .. } => Ok(Idem::Replay(body)),
        IdemClaim::InFlight { .. } => {
            // The reference stores a second copy here [DEFECT]; Herald waits for the first request's answer.
            match ctx.relay.idem_wait(user, &key, IDEM_WAIT).await? {
                Some(body) => Ok(Idem::Replay(body)),
                None => match ctx.relay.idem_claim(user, &key, endpoint).await? {
                    IdemClaim::Done { body, .. } => Ok(Idem::Replay(body)),
                    _ => Ok(Idem::Process(None)),
                },
            }
        }
    }
}

pub async fn single(
    State(ctx): State<Ctx>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require("write")?;
    // Whole-body problems (no body, malformed JSON, not an object) first, in FastAPI's shapes.
    Body::parse(&body)?;
    let raw = serde_json::from_slice::<&RawValue>(&body).map_err(|_| ApiError::Internal)?;
    let mut errors = Vec::new();
    let msg = message(raw, &[json!("body")], &mut errors);
    let Some(msg) = msg.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    ctx.limiter.hit(Limited::Publish, ip).map_err(ApiError::RateLimited)?;
    let owner = caller.id();
    ctx.relay
        .get_or_create_topic(owner, &msg.topic, &format!("Auto-created topic by {}", caller.user.username))
        .await?;
    let key = match claim(&ctx, owner, idempotency_key(&headers), IdemEndpoint::Single).await? {
        Idem::Replay(body) => return Ok(json_response(StatusCode::CREATED, body)),
        Idem::Process(key) => key,
    };
    let started = Instant::now();
    let input = RelayMessageIn { payload: Bytes::from(msg.payload), metadata: msg.metadata.map(Bytes::from) };
    let stored = match ctx.relay.publish(owner, &msg.topic, vec![input], &live_frame).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(k) = &key {
                let _ = ctx.relay.idem_abandon(owner, k).await;
            }
            return Err(e.into());
        }
    };
    let label = format!("{owner}/{}", msg.topic);
    ctx.metrics.latency.with_label_values(&[&label]).observe(started.elapsed().as_secs_f64());
    ctx.metrics.received.with_label_values(&[&label]).inc();
    ctx.metrics.published.inc();
    let m = stored.first().ok_or(ApiError::Internal)?;
    let out = Bytes::from(
        serde_json::to_vec(
            &json!({"message_id": m.id.to_string(), "topic": msg.topic, "timestamp": z_form(m.timestamp)}),
        )
        .unwrap_or_default(),
    );
    if let Some(k) = &key {
        ctx.relay.idem_complete(owner, k, out.clone()).await?;
    }
    Ok(json_response(StatusCode::CREATED, out))
}

pub async fn bulk(
    State(ctx): State<Ctx>,
    caller: Caller,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require("write")?;
    let b = Body::parse(&body)?;
    let loc = [json!("body"), json!("messages")];
    let raw = b.get("messages").ok_or_else(|| ApiError::one(v::missing(&loc, &b.whole())))?;
    let items = v::list(raw, &loc, 1, 100).map_err(ApiError::one)?;
    let mut errors = Vec::new();
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let l = [json!("body"), json!("messages"), json!(i)];
        if let Some(m) = message(item, &l, &mut errors) {
            messages.push(m);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    ctx.limiter.hit(Limited::Bulk, ip).map_err(ApiError::RateLimited)?;
    let owner = caller.id();
    let description = format!("Auto-created topic by {}", caller.user.username);
    let mut seen: Vec<&str> = Vec::new();
    for m in &messages {
        if !seen.contains(&m.topic.as_str()) {
            seen.push(&m.topic);
            ctx.relay.get_or_create_topic(owner, &m.topic, &description).await?;
        }
    }
    let key = match claim(&ctx, owner, idempotency_key(&headers), IdemEndpoint::Bulk).await? {
        Idem::Replay(body) => return Ok(json_response(StatusCode::MULTI_STATUS, body)),
        Idem::Process(key) => key,
    };
    // Store in array order; consecutive items of one topic go to the engine as one batch.
    let mut results = Vec::with_capacity(messages.len());
    let mut accepted = 0usize;
    let mut i = 0;
    while i < messages.len() {
        let topic = messages[i].topic.clone();
        let mut j = i;
        let mut run = Vec::new();
        while j < messages.len() && messages[j].topic == topic {
            let m = &messages[j];
            run.push(RelayMessageIn {
                payload: Bytes::from(m.payload.clone()),
                metadata: m.metadata.clone().map(Bytes::from),
            });
            j += 1;
        }
        let n = run.len();
        match ctx.relay.publish(owner, &topic, run, &live_frame).await {
            Ok(stored) => {
                for m in stored {
                    accepted += 1;
                    results.push(
                        json!({"message_id": m.id.to_string(), "topic": topic, "status": "accepted", "error": null}),
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e.message, "relay bulk item failed to store");
                for _ in 0..n {
                    results.push(json!({"message_id": null, "topic": topic, "status": "rejected", "error": e.message}));
                }
            }
        }
        i = j;
    }
    ctx.metrics.published.inc_by(accepted as u64);
    let total = results.len();
    let out = Bytes::from(
        serde_json::to_vec(&json!({
            "results": results,
            "summary": {"total": total, "accepted": accepted, "rejected": total - accepted},
        }))
        .unwrap_or_default(),
    );
    if let Some(k) = &key {
        ctx.relay.idem_complete(owner, k, out.clone()).await?;
    }
    Ok(json_response(StatusCode::MULTI_STATUS, out))
}
