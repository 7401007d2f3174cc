//! `/api/v1/topics*` (contract §2.5, §2.6): topics in the caller's own namespace, and their history.

use super::caller::Caller;
use super::validate::{self as v, Body, err_ctx};
use super::wire::{ApiError, ApiResult, history_item, json_response, json_value, z_form};
use super::{Ctx, RelayCtx};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use herald_engine::relay::api::{HistoryOrder, RelayId, RelayTopic};
use serde_json::{Value, json};

pub fn topic_public(t: &RelayTopic) -> Value {
    json!({
        "topic_id": t.topic_id,
        "topic_name": t.topic_name,
        "owner_id": t.owner_id,
        "created_at": z_form(t.created_at),
        "description": t.description,
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Topic '{name}' not found"))
}

/// `description`: string of at most 500 characters, or null.
fn description(b: &Body<'_>, errors: &mut Vec<Value>) -> Option<String> {
    let raw = b.get("description")?;
    if raw.get().trim() == "null" {
        return None;
    }
    let loc = [json!("body"), json!("description")];
    match v::string(raw, &loc) {
        Err(e) => {
            errors.push(e);
            None
        }
        Ok(s) if s.chars().count() > 500 => {
            errors.push(err_ctx(
                "string_too_long",
                &loc,
                "String should have at most 500 characters",
                json!(s),
                json!({"max_length": 500}),
            ));
            None
        }
        Ok(s) => Some(s),
    }
}

pub async fn create(State(ctx): State<Ctx>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require("write")?;
    let b = Body::parse(&body)?;
    let mut errors = Vec::new();
    let name = match b.get("topic_name") {
        None => {
            errors.push(v::missing(&[json!("body"), json!("topic_name")], &b.whole()));
            None
        }
        Some(r) => v::topic(r, &[json!("body"), json!("topic_name")]).map_err(|e| errors.push(e)).ok(),
    };
    let desc = description(&b, &mut errors);
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let topic = ctx.relay.create_topic(caller.id(), &name, desc).await?;
    Ok(json_value(StatusCode::CREATED, &topic_public(&topic)))
}

pub async fn list(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    let topics: Vec<Value> = ctx.relay.topics(caller.id()).await?.iter().map(topic_public).collect();
    Ok(json_value(StatusCode::OK, &Value::Array(topics)))
}

pub async fn stats(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    caller.require("admin")?;
    Ok(json_value(StatusCode::OK, &json!({"total_topics": ctx.relay.topic_count().await?})))
}

async fn require_topic(ctx: &RelayCtx, owner: &str, name: &str) -> ApiResult<RelayTopic> {
    ctx.relay.topic(owner, name).await?.ok_or_else(|| not_found(name))
}

pub async fn get(State(ctx): State<Ctx>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    let t = require_topic(&ctx, caller.id(), &name).await?;
    Ok(json_value(StatusCode::OK, &topic_public(&t)))
}

async fn do_update(ctx: &RelayCtx, caller: &Caller, name: &str, body: &Bytes) -> ApiResult<Response> {
    require_topic(ctx, caller.id(), name).await?;
    let b = Body::parse(body)?;
    let mut errors = Vec::new();
    let desc = description(&b, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let t = ctx.relay.update_topic(caller.id(), name, desc).await?;
    Ok(json_value(StatusCode::OK, &topic_public(&t)))
}

pub async fn update(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    do_update(&ctx, &caller, &name, &body).await
}

pub async fn update_stats(State(ctx): State<Ctx>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    do_update(&ctx, &caller, "stats", &body).await
}

async fn do_delete(ctx: &RelayCtx, caller: &Caller, name: &str) -> ApiResult<Response> {
    if !ctx.relay.delete_topic(caller.id(), name).await? {
        return Err(not_found(name));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete(State(ctx): State<Ctx>, caller: Caller, Path(name): Path<String>) -> ApiResult<Response> {
    do_delete(&ctx, &caller, &name).await
}

pub async fn delete_stats(State(ctx): State<Ctx>, caller: Caller) -> ApiResult<Response> {
    do_delete(&ctx, &caller, "stats").await
}

/// Query parameters, parsed by hand so that a bad `limit` gets FastAPI's 422 shape.
fn query_params(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()).unwrap_or_default()
}

pub async fn history(
    State(ctx): State<Ctx>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = query_params(query.as_deref());
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let limit = match get("limit") {
        None => 10,
        Some(s) => s.trim().parse::<i64>().map_err(|_| {
            ApiError::one(v::err(
                "int_parsing",
                &[json!("query"), json!("limit")],
                "Input should be a valid integer, unable to parse string as an integer",
                json!(s),
            ))
        })?,
    };
    let order_text = get("order").unwrap_or("desc").to_string();
    let cursor_text = get("cursor").map(str::to_string);
    require_topic(&ctx, caller.id(), &name).await?;
    let order = match order_text.as_str() {
        "desc" => HistoryOrder::Desc,
        "asc" => HistoryOrder::Asc,
        _ => return Err(ApiError::bad_request("Order must be 'asc' or 'desc'")),
    };
    if limit < 1 {
        return Err(ApiError::bad_request("Limit must be at least 1"));
    }
    let limit = limit.min(100) as usize;
    let cursor = match &cursor_text {
        None => None,
        Some(c) => Some(c.parse::<RelayId>().map_err(|_| ApiError::bad_request("Invalid cursor"))?),
    };
    let messages = ctx.relay.history(caller.id(), &name, order, cursor, limit).await?;
    let mut out = String::with_capacity(128 + messages.iter().map(|m| m.payload.len() + 160).sum::<usize>());
    out.push_str("{\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        history_item(&mut out, &name, m);
    }
    let next = messages.last().map(|m| m.id.to_string());
    let tail = json!({
        "total": messages.len(),
        "limit": limit,
        "order": order_text,
        "cursor": cursor_text,
        "next_cursor": next,
    });
    // Splice the rest of the object after the hand-built list, keeping the contract's key order.
    let tail = serde_json::to_string(&tail).unwrap_or_else(|_| "{}".into());
    out.push_str("],");
    out.push_str(&tail[1..]);
    Ok(json_response(StatusCode::OK, out))
}
