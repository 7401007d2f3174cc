//! Long-poll (contract §2.7, §2.8, §4.3): an immediate catch-up from storage when the request carries cursors,
//! otherwise a waiter on the topics' router subjects until the first live message or the timeout.

use super::caller::Caller;
use super::validate::{self as v, Body};
use super::wire::{ApiError, ApiResult, catchup_item, json_response, json_value};
use super::{Ctx, RelayCtx};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use herald_engine::pubsub::{Delivery, Published, Subscriber};
use herald_engine::relay::api::RelayId;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Catch-up reads at most this many messages per topic; `has_more` is true when a response holds this many.
const CATCHUP_LIMIT: usize = 100;
/// A waiter keeps at most this many live messages; more are dropped for it.
const WAITER_QUEUE: usize = 1024;
/// Concurrent waiters per user (per process).
const WAITERS_PER_USER: usize = 50;

/// Who is waiting, for the cap and `/messages/poll/stats`.
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<WaiterCounts>,
}

#[derive(Default)]
struct WaiterCounts {
    per_user: HashMap<String, usize>,
    per_topic: HashMap<String, usize>,
    total: usize,
}

/// A registered waiter; unregisters itself when dropped (also when the client goes away mid-wait).
struct Registration<'a> {
    waiters: &'a Waiters,
    user: String,
    topics: Vec<String>,
}

impl Waiters {
    fn register(&self, user: &str, topics: Vec<String>) -> Option<Registration<'_>> {
        let mut c = self.inner.lock();
        let n = c.per_user.entry(user.to_string()).or_insert(0);
        if *n >= WAITERS_PER_USER {
            return None;
        }
        *n += 1;
        c.total += 1;
        for t in &topics {
            *c.per_topic.entry(t.clone()).or_insert(0) += 1;
        }
        Some(Registration { waiters: self, user: user.to_string(), topics })
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut c = self.waiters.inner.lock();
        c.total -= 1;
        if let Some(n) = c.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.per_user.remove(&self.user);
            }
        }
        for t in &self.topics {
            if let Some(n) = c.per_topic.get_mut(t) {
                *n -= 1;
                if *n == 0 {
                    c.per_topic.remove(t);
                }
            }
        }
    }
}

/// A waiter's queue: the router appends live frames, the request takes them.
struct Sink {
    queue: Mutex<VecDeque<Bytes>>,
    notify: Notify,
}

impl Subscriber for Sink {
    fn origin(&self) -> u64 {
        0
    }

    fn deliver(&self, _sid: &Bytes, msg: &Published<'_>) -> Delivery {
        let mut q = self.queue.lock();
        if q.len() >= WAITER_QUEUE {
            return Delivery::Refused;
        }
        q.push_back(msg.body.clone());
        drop(q);
        self.notify.notify_one();
        Delivery::Taken
    }
}

struct PollRequest {
    topics: Vec<String>,
    since: Option<Vec<(String, String)>>,
    timeout: u64,
}

