//! The EnSync WebSocket text protocol at `/message` (and `//message`) on the relay listener (compat/ensync.md §4).
//!
//! One task per socket reads commands and answers each one, strictly in arrival order, with exactly one reply
//! (`+PASS:`, `+REPLAY:` or `-FAIL:`), including malformed and unauthenticated ones. Deliveries (`+RECORD:`) come
//! from the engine through the socket's sink and are interleaved between replies by the writer task. The session is
//! bound to the socket: `CONN` creates it, closing the socket ends it (its subscriptions, pause flags and in-flight
//! events go with it).

use super::ws_codec::{self as codec, CommandName, Frame, Key, RecordView};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use herald_engine::events::api::{EventSink, Events, NewEvent, Session, StoredEvent, Transport};
use herald_engine::events::{decode_public_key, encode_public_key};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Incoming frames up to this size are accepted (the contract asks for at least 4 MiB).
const MAX_INBOUND: usize = 8 << 20;
/// Replies waiting for the writer; a client that sends commands without reading replies is slowed down here.
const REPLY_QUEUE: usize = 64;
/// Protocol-level pings keep idle connections alive through proxies (clients answer them automatically).
const PING_EVERY: Duration = Duration::from_secs(20);

pub struct WsCtx {
    pub events: Arc<dyn Events>,
    pub shutdown: CancellationToken,
}

/// The `/message` routes, to merge into the relay listener's router (outside the relay's own middleware: EnSync
/// clients authenticate with `CONN`, not with hosts, origins or bearer tokens).
pub fn router(events: Arc<dyn Events>, shutdown: CancellationToken) -> Router {
    let ctx = Arc::new(WsCtx { events, shutdown });
    Router::new().route("/message", get(upgrade)).route("//message", get(upgrade)).with_state(ctx)
}

async fn upgrade(State(ctx): State<Arc<WsCtx>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_INBOUND).max_frame_size(MAX_INBOUND).on_upgrade(move |socket| run(ctx, socket))
}

/// Where the engine hands this socket's deliveries. The window (one event in flight per subscription by default)
/// bounds what can wait here.
struct WsSink(mpsc::UnboundedSender<String>);

impl EventSink for WsSink {
    fn deliver(&self, e: Arc<StoredEvent>) -> bool {
        self.0.send(codec::record(&view(&e, &encode_public_key(&e.sender)))).is_ok()
    }

    fn close(&self) {
        // The session ends with the socket; a superseded SUB of the same socket needs no closing.
    }
}

fn view<'a>(e: &'a StoredEvent, sender: &'a str) -> RecordView<'a> {
    RecordView {
        name: &e.name,
        idem: &e.idem,
        block: e.block,
        logged_at_ms: e.logged_at,
        payload: &e.payload,
        metadata: &e.metadata,
        sender,
    }
}

async fn run(ctx: Arc<WsCtx>, socket: WebSocket) {
    let (mut out, mut input) = socket.split();
    let (reply_tx, mut reply_rx) = mpsc::channel::<String>(REPLY_QUEUE);
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<String>();
    let shutdown = ctx.shutdown.clone();
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            let msg = tokio::select! {
                biased;
                r = reply_rx.recv() => match r {
                    Some(t) => Message::Text(t.into()),
                    None => break,
                },
                Some(p) = push_rx.recv() => Message::Text(p.into()),
                _ = ping.tick() => Message::Ping(Default::default()),
                _ = shutdown.cancelled() => {
                    let _ = out.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1001,
                        reason: "server shutting down".into(),
                    }))).await;
                    break;
                }
            };
            if out.send(msg).await.is_err() {
                break;
            }
        }
    });

    let mut conn = Conn { ctx: Arc::clone(&ctx), session: None, push: push_tx };
    loop {
        let frame = tokio::select! {
            m = input.next() => m,
            _ = ctx.shutdown.cancelled() => None,
        };
        let text = match frame {
            Some(Ok(Message::Text(t))) => t.to_string(),
            // The client never sends binary frames; read one as text if it comes (§4.1).
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        };
        if let Some(reply) = conn.handle(&text).await
            && reply_tx.send(reply).await.is_err()
        {
            break;
        }
    }
    if let Some(s) = conn.session.take() {
        ctx.events.end_session(&s.client_id).await;
    }
    drop(reply_tx);
    drop(conn);
    let _ = writer.await;
}

