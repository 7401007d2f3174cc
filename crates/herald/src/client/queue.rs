//! `herald queue enqueue|stats|dlq|dlq-replay`.

use super::{GrpcArgs, nanos_text, parse_pairs, payload_json, print_json, resource_path, show_bytes, status_error};
use clap::{Args, Subcommand};
use herald_proto::flowmesh::v1 as pb;
use pb::queue_service_client::QueueServiceClient;

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Add a job.
    Enqueue(EnqueueArgs),
    /// Pending, in-flight, completed and dead-lettered jobs.
    Stats(PathArgs),
    /// List the jobs in the queue's dead-letter queue.
    Dlq(DlqArgs),
    /// Move a dead-lettered job back into the queue as a new job.
    DlqReplay(DlqReplayArgs),
}

#[derive(Args)]
pub struct EnqueueArgs {
    /// Queue: `<tenant>/<namespace>/<name>`.
    pub queue: String,
    pub payload: String,
    /// Seconds before the job becomes visible.
    #[arg(long, default_value_t = 0)]
    pub delay: i64,
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct PathArgs {
    pub queue: String,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct DlqArgs {
    pub queue: String,
    #[arg(long, default_value_t = 100)]
    pub max: i32,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

#[derive(Args)]
pub struct DlqReplayArgs {
    pub queue: String,
    /// The job's id in the dead-letter queue (from `herald queue dlq`).
    pub job_id: String,
    #[command(flatten)]
    pub grpc: GrpcArgs,
}

pub fn main(cmd: QueueCommand) -> anyhow::Result<()> {
    super::run(async move {
        match cmd {
            QueueCommand::Enqueue(a) => enqueue(a).await,
            QueueCommand::Stats(a) => stats(a).await,
            QueueCommand::Dlq(a) => dlq(a).await,
            QueueCommand::DlqReplay(a) => dlq_replay(a).await,
        }
    })
}

async fn enqueue(a: EnqueueArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.queue, "queue")?;
    let conn = a.grpc.connect().await?;
    let req = pb::EnqueueRequest {
        resource_path: Some(path),
        payload: a.payload.into_bytes().into(),
        delay_seconds: a.delay,
        headers: parse_pairs(&a.headers)?,
    };
    let r = QueueServiceClient::new(conn.channel.clone())
        .enqueue(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner();
    if conn.json {
        print_json(&serde_json::json!({"job_id": r.job_id, "seq": r.seq}));
    } else {
        println!("enqueued job {} (seq {})", r.job_id, r.seq);
    }
    Ok(())
}

async fn stats(a: PathArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.queue, "queue")?;
    let conn = a.grpc.connect().await?;
    let req = pb::GetQueueStatsRequest { resource_path: Some(path) };
    let s = QueueServiceClient::new(conn.channel.clone())
        .get_queue_stats(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner()
        .stats
        .unwrap_or_default();
    if conn.json {
        print_json(&serde_json::json!({
            "total_jobs": s.total_jobs, "pending_jobs": s.pending_jobs, "in_flight_jobs": s.in_flight_jobs,
            "completed_jobs": s.completed_jobs, "failed_jobs": s.failed_jobs,
            "oldest_job_age_seconds": s.oldest_job_age_seconds,
        }));
    } else {
        println!("pending        {}", s.pending_jobs);
        println!("in flight      {}", s.in_flight_jobs);
        println!("completed      {}", s.completed_jobs);
        println!("dead-lettered  {}", s.failed_jobs);
        println!("total          {}", s.total_jobs);
        println!("oldest         {} s", s.oldest_job_age_seconds);
    }
    Ok(())
}

async fn dlq(a: DlqArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.queue, "queue")?;
    let conn = a.grpc.connect().await?;
    let req = pb::ListDlqJobsRequest { resource_path: Some(path), max_jobs: a.max };
    let jobs = QueueServiceClient::new(conn.channel.clone())
        .list_dlq_jobs(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner()
        .jobs;
    if jobs.is_empty() && !conn.json {
        eprintln!("the dead-letter queue is empty");
    }
    for j in jobs {
        if conn.json {
            let mut o = serde_json::Map::new();
            o.insert("id".into(), j.id.into());
            o.insert("seq".into(), j.seq.into());
            o.insert("attempts".into(), j.attempts.into());
            o.insert("created_at".into(), j.created_at.into());
            o.insert("headers".into(), serde_json::to_value(&j.headers).unwrap_or_default());
            payload_json(&j.payload, &mut o);
            print_json(&serde_json::Value::Object(o));
        } else {
            let original = j.headers.get("x-flowmesh-original-job-id").map(String::as_str).unwrap_or("-");
            println!(
                "{}  {}  original {}  attempts {}  {}",
                j.id,
                nanos_text(j.created_at),
                original,
                j.headers.get("x-flowmesh-attempts").map(String::as_str).unwrap_or("-"),
                show_bytes(&j.payload)
            );
        }
    }
    Ok(())
}

async fn dlq_replay(a: DlqReplayArgs) -> anyhow::Result<()> {
    let path = resource_path(&a.queue, "queue")?;
    let conn = a.grpc.connect().await?;
    let req = pb::ReplayDlqJobRequest { resource_path: Some(path), job_id: a.job_id };
    let r = QueueServiceClient::new(conn.channel.clone())
        .replay_dlq_job(conn.request(req))
        .await
        .map_err(status_error)?
        .into_inner();
    if conn.json {
        print_json(&serde_json::json!({"job_id": r.job_id, "seq": r.seq}));
    } else {
        println!("replayed as job {} (seq {})", r.job_id, r.seq);
    }
    Ok(())
}
