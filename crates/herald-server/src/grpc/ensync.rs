//! `ensync.EnSyncService` (compat/ensync.md §2–§3) on the gRPC port.
//!
//! Unary RPCs answer domain failures as `success=false` with the engine's text; a status is only for internal
//! faults (§3.0). `Heartbeat` always answers OK. A `Subscribe` stream is a sink of the engine's dispatcher: events
//! arrive through an unbounded channel that the in-flight window bounds (at most W events per subscription), the
//! stream ends with status OK when it is superseded, unsubscribed, its session expires or the server shuts down, and
//! a stream the client drops detaches itself so its in-flight events go back to pending.

use herald_engine::events::api::{EventSink, Events, NewEvent, SinkId, StoredEvent};
use herald_engine::events::{decode_public_key, encode_public_key};
use herald_proto::ensync as pb;
use herald_proto::ensync::en_sync_service_server::EnSyncService;
use herald_types::{ErrorCode, HeraldError};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct EnSyncSvc {
    pub events: Arc<dyn Events>,
    pub shutdown: CancellationToken,
}

/// How an engine error reaches an EnSync client: a text in a `success=false` answer, except for faults of the
/// server itself, which are statuses (the client raises either way, with the text).
enum Failure {
    Text(String),
    Status(Status),
}

fn failure(e: HeraldError) -> Failure {
    match e.code {
        ErrorCode::Internal => Failure::Status(Status::internal(e.message)),
        ErrorCode::Unavailable => Failure::Status(Status::unavailable(e.message)),
        _ => Failure::Text(e.message),
    }
}

/// Runs `f`; maps a failure to `fail(text)` or an error status.
macro_rules! answer {
    ($res:expr, $ok:expr, $fail:expr) => {
        match $res {
            Ok(v) => Ok(Response::new($ok(v))),
            Err(e) => match failure(e) {
                Failure::Text(t) => Ok(Response::new($fail(t))),
                Failure::Status(s) => Err(s),
            },
        }
    };
}

fn stream_message(e: &StoredEvent) -> pb::MessageStreamResponse {
    pb::MessageStreamResponse {
        message_idem: e.idem.clone(),
        message_name: e.name.clone(),
        payload: e.payload.clone(),
        partition_block: e.block as i64,
        metadata: e.metadata.clone(),
        sender: encode_public_key(&e.sender),
    }
}

/// A `Subscribe` stream as the engine sees it.
struct StreamSink {
    tx: Mutex<Option<mpsc::UnboundedSender<Result<pb::MessageStreamResponse, Status>>>>,
}

impl EventSink for StreamSink {
    fn deliver(&self, event: Arc<StoredEvent>) -> bool {
        match &*self.tx.lock() {
            Some(tx) => tx.send(Ok(stream_message(&event))).is_ok(),
            None => false,
        }
    }

    fn close(&self) {
        // Dropping the sender ends the stream after what was already sent, with status OK.
        self.tx.lock().take();
    }
}

/// The response stream: ends with OK when its sink is closed or the server shuts down, and detaches from the
/// engine when dropped (client cancelled, connection lost, or ended).
struct SubscriptionStream {
    rx: mpsc::UnboundedReceiver<Result<pb::MessageStreamResponse, Status>>,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    detach: Option<(Arc<dyn Events>, String, String, SinkId)>,
}

impl futures::Stream for SubscriptionStream {
    type Item = Result<pb::MessageStreamResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = self.rx.poll_recv(cx) {
            return Poll::Ready(item);
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Drop for SubscriptionStream {
    fn drop(&mut self) {
        if let Some((events, client_id, name, sink)) = self.detach.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { events.detach(&client_id, &name, sink).await });
        }
    }
}

use std::future::Future as _;

