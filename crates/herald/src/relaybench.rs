//! `herald relay-bench`: a load generator for Pulsar Relay–compatible servers (compat/pulsar-relay.md), run against
//! Herald's relay listener and the reference Python server alike; `scripts/bench.py` runs it against both in the same
//! run. It logs in once with the form `POST /auth/login` and then speaks plain HTTP/1.1 and WebSocket.
//!
//! The load generator shares the machine's two cores with the server, so it is kept cheap: HTTP/1.1 requests are
//! written from pre-encoded bytes on raw keep-alive TCP connections (no HTTP client library), responses are parsed
//! only as far as the status line, `Content-Length`/chunked framing, and the fields a scenario needs (found by a fixed
//! prefix, never by parsing JSON), and every connection is its own task on a multi-thread runtime.
//!
//! Scenarios (comma-separated, like `nats-bench`):
//! - `publish:<connections>:<seconds>`: each connection loops `POST /api/v1/messages` (one request at a time);
//!   messages/s, per-request latency percentiles, errors.
//! - `fanout:<subscribers>:<messages>:<size>`: N WebSockets subscribe to one topic; then `messages` messages of about
//!   `size` payload bytes are published with the bulk endpoint (100 per request, 4 requests in flight, never more
//!   than a window of about 1 MiB per socket ahead of the slowest subscriber, so a bounded server never has to drop
//!   a slow socket). Delivered frames/s summed over subscribers (first publish → last frame), and end-to-end latency
//!   from a wall-clock timestamp in the payload.
//! - `longpoll:<pollers>:<seconds>`: pollers loop `POST /messages/poll` with `since` cursors (up to 40 per user,
//!   more users are registered as needed: the contract caps a user at 50 waiting polls), 10 topics per user, while
//!   one publisher per user publishes bulk requests, staying at most 200 messages ahead of the slowest poller of a
//!   topic. Deliveries/s (messages received by pollers), polls/s, end-to-end latency.
//! - `hold:<subscribers>`: opens and subscribes N WebSockets (spread over 100 topics), checks that every one of them
//!   receives a message, reads the server's RSS (`--server-pid`), then closes them.

use anyhow::{Context, bail, ensure};
use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use memchr::memmem;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Args, Debug, Clone)]
pub struct RelayBenchArgs {
    /// The server's base URL, e.g. http://127.0.0.1:8080 (plain HTTP only).
    #[arg(long)]
    pub url: String,
    /// A user with `read`, `write` and (for `longpoll` with more than 40 pollers) `admin`.
    #[arg(long, default_value = "admin")]
    pub username: String,
    #[arg(long, default_value = "12345678")]
    pub password: String,
    /// A label for the results (e.g. `herald` or `pulsar-relay`).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Scenarios, comma-separated: `publish:<connections>:<seconds>`, `fanout:<subscribers>:<messages>:<size>`,
    /// `longpoll:<pollers>:<seconds>`, `hold:<subscribers>`.
    #[arg(long, value_delimiter = ',', default_value = "publish:64:10,fanout:1000:200:128,longpoll:50:10")]
    pub scenarios: Vec<String>,
    /// The server's process id: `hold` reports its resident memory (VmRSS) before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// WebSocket handshakes in progress at once while subscribers are set up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Fan-out: how long to keep waiting for deliveries once publishing is done and no frame arrives (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Print one JSON object per result.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct RelayResult {
    pub server: String,
    /// The scenario as given, e.g. `publish:64:10`.
    pub scenario: String,
    pub kind: &'static str,
    /// publish: HTTP connections; fanout/hold: WebSocket subscribers; longpoll: pollers.
    pub connections: usize,
    /// publish: messages accepted; fanout: frames delivered; longpoll: messages received by pollers; hold: sockets
    /// subscribed.
    pub operations: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// publish: per request; fanout/longpoll: end to end (payload timestamp → frame/response read).
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    /// fanout/hold: seconds to open and subscribe every socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_connection: Option<f64>,
    /// The first error seen, for diagnosis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_sample: Option<String>,
}

/// Where the server is: `host:port`, used both to connect and as the `Host` header (so it must be a trusted host).
#[derive(Clone)]
struct Target {
    addr: Arc<str>,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url.strip_prefix("http://").context("--url must start with http://")?;
        let host = rest.trim_end_matches('/');
        ensure!(!host.is_empty() && !host.contains('/'), "--url must be http://host:port with no path");
        let addr = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Target { addr: addr.into() })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client: pre-encoded requests on one keep-alive connection, one request at a time.
