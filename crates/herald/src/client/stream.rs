//! `herald stream write|read|tail`.

use super::{GrpcArgs, nanos_text, parse_pairs, payload_json, print_json, resource_path, show_bytes, status_error};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use herald_proto::flowmesh::v1 as pb;
use pb::stream_service_client::StreamServiceClient;
use std::io::BufRead;

#[derive(Subcommand)]
pub enum StreamCommand {
    /// Append events: each DATA argument is one event; `--file` appends one event per line (a bulk import, sent in
    /// batches, with a progress bar); with neither, lines are read from standard input.
    Write(WriteArgs),
    /// Read stored messages from an offset.
    Read(ReadArgs),
    /// Follow a stream: print messages as they are written, until interrupted or `--count` messages.
    Tail(TailArgs),
}

#[derive(Args)]
pub struct WriteArgs {
    /// Stream: `<tenant>/<namespace>/<name>`.
    pub stream: String,
    /// Event payloads.
    pub data: Vec<String>,
    /// Append every line of this file as one event.
    #[arg(long, conflicts_with = "data")]
    pub file: Option<std::path::PathBuf>,
    /// A header for every event (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Events per request for `--file` and standard input.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct ReadArgs {
    pub stream: String,
    #[arg(long, default_value_t = 0)]
    pub offset: i64,
    /// At most this many messages (the server caps at 1,000).
    #[arg(long, default_value_t = 100)]
    pub max: i32,
    #[arg(long, default_value_t = 0)]
    pub partition: i32,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct TailArgs {
    pub stream: String,
    /// Consumer group whose committed offset `--from committed` resumes after. Tailing never commits.
    #[arg(long, default_value = "herald-cli")]
    pub group: String,
    /// `latest` (only new messages), `committed` (after the group's committed offset) or an offset.
    #[arg(long, default_value = "latest")]
    pub from: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

pub fn main(cmd: StreamCommand) -> anyhow::Result<()> {
    super::run(async move {
        match cmd {
            StreamCommand::Write(a) => write(a).await,
            StreamCommand::Read(a) => read(a).await,
            StreamCommand::Tail(a) => tail(a).await,
        }
    })
}

async fn write(a: WriteArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.stream, "stream")?;
    let headers = parse_pairs(&a.headers)?;
    let conn = a.grpc.connect().await?;
    let mut client = StreamServiceClient::new(conn.channel.clone()).max_decoding_message_size(64 << 20);
    let event = |line: &str| pb::Event { payload: line.as_bytes().to_vec().into(), headers: headers.clone() };

    // Arguments: one request, all or nothing.
    if !a.data.is_empty() {
        let req =
            pb::WriteEventsRequest { resource_path: Some(path), events: a.data.iter().map(|d| event(d)).collect() };
        let offsets = client.write_events(conn.request(req)).await.map_err(status_error)?.into_inner().offsets;
        return report_offsets(&offsets, conn.json);
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    // A file or standard input: batches of lines. Each batch is atomic; a failure stops the import and says how
    // far it got, so it can be resumed.
    let (reader, total): (Box<dyn BufRead>, Option<u64>) = match &a.file {
        Some(f) => {
            let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
            let lines = count_lines(f)?;
            (Box::new(std::io::BufReader::new(file)), Some(lines))
        }
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let bar = progress(total, conn.json);
    let (mut written, mut first, mut last) = (0u64, None, None);
    let mut batch = Vec::with_capacity(a.batch);
    let mut lines = reader.lines();
    loop {
        let line = lines.next().transpose().context("reading input")?;
        if let Some(l) = line.as_deref().filter(|l| !l.is_empty()) {
            batch.push(event(l));
        }
        if batch.len() >= a.batch || (line.is_none() && !batch.is_empty()) {
            let n = batch.len() as u64;
            let req = pb::WriteEventsRequest { resource_path: Some(path.clone()), events: std::mem::take(&mut batch) };
            let offsets = client
                .write_events(conn.request(req))
                .await
                .map_err(|s| status_error(s).context(format!("after {written} events were written")))?
                .into_inner()
                .offsets;
            first = first.or(offsets.first().copied());
            last = offsets.last().copied().or(last);
            written += n;
            bar.inc(n);
        }
        if line.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    if conn.json {
        print_json(&serde_json::json!({"events": written, "first_offset": first, "last_offset": last}));
    } else {
        match (first, last) {
            (Some(f), Some(l)) => println!("wrote {written} events, offsets {f}..={l}"),
            _ => println!("wrote 0 events"),
        }
    }
    Ok(())
}

fn count_lines(path: &std::path::Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path)?;
    let mut n = 0;
    for line in std::io::BufReader::new(file).lines() {
        if !line?.is_empty() {
            n += 1;
        }
    }
    Ok(n)
}

/// A progress bar on standard error when it is a terminal (never mixed into `--json` output on stdout).
pub fn progress(total: Option<u64>, json: bool) -> indicatif::ProgressBar {
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = match total {
        Some(_) => "{bar:40} {pos}/{len} events {per_sec} eta {eta}",
        None => "{spinner} {pos} events {per_sec}",
    };
    bar.set_style(indicatif::ProgressStyle::with_template(style).expect("a valid template"));
    bar
}

fn report_offsets(offsets: &[i64], json: bool) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({"offsets": offsets}));
    } else {
        let list: Vec<String> = offsets.iter().map(i64::to_string).collect();
        println!("offsets {}", list.join(" "));
    }
    Ok(())
}