fn parse(body: &[u8]) -> ApiResult<PollRequest> {
    let b = Body::parse(body)?;
    let mut errors = Vec::new();
    let loc = [json!("body"), json!("topics")];
    let mut topics = Vec::new();
    match b.get("topics") {
        None => errors.push(v::missing(&loc, &b.whole())),
        Some(raw) => match v::list(raw, &loc, 1, 20) {
            Err(e) => errors.push(e),
            Ok(items) => {
                for (i, item) in items.iter().enumerate() {
                    match v::topic(item, &[json!("body"), json!("topics"), json!(i)]) {
                        Ok(t) => topics.push(t),
                        Err(e) => errors.push(e),
                    }
                }
            }
        },
    }
    let mut since = None;
    if let Some(raw) = b.get("since").filter(|r| r.get().trim() != "null") {
        let sloc = [json!("body"), json!("since")];
        match v::object_pairs(raw) {
            Some(pairs) => {
                let mut out = Vec::new();
                for (k, val) in pairs {
                    match v::string(val, &[json!("body"), json!("since"), json!(k.clone())]) {
                        Ok(s) => out.push((k, s)),
                        Err(e) => errors.push(e),
                    }
                }
                since = Some(out);
            }
            None => errors.push(v::err(
                "dict_type",
                &sloc,
                "Input should be a valid dictionary",
                serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            )),
        }
    }
    let mut timeout = 30;
    if let Some(raw) = b.get("timeout") {
        let tloc = [json!("body"), json!("timeout")];
        match v::integer(raw, &tloc) {
            Err(e) => errors.push(e),
            Ok(n) if n < 1 => errors.push(v::err_ctx(
                "greater_than_equal",
                &tloc,
                "Input should be greater than or equal to 1",
                json!(n),
                json!({"ge": 1}),
            )),
            Ok(n) if n > 60 => errors.push(v::err_ctx(
                "less_than_equal",
                &tloc,
                "Input should be less than or equal to 60",
                json!(n),
                json!({"le": 60}),
            )),
            Ok(n) => timeout = n as u64,
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(PollRequest { topics, since, timeout })
}

async fn catch_up(
    ctx: &RelayCtx,
    owner: &str,
    req: &PollRequest,
    since: &[(String, String)],
) -> ApiResult<Option<Response>> {
    let mut out = String::from("{\"messages\":[");
    let mut count = 0usize;
    for topic in &req.topics {
        // A topic without a cursor replays from the oldest retained message [QUIRK, §2.7].
        let after = match since.iter().rev().find(|(k, _)| k == topic) {
            None => None,
            Some((_, id)) => Some(id.parse::<RelayId>().map_err(|_| ApiError::bad_request("Invalid since cursor"))?),
        };
        for m in ctx.relay.read_after(owner, topic, after, CATCHUP_LIMIT).await? {
            if count > 0 {
                out.push(',');
            }
            catchup_item(&mut out, topic, &m);
            count += 1;
        }
    }
    if count == 0 {
        return Ok(None);
    }
    out.push_str(if count >= CATCHUP_LIMIT { "],\"has_more\":true}" } else { "],\"has_more\":false}" });
    Ok(Some(json_response(StatusCode::OK, out)))
}

pub async fn poll(State(ctx): State<Ctx>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require("read")?;
    let req = parse(&body)?;
    let owner = caller.id().to_string();
    if let Some(since) = req.since.as_ref().filter(|s| !s.is_empty())
        && let Some(resp) = catch_up(&ctx, &owner, &req, since).await?
    {
        return Ok(resp);
    }

    let mut distinct: Vec<String> = Vec::new();
    for t in &req.topics {
        if !distinct.contains(t) {
            distinct.push(t.clone());
        }
    }
    let keys: Vec<String> = distinct.iter().map(|t| format!("{owner}/{t}")).collect();
    let Some(_registration) = ctx.polls.register(&owner, keys) else {
        return Err(ApiError::detail(StatusCode::TOO_MANY_REQUESTS, "Too many concurrent poll connections"));
    };
    let sink = Arc::new(Sink { queue: Mutex::new(VecDeque::new()), notify: Notify::new() });
    let router = ctx.relay.router();
    let subs: Vec<_> = distinct
        .iter()
        .map(|t| {
            let subject = Bytes::from(ctx.relay.subject(&owner, t));
            router.subscribe(sink.clone(), subject, None, Bytes::new())
        })
        .collect();
    let unsubscribe = scopeguard(|| {
        for s in &subs {
            router.unsubscribe(s);
        }
    });
    tokio::select! {
        _ = sink.notify.notified() => {}
        _ = tokio::time::sleep(Duration::from_secs(req.timeout)) => {}
        _ = ctx.shutdown.cancelled() => {}
    }
    drop(unsubscribe);
    let frames: Vec<Bytes> = sink.queue.lock().drain(..).collect();
    let mut out = Vec::with_capacity(32 + frames.iter().map(|f| f.len() + 1).sum::<usize>());
    out.extend_from_slice(b"{\"messages\":[");
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(f);
    }
    out.extend_from_slice(b"],\"has_more\":false}");
    Ok(json_response(StatusCode::OK, out))
}

/// Runs `f` when dropped (also if the request is abandoned mid-wait).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

pub async fn stats(State(ctx): State<Ctx>, _caller: Caller) -> ApiResult<Response> {
    let c = ctx.polls.inner.lock();
    let counts: serde_json::Map<String, Value> = c.per_topic.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let body = json!({
        "active_waiters": c.total,
        "subscribed_topics": c.per_topic.len(),
        "topic_subscriber_counts": counts,
    });
    Ok(json_value(StatusCode::OK, &body))
}
