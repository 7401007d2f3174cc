//! `herald bench`: a load generator for a Herald server over gRPC, with several concurrent clients, each on its own
//! connection. It reports throughput and latency percentiles per scenario, as a table or as JSON lines
//! (`--json`, which `scripts/bench.sh` consumes to write docs/benchmarks.md).
//!
//! By default it starts a fresh server of its own (this same binary, `serve`, on port 0 in a temporary directory) for
//! every scenario and fsync policy, so runs never share state; `--target` benchmarks a running server instead.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use herald_proto::flowmesh::v1::{
    self as pb, kv_service_client::KvServiceClient, queue_service_client::QueueServiceClient,
    stream_service_client::StreamServiceClient,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One HTTP/2 connection used directly as a gRPC transport. tonic's `Channel` sends every request through a buffer
/// task; a load generator sharing the machine with the server cannot afford that extra hop per request.
#[derive(Clone)]
struct Conn(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Conn {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

async fn connect(addr: &str) -> anyhow::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .initial_stream_window_size(2 << 20)
        .initial_connection_window_size(16 << 20)
        .handshake(hyper_util::rt::TokioIo::new(tcp))
        .await?;
    tokio::spawn(conn);
    Ok(Conn(send))
}

fn bytes_of(v: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(v)
}

fn origin(addr: &str) -> http::Uri {
    format!("http://{addr}").parse().expect("host:port makes a URI")
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenarios to run: stream-append, stream-read, queue-cycle, kv-set, kv-get (comma-separated) or `all`.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// fsync policies for stream-append (each gets its own server): always, interval:<ms>, never.
    #[arg(long, default_value = "always,interval:50,never", value_delimiter = ',')]
    fsync: Vec<String>,
    /// fsync policy of the server for the other scenarios.
    #[arg(long, default_value = "interval:50")]
    default_fsync: String,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Clients for the KV scenarios (redis-benchmark's default is 50).
    #[arg(long, default_value_t = 50)]
    kv_clients: usize,
    /// HTTP/2 connections the KV clients share (default: one per client, like redis-benchmark). gRPC multiplexes
    /// concurrent calls on a connection, so fewer connections with the same number of clients keeps the same
    /// concurrency.
    #[arg(long)]
    kv_connections: Option<usize>,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Records per WriteEvents request.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Stream record size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// KV value size in bytes (redis-benchmark -d).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Distinct KV keys (redis-benchmark -r).
    #[arg(long, default_value_t = 10_000)]
    keyspace: usize,
    /// Benchmark a running server at this address (host:port) instead of starting one. It needs auto-create on,
    /// or the resources t/bench/{stream,queue,kv}/bench provisioned.
    #[arg(long)]
    target: Option<String>,
    /// Bearer token for --target.
    #[arg(long)]
    token: Option<String>,
    /// Data directory parent for spawned servers [default: a temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print one JSON object per result instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
struct BenchResult {
    scenario: String,
    fsync: String,
    clients: usize,
    /// HTTP/2 connections the clients used.
    connections: usize,
    ops: u64,
    seconds: f64,
    ops_per_sec: f64,
    /// Payload megabytes per second (MiB/s) where meaningful.
    mib_per_sec: Option<f64>,
    /// Records (messages) per second where one op moves many.
    records_per_sec: Option<f64>,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    errors: u64,
}

fn rp(kind: &str) -> Option<pb::ResourcePath> {
    Some(pb::ResourcePath {
        tenant: "t".into(),
        namespace: "bench".into(),
        resource_type: kind.into(),
        name: "bench".into(),
    })
}

struct Spawned {
    child: std::process::Child,
    /// Removed when the server stops, so one scenario's data is not still being written back to the disk (and
    /// throttling writers) while the next scenario runs.
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `herald serve` on port 0 with `fsync`, returning its gRPC address.
fn spawn_server(args: &BenchArgs, fsync: &str) -> anyhow::Result<(String, Spawned)> {
    let (dir, tmp) = match &args.work_dir {
        Some(d) => {
            let d = d.join(format!("bench-{}-{}", fsync.replace(':', "-"), std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)?;
            (d, None)
        }
        None => {
            let t = tempfile::tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let port_file = dir.join("port.json");
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--nats-addr",
            "127.0.0.1:0",
            "--relay-addr",
            "",
            "--metrics-addr",
            "",
            "--auto-create",
            "--no-auth",
            "--log",
            "warn",
        ])
        .arg("--fsync")
        .arg(fsync)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--port-file")
        .arg(&port_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log"))?)
        .spawn()
        .context("starting herald serve")?;
    let spawned = Spawned { child, dir: dir.clone(), _tmp: tmp };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            return Ok((v["grpc"].as_str().unwrap_or_default().to_owned(), spawned));
        }
        anyhow::ensure!(Instant::now() < deadline, "benchmark server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request<T>(msg: T, token: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token
        && let Ok(v) = format!("Bearer {t}").parse()
    {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// Runs `clients` loops of `op` for `duration`, each on its own connection, and merges their latencies.
async fn drive<F, Fut>(
    addr: &str,
    clients: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<(u64, f64, Histogram<u64>, u64)>
where
    F: Fn(Conn, http::Uri, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    drive_shared(addr, clients, clients, duration, op).await
}

/// Like [`drive`], with the clients spread over `connections` HTTP/2 connections.
async fn drive_shared<F, Fut>(
    addr: &str,
    clients: usize,
    connections: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<(u64, f64, Histogram<u64>, u64)>
where
    F: Fn(Conn, http::Uri, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..connections.clamp(1, clients.max(1)) {
        conns.push(connect(addr).await?);
    }
    let start = Instant::now();
    for c in 0..clients {
        let conn = conns[c % conns.len()].clone();
        let origin = origin(addr);
        let (op, stop, errors, done) = (Arc::clone(&op), Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut n = 0u64;
            let mut failing_since: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if op(conn.clone(), origin.clone(), (c as u64) << 40 | n).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    // A dead server fails instantly: back off so the loop never starves the runtime, and stop
                    // this client once it has failed for 5 s straight.
                    let since = *failing_since.get_or_insert(t);
                    if since.elapsed() > Duration::from_secs(5) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                } else {
                    failing_since = None;
                    let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            hist
        }));
    }
    // A progress bar on standard error while the clients run (drawn only when stderr is a terminal, so scripts and
    // `--json` output never see it).
    let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {msg}").expect("a valid template").progress_chars("=> "),
    );
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(100).min(duration.saturating_sub(start.elapsed()))).await;
        let done = done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        bar.set_position(start.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{done} requests, {:.0}/s, {secs:.1} of {:.1} s",
            done as f64 / secs.max(0.001),
            duration.as_secs_f64()
        ));
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        merged.add(t.await?)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    anyhow::ensure!(!merged.is_empty(), "no request succeeded ({errors} errors): is the server running?");
    Ok((merged.len(), secs, merged, errors))
}

fn result(scenario: &str, fsync: &str, clients: usize, run: (u64, f64, Histogram<u64>, u64)) -> BenchResult {
    let (ops, secs, h, errors) = run;
    BenchResult {
        scenario: scenario.into(),
        fsync: fsync.into(),
        clients,
        connections: clients,
        ops,
        seconds: secs,
        ops_per_sec: ops as f64 / secs,
        mib_per_sec: None,
        records_per_sec: None,
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        errors,
    }
}

/// Adds records/s and MiB/s for scenarios where one request moves `records_per_op` records of `record_size` bytes.
fn with_payload_rates(mut r: BenchResult, records_per_op: usize, record_size: usize) -> BenchResult {
    let records = r.ops as f64 * records_per_op as f64;
    r.records_per_sec = Some(records / r.seconds);
    r.mib_per_sec = Some(records * record_size as f64 / r.seconds / (1 << 20) as f64);
    r
}

/// Sends one unary gRPC call whose message is already encoded and framed (`body`), and fails unless the answer
/// is `grpc-status: 0`. Used where the request is the same every time, so the load generator, which shares the
/// machine with the server, does not spend its CPU encoding it again for every call (as h2load replays a body).
/// `authorization` is the header value, made once by the caller.
async fn unary_preencoded(
    mut conn: Conn,
    uri: http::Uri,
    body: Bytes,
    authorization: Option<http::HeaderValue>,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let mut req = http::Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(body)))?;
    if let Some(v) = authorization {
        req.headers_mut().insert("authorization", v);
    }
    let response = tower_service::Service::call(&mut conn, req).await?;
    let (parts, body) = response.into_parts();
    let collected = body.collect().await?;
    // A trailers-only answer carries the status in the headers.
    let status = collected.trailers().unwrap_or(&parts.headers).get("grpc-status").cloned();
    anyhow::ensure!(status.as_ref().is_some_and(|s| s == "0"), "call failed: grpc-status {status:?}");
    Ok(())
}

/// A message in gRPC's length-prefixed framing (uncompressed).
fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = Vec::with_capacity(5 + len);
    buf.push(0);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    message.encode_raw(&mut buf);
    Bytes::from(buf)
}

async fn stream_append(args: &BenchArgs, addr: &str, fsync: &str) -> anyhow::Result<BenchResult> {
    let authorization = match &args.token {
        Some(t) => Some(format!("Bearer {t}").parse::<http::HeaderValue>()?),
        None => None,
    };
    let payload = bytes_of((0..args.record_size).map(|i| (i % 251) as u8).collect());
    let events = (0..args.batch).map(|_| pb::Event { payload: payload.clone(), headers: Default::default() }).collect();
    let body = grpc_frame(&pb::WriteEventsRequest { resource_path: rp("stream"), events });
    let uri: http::Uri = format!("http://{addr}/flowmesh.v1.StreamService/WriteEvents").parse()?;
    let run = drive(addr, args.clients, Duration::from_secs_f64(args.duration), move |ch, _, _| {
        let (body, uri, authorization) = (body.clone(), uri.clone(), authorization.clone());
        async move { unary_preencoded(ch, uri, body, authorization).await }
    })
    .await?;
    Ok(with_payload_rates(result("stream-append", fsync, args.clients, run), args.batch, args.record_size))
}

async fn stream_read(args: &BenchArgs, addr: &str, fsync: &str) -> anyhow::Result<BenchResult> {
    // Fill the stream first: 100k records.
    let mut w = StreamServiceClient::with_origin(connect(addr).await?, origin(addr));
    let payload = bytes_of(vec![7; args.record_size]);
    let total: i64 = 100_000;
    for _ in 0..(total / 500) {
        let events = (0..500).map(|_| pb::Event { payload: payload.clone(), headers: Default::default() }).collect();
        w.write_events(request(pb::WriteEventsRequest { resource_path: rp("stream"), events }, &args.token)).await?;
    }
    let token = args.token.clone();
    let run = drive(addr, args.clients, Duration::from_secs_f64(args.duration), move |ch, origin, n| {
        let token = token.clone();
        async move {
            let offset = (n.wrapping_mul(7919) % (total as u64 - 1000)) as i64;
            let req = pb::ReadStreamRequest { resource_path: rp("stream"), partition: 0, offset, max_messages: 1000 };
            let msgs = StreamServiceClient::with_origin(ch, origin)
                .max_decoding_message_size(64 << 20)
                .read_stream(request(req, &token))
                .await?;
            anyhow::ensure!(msgs.into_inner().messages.len() == 1000, "short read");
            Ok(())
        }
    })
    .await?;
    Ok(with_payload_rates(result("stream-read", fsync, args.clients, run), 1000, args.record_size))
}

async fn queue_cycle(args: &BenchArgs, addr: &str, fsync: &str) -> anyhow::Result<BenchResult> {
    let token = args.token.clone();
    let run = drive(addr, args.clients, Duration::from_secs_f64(args.duration), move |ch, origin, _| {
        let token = token.clone();
        async move {
            let mut q = QueueServiceClient::with_origin(ch, origin);
            let enq = pb::EnqueueRequest {
                resource_path: rp("queue"),
                payload: bytes_of(vec![1; 256]),
                ..Default::default()
            };
            q.enqueue(request(enq, &token)).await?;
            let res = pb::ReserveRequest {
                resource_path: rp("queue"),
                visibility_timeout_seconds: 30,
                long_poll_timeout_seconds: 1,
            };
            let job = q.reserve(request(res, &token)).await?.into_inner().job.context("no job")?;
            q.ack(request(pb::AckRequest { resource_path: rp("queue"), job_id: job.id }, &token)).await?;
            Ok(())
        }
    })
    .await?;
    Ok(result("queue-cycle", fsync, args.clients, run))
}

async fn kv(args: &BenchArgs, addr: &str, fsync: &str, get: bool) -> anyhow::Result<BenchResult> {
    let (keyspace, token) = (args.keyspace as u64, args.token.clone());
    let value = bytes_of(vec![b'v'; args.value_size]);
    if get {
        // Every key exists before reads start, as after redis-benchmark's SET run.
        let mut kv = KvServiceClient::with_origin(connect(addr).await?, origin(addr));
        for k in 0..keyspace {
            let set = pb::SetRequest {
                resource_path: rp("kv"),
                key: format!("key:{k:012}"),
                value: value.clone(),
                ttl_seconds: 0,
            };
            kv.set(request(set, &token)).await?;
        }
    }
    let connections = args.kv_connections.unwrap_or(args.kv_clients);
    let run = drive_shared(
        addr,
        args.kv_clients,
        connections,
        Duration::from_secs_f64(args.duration),
        move |ch, origin, n| {
            let (value, token) = (value.clone(), token.clone());
            async move {
                let key = format!("key:{:012}", n.wrapping_mul(2_654_435_761) % keyspace);
                let mut kv = KvServiceClient::with_origin(ch, origin);
                if get {
                    kv.get(request(pb::GetRequest { resource_path: rp("kv"), key }, &token)).await?;
                } else {
                    let set = pb::SetRequest { resource_path: rp("kv"), key, value, ttl_seconds: 0 };
                    kv.set(request(set, &token)).await?;
                }
                Ok(())
            }
        },
    )
    .await?;
    let mut r = result(if get { "kv-get" } else { "kv-set" }, fsync, args.kv_clients, run);
    r.connections = connections;
    Ok(r)
}

async fn run_all(args: BenchArgs) -> anyhow::Result<Vec<BenchResult>> {
    let all = ["stream-append", "stream-read", "queue-cycle", "kv-set", "kv-get"];
    let wanted: Vec<String> = if args.scenarios.iter().any(|s| s == "all") {
        all.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    for s in &wanted {
        anyhow::ensure!(all.contains(&s.as_str()), "unknown scenario {s:?}; choose from {}", all.join(", "));
    }
    let mut results = Vec::new();
    for scenario in &wanted {
        // Start every scenario with no dirty pages left from the previous one.
        let _ = std::process::Command::new("sync").status();
        let policies = if scenario == "stream-append" { args.fsync.clone() } else { vec![args.default_fsync.clone()] };
        for fsync in policies {
            let _ = std::process::Command::new("sync").status();
            let (addr, spawned) = match &args.target {
                Some(t) => (t.clone(), None),
                None => {
                    let (a, s) = spawn_server(&args, &fsync)?;
                    (a, Some(s))
                }
            };
            let fsync_label = if args.target.is_some() { "server's".to_string() } else { fsync.clone() };
            let r = match scenario.as_str() {
                "stream-append" => stream_append(&args, &addr, &fsync_label).await?,
                "stream-read" => stream_read(&args, &addr, &fsync_label).await?,
                "queue-cycle" => queue_cycle(&args, &addr, &fsync_label).await?,
                "kv-set" => kv(&args, &addr, &fsync_label, false).await?,
                _ => kv(&args, &addr, &fsync_label, true).await?,
            };
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_row(&r);
            }
            results.push(r);
            drop(spawned);
        }
    }
    Ok(results)
}

fn print_row(r: &BenchResult) {
    let extra = match (r.records_per_sec, r.mib_per_sec) {
        (Some(rec), Some(mib)) => format!("  {rec:>10.0} rec/s  {mib:>8.1} MiB/s"),
        _ => String::new(),
    };
    println!(
        "{:<14} fsync={:<12} clients={:<3} conns={:<3} {:>10.0} ops/s  p50 {:>6} µs  p99 {:>7} µs  errors {}{}",
        r.scenario, r.fsync, r.clients, r.connections, r.ops_per_sec, r.p50_us, r.p99_us, r.errors, extra
    );
}

pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run_all(args))?;
    Ok(())
}