#[tonic::async_trait]
impl EnSyncService for EnSyncSvc {
    async fn connect(&self, req: Request<pb::ConnectRequest>) -> Result<Response<pb::ConnectResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.connect(&r.access_key, herald_engine::events::api::Transport::Grpc).await,
            |s: herald_engine::events::api::Session| pb::ConnectResponse {
                success: true,
                client_id: s.client_id,
                client_hash: encode_public_key(&s.identity),
                server_config: Default::default(),
                error_message: String::new(),
            },
            |t| pb::ConnectResponse { error_message: t, ..Default::default() }
        )
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatResponse>, Status> {
        // Always OK: the client stops heartbeating forever after one error (§3.2).
        let ok = self.events.heartbeat(&req.into_inner().client_id).await.is_ok();
        Ok(Response::new(pb::HeartbeatResponse { success: ok }))
    }

    async fn publish_message(
        &self,
        req: Request<pb::PublishMessageRequest>,
    ) -> Result<Response<pb::PublishMessageResponse>, Status> {
        let r = req.into_inner();
        let res = match decode_public_key(&r.delivery_to) {
            None => Err(HeraldError::invalid("invalid recipient")),
            Some(recipient) => {
                let e = NewEvent {
                    name: r.message_name,
                    recipient,
                    payload: r.payload,
                    metadata: r.metadata,
                    payload_metadata: r.payload_metadata,
                };
                self.events.publish(&r.client_id, e).await
            }
        };
        answer!(
            res,
            |e: Arc<StoredEvent>| pb::PublishMessageResponse {
                success: true,
                message_idem: e.idem.clone(),
                error_message: String::new()
            },
            |t| pb::PublishMessageResponse { error_message: t, ..Default::default() }
        )
    }

    type SubscribeStream = Pin<Box<dyn futures::Stream<Item = Result<pb::MessageStreamResponse, Status>> + Send>>;

    async fn subscribe(&self, req: Request<pb::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = req.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(StreamSink { tx: Mutex::new(Some(tx)) });
        let sink_id = self.events.subscribe(&r.client_id, &r.message_name, sink).await.map_err(|e| match e.code {
            // Never UNAVAILABLE or INTERNAL on purpose: those send the client down a path that crashes (§3.4).
            ErrorCode::Unauthenticated => Status::unauthenticated(e.message),
            ErrorCode::PermissionDenied => Status::permission_denied(e.message),
            ErrorCode::InvalidArgument => Status::invalid_argument(e.message),
            _ => Status::failed_precondition(e.message),
        })?;
        let stream = SubscriptionStream {
            rx,
            shutdown: Box::pin(self.shutdown.clone().cancelled_owned()),
            detach: Some((Arc::clone(&self.events), r.client_id, r.message_name, sink_id)),
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn unsubscribe(
        &self,
        req: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.unsubscribe(&r.client_id, &r.message_name).await,
            |_| pb::UnsubscribeResponse { success: true, message: "unsubscribed".into() },
            |t| pb::UnsubscribeResponse { success: false, message: t }
        )
    }

    async fn acknowledge_message(
        &self,
        req: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        let r = req.into_inner();
        // `partition_block` is informational (§3.6).
        answer!(
            self.events.ack(&r.client_id, &r.message_idem, &r.message_name).await,
            |_| pb::AcknowledgeResponse { success: true, message: "acknowledged".into() },
            |t| pb::AcknowledgeResponse { success: false, message: t }
        )
    }

    async fn defer_message(&self, req: Request<pb::DeferRequest>) -> Result<Response<pb::DeferResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.defer(&r.client_id, &r.message_idem, &r.message_name, r.delay_ms).await,
            |at| pb::DeferResponse { success: true, message: "deferred".into(), delivery_time: at },
            |t| pb::DeferResponse { message: t, ..Default::default() }
        )
    }

    async fn discard_message(&self, req: Request<pb::DiscardRequest>) -> Result<Response<pb::DiscardResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.discard(&r.client_id, &r.message_idem, &r.message_name).await,
            |_| pb::DiscardResponse { success: true, message: "discarded".into() },
            |t| pb::DiscardResponse { success: false, message: t }
        )
    }

    async fn replay_message(&self, req: Request<pb::ReplayRequest>) -> Result<Response<pb::ReplayResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.replay(&r.client_id, &r.message_idem, &r.message_name).await,
            // The stored payload string exactly as published, not wrapped (§3.9).
            |e: Arc<StoredEvent>| pb::ReplayResponse {
                success: true,
                message: "replayed".into(),
                message_data: e.payload.clone()
            },
            |t| pb::ReplayResponse { message: t, ..Default::default() }
        )
    }

    async fn pause_messages(&self, req: Request<pb::PauseRequest>) -> Result<Response<pb::PauseResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.pause(&r.client_id, &r.message_name).await,
            |_| pb::PauseResponse { success: true, message: "paused".into() },
            |t| pb::PauseResponse { success: false, message: t }
        )
    }

    async fn continue_messages(
        &self,
        req: Request<pb::ContinueRequest>,
    ) -> Result<Response<pb::ContinueResponse>, Status> {
        let r = req.into_inner();
        answer!(
            self.events.resume(&r.client_id, &r.message_name).await,
            |_| pb::ContinueResponse { success: true, message: "continued".into() },
            |t| pb::ContinueResponse { success: false, message: t }
        )
    }
}
