//! The short way through the gRPC listener for the hottest unary RPCs.
//!
//! tonic's generated path for a unary call goes through the router, the auth interceptor, the codec's streaming
//! decoder and encoder and several boxed bodies. On this project's 2-core machine that costs more CPU per call than
//! the engine's own work for a KV set (docs/benchmarks.md). [`FastPath`] is the service the listener runs: it
//! answers the RPCs of [`Rpc`] itself and hands every other request to the tonic router unchanged. It sits behind
//! Herald's own HTTP/2 listener ([`super::listener`]), so HTTP/2 settings, `grpc-timeout` deadlines and graceful
//! shutdown are the same for both.
//!
//! For an RPC of [`Rpc`] it authenticates the caller the way [`super::AuthInterceptor`] does, reads the one
//! length-prefixed message, decodes it, calls the same handler the router would, and answers with one data frame
//! and the `grpc-status` trailer. Whatever it would not answer exactly as tonic does (a compressed or oversized
//! message, more than one message, a truncated frame, bytes that do not decode, another content type) goes to the
//! router with the bytes already read put back in front of the rest of the body, so tonic gives its own answer.

use super::chunks::Chunks;
use super::ensync::EnSyncSvc;
use super::flowmesh::{KvSvc, QueueSvc, StreamSvc};
use super::status::to_status;
use crate::auth::Authenticator;
use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use herald_proto::ensync::en_sync_service_server::EnSyncService;
use herald_proto::flowmesh::v1::{
    kv_service_server::KvService, queue_service_server::QueueService, stream_service_server::StreamService,
};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::{Code, Status};
use tower_service::Service;

/// Declares [`Rpc`], the unary RPCs the fast path answers (the ones benchmarks and busy clients call most), with
/// their HTTP/2 paths.
macro_rules! fast_rpcs {
    ($($rpc:ident = $path:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Rpc {
            $($rpc,)*
        }

        impl Rpc {
            fn of(path: &str) -> Option<Rpc> {
                match path {
                    $($path => Some(Rpc::$rpc),)*
                    _ => None,
                }
            }
        }
    };
}

fast_rpcs! {
    KvSet = "/flowmesh.v1.KVService/Set",
    KvGet = "/flowmesh.v1.KVService/Get",
    KvDelete = "/flowmesh.v1.KVService/Delete",
    KvExists = "/flowmesh.v1.KVService/Exists",
    KvListKeys = "/flowmesh.v1.KVService/ListKeys",
    QueueEnqueue = "/flowmesh.v1.QueueService/Enqueue",
    QueueReserve = "/flowmesh.v1.QueueService/Reserve",
    QueueAck = "/flowmesh.v1.QueueService/Ack",
    QueueNack = "/flowmesh.v1.QueueService/Nack",
    StreamWriteEvents = "/flowmesh.v1.StreamService/WriteEvents",
    StreamCommitOffset = "/flowmesh.v1.StreamService/CommitOffset",
    EventsPublish = "/ensync.EnSyncService/PublishMessage",
    EventsAcknowledge = "/ensync.EnSyncService/AcknowledgeMessage",
    EventsDefer = "/ensync.EnSyncService/DeferMessage",
    EventsDiscard = "/ensync.EnSyncService/DiscardMessage",
    EventsHeartbeat = "/ensync.EnSyncService/Heartbeat",
}

impl Rpc {
    /// FlowMesh services authenticate every call from the `authorization` metadata; EnSync authenticates with the
    /// access key in `Connect` and the session id afterwards.
    fn needs_auth(self) -> bool {
        !matches!(
            self,
            Rpc::EventsPublish | Rpc::EventsAcknowledge | Rpc::EventsDefer | Rpc::EventsDiscard | Rpc::EventsHeartbeat
        )
    }
}

/// Whether the listener serves a call inside its connection's task ([`super::listener`]): the RPCs answered here whose
/// handlers do a small, bounded amount of work. `WriteEvents` (a batch can be megabytes to check and write) and
/// `ListKeys` (any number of keys) keep a task of their own, so the calls multiplexed on one connection can spread
/// over the cores.
pub fn in_connection_task(path: &str) -> bool {
    Rpc::of(path).is_some_and(|rpc| !matches!(rpc, Rpc::StreamWriteEvents | Rpc::KvListKeys))
}

/// The handlers the fast path calls: the same values the router holds.
pub struct Handlers {
    pub kv: KvSvc,
    pub queue: QueueSvc,
    pub stream: StreamSvc,
    pub events: EnSyncSvc,
    pub auth: Authenticator,
    pub max_message_bytes: usize,
}

/// The gRPC listener's service: the fast path in front of `inner` (the tonic router).
#[derive(Clone)]
pub struct FastPath<S> {
    inner: S,
    handlers: Arc<Handlers>,
}

impl<S> FastPath<S> {
    pub fn new(inner: S, handlers: Handlers) -> Self {
        FastPath { inner, handlers: Arc::new(handlers) }
    }
}

type Answer = Result<http::Response<Body>, Infallible>;

impl<S> Service<http::Request<Body>> for FastPath<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    /// Boxed in both cases: the listener keeps this future inside every stream's task, and tonic's router future is
    /// large, so an unboxed `Either` would make every call's task (and the copies made while spawning it) as large
    /// as the slow path's state.
    type Future = BoxFuture<'static, Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let rpc = Rpc::of(req.uri().path()).filter(|_| plain_grpc(req.headers()));
        let Some(rpc) = rpc else { return Box::pin(self.inner.call(req)) };
        // The router is ready (poll_ready above); keep that instance for a fallback and leave a fresh clone here.
        let clone = self.inner.clone();
        let router = std::mem::replace(&mut self.inner, clone);
        Box::pin(serve(rpc, Arc::clone(&self.handlers), router, req))
    }
}

