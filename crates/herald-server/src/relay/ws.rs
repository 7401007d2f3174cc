//! `/ws` (contract §3): the handshake checks (all before the upgrade, each refusal an HTTP 403), then one task per
//! socket that reads client frames, writes queued frames, and enforces the idle timeout and protocol keepalive.
//!
//! Live messages reach a socket through the relay router into its [`Outbox`], a byte-bounded queue: the publisher
//! never waits for a socket, and a socket that cannot keep up is closed (1008, "Slow consumer") instead of growing
//! the server's memory.

use super::caller::authenticate;
use super::wire::{now_micros, z_form};
use super::{Ctx, RelayCtx};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use herald_engine::pubsub::{Delivery, Published, Subscriber, Subscription};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Protocol keepalive (uvicorn's defaults): a Ping every 20 s, and the socket is dropped if no Pong comes back
/// within 20 s.
const PING_EVERY: Duration = Duration::from_secs(20);
const PONG_WITHIN: Duration = Duration::from_secs(20);
/// A write that takes longer than this means the peer stopped reading.
const WRITE_DEADLINE: Duration = Duration::from_secs(20);
/// How long the close handshake may take before the socket is just dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);
const MAX_INBOUND: usize = 16 << 20;
const READ_BUFFER: usize = 4 << 10;
/// Frames are batched up to this many bytes before a write (the session flushes after each batch anyway).
const WRITE_BUFFER: usize = 16 << 10;
const MAX_TOPICS: usize = 50;

/// Frames waiting to be written to one socket.
pub struct Outbox {
    queue: Mutex<OutQueue>,
    notify: Notify,
    max_bytes: usize,
    overflowed: AtomicBool,
    /// Signalled once when the queue overflows, so a write stuck on a socket that stopped reading is abandoned at
    /// once instead of at the write deadline.
    overflow: Notify,
}

#[derive(Default)]
struct OutQueue {
    frames: VecDeque<Bytes>,
    bytes: usize,
}

impl Outbox {
    fn new(max_bytes: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(OutQueue::default()),
            notify: Notify::new(),
            max_bytes,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
        })
    }

    fn push(&self, frame: Bytes) {
        let mut q = self.queue.lock();
        q.bytes += frame.len();
        q.frames.push_back(frame);
        drop(q);
        self.notify.notify_one();
    }

    fn push_front(&self, frame: Bytes) {
        let mut q = self.queue.lock();
        q.bytes += frame.len();
        q.frames.push_front(frame);
        drop(q);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Bytes> {
        let mut q = self.queue.lock();
        q.bytes = 0;
        q.frames.drain(..).collect()
    }
}

impl Subscriber for Outbox {
    fn origin(&self) -> u64 {
        0
    }

    fn deliver(&self, _sid: &Bytes, msg: &Published<'_>) -> Delivery {
        if self.overflowed.load(Ordering::Relaxed) {
            return Delivery::Refused;
        }
        let mut q = self.queue.lock();
        if q.bytes + msg.body.len() > self.max_bytes {
            drop(q);
            self.overflowed.store(true, Ordering::Relaxed);
            self.notify.notify_one();
            self.overflow.notify_one();
            return Delivery::Refused;
        }
        q.bytes += msg.body.len();
        q.frames.push_back(msg.body.clone());
        drop(q);
        self.notify.notify_one();
        Delivery::Taken
    }
}

fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

/// The offered subprotocols, in order.
fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

pub async fn upgrade(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    // 1. Origin, when sent, must be allowed.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| ctx.settings.allowed_origins.iter().any(|a| a == o));
        if !ok {
            return forbidden();
        }
    }
    // 2. The token: the `bearer` sentinel plus a `bearer.<jwt>` carrier, or (when enabled) `?token=`.
    let protocols = offered_protocols(&headers);
    let carrier = protocols.iter().find_map(|p| p.strip_prefix("bearer.")).map(str::to_string);
    let (token, negotiate) = match (protocols.iter().any(|p| p == "bearer"), carrier) {
        (true, Some(jwt)) => (jwt, true),
        _ if ctx.settings.ws_allow_query_token && protocols.is_empty() => {
            let params: Vec<(String, String)> =
                query.as_deref().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
            match params.into_iter().rev().find(|(k, _)| k == "token") {
                Some((_, t)) => (t, false),
                None => return forbidden(),
            }
        }
        _ => return forbidden(),
    };
    // 3–4. A valid, not revoked token of an active user with `read`.
    let Ok((user, _)) = authenticate(&ctx, &token).await else { return forbidden() };
    if !user.permissions.iter().any(|p| p == "read") {
        return forbidden();
    }
    // 5. The per-user connection cap.
    let Some(slot) = ctx.ws_per_user.acquire(&user.user_id, ctx.settings.ws_max_per_user) else {
        return forbidden();
    };
    let ws = if negotiate { ws.protocols(["bearer"]) } else { ws };
    let owner = user.user_id;
    // tungstenite's default 128 KiB read and write buffers would pin ~256 KiB per socket; relay clients send small
    // frames, and bigger ones still arrive (the buffer grows for them), so start small.
    ws.max_message_size(MAX_INBOUND).read_buffer_size(READ_BUFFER).write_buffer_size(WRITE_BUFFER).on_upgrade(
        move |socket| async move {
            ctx.metrics.ws_active.inc();
            ctx.metrics.ws_total.inc();
            Session::new(Arc::clone(&ctx), owner).run(socket).await;
            ctx.metrics.ws_active.dec();
            ctx.metrics.ws_closed.inc();
            drop(slot);
        },
    )
}

