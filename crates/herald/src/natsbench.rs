//! `herald nats-bench`: a raw-protocol NATS load generator. It speaks the NATS client protocol directly (no client
//! library), so the same bytes go to Herald and to nats-server and the comparison in docs/benchmarks.md is like for
//! like; `scripts/bench.py` runs it against both in the same run.
//!
//! Scenarios:
//! - `pubsub`: one publisher, N subscribers on one subject, M messages of S bytes. The publisher stays at most a
//!   window of messages ahead of the slowest subscriber (so neither server has to cut a subscriber off as a slow
//!   consumer); the figure is messages delivered per second, summed over subscribers.
//! - `reqrep`: C requesters, each sending one request at a time to a responder and waiting for the reply; round trips
//!   per second and latency percentiles.

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Args, Debug, Clone)]
pub struct NatsBenchArgs {
    /// The server, host:port.
    #[arg(long)]
    pub server: String,
    /// A label for the results (e.g. `herald` or `nats-server`).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Scenarios, comma-separated: `pubsub:<subscribers>:<size>:<messages>` or `reqrep:<requesters>:<size>:<seconds>`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pubsub:1:128:2000000,pubsub:4:128:1000000,pubsub:1:4096:200000,reqrep:1:128:5,reqrep:8:128:5"
    )]
    pub scenarios: Vec<String>,
    /// Print one JSON object per result.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct NatsResult {
    pub server: String,
    pub scenario: String,
    pub subscribers: usize,
    pub size: usize,
    /// pubsub: messages published; reqrep: round trips.
    pub operations: u64,
    pub seconds: f64,
    /// pubsub: deliveries/s summed over subscribers; reqrep: round trips/s.
    pub per_sec: f64,
    pub mib_per_sec: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":false,\"protocol\":1,\"lang\":\"herald-bench\"}\r\nPING\r\n";

/// Connects and completes the handshake (INFO, CONNECT + PING, PONG).
async fn connect(addr: &str) -> anyhow::Result<(Reader, OwnedWriteHalf)> {
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (rd, mut wr) = tcp.into_split();
    let mut r = Reader { rd, buf: Vec::with_capacity(1 << 20), pos: 0, pongs_owed: 0 };
    let info = r.line().await?;
    anyhow::ensure!(info.starts_with(b"INFO "), "expected INFO, got {:?}", String::from_utf8_lossy(&info));
    wr.write_all(CONNECT).await?;
    let pong = r.line().await?;
    anyhow::ensure!(pong == b"PONG", "expected PONG, got {:?}", String::from_utf8_lossy(&pong));
    Ok((r, wr))
}

/// The client side of the protocol, reading only what the benchmark needs: MSG frames, PING, PONG.
struct Reader {
    rd: OwnedReadHalf,
    buf: Vec<u8>,
    pos: usize,
    /// Server PINGs seen and not yet answered (the caller answers them on its write half).
    pongs_owed: usize,
}

enum Frame {
    Msg { len: usize },
    Pong,
}

impl Reader {
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > (1 << 20) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + (256 << 10), 0);
        let n = self.rd.read(&mut self.buf[start..]).await?;
        self.buf.truncate(start + n);
        anyhow::ensure!(n > 0, "server closed the connection");
        Ok(())
    }

    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            if let Some(i) = memchr_crlf(&self.buf[self.pos..]) {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    /// The next MSG or PONG; server PINGs are counted in `pongs_owed` and skipped.
    async fn frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(i) = memchr_crlf(rest) {
                let line = &rest[..i];
                if line.starts_with(b"MSG ") {
                    let len: usize = std::str::from_utf8(line.rsplit(|&b| b == b' ').next().unwrap_or_default())?
                        .parse()
                        .context("MSG size")?;
                    if rest.len() >= i + 2 + len + 2 {
                        self.pos += i + 2 + len + 2;
                        return Ok(Frame::Msg { len });
                    }
                } else {
                    self.pos += i + 2;
                    match line {
                        b"PING" => self.pongs_owed += 1,
                        b"PONG" => return Ok(Frame::Pong),
                        l if l.starts_with(b"-ERR") => anyhow::bail!("server error: {}", String::from_utf8_lossy(l)),
                        _ => {}
                    }
                    continue;
                }
            }
            self.fill().await?;
        }
    }
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn pub_frame(subject: &str, reply: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let mut f = match reply {
        Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()).into_bytes(),
        None => format!("PUB {subject} {}\r\n", payload.len()).into_bytes(),
    };
    f.extend_from_slice(payload);
    f.extend_from_slice(b"\r\n");
    f
}