// ---------------------------------------------------------------------------------------------------------------

fn encode_request(target: &Target, method: &str, path: &str, token: Option<&str>, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(256 + body.len());
    r.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", target.addr).as_bytes());
    if let Some(t) = token {
        r.extend_from_slice(format!("Authorization: Bearer {t}\r\n").as_bytes());
    }
    r.extend_from_slice(format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}

struct Http {
    target: Target,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// A chunked body, decoded.
    chunked: Vec<u8>,
}

impl Http {
    fn new(target: &Target) -> Http {
        Http { target: target.clone(), stream: None, buf: Vec::with_capacity(16 << 10), chunked: Vec::new() }
    }

    /// Sends one pre-encoded request and reads the whole response; returns the status and the body. Any I/O or
    /// framing error drops the connection (the next call opens a new one).
    async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        match self.exchange(request).await {
            Ok((status, range, chunked, close)) => {
                if close {
                    self.stream = None;
                }
                let body = if chunked { &self.chunked[..] } else { &self.buf[range] };
                Ok((status, body))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, std::ops::Range<usize>, bool, bool)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&*self.target.addr)
                .await
                .with_context(|| format!("connecting to {}", self.target.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).await?;
        self.buf.clear();
        // Headers.
        let head_end = loop {
            if let Some(i) = memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            read_more(stream, &mut self.buf).await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        if chunked {
            self.chunked.clear();
            let mut pos = head_end;
            loop {
                let line_end = loop {
                    if let Some(i) = memmem::find(&self.buf[pos..], b"\r\n") {
                        break pos + i;
                    }
                    read_more(stream, &mut self.buf).await?;
                };
                let size_text = std::str::from_utf8(&self.buf[pos..line_end])?;
                let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                    .with_context(|| format!("bad chunk size {size_text:?}"))?;
                pos = line_end + 2;
                while self.buf.len() < pos + size + 2 {
                    read_more(stream, &mut self.buf).await?;
                }
                self.chunked.extend_from_slice(&self.buf[pos..pos + size]);
                pos += size + 2;
                if size == 0 {
                    break; // (no trailers are sent by either server)
                }
            }
            return Ok((status, 0..0, true, close));
        }
        match length {
            Some(n) => {
                while self.buf.len() < head_end + n {
                    read_more(stream, &mut self.buf).await?;
                }
                Ok((status, head_end..head_end + n, false, close))
            }
            None if status == 204 || status == 304 => Ok((status, head_end..head_end, false, close)),
            None => {
                // Body until the server closes the connection.
                loop {
                    self.buf.reserve(16 << 10);
                    if stream.read_buf(&mut self.buf).await? == 0 {
                        break;
                    }
                }
                let end = self.buf.len();
                Ok((status, head_end..end, false, true))
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(16 << 10);
    let n = stream.read_buf(buf).await?;
    ensure!(n > 0, "server closed the connection");
    Ok(())
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /auth/login` (form), returns the access token.
async fn login(target: &Target, username: &str, password: &str) -> anyhow::Result<String> {
    let body = format!("username={}&password={}&grant_type=password", form_encode(username), form_encode(password));
    let req = encode_request(target, "POST", "/auth/login", None, "application/x-www-form-urlencoded", body.as_bytes());
    let mut http = Http::new(target);
    let (status, body) = http.send(&req).await?;
    ensure!(status == 200, "login as {username:?}: HTTP {status}: {}", String::from_utf8_lossy(body));
    let v: serde_json::Value = serde_json::from_slice(body)?;
    Ok(v["access_token"].as_str().context("login response has no access_token")?.to_string())
}

/// Registers `n` users with `read` and `write` (as the admin) and logs each in; returns their tokens.
async fn extra_users(target: &Target, admin_token: &str, run: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::new();
    let mut http = Http::new(target);
    for i in 0..n {
        let name = format!("rb{run}u{i}");
        let body =
            serde_json::json!({"username": name, "password": "relay-bench-pw", "permissions": ["read", "write"]});
        let req = encode_request(
            target,
            "POST",
            "/auth/register",
            Some(admin_token),
            "application/json",
            body.to_string().as_bytes(),
        );
        let (status, resp) = http.send(&req).await?;
        ensure!(status == 201, "registering {name}: HTTP {status}: {}", String::from_utf8_lossy(resp));
        tokens.push(login(target, &name, "relay-bench-pw").await?);
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket subscribers.
// ---------------------------------------------------------------------------------------------------------------

type Ws = WebSocketStream<TcpStream>;

/// Connects to `/ws` with the bearer subprotocols (§3.1), subscribes, and waits for the `subscribed` frame.
async fn ws_subscribe(
    target: &Target,
    token: &str,
    topic: &str,
    client_id: &str,
    read_buffer: usize,
) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(&*target.addr).await.with_context(|| format!("connecting to {}", target.addr))?;
    tcp.set_nodelay(true)?;
    let mut req = format!("ws://{}/ws", target.addr).into_client_request()?;
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&format!("bearer, bearer.{token}"))?);
    let config = WebSocketConfig::default().read_buffer_size(read_buffer).write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(req, tcp, Some(config)).await.context("WebSocket handshake")?;
    let frame = format!(r#"{{"type":"subscribe","topics":["{topic}"],"client_id":"{client_id}"}}"#);
    ws.send(Message::text(frame)).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                ensure!(memmem::find(t.as_bytes(), b"\"subscribed\"").is_some(), "expected subscribed, got {t}");
                return Ok(ws);
            }
            Some(Ok(Message::Close(c))) => bail!("closed instead of subscribed: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed instead of subscribed"),
        }
    }
}

/// Opens `n` subscribers with at most `concurrency` handshakes in flight; `topic_of(i)` names subscriber i's topic.
/// Returns each socket (or its error) in order and the time taken.
async fn open_subscribers(
    target: &Target,
    token: &str,
    n: usize,
    concurrency: usize,
    read_buffer: usize,
    topic_of: impl Fn(usize) -> String,
) -> (Vec<anyhow::Result<Ws>>, f64) {
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (target, token, topic, sem) = (target.clone(), token.to_string(), topic_of(i), Arc::clone(&sem));
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            tokio::time::timeout(
                Duration::from_secs(60),
                ws_subscribe(&target, &token, &topic, &format!("relay-bench-{i}"), read_buffer),
            )
            .await
            .context("subscribe timed out")?
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.map_err(anyhow::Error::from).and_then(|r| r));
    }
    (out, started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------------------------
// Payload helpers: a wall-clock timestamp in microseconds, found again by its fixed prefix.
// ---------------------------------------------------------------------------------------------------------------

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

const TS_KEY: &[u8] = b"\"ts\":";

/// Every `"ts":<digits>` in `text`, as latencies (µs) to `now`.
fn record_latencies(text: &[u8], now: u64, hist: &mut Histogram<u64>) -> u64 {
    let mut n = 0;
    for i in memmem::find_iter(text, TS_KEY) {
        let mut p = i + TS_KEY.len();
        while p < text.len() && text[p] == b' ' {
            p += 1;
        }
        let mut ts = 0u64;
        while p < text.len() && text[p].is_ascii_digit() {
            ts = ts * 10 + u64::from(text[p] - b'0');
            p += 1;
        }
        let _ = hist.record(now.saturating_sub(ts).max(1));
        n += 1;
    }
    n
}

/// The number of `"message_id"` keys in a poll response and the last one's value.
fn message_ids(text: &[u8]) -> (u64, Option<&[u8]>) {
    const KEY: &[u8] = b"\"message_id\":";
    let (mut n, mut last) = (0, None);
    for i in memmem::find_iter(text, KEY) {
        n += 1;
        let mut p = i + KEY.len();
        while p < text.len() && text[p] == b' ' {
            p += 1;
        }
        if p < text.len() && text[p] == b'"' {
            let start = p + 1;
            if let Some(len) = memchr::memchr(b'"', &text[start..]) {
                last = Some(&text[start..start + len]);
            }
        }
    }
    (n, last)
}

/// The JSON of one message of a bulk body: `{"topic":..,"payload":{"ts":..,"seq":..,"pad":".."}}`.
fn push_message(out: &mut Vec<u8>, topic: &str, ts: u64, seq: u64, pad: &str) {
    out.extend_from_slice(
        format!(r#"{{"topic":"{topic}","payload":{{"ts":{ts},"seq":{seq},"pad":"{pad}"}}}}"#).as_bytes(),
    );
}

fn bulk_body(topic: &str, first_seq: u64, n: u64, pad: &str) -> Vec<u8> {
    let ts = now_us();
    let mut body = Vec::with_capacity(16 + n as usize * (pad.len() + topic.len() + 64));
    body.extend_from_slice(b"{\"messages\":[");
    for k in 0..n {
        if k > 0 {
            body.push(b',');
        }
        push_message(&mut body, topic, ts, first_seq + k, pad);
    }
    body.extend_from_slice(b"]}");
    body
}

struct ReaderState {
    hist: Histogram<u64>,
    n: u64,
    last: Option<Instant>,
    err: Option<String>,
}

impl Default for ReaderState {
    fn default() -> Self {
        ReaderState { hist: histogram(), n: 0, last: None, err: None }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn sample(slot: &mut Option<String>, e: impl std::fmt::Display) {
    if slot.is_none() {
        *slot = Some(e.to_string());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.
// ---------------------------------------------------------------------------------------------------------------

const PUBLISH_TOPICS: usize = 16;

async fn publish(
    target: &Target,
    token: &str,
    run: &str,
    connections: usize,
    seconds: f64,
) -> anyhow::Result<RelayResult> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let body = format!(
            r#"{{"topic":"rb-{run}-pub-{}","payload":{{"index":{c},"data":"relay-bench message from connection {c}"}}}}"#,
            c % PUBLISH_TOPICS
        );
        let req = encode_request(target, "POST", "/api/v1/messages", Some(token), "application/json", body.as_bytes());
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut http = Http::new(&target);
            let (mut hist, mut ok, mut errors, mut first_error) = (histogram(), 0u64, 0u64, None);
            while Instant::now() < deadline {
                let t = Instant::now();
                match http.send(&req).await {
                    Ok((201, _)) => {
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                        ok += 1;
                    }
                    Ok((status, body)) => {
                        errors += 1;
                        sample(&mut first_error, format!("HTTP {status}: {}", String::from_utf8_lossy(body)));
                    }
                    Err(e) => {
                        errors += 1;
                        sample(&mut first_error, format!("{e:#}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (hist, ok, errors, first_error)
        }));
    }
    let mut r = RelayResult { kind: "publish", connections, ..Default::default() };
    let mut hist = histogram();
    for t in tasks {
        let (h, ok, errors, e) = t.await?;
        hist.add(h)?;
        r.operations += ok;
        r.errors += errors;
        if let Some(e) = e {
            sample(&mut r.error_sample, e);
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    r.per_sec = r.operations as f64 / r.seconds;
    if !hist.is_empty() {
        r.p50_us = Some(hist.value_at_quantile(0.5));
        r.p99_us = Some(hist.value_at_quantile(0.99));
    }
    Ok(r)
}

const BULK: u64 = 100;
const PUBLISHERS_IN_FLIGHT: usize = 4;

async fn fanout(
    args: &RelayBenchArgs,
    target: &Target,
    token: &str,
    run: &str,
    subscribers: usize,
    messages: u64,
    size: usize,
) -> anyhow::Result<RelayResult> {
    let topic = format!("rb-{run}-fan");
    let (sockets, setup) =
        open_subscribers(target, token, subscribers, args.connect_concurrency, 16 << 10, |_| topic.clone()).await;
    let mut r =
        RelayResult { kind: "fanout", connections: subscribers, setup_seconds: Some(setup), ..Default::default() };
    // Each live subscriber's delivered count; u64::MAX for one that failed or finished (so the window ignores it).
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..subscribers).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        let mut ws = match s {
            Ok(ws) => ws,
            Err(e) => {
                r.errors += 1;
                sample(&mut r.error_sample, format!("subscriber {i}: {e:#}"));
                counts[i].store(u64::MAX, Ordering::Relaxed);
                continue;
            }
        };
        // The reader's results live outside the task (an uncontended lock per frame), so that a reader still
        // waiting when the run ends can simply be aborted: no timer or cancellation future per frame.
        let state = Arc::new(parking_lot::Mutex::new(ReaderState::default()));
        let counts = Arc::clone(&counts);
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            while n < messages {
                let err = match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let now = now_us();
                        let mut st = task_state.lock();
                        let got = record_latencies(t.as_bytes(), now, &mut st.hist);
                        if got > 0 {
                            n += got;
                            st.n = n;
                            st.last = Some(Instant::now());
                            counts[i].store(n, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(c))) => format!("closed by the server: {c:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => e.to_string(),
                    None => "closed by the server".to_string(),
                };
                task_state.lock().err = Some(err);
                break;
            }
            counts[i].store(u64::MAX, Ordering::Relaxed);
            let _ = ws.close(None).await;
        });
        readers.push((task, state));
    }
    let live = readers.len() as u64;
    let expected = live * messages;
    // Publishing: 4 bulk requests in flight, each for the next 100 messages, never more than `window` messages ahead
    // of the slowest live subscriber.
    let frame_estimate = size as u64 + 160;
    let window = ((1u64 << 20) / frame_estimate).clamp(2 * BULK, 1000);
    let pad = "x".repeat(size.saturating_sub(40).max(1));
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut publishers = Vec::new();
    for _ in 0..PUBLISHERS_IN_FLIGHT {
        let (target, token, topic, pad, next, counts) =
            (target.clone(), token.to_string(), topic.clone(), pad.clone(), Arc::clone(&next), Arc::clone(&counts));
        publishers.push(tokio::spawn(async move {
            let mut http = Http::new(&target);
            let (mut published, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let first = next.fetch_add(BULK, Ordering::Relaxed);
                if first >= messages {
                    break;
                }
                let n = BULK.min(messages - first);
                loop {
                    let slowest = counts.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
                    if slowest == u64::MAX || first + n <= slowest.saturating_add(window) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let body = bulk_body(&topic, first, n, &pad);
                let req =
                    encode_request(&target, "POST", "/api/v1/messages/bulk", Some(&token), "application/json", &body);
                match http.send(&req).await {
                    Ok((207, _)) => published += n,
                    Ok((status, body)) => {
                        errors += 1;
                        sample(
                            &mut first_error,
                            format!("bulk publish: HTTP {status}: {}", String::from_utf8_lossy(body)),
                        );
                    }
                    Err(e) => {
                        errors += 1;
                        sample(&mut first_error, format!("bulk publish: {e:#}"));
                    }
                }
            }
            (published, errors, first_error)
        }));
    }
    let mut published = 0;
    for p in publishers {
        let (n, errors, e) = p.await?;
        published += n;
        r.errors += errors;
        if let Some(e) = e {
            sample(&mut r.error_sample, e);
        }
    }
    // Wait for the deliveries: until every live subscriber has everything, or nothing arrives for idle_timeout.
    let idle = Duration::from_secs_f64(args.idle_timeout);
    let (mut seen, mut since) = (0u64, Instant::now());
    while !readers.iter().all(|(h, _)| h.is_finished()) {
        let total: u64 = readers.iter().map(|(_, st)| st.lock().n).sum();
        if total != seen {
            (seen, since) = (total, Instant::now());
        } else if since.elapsed() > idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut hist = histogram();
    let mut end = started;
    for (h, st) in readers {
        h.abort();
        let _ = h.await;
        let st = std::mem::take(&mut *st.lock());
        hist.add(st.hist)?;
        r.operations += st.n;
        if let Some(l) = st.last {
            end = end.max(l);
        }
        if let Some(e) = st.err {
            r.errors += 1;
            sample(&mut r.error_sample, e);
        }
    }
    r.expected = Some(expected);
    r.published = Some(published);
    r.seconds = end.duration_since(started).as_secs_f64();
    r.per_sec = if r.seconds > 0.0 { r.operations as f64 / r.seconds } else { 0.0 };
    if !hist.is_empty() {
        r.p50_us = Some(hist.value_at_quantile(0.5));
        r.p99_us = Some(hist.value_at_quantile(0.99));
    }
    Ok(r)
}

/// Pollers per user (the contract caps a user's waiting polls at 50) and topics per user.
const POLLERS_PER_USER: usize = 40;
const POLL_TOPICS_PER_USER: usize = 10;
/// The publisher stays at most this many messages ahead of a topic's slowest poller.
const POLL_WINDOW: u64 = 200;

async fn longpoll(
    target: &Target,
    token: &str,
    run: &str,
    pollers: usize,
    seconds: f64,
) -> anyhow::Result<RelayResult> {
    let users = pollers.div_ceil(POLLERS_PER_USER).max(1);
    let mut tokens = vec![token.to_string()];
    if users > 1 {
        tokens.extend(extra_users(target, token, run, users - 1).await?);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let mut poll_tasks = Vec::new();
    let mut pub_tasks = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        let mine: Vec<usize> = (0..pollers).filter(|p| p / POLLERS_PER_USER == u).collect();
        let n_topics = mine.len().clamp(1, POLL_TOPICS_PER_USER);
        let topics: Arc<Vec<String>> = Arc::new((0..n_topics).map(|k| format!("rb-{run}-lp{u}-{k}")).collect());
        // received[k] = each poller of topic k: messages received so far.
        let received: Arc<Vec<Vec<Arc<AtomicU64>>>> = Arc::new(
            (0..n_topics)
                .map(|k| {
                    mine.iter()
                        .enumerate()
                        .filter(|(j, _)| j % n_topics == k)
                        .map(|_| Arc::new(AtomicU64::new(0)))
                        .collect()
                })
                .collect(),
        );
        let mut slot = vec![0usize; n_topics];
        for (j, _) in mine.iter().enumerate() {
            let k = j % n_topics;
            let counter = Arc::clone(&received[k][slot[k]]);
            slot[k] += 1;
            let (target, token, topic, stop) = (target.clone(), token.clone(), topics[k].clone(), Arc::clone(&stop));
            poll_tasks.push(tokio::spawn(async move {
                let mut http = Http::new(&target);
                let (mut hist, mut got, mut polls, mut errors, mut first_error) = (histogram(), 0u64, 0u64, 0u64, None);
                let mut cursor: Option<Vec<u8>> = None;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let mut body = format!(r#"{{"topics":["{topic}"],"timeout":5"#).into_bytes();
                    if let Some(c) = &cursor {
                        body.extend_from_slice(format!(r#","since":{{"{topic}":""#).as_bytes());
                        body.extend_from_slice(c);
                        body.extend_from_slice(b"\"}");
                    }
                    body.push(b'}');
                    let req =
                        encode_request(&target, "POST", "/messages/poll", Some(&token), "application/json", &body);
                    match http.send(&req).await {
                        Ok((200, resp)) => {
                            polls += 1;
                            let (n, last) = message_ids(resp);
                            if n > 0 {
                                record_latencies(resp, now_us(), &mut hist);
                                got += n;
                                counter.store(got, Ordering::Relaxed);
                                if let Some(l) = last {
                                    cursor = Some(l.to_vec());
                                }
                            }
                        }
                        Ok((status, resp)) => {
                            errors += 1;
                            sample(&mut first_error, format!("poll: HTTP {status}: {}", String::from_utf8_lossy(resp)));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => {
                            errors += 1;
                            sample(&mut first_error, format!("poll: {e:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (hist, got, polls, errors, first_error)
            }));
        }
        let (target, token, stop) = (target.clone(), token.clone(), Arc::clone(&stop));
        pub_tasks.push(tokio::spawn(async move {
            let mut http = Http::new(&target);
            let mut sent = vec![0u64; topics.len()];
            let (mut published, mut errors, mut first_error) = (0u64, 0u64, None);
            let pad = "x".repeat(64);
            let mut k = 0;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                // The next topic (round robin) whose slowest poller is within the window.
                let eligible = (0..topics.len()).map(|d| (k + d) % topics.len()).find(|&t| {
                    let slowest = received[t].iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(u64::MAX);
                    sent[t] < slowest.saturating_add(POLL_WINDOW)
                });
                let Some(t) = eligible else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                k = t + 1;
                let body = bulk_body(&topics[t], sent[t], BULK, &pad);
                let req =
                    encode_request(&target, "POST", "/api/v1/messages/bulk", Some(&token), "application/json", &body);
                match http.send(&req).await {
                    Ok((207, _)) => {
                        sent[t] += BULK;
                        published += BULK;
                    }
                    Ok((status, body)) => {
                        errors += 1;
                        sample(
                            &mut first_error,
                            format!("bulk publish: HTTP {status}: {}", String::from_utf8_lossy(body)),
                        );
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => {
                        errors += 1;
                        sample(&mut first_error, format!("bulk publish: {e:#}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (published, errors, first_error)
        }));
    }
    let mut r = RelayResult { kind: "longpoll", connections: pollers, ..Default::default() };
    let mut published = 0;
    for p in pub_tasks {
        let (n, errors, e) = p.await?;
        published += n;
        r.errors += errors;
        if let Some(e) = e {
            sample(&mut r.error_sample, e);
        }
    }
    // A poller waiting for live messages returns within its 5 s timeout; count what it gets until then.
    let mut hist = histogram();
    let mut polls = 0;
    for t in poll_tasks {
        let (h, got, n, errors, e) = t.await?;
        hist.add(h)?;
        r.operations += got;
        polls += n;
        r.errors += errors;
        if let Some(e) = e {
            sample(&mut r.error_sample, e);
        }
    }
    r.seconds = seconds.min(started.elapsed().as_secs_f64());
    r.per_sec = r.operations as f64 / r.seconds;
    r.published = Some(published);
    r.polls = Some(polls);
    if !hist.is_empty() {
        r.p50_us = Some(hist.value_at_quantile(0.5));
        r.p99_us = Some(hist.value_at_quantile(0.99));
    }
    Ok(r)
}

const HOLD_TOPICS: usize = 100;

async fn hold(args: &RelayBenchArgs, target: &Target, token: &str, run: &str, n: usize) -> anyhow::Result<RelayResult> {
    let rss_before = args.server_pid.and_then(rss_kib);
    let topic = |i: usize| format!("rb-{run}-hold-{}", i % HOLD_TOPICS);
    let (sockets, setup) = open_subscribers(target, token, n, args.connect_concurrency, 4 << 10, topic).await;
    let mut r = RelayResult { kind: "hold", connections: n, setup_seconds: Some(setup), ..Default::default() };
    let delivered = Arc::new(AtomicU64::new(0));
    let mut holders = Vec::new();
    for (i, s) in sockets.into_iter().enumerate() {
        match s {
            Ok(mut ws) => {
                r.operations += 1;
                let delivered = Arc::clone(&delivered);
                // Each socket is read (which also answers the server's pings) until it is aborted at the end.
                holders.push(tokio::spawn(async move {
                    while let Some(Ok(m)) = ws.next().await {
                        if let Message::Text(t) = m
                            && memmem::find(t.as_bytes(), TS_KEY).is_some()
                        {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            Err(e) => {
                r.errors += 1;
                sample(&mut r.error_sample, format!("subscriber {i}: {e:#}"));
            }
        }
    }
    // Measure memory once the server has settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.rss_before_kib = rss_before;
    r.rss_kib = args.server_pid.and_then(rss_kib);
    if let (Some(b), Some(a)) = (r.rss_before_kib, r.rss_kib)
        && r.operations > 0
    {
        r.bytes_per_connection = Some((a.saturating_sub(b) * 1024) as f64 / r.operations as f64);
    }
    // Every held socket is live: one message per topic reaches all of them.
    let started = Instant::now();
    let mut http = Http::new(target);
    let mut body = b"{\"messages\":[".to_vec();
    for t in 0..HOLD_TOPICS.min(n) {
        if t > 0 {
            body.push(b',');
        }
        push_message(&mut body, &topic(t), now_us(), 0, "hold");
    }
    body.extend_from_slice(b"]}");
    let req = encode_request(target, "POST", "/api/v1/messages/bulk", Some(token), "application/json", &body);
    match http.send(&req).await {
        Ok((207, _)) => {}
        Ok((status, resp)) => {
            r.errors += 1;
            sample(&mut r.error_sample, format!("bulk publish: HTTP {status}: {}", String::from_utf8_lossy(resp)));
        }
        Err(e) => {
            r.errors += 1;
            sample(&mut r.error_sample, format!("bulk publish: {e:#}"));
        }
    }
    while delivered.load(Ordering::Relaxed) < r.operations && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = delivered.load(Ordering::Relaxed);
    r.expected = Some(r.operations);
    r.published = Some(HOLD_TOPICS.min(n) as u64);
    if got < r.operations {
        r.errors += r.operations - got;
        sample(&mut r.error_sample, format!("only {got} of {} held sockets received the check message", r.operations));
    }
    // Closing: dropping 10,000 sockets at once is what a crowd of clients going away looks like to the server.
    for h in &holders {
        h.abort();
    }
    for h in holders {
        let _ = h.await;
    }
    r.seconds = setup;
    r.per_sec = r.operations as f64 / setup;
    Ok(r)
}

/// Raises this process's open-file limit to its hard limit (10,000 sockets need more than the usual 1,024).
fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: lim.maximum, maximum: lim.maximum });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn run_id() -> String {
    format!("{:x}", now_us() & 0xff_ffff_ffff)
}

pub fn main(args: RelayBenchArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.url)?;
    let nofile = raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let token = login(&target, &args.username, &args.password).await?;
        for spec in &args.scenarios {
            let parts: Vec<&str> = spec.split(':').collect();
            let num = |i: usize| -> anyhow::Result<u64> {
                parts
                    .get(i)
                    .with_context(|| format!("scenario {spec:?}: missing field {i}"))?
                    .parse::<u64>()
                    .with_context(|| format!("scenario {spec:?}: field {i} is not a number"))
            };
            let run = run_id();
            let mut r = match parts[0] {
                "publish" => publish(&target, &token, &run, num(1)? as usize, num(2)? as f64).await?,
                "fanout" => fanout(&args, &target, &token, &run, num(1)? as usize, num(2)?, num(3)? as usize).await?,
                "longpoll" => longpoll(&target, &token, &run, num(1)? as usize, num(2)? as f64).await?,
                "hold" => {
                    let n = num(1)? as usize;
                    if (n as u64) + 64 > nofile {
                        eprintln!("relay-bench: warning: open-file limit {nofile} is below {n} sockets");
                    }
                    hold(&args, &target, &token, &run, n).await?
                }
                other => bail!("unknown scenario kind {other:?} (publish, fanout, longpoll, hold)"),
            };
            r.server = args.label.clone();
            r.scenario = spec.clone();
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                let lat = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
                println!(
                    "{:<14} {:<26} {:>12.0}/s  ops {:>9}  p50 {:>8} µs  p99 {:>8} µs  errors {}{}{}",
                    r.server,
                    r.scenario,
                    r.per_sec,
                    r.operations,
                    lat(r.p50_us),
                    lat(r.p99_us),
                    r.errors,
                    r.expected.map_or(String::new(), |e| format!("  expected {e}")),
                    r.rss_kib.map_or(String::new(), |k| format!("  server RSS {k} KiB")),
                );
                if let Some(e) = &r.error_sample {
                    println!("{:<14} first error: {e}", "");
                }
            }
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn finds_ids_and_timestamps_by_prefix() {
        let body = br#"{"messages":[{"topic":"t","message_id":"1-0","payload":{"ts":100,"seq":0},"timestamp":"x"},{"type":"message","message_id": "msg_abc","payload":{"ts": 250}}],"has_more":false}"#;
        let (n, last) = message_ids(body);
        assert_eq!((n, last), (2, Some(&b"msg_abc"[..])));
        let mut h = histogram();
        assert_eq!(record_latencies(body, 1000, &mut h), 2);
        assert_eq!((h.min(), h.max()), (750, 900));
        assert_eq!(message_ids(br#"{"messages":[],"has_more":false}"#), (0, None));
    }

    #[test]
    fn bulk_bodies_are_json() {
        let body = bulk_body("topic-1", 5, 3, "xx");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let items = v["messages"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["topic"], "topic-1");
        assert_eq!(items[2]["payload"]["seq"], 7);
        assert!(items[0]["payload"]["ts"].as_u64().unwrap() > 1_600_000_000_000_000);
    }

    #[test]
    fn parses_the_target() {
        assert_eq!(&*Target::parse("http://127.0.0.1:8080/").unwrap().addr, "127.0.0.1:8080");
        assert_eq!(&*Target::parse("http://localhost").unwrap().addr, "localhost:80");
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("http://x:1/api").is_err());
    }

    /// Content-Length, chunked and close-delimited bodies on one client, which reconnects after a close.
    #[tokio::test]
    async fn reads_every_response_framing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let responses: [&[u8]; 3] = [
                b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-eof",
            ];
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(r).await.unwrap();
            }
            drop(s);
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
        });
        let target = Target::parse(&format!("http://{addr}")).unwrap();
        let mut http = Http::new(&target);
        let req = encode_request(&target, "POST", "/x", Some("tok"), "application/json", b"{}");
        let (status, body) = http.send(&req).await.unwrap();
        assert_eq!((status, body), (201, &b"hello"[..]));
        let (status, body) = http.send(&req).await.unwrap();
        assert_eq!((status, body), (200, &b"abcdefg"[..]));
        let (status, body) = http.send(&req).await.unwrap();
        assert_eq!((status, body), (200, &b"until-eof"[..]));
        let (status, body) = http.send(&req).await.unwrap();
        assert_eq!((status, body), (204, &b""[..]));
    }
}