/// Header names the fast path looks up on every call, made once (a `&str` key is parsed and validated per lookup).
const GRPC_ENCODING: http::HeaderName = http::HeaderName::from_static("grpc-encoding");

/// A gRPC request in the form the fast path handles: protobuf content type, and no compression.
fn plain_grpc(headers: &HeaderMap) -> bool {
    let content_type = headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
    let proto = matches!(content_type, Some(b"application/grpc" | b"application/grpc+proto"));
    let identity = headers.get(GRPC_ENCODING).is_none_or(|v| v.as_bytes() == b"identity");
    proto && identity
}

async fn serve<S>(rpc: Rpc, h: Arc<Handlers>, mut router: S, req: http::Request<Body>) -> Answer
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    let (parts, mut body) = req.into_parts();
    // Authentication comes first, before any byte of the body is read, as with the interceptor.
    let principal = if rpc.needs_auth() {
        let header = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
        match h.auth.authenticate(header) {
            Ok(p) => Some(p),
            Err(e) => return Ok(to_status(e).into_http()),
        }
    } else {
        None
    };
    let frame = match read_one_message(&mut body, h.max_message_bytes).await {
        Read::One(frame) => frame,
        Read::Failed(status) => return Ok(status.into_http()),
        Read::Other(replay) => {
            let rest = if replay.ended { None } else { Some(body) };
            let body = Body::new(Replay { prefix: Some(replay.bytes), trailers: replay.trailers, rest });
            return router.call(http::Request::from_parts(parts, body)).await;
        }
    };
    macro_rules! call {
        ($svc:expr, $method:path) => {
            // Decoded from the DATA frames as they arrived: payloads become slices of them (see `chunks`).
            match prost::Message::decode(frame.cursor(5)) {
                Ok(m) => {
                    let mut request = tonic::Request::from_http(http::Request::from_parts(parts, m));
                    if let Some(p) = principal {
                        request.extensions_mut().insert(p);
                    }
                    Ok(respond($method(&$svc, request).await))
                }
                // tonic words decode errors its own way; let it answer.
                Err(_) => {
                    let body = Body::new(Replay { prefix: Some(frame.into_bytes()), trailers: None, rest: None });
                    router.call(http::Request::from_parts(parts, body)).await
                }
            }
        };
    }
    match rpc {
        Rpc::KvSet => call!(h.kv, KvService::set),
        Rpc::KvGet => call!(h.kv, KvService::get),
        Rpc::KvDelete => call!(h.kv, KvService::delete),
        Rpc::KvExists => call!(h.kv, KvService::exists),
        Rpc::KvListKeys => call!(h.kv, KvService::list_keys),
        Rpc::QueueEnqueue => call!(h.queue, QueueService::enqueue),
        Rpc::QueueReserve => call!(h.queue, QueueService::reserve),
        Rpc::QueueAck => call!(h.queue, QueueService::ack),
        Rpc::QueueNack => call!(h.queue, QueueService::nack),
        Rpc::StreamWriteEvents => call!(h.stream, StreamService::write_events),
        Rpc::StreamCommitOffset => call!(h.stream, StreamService::commit_offset),
        Rpc::EventsPublish => call!(h.events, EnSyncService::publish_message),
        Rpc::EventsAcknowledge => call!(h.events, EnSyncService::acknowledge_message),
        Rpc::EventsDefer => call!(h.events, EnSyncService::defer_message),
        Rpc::EventsDiscard => call!(h.events, EnSyncService::discard_message),
        Rpc::EventsHeartbeat => call!(h.events, EnSyncService::heartbeat),
    }
}

