//! `flowmesh.v1.StreamService` (§3.3).

use super::{Ctx, authorize, convert, no_fields, ok, parse_path, principal, required_path, resolve};
use crate::auth::Permission;
use crate::grpc::status::to_status;
use crate::observe;
use crate::state::AppState;
use herald_engine::{EventIn, StreamMessage, StreamTail};
use herald_proto::flowmesh::v1 as pb;
use herald_types::resource::check_consumer_group;
use herald_types::{HeraldError, ResourceKind, ResourcePath};
use pb::stream_service_server::StreamService;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const STREAM: Option<ResourceKind> = Some(ResourceKind::Stream);
/// Frames buffered per subscriber before the tail stops reading (flow control: a slow client holds at most this many).
const SUBSCRIBE_BUFFER: usize = 64;

pub struct StreamSvc(pub(crate) Ctx);

fn group(g: &str) -> Result<(), Status> {
    check_consumer_group(g).map_err(to_status)
}

#[tonic::async_trait]
impl StreamService for StreamSvc {
    async fn write_events(
        &self,
        req: Request<pb::WriteEventsRequest>,
    ) -> Result<Response<pb::WriteEventsResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let rp = required_path(r.resource_path)?;
        if r.events.is_empty() {
            return Err(Status::invalid_argument("at least one event is required"));
        }
        let path = parse_path(&rp, STREAM)?;
        if let Some(i) = r.events.iter().position(|e| e.payload.is_empty()) {
            return Err(Status::invalid_argument(format!("event {i}: payload cannot be empty")));
        }
        authorize(&who, Permission::StreamWrite, &path)?;
        let events: Vec<EventIn> = r
            .events
            .into_iter()
            .map(|e| EventIn { payload: e.payload, headers: convert::headers_in(e.headers) })
            .collect();
        let bytes = observe::payload_bytes(&events);
        let started = Instant::now();
        let offsets = self.0.engine().streams.append(&path, events).await.map_err(to_status)?;
        observe::stream_written(&self.0.state, &path, &offsets, bytes, started.elapsed());
        Ok(Response::new(pb::WriteEventsResponse { status: ok("events written successfully"), offsets }))
    }

    async fn read_stream(
        &self,
        req: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<pb::ReadStreamResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(
            &who,
            r.resource_path,
            || {
                if r.offset < 0 {
                    return Err(Status::invalid_argument("offset cannot be negative"));
                }
                Ok(())
            },
            STREAM,
            Permission::StreamRead,
        )?;
        let partition = r.partition.max(0);
        let started = Instant::now();
        let msgs = self.0.engine().streams.read(&path, partition, r.offset, r.max_messages).await.map_err(to_status)?;
        observe::stream_read(&self.0.state, &path, partition, &msgs, started.elapsed());
        Ok(Response::new(pb::ReadStreamResponse {
            status: ok("messages read successfully"),
            messages: msgs.into_iter().map(convert::message).collect(),
        }))
    }

    type SubscribeStream = Pin<Box<dyn futures::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || group(&r.consumer_group), STREAM, Permission::StreamRead)?;
        // Existence and the start offset are checked here, before any frame is sent (D7, D8).
        let tail = self
            .0
            .engine()
            .streams
            .subscribe(&path, &r.consumer_group, r.partition, r.start_offset)
            .await
            .map_err(to_status)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_BUFFER);
        let reads = Reads { state: self.0.state.clone(), path, partition: r.partition };
        tokio::spawn(pump(tail, tx, reads));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn commit_offset(
        &self,
        req: Request<pb::CommitOffsetRequest>,
    ) -> Result<Response<pb::CommitOffsetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(
            &who,
            r.resource_path,
            || {
                group(&r.consumer_group)?;
                if r.offset < -1 {
                    return Err(Status::invalid_argument("offset cannot be less than -1"));
                }
                Ok(())
            },
            STREAM,
            Permission::StreamWrite,
        )?;
        self.0
            .engine()
            .streams
            .commit_offset(&path, &r.consumer_group, r.partition, r.offset)
            .await
            .map_err(to_status)?;
        observe::offset_committed(&self.0.state, &path, &r.consumer_group, r.partition, r.offset);
        Ok(Response::new(pb::CommitOffsetResponse { status: ok("offset committed successfully") }))
    }

    async fn get_offset(&self, req: Request<pb::GetOffsetRequest>) -> Result<Response<pb::GetOffsetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || group(&r.consumer_group), STREAM, Permission::StreamRead)?;
        let offset =
            self.0.engine().streams.committed_offset(&path, &r.consumer_group, r.partition).await.map_err(to_status)?;
        Ok(Response::new(pb::GetOffsetResponse { status: ok("offset retrieved successfully"), offset }))
    }

    async fn get_latest_offset(
        &self,
        req: Request<pb::GetLatestOffsetRequest>,
    ) -> Result<Response<pb::GetLatestOffsetResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, no_fields, STREAM, Permission::StreamRead)?;
        let offset = self.0.engine().streams.latest_offset(&path, r.partition.max(0)).await.map_err(to_status)?;
        Ok(Response::new(pb::GetLatestOffsetResponse { status: ok("latest offset retrieved successfully"), offset }))
    }

    async fn get_consumer_group_state(
        &self,
        req: Request<pb::GetConsumerGroupStateRequest>,
    ) -> Result<Response<pb::GetConsumerGroupStateResponse>, Status> {
        let who = principal(&req);
        let r = req.into_inner();
        let path = resolve(&who, r.resource_path, || group(&r.consumer_group), STREAM, Permission::StreamRead)?;
        let state =
            self.0.engine().streams.group_state(&path, &r.consumer_group, r.partition).await.map_err(to_status)?;
        observe::group_state(&self.0.state, &path, &state);
        Ok(Response::new(pb::GetConsumerGroupStateResponse {
            status: ok("consumer group state retrieved successfully"),
            state: Some(convert::group_state(state)),
        }))
    }
}

