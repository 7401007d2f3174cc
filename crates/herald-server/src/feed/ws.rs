//! `GET /ws` on the admin listener (§5.8): any Origin, no subprotocol, no authentication (FlowMesh has none on HTTP).
//!
//! One task per connection. It writes the hub's frames one JSON object per text frame (D18), applies
//! `subscribe`/`unsubscribe` messages and ignores everything else (no replies), pings every 54 s, and closes the
//! connection when no Pong has arrived within 60 s of the start or of the previous Pong (other client messages do
//! not count, as in FlowMesh). A write never waits longer than the hub's patience: when the hub drops the
//! connection for a full buffer, or the Pong deadline passes, a write stuck on a socket that stopped reading is
//! abandoned.

use super::{Feed, Membership};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// FlowMesh's timers: a Ping every 54 s, and the connection is closed when no Pong arrived within 60 s of the
/// start or of the previous Pong.
const KEEPALIVE: Keepalive = Keepalive { ping_every: Duration::from_secs(54), pong_within: Duration::from_secs(60) };
/// How long a close frame may take to go out before the connection is just dropped.
const CLOSE_DEADLINE: Duration = Duration::from_secs(1);
/// Client messages are small `subscribe`/`unsubscribe` objects.
const MAX_INBOUND: usize = 1 << 20;

pub fn router(state: AppState) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let feed = state.feed.clone();
    let shutdown = state.shutdown.clone();
    ws.max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .on_upgrade(move |socket| session(socket, feed, shutdown, KEEPALIVE))
}

#[derive(Clone, Copy, Debug)]
struct Keepalive {
    ping_every: Duration,
    pong_within: Duration,
}

/// Why a session ends.
enum End {
    /// The peer closed or the socket failed: nothing more to send.
    Gone,
    /// Close with this code and reason (best effort, bounded by [`CLOSE_DEADLINE`]).
    Close(u16, &'static str),
}

async fn session(socket: WebSocket, feed: Feed, shutdown: CancellationToken, keepalive: Keepalive) {
    let mut member = feed.join();
    let (mut sink, mut stream) = socket.split();
    let start = Instant::now();
    let mut pong_deadline = start + keepalive.pong_within;
    let mut ping = tokio::time::interval_at(start + keepalive.ping_every, keepalive.ping_every);
    let dropped = member.dropped.clone();
    let end = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break End::Close(1001, "server shutting down"),
            _ = dropped.cancelled() => break End::Close(1008, "slow consumer"),
            _ = tokio::time::sleep_until(pong_deadline) => break End::Gone,
            _ = ping.tick() => {
                if !write(&mut sink, Message::Ping(Default::default()), &dropped, pong_deadline).await {
                    break End::Gone;
                }
            }
            frame = member.frames.recv() => match frame {
                Some(text) => {
                    if !write(&mut sink, Message::Text(text), &dropped, pong_deadline).await {
                        break End::Gone;
                    }
                }
                None => break End::Close(1008, "slow consumer"),
            },
            msg = stream.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break End::Gone,
                Some(Ok(Message::Pong(_))) => pong_deadline = Instant::now() + keepalive.pong_within,
                Some(Ok(Message::Text(text))) => on_text(&member, text.as_str()),
                // Pings are answered by the WebSocket layer; binary frames are ignored.
                Some(Ok(_)) => {}
            },
        }
    };
    if let End::Close(code, reason) = end {
        let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
        let _ = tokio::time::timeout(CLOSE_DEADLINE, sink.send(close)).await;
    }
}

/// Writes one message; false when the socket failed, or when the hub gave up on this connection or the Pong
/// deadline passed while the write was waiting for a peer that does not read.
async fn write(
    sink: &mut SplitSink<WebSocket, Message>,
    msg: Message,
    dropped: &CancellationToken,
    pong_deadline: Instant,
) -> bool {
    tokio::select! {
        r = sink.send(msg) => r.is_ok(),
        _ = dropped.cancelled() => false,
        _ = tokio::time::sleep_until(pong_deadline) => false,
    }
}

/// `{"type":"subscribe"|"unsubscribe","payload":{"topics":[...]}}` changes the topic set; anything else (other
/// types, bad JSON, non-string topics) is ignored without a reply.
fn on_text(member: &Membership, text: &str) {
    let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else { return };
    let Some(Value::Array(topics)) = msg.get("payload").and_then(|p| p.get("topics")) else { return };
    let topics = topics.iter().filter_map(Value::as_str);
    match msg.get("type").and_then(Value::as_str) {
        Some("subscribe") => member.subscribe(topics),
        Some("unsubscribe") => member.unsubscribe(topics),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio_tungstenite::tungstenite::Message as Frame;

    /// A `/ws` endpoint with short keepalive timers on a free port.
    async fn serve(keepalive: Keepalive) -> (SocketAddr, Feed) {
        let feed = Feed::new();
        let f = feed.clone();
        let app = Router::new().route(
            "/ws",
            get(move |ws: WebSocketUpgrade| {
                let f = f.clone();
                async move { ws.on_upgrade(move |s| session(s, f, CancellationToken::new(), keepalive)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, feed)
    }

    #[tokio::test]
    async fn pings_keep_an_answering_client_and_a_silent_one_is_closed() {
        let keepalive = Keepalive { ping_every: Duration::from_millis(100), pong_within: Duration::from_millis(400) };
        let (addr, feed) = serve(keepalive).await;
        let url = format!("ws://{addr}/ws");
        let (mut answering, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // Reading answers Pings (the client library sends the Pong); the silent client reads nothing for 1.2 s.
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(1200);
        while let Ok(frame) = tokio::time::timeout_at(until, answering.next()).await {
            match frame {
                Some(Ok(Frame::Ping(_))) => pings += 1,
                other => panic!("the answering client was closed: {other:?}"),
            }
        }
        assert!(pings >= 5, "{pings} pings");
        assert_eq!(feed.connections(), 1, "the silent client was dropped after 400 ms without a Pong");
        // What the silent client finds: the Pings sent before its deadline, then the end of the connection.
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match silent.next().await {
                    Some(Ok(Frame::Ping(_))) => {}
                    Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(other)) => panic!("unexpected {other:?}"),
                }
            }
        })
        .await;
        assert!(ended.is_ok());
    }
}
