//! `herald events-bench`: publish → deliver → ack over EnSync gRPC against a Herald it starts itself.
//!
//! Each scenario `<recipients>:<payload bytes>` gets a fresh server whose configuration registers one publisher
//! identity and the recipients. Subscribers connect first (with one recipient, `--consumers` sessions of it compete
//! for its events, as workers would; with several, one session each), then `--publishers` sessions publish one event
//! per RPC to the recipients in turn for `--seconds`, keeping at most `--max-outstanding` events published but not
//! yet acked. Every delivery is acked with `AcknowledgeMessage`. Reported:
//! - acked events per second over the run (from the first publish to the last ack);
//! - publish → deliver latency (the send time travels in the payload) under that load, p50 / p99;
//! - the same latency with one event at a time (publish, deliver, ack, next), which is the pipeline's own latency;
//! - the server's CPU time per acked event (from `/proc/<pid>/stat`).
//!
//! Payloads are opaque to Herald, so the benchmark sends plain text of the given size rather than real ciphertext.

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use herald_testkit::ensync::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

#[derive(Args)]
pub struct EventsBenchArgs {
    /// Scenarios, comma-separated: `<recipients>:<payload bytes>`.
    #[arg(long, default_value = "1:256,1:16384,100:256,100:16384")]
    scenarios: String,
    /// Publishing time per scenario (deliveries still in flight are then waited for).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Publisher sessions (each with its own connection).
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Subscriber sessions of the single recipient in one-recipient scenarios (competing consumers).
    #[arg(long, default_value_t = 16)]
    consumers: usize,
    /// HTTP/2 connections shared by all sessions (0: one per session). gRPC clients normally multiplex many calls
    /// over one channel, which lets HTTP/2 carry several frames per write.
    #[arg(long, default_value_t = 0)]
    connections: usize,
    /// Events published but not yet acked, at most.
    #[arg(long, default_value_t = 256)]
    max_outstanding: usize,
    /// Seconds of the one-at-a-time latency run per scenario.
    #[arg(long, default_value_t = 2.0)]
    latency_seconds: f64,
    /// The server's fsync policy (`always`, `interval:<ms>`, `never`); empty = Herald's default.
    #[arg(long, default_value = "")]
    fsync: String,
    /// `grpc` (ensync.EnSyncService) or `ws` (the `/message` text protocol on the relay listener).
    #[arg(long, default_value = "grpc")]
    transport: String,
    /// Print one JSON object per scenario.
    #[arg(long)]
    json: bool,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The payload: the send time, then filler up to `size` bytes.
fn payload(size: usize) -> String {
    let mut p = format!("{:020}|", now_ns());
    p.extend(std::iter::repeat_n('x', size.saturating_sub(p.len())));
    p
}

fn sent_at(payload: &str) -> Option<u64> {
    payload.get(..20)?.parse().ok()
}

fn b64(k: &[u8; 32]) -> String {
    herald_engine::events::encode_public_key(k)
}

fn identity_key(i: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    k[31] = 0x42;
    k
}

/// A server of its own per scenario.
struct Server {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    addr: String,
    /// The relay listener (`/message`), when started.
    relay: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(recipients: usize, fsync: &str, ws: bool) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let mut cfg = String::from("[events]\n");
        for i in 0..=recipients {
            let key = if i == 0 { "bench-pub".to_string() } else { format!("bench-r{i}") };
            cfg.push_str(&format!(
                "[[events.identities]]\nname = \"{key}\"\npublic_key = \"{}\"\naccess_key = \"{key}\"\n",
                b64(&identity_key(i))
            ));
        }
        std::fs::write(dir.path().join("herald.toml"), cfg)?;
        let port_file = dir.path().join("port.json");
        let mut cmd = std::process::Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--nats-addr", ""])
            .args([
                "--relay-addr",
                if ws { "127.0.0.1:0" } else { "" },
                "--metrics-addr",
                "",
                "--log",
                "warn",
                "--config",
            ])
            .arg(dir.path().join("herald.toml"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--port-file")
            .arg(&port_file);
        if !fsync.is_empty() {
            cmd.args(["--fsync", fsync]);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log"))?)
            .spawn()
            .context("starting herald serve")?;
        let mut server = Server { child, _dir: dir, addr: String::new(), relay: String::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let v: serde_json::Value = serde_json::from_str(&text)?;
                server.addr = v["grpc"].as_str().unwrap_or_default().to_owned();
                server.relay = v["relay"].as_str().unwrap_or_default().to_owned();
                return Ok(server);
            }
            anyhow::ensure!(Instant::now() < deadline, "benchmark server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 14th field, stime the 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }
}

/// Connections handed out round-robin, or a new one per session.
struct Pool {
    addr: String,
    shared: Vec<Client>,
    next: std::sync::atomic::AtomicUsize,
}

impl Pool {
    async fn new(addr: &str, n: usize) -> anyhow::Result<Pool> {
        let mut shared = Vec::new();
        for _ in 0..n {
            shared.push(Client::new(addr).await?);
        }
        Ok(Pool { addr: addr.to_owned(), shared, next: Default::default() })
    }

    async fn get(&self) -> anyhow::Result<Client> {
        if self.shared.is_empty() {
            return Client::new(&self.addr).await;
        }
        Ok(self.shared[self.next.fetch_add(1, Ordering::Relaxed) % self.shared.len()].clone())
    }
}

struct Shared {
    acked: AtomicU64,
    published: AtomicU64,
    errors: AtomicU64,
    deliver_ns: parking_lot::Mutex<Histogram<u64>>,
    last_ack: parking_lot::Mutex<Instant>,
    window: Semaphore,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Subscriber sessions: `sessions` of each recipient key, each acking what it receives.
async fn start_subscribers(
    pool: &Pool,
    recipients: usize,
    sessions: usize,
    name: &str,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for r in 1..=recipients {
        for _ in 0..sessions {
            let mut c = pool.get().await?;
            let cid = c.connect(&format!("bench-r{r}")).await?;
            let mut stream = c.subscribe(&cid, name).await?;
            let shared = Arc::clone(shared);
            tasks.push(tokio::spawn(async move {
                while let Ok(Some(m)) = stream.message().await {
                    let t = now_ns();
                    if let Some(s) = sent_at(&m.payload) {
                        let _ = shared.deliver_ns.lock().record(t.saturating_sub(s).max(1));
                    }
                    match c.ack(&cid, &m).await {
                        Ok(()) => {
                            shared.acked.fetch_add(1, Ordering::Relaxed);
                            *shared.last_ack.lock() = Instant::now();
                            shared.window.add_permits(1);
                        }
                        _ => {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
    }
    Ok(tasks)
}

struct Phase {
    acked: u64,
    published: u64,
    errors: u64,
    elapsed: f64,
    deliver: Histogram<u64>,
}

/// One load phase: who subscribes, who publishes, how much may be outstanding.
struct PhaseSpec {
    /// `Some(relay address)`: over the WebSocket protocol instead of gRPC.
    ws: Option<String>,
    connections: usize,
    recipients: usize,
    sessions: usize,
    publishers: usize,
    outstanding: usize,
    size: usize,
    seconds: f64,
    name: &'static str,
}

/// Publishes for `seconds` with at most `outstanding` unacked events, then waits for the acks.
async fn run_phase(addr: &str, spec: PhaseSpec) -> anyhow::Result<Phase> {
    let PhaseSpec { ws, connections, recipients, sessions, publishers, outstanding, size, seconds, name } = spec;
    let pool = Pool::new(addr, connections).await?;
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        published: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        deliver_ns: parking_lot::Mutex::new(histogram()),
        last_ack: parking_lot::Mutex::new(Instant::now()),
        window: Semaphore::new(outstanding),
    });
    let subs = match &ws {
        None => start_subscribers(&pool, recipients, sessions, name, &shared).await?,
        Some(relay) => ws::start_subscribers(relay, recipients, sessions, name, &shared).await?,
    };
    let targets: Arc<Vec<String>> = Arc::new((1..=recipients).map(|i| b64(&identity_key(i))).collect());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut pubs = Vec::new();
    for p in 0..publishers {
        if let Some(relay) = &ws {
            pubs.push(
                ws::start_publisher(relay, p, publishers, Arc::clone(&targets), name, size, deadline, &shared).await?,
            );
            continue;
        }
        let mut c = pool.get().await?;
        let cid = c.connect("bench-pub").await?;
        let (shared, targets, name) = (Arc::clone(&shared), Arc::clone(&targets), name.to_string());
        pubs.push(tokio::spawn(async move {
            let mut i = p;
            while Instant::now() < deadline {
                let Ok(permit) = shared.window.acquire().await else { break };
                permit.forget();
                let to = &targets[i % targets.len()];
                i += publishers;
                match c.publish(&cid, &name, to, payload(size)).await {
                    Ok(_) => {
                        shared.published.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        shared.window.add_permits(1);
                    }
                }
            }
        }));
    }
    for p in pubs {
        p.await?;
    }
    let published = shared.published.load(Ordering::Relaxed);
    let drain = Instant::now() + Duration::from_secs(60);
    while shared.acked.load(Ordering::Relaxed) < published && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = shared.last_ack.lock().duration_since(started).as_secs_f64();
    for s in subs {
        s.abort();
    }
    let deliver = shared.deliver_ns.lock().clone();
    Ok(Phase {
        acked: shared.acked.load(Ordering::Relaxed),
        published,
        errors: shared.errors.load(Ordering::Relaxed),
        elapsed,
        deliver,
    })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e6
}

async fn scenario(args: &EventsBenchArgs, recipients: usize, size: usize) -> anyhow::Result<serde_json::Value> {
    let over_ws = args.transport == "ws";
    anyhow::ensure!(over_ws || args.transport == "grpc", "--transport: grpc or ws");
    let server = Server::start(recipients, &args.fsync, over_ws)?;
    let ws = over_ws.then(|| server.relay.clone());
    let sessions = if recipients == 1 { args.consumers.max(1) } else { 1 };
    let cpu0 = server.cpu_seconds();
    let load = run_phase(
        &server.addr,
        PhaseSpec {
            ws: ws.clone(),
            connections: args.connections,
            recipients,
            sessions,
            publishers: args.publishers,
            outstanding: args.max_outstanding,
            size,
            seconds: args.seconds,
            name: "bench/load",
        },
    )
    .await?;
    let cpu = server.cpu_seconds() - cpu0;
    // One event at a time: the pipeline's own latency.
    let single = run_phase(
        &server.addr,
        PhaseSpec {
            ws: ws.clone(),
            connections: 0,
            recipients,
            sessions: 1,
            publishers: 1,
            outstanding: 1,
            size,
            seconds: args.latency_seconds,
            name: "bench/latency",
        },
    )
    .await?;
    let rate = load.acked as f64 / load.elapsed.max(1e-9);
    Ok(serde_json::json!({
        "transport": args.transport,
        "recipients": recipients,
        "payload_bytes": size,
        "publishers": args.publishers,
        "subscriber_sessions": sessions * recipients,
        "max_outstanding": args.max_outstanding,
        "connections": args.connections,
        "published": load.published,
        "acked": load.acked,
        "errors": load.errors + single.errors,
        "acked_per_sec": rate.round(),
        "loaded_deliver_p50_ms": ms(&load.deliver, 0.5),
        "loaded_deliver_p99_ms": ms(&load.deliver, 0.99),
        "single_deliver_p50_ms": ms(&single.deliver, 0.5),
        "single_deliver_p99_ms": ms(&single.deliver, 0.99),
        "single_events": single.acked,
        "server_cpu_us_per_event": (cpu * 1e6 / load.acked.max(1) as f64).round(),
        "server_cpu_percent": (cpu / load.elapsed.max(1e-9) * 100.0).round(),
    }))
}

pub fn main(args: EventsBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        for spec in args.scenarios.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (r, s) = spec.split_once(':').context("a scenario is <recipients>:<payload bytes>")?;
            let (recipients, size): (usize, usize) = (r.parse()?, s.parse()?);
            anyhow::ensure!(recipients >= 1 && size >= 32, "{spec}: at least 1 recipient and 32 bytes");
            let v = scenario(&args, recipients, size).await?;
            if args.json {
                println!("{v}");
            } else {
                println!(
                    "{:>3} recipient(s) {:>6} B  {:>8} acked/s  loaded p50 {:>7.3} ms p99 {:>7.3} ms  one-at-a-time p50 {:>6.3} ms p99 {:>6.3} ms  server {:>5} µs CPU/event  errors {}",
                    recipients,
                    size,
                    v["acked_per_sec"],
                    v["loaded_deliver_p50_ms"].as_f64().unwrap_or(0.0),
                    v["loaded_deliver_p99_ms"].as_f64().unwrap_or(0.0),
                    v["single_deliver_p50_ms"].as_f64().unwrap_or(0.0),
                    v["single_deliver_p99_ms"].as_f64().unwrap_or(0.0),
                    v["server_cpu_us_per_event"],
                    v["errors"],
                );
            }
        }
        Ok(())
    })
}

/// The same load over the `/message` WebSocket text protocol (compat/ensync.md §4): one socket per session.
mod ws {
    use super::{Shared, now_ns, payload, sent_at};
    use futures::{SinkExt, StreamExt};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    use tokio_tungstenite::tungstenite::Message;

    type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn next_text(ws: &mut Socket) -> anyhow::Result<String> {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("socket closed"),
            }
        }
    }

    /// Opens a socket and sends `CONN`; returns it with the session's client id.
    async fn session(relay: &str, key: &str) -> anyhow::Result<(Socket, String)> {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{relay}/message")).await?;
        ws.send(Message::Text(format!("CONN;ACCESS_KEY=:{key}").into())).await?;
        let reply = next_text(&mut ws).await?;
        let cid = reply
            .strip_prefix("+PASS:{clientId=")
            .and_then(|r| r.split(',').next())
            .ok_or_else(|| anyhow::anyhow!("CONN failed: {reply}"))?
            .to_owned();
        Ok((ws, cid))
    }

    pub async fn start_subscribers(
        relay: &str,
        recipients: usize,
        sessions: usize,
        name: &str,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for r in 1..=recipients {
            for _ in 0..sessions {
                let (mut ws, cid) = session(relay, &format!("bench-r{r}")).await?;
                ws.send(Message::Text(format!("SUB;CLIENT_ID=:{cid};EVENT_NAME=:{name}").into())).await?;
                let reply = next_text(&mut ws).await?;
                anyhow::ensure!(reply.starts_with("+PASS:"), "SUB failed: {reply}");
                let (shared, name) = (Arc::clone(shared), name.to_owned());
                tasks.push(tokio::spawn(async move {
                    while let Ok(frame) = next_text(&mut ws).await {
                        if let Some(record) = frame.strip_prefix("+RECORD:") {
                            let t = now_ns();
                            let v: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
                            if let Some(s) = v["payload"].as_str().and_then(sent_at) {
                                let _ = shared.deliver_ns.lock().record(t.saturating_sub(s).max(1));
                            }
                            let idem = v["idem"].as_str().unwrap_or_default();
                            let ack = format!(
                                "ACK;CLIENT_ID=:{cid};EVENT_IDEM=:{idem};BLOCK=:{};EVENT_NAME=:{name}",
                                v["block"]
                            );
                            if ws.send(Message::Text(ack.into())).await.is_err() {
                                return;
                            }
                        } else if frame.starts_with("+PASS:") {
                            shared.acked.fetch_add(1, Ordering::Relaxed);
                            *shared.last_ack.lock() = Instant::now();
                            shared.window.add_permits(1);
                        } else {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        Ok(tasks)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn start_publisher(
        relay: &str,
        first: usize,
        step: usize,
        targets: Arc<Vec<String>>,
        name: &str,
        size: usize,
        deadline: Instant,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let (mut ws, cid) = session(relay, "bench-pub").await?;
        let (shared, name) = (Arc::clone(shared), name.to_owned());
        Ok(tokio::spawn(async move {
            let mut i = first;
            while Instant::now() < deadline {
                let Ok(permit) = shared.window.acquire().await else { break };
                permit.forget();
                let to = &targets[i % targets.len()];
                i += step;
                let frame = format!(
                    "PUB;CLIENT_ID=:{cid};EVENT_NAME=:{name};PAYLOAD=:{};DELIVERY_TO=:{to};METADATA=:{{}}",
                    payload(size)
                );
                let ok = ws.send(Message::Text(frame.into())).await.is_ok()
                    && next_text(&mut ws).await.is_ok_and(|r| r.starts_with("+PASS:"));
                if ok {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.window.add_permits(1);
                }
            }
        }))
    }
}