/// Where a subscription's reads are counted (`flowmesh_stream_bytes_read_total`, `..._read_duration_seconds`).
struct Reads {
    state: AppState,
    path: ResourcePath,
    partition: i32,
}

/// The next batch of the tail, with the time spent reading it: the duration of the poll that produced the batch,
/// not the time spent waiting for a write (a live tail waits most of the time).
async fn timed_batch(tail: &mut dyn StreamTail) -> (Result<Vec<StreamMessage>, HeraldError>, Duration) {
    let mut next = tail.next_batch();
    std::future::poll_fn(|cx| {
        let started = Instant::now();
        match next.as_mut().poll(cx) {
            Poll::Ready(batch) => Poll::Ready((batch, started.elapsed())),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Moves messages from the engine's tail into the response stream until the client goes away, the server shuts
/// down, or a read fails (then one in-band error frame, then the matching gRPC status: D8).
async fn pump(mut tail: Box<dyn StreamTail>, tx: mpsc::Sender<Result<pb::SubscribeResponse, Status>>, reads: Reads) {
    let shutdown = reads.state.shutdown.clone();
    loop {
        let batch = tokio::select! {
            _ = tx.closed() => return,
            _ = shutdown.cancelled() => {
                let _ = tx.send(Err(Status::unavailable("server shutting down"))).await;
                return;
            }
            (batch, took) = timed_batch(tail.as_mut()) => batch.inspect(|msgs| {
                observe::stream_read(&reads.state, &reads.path, reads.partition, msgs, took);
            }),
        };
        match batch {
            Ok(msgs) => {
                for m in msgs {
                    let frame = pb::SubscribeResponse { message: Some(convert::message(m)), status: None };
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                send_error_frame(&tx, e).await;
                return;
            }
        }
    }
}

async fn send_error_frame(tx: &mpsc::Sender<Result<pb::SubscribeResponse, Status>>, e: HeraldError) {
    let status = to_status(e);
    let frame = pb::SubscribeResponse {
        message: None,
        status: Some(pb::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: String::new(),
        }),
    };
    let _ = tx.send(Ok(frame)).await;
    let _ = tx.send(Err(status)).await;
}