fn error_frame(code: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&json!({"type": "error", "code": code, "message": message, "details": null}))
            .unwrap_or_default(),
    )
}

/// What a client frame asks the session to do next.
enum Next {
    Continue,
    Close(u16, &'static str),
}

struct Session {
    ctx: Ctx,
    owner: String,
    outbox: Arc<Outbox>,
    subs: HashMap<String, Arc<Subscription>>,
    subscribed: bool,
}

impl Session {
    fn new(ctx: Ctx, owner: String) -> Session {
        let outbox = Outbox::new(ctx.settings.ws_max_pending_bytes);
        Session { ctx, owner, outbox, subs: HashMap::new(), subscribed: false }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut tx, mut rx) = socket.split();
        let idle = self.ctx.settings.ws_idle;
        let mut idle_deadline = Instant::now() + idle;
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut awaiting_pong: Option<Instant> = None;
        let close = loop {
            tokio::select! {
                _ = self.ctx.shutdown.cancelled() => break Some((1001, "Server shutting down")),
                msg = rx.next() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Text(text))) => {
                        idle_deadline = Instant::now() + idle;
                        if let Next::Close(code, reason) = self.on_text(text.as_str()) {
                            break Some((code, reason));
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        idle_deadline = Instant::now() + idle;
                        // Binary frames are treated like text that is not JSON: an error, never a crash.
                        if let Next::Close(code, reason) = self.on_text("") {
                            break Some((code, reason));
                        }
                    }
                    Some(Ok(Message::Pong(_))) => awaiting_pong = None,
                    Some(Ok(Message::Ping(_))) => {}
                },
                _ = self.outbox.notify.notified() => {
                    if !self.outbox.overflowed.load(Ordering::Relaxed) && self.flush(&mut tx).await {
                        continue;
                    }
                    if self.outbox.overflowed.load(Ordering::Relaxed) {
                        // The socket is not keeping up: drop it rather than buffer without bound. A client that
                        // still reads gets the close frame; one that stopped reading is simply disconnected.
                        self.ctx.metrics.ws_slow_consumers.inc();
                        tracing::debug!(owner = %self.owner, "relay WebSocket closed as a slow consumer");
                        break Some((1008, "Slow consumer"));
                    }
                    break None;
                }
                _ = tokio::time::sleep_until(idle_deadline) => {
                    break Some((1011, if self.subscribed { "Idle timeout" } else { "Idle timeout before subscribe" }));
                }
                _ = ping.tick() => {
                    if awaiting_pong.is_some_and(|t| t.elapsed() >= PONG_WITHIN) {
                        break None;
                    }
                    if awaiting_pong.is_none() {
                        awaiting_pong = Some(Instant::now());
                    }
                    let sent = tokio::time::timeout(WRITE_DEADLINE, tx.send(Message::Ping(Bytes::new()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break None;
                    }
                }
            }
        };
        for sub in self.subs.values() {
            self.ctx.relay.router().unsubscribe(sub);
        }
        if let Some((code, reason)) = close {
            // Whatever is queued (an error frame before a close) goes out first, unless the socket is the problem.
            if !self.outbox.overflowed.load(Ordering::Relaxed) {
                let _ = self.flush(&mut tx).await;
            }
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let _ = tokio::time::timeout(CLOSE_DEADLINE, tx.send(Message::Close(Some(frame)))).await;
        }
    }

