//! `flowmesh.v1.QueueService` (§3.4).

use super::{Ctx, authorize, convert, no_fields, ok, parse_path, principal, required_path, resolve};
use crate::auth::Permission;
use crate::grpc::status::to_status;
use crate::observe;
use crate::state::AppState;
use herald_engine::{Job, MAX_LONG_POLL, ReceiveOptions};
use herald_proto::flowmesh::v1 as pb;
use herald_types::{HeraldError, ResourceKind, ResourcePath};
use pb::queue_service_server::QueueService;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

const QUEUE: Option<ResourceKind> = Some(ResourceKind::Queue);

pub struct QueueSvc(pub(crate) Ctx);

/// A wire long-poll in whole seconds: ≤ 0 means no wait, more than 20 s is silently capped (§3.4). Shared with the
/// HTTP routes, which take the same seconds from a query parameter or a body.
pub(crate) fn long_poll(secs: i64) -> Duration {
    if secs <= 0 { Duration::ZERO } else { Duration::from_secs(secs as u64).min(MAX_LONG_POLL) }
}

/// A receive that also ends (with no jobs) when the server begins to shut down, so long polls never hold up a
/// graceful stop. Every front-end that reserves or receives goes through here.
pub(crate) async fn receive_until_shutdown(
    state: &AppState,
    path: &ResourcePath,
    options: ReceiveOptions,
) -> Result<Vec<Job>, HeraldError> {
    tokio::select! {
        r = state.engine.queues.receive(path, options) => r,
        _ = state.shutdown.cancelled() => Ok(Vec::new()),
    }
}

fn job_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("job_id is required"));
    }
    Ok(())
}

impl QueueSvc {
    async fn receive(&self, path: &ResourcePath, options: ReceiveOptions) -> Result<Vec<Job>, Status> {
        receive_until_shutdown(&self.0.state, path, options).await.map_err(to_status)
    }
}

