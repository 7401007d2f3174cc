//! `flowmesh.v1.ReplayService` (§3.7).
//!
//! Proto3 cannot tell an unset number from 0, so the bounds follow the contract's zero-value rules: a start needs a
//! positive `start_timestamp` or a non-negative `start_offset`, an end is a positive `end_timestamp`, else a
//! non-negative `end_offset` (an unset one is 0: "stop after offset 0"), else open-ended (`end_offset = -1`).
//! Calls that name a stream authorize `stream.read` on it; calls by session id need only a valid token.
//! The `replay.session` feed events come from the engine's listener (`observe::follow_replays`) for every change;
//! `GetReplaySession` publishes its answer itself, as HTTP get-one does.

use super::{Ctx, authorize, ok, parse_path, principal, resolve};
use crate::auth::Permission;
use crate::grpc::status::to_status;
use crate::observe;
use herald_engine::replay::{NewReplay, ReplayEnd, ReplaySession, ReplayStart};
use herald_proto::flowmesh::v1 as pb;
use herald_types::ResourceKind;
use pb::replay_service_server::ReplayService;
use tonic::{Request, Response, Status};

pub struct ReplaySvc(pub(crate) Ctx);

fn session_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("session_id is required"));
    }
    Ok(())
}

fn session_out(s: ReplaySession) -> pb::ReplaySession {
    pb::ReplaySession {
        start_offset: s.start_offset(),
        start_timestamp: s.start_timestamp(),
        end_offset: s.end_offset(),
        end_timestamp: s.end_timestamp(),
        session_id: s.id,
        stream: s.stream,
        partition: s.partition,
        sandbox_consumer_group: s.sandbox_group,
        status: s.status.as_str().to_owned(),
        progress: Some(pb::ReplayProgress {
            current_offset: s.progress.current_offset,
            messages_replayed: s.progress.messages_replayed,
            errors: s.progress.errors,
            started_at: s.progress.started_at,
            paused_at: s.progress.paused_at,
            completed_at: s.progress.completed_at,
        }),
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

impl ReplaySvc {
    fn replays(&self) -> &dyn herald_engine::replay::Replays {
        self.0.engine().replays.as_ref()
    }
}

#[tonic::async_trait]
impl ReplayService for ReplaySvc {
    async fn create_replay_session(
        &self,
        req: Request<pb::CreateReplaySessionRequest>,
    ) -> Result<Response<pb::CreateReplaySessionResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(
            &who,
            r.resource_path,
            || {
                if r.sandbox_consumer_group.is_empty() {
                    return Err(Status::invalid_argument("sandbox_consumer_group is required"));
                }
                Ok(())
            },
            Some(ResourceKind::Stream),
            Permission::StreamRead,
        )?;
        let start = ReplayStart::from_fields(r.start_offset, r.start_timestamp).map_err(to_status)?;
        let end = ReplayEnd::from_fields(r.end_offset, r.end_timestamp);
        let spec = NewReplay { start, end, sandbox_group: r.sandbox_consumer_group };
        let session = self.replays().create(&path, spec).await.map_err(to_status)?;
        Ok(Response::new(pb::CreateReplaySessionResponse {
            status: ok("replay session created successfully"),
            session: Some(session_out(session)),
        }))
    }

    async fn get_replay_session(
        &self,
        req: Request<pb::GetReplaySessionRequest>,
    ) -> Result<Response<pb::GetReplaySessionResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        let session = self.replays().get(&r.session_id).await.map_err(to_status)?;
        observe::replay_read(&self.0.state, &session);
        Ok(Response::new(pb::GetReplaySessionResponse {
            status: ok("replay session retrieved successfully"),
            session: Some(session_out(session)),
        }))
    }

    async fn list_replay_sessions(
        &self,
        req: Request<pb::ListReplaySessionsRequest>,
    ) -> Result<Response<pb::ListReplaySessionsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        // The path is optional here, and any of the three types is accepted (a non-stream path matches nothing).
        let path = match r.resource_path {
            Some(rp) => {
                let path = parse_path(&rp, None)?;
                authorize(&who, Permission::StreamRead, &path)?;
                Some(path)
            }
            None => None,
        };
        let sessions = self.replays().list(path.as_ref()).await.map_err(to_status)?;
        Ok(Response::new(pb::ListReplaySessionsResponse {
            status: ok("replay sessions listed successfully"),
            sessions: sessions.into_iter().map(session_out).collect(),
        }))
    }

    async fn start_replay(
        &self,
        req: Request<pb::StartReplayRequest>,
    ) -> Result<Response<pb::StartReplayResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        self.replays().start(&r.session_id).await.map_err(to_status)?;
        Ok(Response::new(pb::StartReplayResponse { status: ok("replay started successfully") }))
    }

    async fn pause_replay(
        &self,
        req: Request<pb::PauseReplayRequest>,
    ) -> Result<Response<pb::PauseReplayResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        self.replays().pause(&r.session_id).await.map_err(to_status)?;
        Ok(Response::new(pb::PauseReplayResponse { status: ok("replay paused successfully") }))
    }

    async fn resume_replay(
        &self,
        req: Request<pb::ResumeReplayRequest>,
    ) -> Result<Response<pb::ResumeReplayResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        self.replays().resume(&r.session_id).await.map_err(to_status)?;
        Ok(Response::new(pb::ResumeReplayResponse { status: ok("replay resumed successfully") }))
    }

    async fn stop_replay(
        &self,
        req: Request<pb::StopReplayRequest>,
    ) -> Result<Response<pb::StopReplayResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        self.replays().stop(&r.session_id).await.map_err(to_status)?;
        Ok(Response::new(pb::StopReplayResponse { status: ok("replay stopped successfully") }))
    }

    async fn delete_replay_session(
        &self,
        req: Request<pb::DeleteReplaySessionRequest>,
    ) -> Result<Response<pb::DeleteReplaySessionResponse>, Status> {
        let r = req.into_inner();
        session_id(&r.session_id)?;
        self.replays().delete(&r.session_id).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteReplaySessionResponse { status: ok("replay session deleted successfully") }))
    }
}