    /// Writes everything queued. False if the socket failed, stalled past the write deadline, or the queue
    /// overflowed while it was stuck.
    async fn flush(&self, tx: &mut futures::stream::SplitSink<WebSocket, Message>) -> bool {
        let frames = self.outbox.take();
        if frames.is_empty() {
            return true;
        }
        let write = async {
            for f in frames {
                let Ok(text) = Utf8Bytes::try_from(f) else { continue };
                tx.feed(Message::Text(text)).await?;
            }
            tx.flush().await
        };
        tokio::select! {
            r = tokio::time::timeout(WRITE_DEADLINE, write) => matches!(r, Ok(Ok(()))),
            _ = self.outbox.overflow.notified() => false,
        }
    }

    fn on_text(&mut self, text: &str) -> Next {
        let parsed: Option<serde_json::Map<String, Value>> =
            serde_json::from_str::<Value>(text).ok().and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            });
        if !self.subscribed {
            return match parsed.and_then(|m| self.subscribe(&m)) {
                Some(()) => Next::Continue,
                None => {
                    self.outbox.push(error_frame("SUBSCRIPTION_ERROR", "Failed to subscribe"));
                    Next::Close(1000, "")
                }
            };
        }
        let Some(m) = parsed else {
            self.outbox.push(error_frame("PROCESSING_ERROR", "processing error"));
            return Next::Continue;
        };
        match m.get("type") {
            Some(Value::String(t)) if t == "ping" => {
                let pong = json!({"type": "pong", "timestamp": z_form(now_micros())});
                self.outbox.push(Bytes::from(serde_json::to_vec(&pong).unwrap_or_default()));
            }
            Some(Value::String(t)) if t == "ack" => {
                // Accepted and ignored: no delivery tracking on WebSockets.
                if !matches!(m.get("message_id"), Some(Value::String(_))) {
                    self.outbox.push(error_frame("PROCESSING_ERROR", "processing error"));
                }
            }
            Some(Value::String(t)) if t == "unsubscribe" => match topics_of(&m, usize::MAX) {
                Some(topics) => {
                    for t in topics {
                        if let Some(sub) = self.subs.remove(&t) {
                            self.ctx.relay.router().unsubscribe(&sub);
                        }
                    }
                }
                None => self.outbox.push(error_frame("PROCESSING_ERROR", "processing error")),
            },
            other => {
                let name = match other {
                    None | Some(Value::Null) => "None".to_string(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
                    Some(v) => v.to_string(),
                };
                self.outbox.push(error_frame("UNKNOWN_MESSAGE_TYPE", &format!("Unknown message type: {name}")));
            }
        }
        Next::Continue
    }

    /// The first frame: registers the subscriptions, then queues `subscribed` ahead of anything they deliver.
    fn subscribe(&mut self, m: &serde_json::Map<String, Value>) -> Option<()> {
        if m.get("type")?.as_str()? != "subscribe" {
            return None;
        }
        let client_id = m.get("client_id")?.as_str()?;
        if client_id.is_empty() || client_id.chars().count() > 255 {
            return None;
        }
        if let Some(offset) = m.get("offset")
            && !offset.is_string()
            && !offset.is_null()
        {
            return None;
        }
        let topics = topics_of(m, MAX_TOPICS)?;
        self.register(&topics);
        self.subscribed = true;
        let frame = json!({
            "type": "subscribed",
            "topics": m.get("topics").cloned().unwrap_or(Value::Null),
            "session_id": format!("sess_{}", &herald_types::id::new_id()[..12]),
            "timestamp": z_form(now_micros()),
        });
        self.outbox.push_front(Bytes::from(serde_json::to_vec(&frame).unwrap_or_default()));
        Some(())
    }

    fn register(&mut self, topics: &[String]) {
        let ctx: &RelayCtx = &self.ctx;
        for t in topics {
            if self.subs.contains_key(t) {
                continue;
            }
            let subject = Bytes::from(ctx.relay.subject(&self.owner, t));
            let sink: Arc<dyn Subscriber> = self.outbox.clone();
            let sub = ctx.relay.router().subscribe(sink, subject, None, Bytes::new());
            self.subs.insert(t.clone(), sub);
        }
    }
}

/// `topics`: 1..=max valid topic names.
fn topics_of(m: &serde_json::Map<String, Value>, max: usize) -> Option<Vec<String>> {
    let list = m.get("topics")?.as_array()?;
    if list.is_empty() || list.len() > max {
        return None;
    }
    list.iter().map(|t| t.as_str().filter(|s| super::validate::is_valid_topic(s)).map(str::to_string)).collect()
}