fn print_message(m: &pb::Message, json: bool) {
    if json {
        let mut o = serde_json::Map::new();
        o.insert("offset".into(), m.offset.into());
        o.insert("partition".into(), m.partition.into());
        o.insert("id".into(), m.id.clone().into());
        o.insert("created_at".into(), m.created_at.into());
        o.insert("headers".into(), serde_json::to_value(&m.headers).unwrap_or_default());
        o.insert("schema_version".into(), m.schema_version.into());
        payload_json(&m.payload, &mut o);
        print_json(&serde_json::Value::Object(o));
    } else {
        let mut headers: Vec<String> = m.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
        headers.sort();
        let headers = if headers.is_empty() { String::new() } else { format!(" [{}]", headers.join(" ")) };
        println!("{:>8}  {}  {}{}", m.offset, nanos_text(m.created_at), show_bytes(&m.payload), headers);
    }
}

async fn read(a: ReadArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.stream, "stream")?;
    let conn = a.grpc.connect().await?;
    let mut client = StreamServiceClient::new(conn.channel.clone()).max_decoding_message_size(256 << 20);
    let req = pb::ReadStreamRequest {
        resource_path: Some(path),
        partition: a.partition,
        offset: a.offset,
        max_messages: a.max,
    };
    let messages = client.read_stream(conn.request(req)).await.map_err(status_error)?.into_inner().messages;
    if messages.is_empty() && !conn.json {
        eprintln!("no messages at offset {} or later", a.offset);
    }
    for m in &messages {
        print_message(m, conn.json);
    }
    Ok(())
}

async fn tail(a: TailArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.stream, "stream")?;
    let start_offset = match a.from.as_str() {
        "latest" => -2,
        "committed" => -1,
        n => n.parse::<i64>().ok().filter(|o| *o >= 0).context("--from must be latest, committed or an offset ≥ 0")?,
    };
    let conn = a.grpc.connect().await?;
    let mut client = StreamServiceClient::new(conn.channel.clone()).max_decoding_message_size(256 << 20);
    let req = pb::SubscribeRequest { resource_path: Some(path), consumer_group: a.group, partition: 0, start_offset };
    let mut frames = client.subscribe(conn.request(req)).await.map_err(status_error)?.into_inner();
    let mut seen = 0u64;
    loop {
        let frame = tokio::select! {
            f = frames.message() => f.map_err(status_error)?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        if let Some(status) = frame.status.filter(|s| s.code != 0) {
            bail!("the server ended the subscription: {}", status.message);
        }
        if let Some(m) = frame.message {
            print_message(&m, conn.json);
            seen += 1;
            if a.count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
        }
    }
}