#[tonic::async_trait]
impl QueueService for QueueSvc {
    async fn enqueue(&self, req: Request<pb::EnqueueRequest>) -> Result<Response<pb::EnqueueResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let rp = required_path(r.resource_path)?;
        if r.payload.is_empty() {
            return Err(Status::invalid_argument("payload cannot be empty"));
        }
        let path = parse_path(&rp, QUEUE)?;
        if r.delay_seconds < 0 {
            return Err(Status::invalid_argument("delay_seconds cannot be negative"));
        }
        authorize(&who, Permission::QueueWrite, &path)?;
        let started = Instant::now();
        let (job_id, seq) = self
            .0
            .engine()
            .queues
            .enqueue(&path, r.payload, r.delay_seconds, convert::headers_in(r.headers))
            .await
            .map_err(to_status)?;
        observe::enqueued(&self.0.state, &path, seq, started.elapsed()).await;
        Ok(Response::new(pb::EnqueueResponse { status: ok("job enqueued successfully"), job_id, seq }))
    }

    async fn reserve(&self, req: Request<pb::ReserveRequest>) -> Result<Response<pb::ReserveResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, QUEUE, Permission::QueueWrite)?;
        let options = ReceiveOptions {
            max_jobs: 1,
            visibility_timeout_seconds: r.visibility_timeout_seconds,
            long_poll: long_poll(r.long_poll_timeout_seconds),
        };
        let started = Instant::now();
        let job = self.receive(&path, options).await?.into_iter().next();
        observe::reserved(&self.0.state, &path, job.as_ref(), started.elapsed());
        // D1: an empty queue is a normal answer with no `job`, not an error.
        let status = ok(if job.is_some() { "job reserved successfully" } else { "no jobs available" });
        Ok(Response::new(pb::ReserveResponse { status, job: job.map(convert::job) }))
    }

    async fn receive(&self, req: Request<pb::ReceiveRequest>) -> Result<Response<pb::ReceiveResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, QUEUE, Permission::QueueWrite)?;
        let options = ReceiveOptions {
            max_jobs: r.max_jobs,
            visibility_timeout_seconds: r.visibility_timeout_seconds,
            long_poll: long_poll(r.long_poll_timeout_seconds),
        };
        let jobs = self.receive(&path, options).await?;
        Ok(Response::new(pb::ReceiveResponse {
            status: ok(&format!("received {} jobs", jobs.len())),
            jobs: jobs.into_iter().map(convert::job).collect(),
        }))
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || job_id(&r.job_id), QUEUE, Permission::QueueWrite)?;
        self.0.engine().queues.ack(&path, &r.job_id).await.map_err(to_status)?;
        observe::acked(&self.0.state, &path).await;
        Ok(Response::new(pb::AckResponse { status: ok("job acknowledged successfully") }))
    }

    async fn nack(&self, req: Request<pb::NackRequest>) -> Result<Response<pb::NackResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || job_id(&r.job_id), QUEUE, Permission::QueueWrite)?;
        let nacked = self.0.engine().queues.nack(&path, &r.job_id, r.delay_seconds.max(0)).await;
        // Observed before the error is returned: a dead-lettering NACK fails, yet it changed the queue.
        observe::nacked(&self.0.state, &path, &nacked).await;
        nacked.map_err(to_status)?;
        Ok(Response::new(pb::NackResponse { status: ok("job NACKed successfully") }))
    }

    async fn get_queue_stats(
        &self,
        req: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, QUEUE, Permission::QueueRead)?;
        let stats = self.0.engine().queues.stats(&path).await.map_err(to_status)?;
        observe::queue_stats_read(&self.0.state, &path, &stats);
        Ok(Response::new(pb::GetQueueStatsResponse {
            status: ok("queue statistics retrieved successfully"),
            stats: Some(convert::stats(stats)),
        }))
    }

    async fn set_retry_policy(
        &self,
        req: Request<pb::SetRetryPolicyRequest>,
    ) -> Result<Response<pb::SetRetryPolicyResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let missing = || Status::invalid_argument("policy is required");
        let path = resolve(
            &who,
            r.resource_path,
            || r.policy.as_ref().map(drop).ok_or_else(missing),
            QUEUE,
            Permission::QueueWrite,
        )?;
        let policy = r.policy.ok_or_else(missing)?;
        self.0.engine().queues.set_retry_policy(&path, convert::policy_in(policy)).await.map_err(to_status)?;
        Ok(Response::new(pb::SetRetryPolicyResponse { status: ok("") }))
    }

    async fn get_retry_policy(
        &self,
        req: Request<pb::GetRetryPolicyRequest>,
    ) -> Result<Response<pb::GetRetryPolicyResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, QUEUE, Permission::QueueRead)?;
        let policy = self.0.engine().queues.retry_policy(&path).await.map_err(to_status)?;
        Ok(Response::new(pb::GetRetryPolicyResponse { status: ok(""), policy: Some(convert::policy_out(policy)) }))
    }

    async fn list_dlq_jobs(
        &self,
        req: Request<pb::ListDlqJobsRequest>,
    ) -> Result<Response<pb::ListDlqJobsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, QUEUE, Permission::QueueRead)?;
        let jobs = self.0.engine().queues.list_dlq(&path, r.max_jobs).await.map_err(to_status)?;
        Ok(Response::new(pb::ListDlqJobsResponse {
            status: ok(""),
            jobs: jobs.into_iter().map(convert::job).collect(),
        }))
    }

    async fn replay_dlq_job(
        &self,
        req: Request<pb::ReplayDlqJobRequest>,
    ) -> Result<Response<pb::ReplayDlqJobResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || job_id(&r.job_id), QUEUE, Permission::QueueWrite)?;
        let (job_id, seq) = self.0.engine().queues.replay_dlq(&path, &r.job_id).await.map_err(to_status)?;
        observe::dlq_replayed(&self.0.state, &path, seq).await;
        Ok(Response::new(pb::ReplayDlqJobResponse { status: ok(""), job_id, seq }))
    }
}