async fn pubsub(addr: &str, subscribers: usize, size: usize, messages: u64) -> anyhow::Result<NatsResult> {
    let subject = format!("bench.{}", fastrand_u32());
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..subscribers).map(|_| AtomicU64::new(0)).collect());
    let mut readers = Vec::new();
    for i in 0..subscribers {
        let (mut r, mut w) = connect(addr).await?;
        w.write_all(format!("SUB {subject} {}\r\nPING\r\n", i + 1).as_bytes()).await?;
        while !matches!(r.frame().await?, Frame::Pong) {}
        let counts = Arc::clone(&counts);
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while n < messages {
                match r.frame().await? {
                    Frame::Msg { .. } => {
                        n += 1;
                        if n.is_multiple_of(256) || n == messages {
                            counts[i].store(n, Ordering::Release);
                        }
                    }
                    Frame::Pong => {}
                }
                if r.pongs_owed > 0 {
                    w.write_all(&b"PONG\r\n".repeat(std::mem::take(&mut r.pongs_owed))).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    let (mut pr, mut pw) = connect(addr).await?;
    // Keep the publisher's own socket drained (server PINGs), without blocking it.
    tokio::spawn(async move { while pr.frame().await.is_ok() {} });
    let frame = pub_frame(&subject, None, &vec![b'x'; size]);
    // At most this many bytes in flight ahead of the slowest subscriber: well below both servers' 64 MiB limit.
    let window = ((16u64 << 20) / (frame.len() as u64)).max(64);
    let batch = ((64 << 10) / frame.len()).max(1) as u64;
    let mut chunk = Vec::with_capacity(frame.len() * batch as usize);
    for _ in 0..batch {
        chunk.extend_from_slice(&frame);
    }
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < messages {
        let slowest = counts.iter().map(|c| c.load(Ordering::Acquire)).min().unwrap_or(0);
        if sent - slowest > window {
            tokio::task::yield_now().await;
            continue;
        }
        let n = batch.min(messages - sent);
        pw.write_all(&chunk[..frame.len() * n as usize]).await?;
        sent += n;
    }
    pw.flush().await?;
    for r in readers {
        tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .context("subscribers did not receive everything")???;
    }
    let seconds = started.elapsed().as_secs_f64();
    let delivered = messages * subscribers as u64;
    Ok(NatsResult {
        server: String::new(),
        scenario: format!("pubsub 1→{subscribers}, {size} B"),
        subscribers,
        size,
        operations: messages,
        seconds,
        per_sec: delivered as f64 / seconds,
        mib_per_sec: (delivered * size as u64) as f64 / seconds / f64::from(1 << 20),
        p50_us: None,
        p99_us: None,
    })
}

async fn reqrep(addr: &str, requesters: usize, size: usize, seconds: f64) -> anyhow::Result<NatsResult> {
    let subject = format!("bench.svc.{}", fastrand_u32());
    // The responder answers every request with its own payload.
    let (mut rr, mut rw) = connect(addr).await?;
    rw.write_all(format!("SUB {subject} 1\r\nPING\r\n").as_bytes()).await?;
    while !matches!(rr.frame().await?, Frame::Pong) {}
    tokio::spawn(async move {
        loop {
            // MSG <subject> <sid> <reply> <size>: the reply subject is the third field.
            let rest = &rr.buf[rr.pos..];
            let Some(i) = memchr_crlf(rest) else {
                if rr.fill().await.is_err() {
                    return;
                }
                continue;
            };
            let line = rest[..i].to_vec();
            if !line.starts_with(b"MSG ") {
                rr.pos += i + 2;
                if line == b"PING" && rw.write_all(b"PONG\r\n").await.is_err() {
                    return;
                }
                continue;
            }
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let len: usize =
                std::str::from_utf8(fields[fields.len() - 1]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            if rest.len() < i + 2 + len + 2 {
                if rr.fill().await.is_err() {
                    return;
                }
                continue;
            }
            let payload = rr.buf[rr.pos + i + 2..rr.pos + i + 2 + len].to_vec();
            rr.pos += i + 2 + len + 2;
            let reply = String::from_utf8_lossy(fields[3]).into_owned();
            if rw.write_all(&pub_frame(&reply, None, &payload)).await.is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..requesters {
        let (addr, subject) = (addr.to_string(), subject.clone());
        tasks.push(tokio::spawn(async move {
            let (mut r, mut w) = connect(&addr).await?;
            let inbox = format!("_INBOX.bench{c}");
            w.write_all(format!("SUB {inbox}.* 1\r\nPING\r\n").as_bytes()).await?;
            while !matches!(r.frame().await?, Frame::Pong) {}
            let payload = vec![b'r'; size];
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                w.write_all(&pub_frame(&subject, Some(&format!("{inbox}.{n}")), &payload)).await?;
                loop {
                    if let Frame::Msg { len, .. } = r.frame().await? {
                        anyhow::ensure!(len == size, "reply of {len} bytes");
                        break;
                    }
                }
                if r.pongs_owed > 0 {
                    w.write_all(&b"PONG\r\n".repeat(std::mem::take(&mut r.pongs_owed))).await?;
                }
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                n += 1;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        merged.add(t.await??)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(NatsResult {
        server: String::new(),
        scenario: format!("request/reply, {requesters} requester(s), {size} B"),
        subscribers: 1,
        size,
        operations: merged.len(),
        seconds: secs,
        per_sec: merged.len() as f64 / secs,
        mib_per_sec: (merged.len() * size as u64 * 2) as f64 / secs / f64::from(1 << 20),
        p50_us: Some(merged.value_at_quantile(0.5)),
        p99_us: Some(merged.value_at_quantile(0.99)),
    })
}

fn fastrand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

pub fn main(args: NatsBenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        for spec in &args.scenarios {
            let parts: Vec<&str> = spec.split(':').collect();
            anyhow::ensure!(parts.len() == 4, "scenario {spec:?}: expected kind:count:size:amount");
            let (count, size): (usize, usize) = (parts[1].parse()?, parts[2].parse()?);
            let mut r = match parts[0] {
                "pubsub" => pubsub(&args.server, count, size, parts[3].parse()?).await?,
                "reqrep" => reqrep(&args.server, count, size, parts[3].parse()?).await?,
                other => anyhow::bail!("unknown scenario kind {other:?} (pubsub, reqrep)"),
            };
            r.server = args.label.clone();
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{:<12} {:<40} {:>12.0}/s {:>9.1} MiB/s  p50 {:>6} µs  p99 {:>6} µs",
                    r.server,
                    r.scenario,
                    r.per_sec,
                    r.mib_per_sec,
                    r.p50_us.map_or("-".into(), |v| v.to_string()),
                    r.p99_us.map_or("-".into(), |v| v.to_string())
                );
            }
        }
        anyhow::Ok(())
    })
}