/// What [`read_one_message`] found.
enum Read {
    /// Exactly one uncompressed message within the size limit: its whole frame, 5-byte prefix included.
    One(Chunks),
    /// Anything else: for tonic to answer.
    Other(Replayed),
    /// The body failed (the client reset the stream, or the connection broke).
    Failed(Status),
}

/// The part of a body the fast path has read and then hands on.
struct Replayed {
    bytes: Bytes,
    trailers: Option<HeaderMap>,
    ended: bool,
}

/// Reads a unary request's body, deciding from the first frame prefix whether it is one plain message. It stops
/// reading as soon as it knows the answer is not, so an oversized message is never buffered here.
async fn read_one_message(body: &mut Body, max_message_bytes: usize) -> Read {
    let mut acc = Chunks::default();
    let mut trailers = None;
    let mut ended = false;
    loop {
        // Request trailers become metadata in tonic; leave such rare requests to it.
        let plain = trailers.is_none()
            && match acc.first::<5>() {
                Some([flag, len @ ..]) => {
                    let (compressed, len) = (flag != 0, u32::from_be_bytes(len));
                    let frame_len = 5 + len as usize;
                    if compressed || len as usize > max_message_bytes || acc.len() > frame_len {
                        false
                    } else if ended {
                        acc.len() == frame_len
                    } else {
                        true
                    }
                }
                None => !ended,
            };
        if !plain {
            return Read::Other(Replayed { bytes: acc.into_bytes(), trailers, ended });
        }
        if ended {
            return Read::One(acc);
        }
        match body.frame().await {
            None => ended = true,
            Some(Err(status)) => return Read::Failed(status),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => acc.push(data),
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    ended = true;
                }
            },
        }
    }
}

/// A handler's answer as HTTP: one data frame and `grpc-status: 0`, or a trailers-only error response — the same
/// bytes tonic writes.
fn respond<M: prost::Message>(result: Result<tonic::Response<M>, Status>) -> http::Response<Body> {
    let response = match result {
        Ok(r) => r,
        Err(status) => return status.into_http(),
    };
    let (metadata, message, extensions) = response.into_parts();
    let len = message.encoded_len();
    let Ok(prefix_len) = u32::try_from(len) else {
        return Status::new(Code::ResourceExhausted, "response message too large").into_http();
    };
    let mut data = BytesMut::with_capacity(5 + len);
    data.put_u8(0);
    data.put_u32(prefix_len);
    message.encode_raw(&mut data);
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
    let mut http = http::Response::new(Body::new(Unary { data: Some(data.freeze()), trailers: Some(trailers) }));
    if !metadata.is_empty() {
        *http.headers_mut() = metadata.into_headers();
    }
    http.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    *http.extensions_mut() = extensions;
    http
}

/// A unary response body: the message frame, then the trailers.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// A request body handed to the router: the bytes the fast path already read, then the rest of the original body
/// (or, if that had ended, its trailers).
struct Replay {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Body>,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(prefix) = self.prefix.take().filter(|p| !p.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(rest) = self.rest.as_mut() {
            return Pin::new(rest).poll_frame(cx);
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}