struct Conn {
    ctx: Arc<WsCtx>,
    session: Option<Session>,
    push: mpsc::UnboundedSender<String>,
}

/// A command's outcome before it becomes a frame: the reply text, or the failure text.
type Outcome = Result<String, String>;

fn required<'a>(cmd: &codec::Command<'a>, key: Key) -> Result<&'a str, String> {
    cmd.get(key).ok_or_else(|| format!("missing {}", key.as_str()))
}

impl Conn {
    /// The one reply to a frame (`None` only for `PONG`).
    async fn handle(&mut self, text: &str) -> Option<String> {
        let cmd = match codec::parse(text) {
            Frame::Pong => return None,
            Frame::Unknown { name } => return Some(codec::unknown_command(name)),
            Frame::Command(cmd) => cmd,
        };
        Some(match self.command(&cmd).await {
            Ok(reply) => reply,
            Err(text) => codec::fail(&text),
        })
    }

    async fn command(&mut self, cmd: &codec::Command<'_>) -> Outcome {
        let events = Arc::clone(&self.ctx.events);
        if cmd.name == CommandName::Conn {
            if self.session.is_some() {
                return Err("already authenticated".into());
            }
            let key = required(cmd, Key::AccessKey)?;
            let s = events.connect(key, Transport::WebSocket).await.map_err(|e| e.message)?;
            let reply = codec::conn_ok(&s.client_id, &encode_public_key(&s.identity));
            self.session = Some(s);
            return Ok(reply);
        }
        let Some(session) = &self.session else { return Err("not authenticated".into()) };
        if cmd.get(Key::ClientId) != Some(session.client_id.as_str()) {
            return Err("invalid client id".into());
        }
        let cid = session.client_id.as_str();
        let name = || required(cmd, Key::EventName);
        let idem = || required(cmd, Key::EventIdem);
        let optional_name = cmd.get(Key::EventName).unwrap_or("");
        match cmd.name {
            CommandName::Conn => unreachable!("handled above"),
            CommandName::Pub => {
                let recipient = decode_public_key(required(cmd, Key::DeliveryTo)?)
                    .ok_or_else(|| "invalid recipient".to_string())?;
                let e = NewEvent {
                    name: name()?.to_string(),
                    recipient,
                    payload: required(cmd, Key::Payload)?.to_string(),
                    metadata: cmd.get(Key::Metadata).unwrap_or("").to_string(),
                    payload_metadata: cmd.get(Key::PayloadMetadata).map(str::to_string),
                };
                let stored = events.publish(cid, e).await.map_err(|e| e.message)?;
                Ok(codec::pass(&stored.idem))
            }
            CommandName::Sub => {
                let sink = Arc::new(WsSink(self.push.clone()));
                events.subscribe(cid, name()?, sink).await.map_err(|e| e.message)?;
                Ok(codec::pass("subscribed"))
            }
            CommandName::Unsub => {
                events.unsubscribe(cid, name()?).await.map_err(|e| e.message)?;
                Ok(codec::pass("unsubscribed"))
            }
            CommandName::Ack => {
                // BLOCK / PARTITION_BLOCK is informational and never checked (§4.3).
                events.ack(cid, idem()?, optional_name).await.map_err(|e| e.message)?;
                Ok(codec::pass("acknowledged"))
            }
            CommandName::Defer => {
                let delay = codec::parse_delay_ms(required(cmd, Key::Delay)?).ok_or("invalid delay")?;
                events.defer(cid, idem()?, optional_name, delay).await.map_err(|e| e.message)?;
                Ok(codec::pass("deferred"))
            }
            CommandName::Discard => {
                events.discard(cid, idem()?, optional_name).await.map_err(|e| e.message)?;
                Ok(codec::pass("discarded"))
            }
            CommandName::Pause => {
                events.pause(cid, name()?).await.map_err(|e| e.message)?;
                Ok(codec::pass("paused"))
            }
            CommandName::Continue => {
                events.resume(cid, name()?).await.map_err(|e| e.message)?;
                Ok(codec::pass("continued"))
            }
            CommandName::Replay => {
                let e = events.replay(cid, idem()?, optional_name).await.map_err(|e| e.message)?;
                Ok(codec::replay(&view(&e, &encode_public_key(&e.sender))))
            }
            CommandName::Rollback => Err("ROLLBACK not supported".into()),
        }
    }
}
