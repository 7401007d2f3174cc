//! flowmesh.v1 over the network against a whole server on port 0 (the Python wire suite covers the full
//! acceptance checklist; these cover auth, streaming, long polls, limits and shutdown from Rust).

use herald_testkit::v1::{
    self as pb, health_service_client::HealthServiceClient, kv_service_client::KvServiceClient,
    queue_service_client::QueueServiceClient, stream_service_client::StreamServiceClient,
};
use herald_testkit::{TestOptions, TestServer, authed, path};
use std::time::{Duration, Instant};
use tonic::Code;

const TOKEN: &str = "test-token";

async fn server(resources: &[&str]) -> TestServer {
    TestServer::start(TestOptions {
        tokens: vec![TOKEN.into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A `Reserve` of `queue` with the given visibility timeout and long-poll wait (seconds; 0 answers at once).
fn reserve(queue: &str, visibility_seconds: i64, long_poll_seconds: i64) -> pb::ReserveRequest {
    pb::ReserveRequest {
        resource_path: path(queue),
        visibility_timeout_seconds: visibility_seconds,
        long_poll_timeout_seconds: long_poll_seconds,
    }
}

fn write(stream: &str, payloads: &[&str]) -> pb::WriteEventsRequest {
    pb::WriteEventsRequest {
        resource_path: path(stream),
        events: payloads
            .iter()
            .map(|p| pb::Event { payload: p.as_bytes().to_vec().into(), headers: Default::default() })
            .collect(),
    }
}

#[tokio::test]
async fn authentication_outcomes_and_exempt_health() {
    let srv = server(&["t1/ns1/stream/a"]).await;
    let ch = srv.channel().await;
    let mut s = StreamServiceClient::new(ch.clone());
    let req = || pb::GetLatestOffsetRequest { resource_path: path("t1/ns1/stream/a"), partition: 0 };
    let e = s.get_latest_offset(req()).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "authentication required"));
    let mut r = tonic::Request::new(req());
    r.metadata_mut().insert("authorization", "Token test-token".parse().unwrap());
    assert_eq!(s.get_latest_offset(r).await.unwrap_err().message(), "invalid authorization header format");
    assert_eq!(s.get_latest_offset(authed(req(), "wrong")).await.unwrap_err().message(), "invalid or expired token");
    assert_eq!(s.get_latest_offset(authed(req(), TOKEN)).await.unwrap().into_inner().offset, -1);
    // Authentication precedes validation.
    let bad = pb::WriteEventsRequest { resource_path: path("/ns1/stream/a"), events: vec![] };
    assert_eq!(s.write_events(bad).await.unwrap_err().code(), Code::Unauthenticated);
    // Subscribe is authenticated too (D8).
    let sub = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/a"),
        consumer_group: "g".into(),
        ..Default::default()
    };
    assert_eq!(s.subscribe(sub).await.unwrap_err().code(), Code::Unauthenticated);
    // Health checks need no token, and ignore a wrong one.
    let mut h = HealthServiceClient::new(ch);
    let hc = h.health_check(authed(pb::HealthCheckRequest {}, "wrong")).await.unwrap().into_inner();
    assert_eq!(hc.status.unwrap().message, "healthy");
    let rc = h.readiness_check(pb::ReadinessCheckRequest {}).await.unwrap().into_inner();
    assert!(rc.ready);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn subscribe_resumes_pushes_live_and_checks_up_front() {
    let srv = server(&["t1/ns1/stream/c06"]).await;
    let mut s = StreamServiceClient::new(srv.channel().await);
    s.write_events(authed(write("t1/ns1/stream/c06", &["0", "1", "2", "3", "4"]), TOKEN)).await.unwrap();
    let commit = pb::CommitOffsetRequest {
        resource_path: path("t1/ns1/stream/c06"),
        consumer_group: "g".into(),
        partition: 0,
        offset: 2,
    };
    s.commit_offset(authed(commit, TOKEN)).await.unwrap();
    let sub = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/c06"),
        consumer_group: "g".into(),
        partition: 0,
        start_offset: -1,
    };
    let mut frames = s.subscribe(authed(sub, TOKEN)).await.unwrap().into_inner();
    for expect in [3, 4] {
        let f = frames.message().await.unwrap().unwrap();
        assert!(f.status.is_none());
        assert_eq!(f.message.unwrap().offset, expect);
    }
    let t = Instant::now();
    s.write_events(authed(write("t1/ns1/stream/c06", &["5"]), TOKEN)).await.unwrap();
    let f = frames.message().await.unwrap().unwrap();
    assert_eq!(f.message.unwrap().offset, 5);
    assert!(t.elapsed() < Duration::from_millis(500), "pushed, not polled: {:?}", t.elapsed());
    drop(frames);

    let missing = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/missing"),
        consumer_group: "g".into(),
        ..Default::default()
    };
    let e = s.subscribe(authed(missing, TOKEN)).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::NotFound, "stream not found: t1/ns1/stream/missing"));
    let bad = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/c06"),
        consumer_group: "g".into(),
        start_offset: -3,
        ..Default::default()
    };
    assert_eq!(
        s.subscribe(authed(bad, TOKEN)).await.unwrap_err().message(),
        "start_offset must be >= 0, -1 (committed), or -2 (latest)"
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_ends_subscriptions_and_long_polls() {
    let srv = server(&["t1/ns1/stream/s", "t1/ns1/queue/q"]).await;
    let ch = srv.channel().await;
    let mut s = StreamServiceClient::new(ch.clone());
    let sub = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/s"),
        consumer_group: "g".into(),
        partition: 0,
        start_offset: -2,
    };
    let mut frames = s.subscribe(authed(sub, TOKEN)).await.unwrap().into_inner();
    let mut q = QueueServiceClient::new(ch);
    let poll = tokio::spawn(async move {
        let req = reserve("t1/ns1/queue/q", 0, 20);
        q.reserve(authed(req, TOKEN)).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    srv.shutdown().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "shutdown did not wait for the 20 s long poll: {:?}", t.elapsed());
    assert_eq!(frames.message().await.unwrap_err().code(), Code::Unavailable);
    let r = poll.await.unwrap().unwrap().into_inner();
    assert!(r.job.is_none());
}

#[tokio::test]
async fn reserve_long_poll_wakes_on_enqueue() {
    let srv = server(&["t1/ns1/queue/c09"]).await;
    let ch = srv.channel().await;
    let mut q = QueueServiceClient::new(ch.clone());
    let empty = q
        .reserve(authed(pb::ReserveRequest { resource_path: path("t1/ns1/queue/c09"), ..Default::default() }, TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.status.unwrap().message, "no jobs available");
    assert!(empty.job.is_none());
    let mut producer = QueueServiceClient::new(ch);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let req = pb::EnqueueRequest {
            resource_path: path("t1/ns1/queue/c09"),
            payload: "late".into(),
            ..Default::default()
        };
        producer.enqueue(authed(req, TOKEN)).await.unwrap();
    });
    let t = Instant::now();
    let req = reserve("t1/ns1/queue/c09", 30, 5);
    let job = q.reserve(authed(req, TOKEN)).await.unwrap().into_inner().job.unwrap();
    assert_eq!(&job.payload[..], b"late");
    assert!(t.elapsed() < Duration::from_millis(1500), "woken by the enqueue: {:?}", t.elapsed());
    srv.shutdown().await.unwrap();
}

/// Short calls are served inside their connection's task (grpc/listener.rs): many of them multiplexed on one
/// connection all get their own answers, while a long poll on the same connection waits without holding them up.
#[tokio::test]
async fn calls_multiplexed_on_one_connection_beside_a_long_poll() {
    let srv = server(&["t1/ns1/kv/mx", "t1/ns1/queue/mx"]).await;
    let ch = srv.channel().await;
    let mut q = QueueServiceClient::new(ch.clone());
    let poll = tokio::spawn(async move {
        let req = reserve("t1/ns1/queue/mx", 30, 10);
        q.reserve(authed(req, TOKEN)).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let calls = (0..64).map(|i| {
        let mut kv = KvServiceClient::new(ch.clone());
        async move {
            let set = pb::SetRequest {
                resource_path: path("t1/ns1/kv/mx"),
                key: format!("k{i}"),
                value: format!("v{i}").into(),
                ttl_seconds: 0,
            };
            kv.set(authed(set, TOKEN)).await.unwrap();
            let get = pb::GetRequest { resource_path: path("t1/ns1/kv/mx"), key: format!("k{i}") };
            kv.get(authed(get, TOKEN)).await.unwrap().into_inner().value
        }
    });
    let values = futures::future::join_all(calls).await;
    for (i, v) in values.iter().enumerate() {
        assert_eq!(&v[..], format!("v{i}").as_bytes());
    }
    assert!(t.elapsed() < Duration::from_secs(5), "the long poll held the other calls up: {:?}", t.elapsed());
    assert!(!poll.is_finished(), "the long poll is still waiting");
    let mut producer = QueueServiceClient::new(ch);
    let req =
        pb::EnqueueRequest { resource_path: path("t1/ns1/queue/mx"), payload: "job".into(), ..Default::default() };
    producer.enqueue(authed(req, TOKEN)).await.unwrap();
    let job = poll.await.unwrap().unwrap().into_inner().job.expect("the long poll gets the job");
    assert_eq!(&job.payload[..], b"job");
    srv.shutdown().await.unwrap();
}

/// A long poll the client cancels is gone from the server: the job enqueued next goes to the next caller, not to
/// the abandoned call (which would hide it for its visibility timeout).
#[tokio::test]
async fn a_cancelled_long_poll_does_not_take_the_next_job() {
    let srv = server(&["t1/ns1/queue/cx"]).await;
    let ch = srv.channel().await;
    let mut q = QueueServiceClient::new(ch.clone());
    let req = reserve("t1/ns1/queue/cx", 300, 10);
    // Dropping the call's future resets its HTTP/2 stream.
    let abandoned = tokio::time::timeout(Duration::from_millis(300), q.reserve(authed(req, TOKEN))).await;
    assert!(abandoned.is_err(), "the long poll was still waiting when it was cancelled");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let req =
        pb::EnqueueRequest { resource_path: path("t1/ns1/queue/cx"), payload: "next".into(), ..Default::default() };
    q.enqueue(authed(req, TOKEN)).await.unwrap();
    let req = reserve("t1/ns1/queue/cx", 30, 0);
    let job = q.reserve(authed(req, TOKEN)).await.unwrap().into_inner().job.expect("the job is still there");
    assert_eq!(&job.payload[..], b"next");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn four_mib_requests_are_accepted_and_data_survives_restart() {
    let mut srv = server(&["t1/ns1/kv/big", "t1/ns1/stream/big"]).await;
    let big = vec![b'x'; 4 << 20];
    let mut kv = KvServiceClient::new(srv.channel().await);
    let set = pb::SetRequest {
        resource_path: path("t1/ns1/kv/big"),
        key: "k".into(),
        value: big.clone().into(),
        ttl_seconds: 0,
    };
    kv.set(authed(set, TOKEN)).await.unwrap();
    srv.restart().await.unwrap();
    // Like grpc-go and grpcio clients, tonic's client refuses responses over 4 MiB unless told otherwise.
    let mut kv = KvServiceClient::new(srv.channel().await).max_decoding_message_size(8 << 20);
    let get = pb::GetRequest { resource_path: path("t1/ns1/kv/big"), key: "k".into() };
    assert_eq!(kv.get(authed(get, TOKEN)).await.unwrap().into_inner().value.len(), big.len());
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn scoped_tokens_get_permission_denied() {
    use herald_server::auth::TokenConfig;
    let dir = tempfile::tempdir().unwrap();
    let mut config = herald_server::config::Config { data_dir: dir.path().join("data"), ..Default::default() };
    config.listeners.grpc = "127.0.0.1:0".into();
    config.listeners.admin = "127.0.0.1:0".into();
    config.listeners.nats = "127.0.0.1:0".into();
    config.listeners.relay = "127.0.0.1:0".into();
    config.storage.auto_create = true;
    config.auth.tokens = vec![TokenConfig {
        token: "reader".into(),
        tenants: vec!["t1".into()],
        permissions: vec!["kv.read".into()],
        ..Default::default()
    }];
    let srv = herald_server::start(config.validate().unwrap()).await.unwrap();
    let ch =
        tonic::transport::Channel::from_shared(format!("http://{}", srv.grpc_addr)).unwrap().connect().await.unwrap();
    let mut kv = KvServiceClient::new(ch);
    let set = pb::SetRequest { resource_path: path("t1/ns1/kv/s"), key: "k".into(), value: "v".into(), ttl_seconds: 0 };
    let e = kv.set(authed(set, "reader")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "forbidden: kv.write on t1/ns1: permission not granted")
    );
    let get = pb::GetRequest { resource_path: path("t2/ns1/kv/s"), key: "k".into() };
    assert_eq!(
        kv.get(authed(get, "reader")).await.unwrap_err().message(),
        "forbidden: kv.read on t2/ns1: tenant not allowed"
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_and_oversized_input_get_errors_and_the_server_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = server(&["t1/ns1/kv/k"]).await;
    let addr = srv.grpc_url().trim_start_matches("http://").to_string();

    // Not HTTP/2 at all: the connection is closed, nothing else happens.
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\xfe garbage").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf)).await;

    // A well-formed gRPC call whose body is not a valid protobuf message.
    let ch = srv.channel().await;
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let method = tonic::codegen::http::uri::PathAndQuery::from_static("/flowmesh.v1.KVService/Get");
    let garbage = bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]);
    let res: Result<tonic::Response<pb::GetResponse>, _> =
        grpc.unary(authed(garbage, TOKEN), method, RawCodec::default()).await;
    let e = res.unwrap_err();
    assert!(matches!(e.code(), Code::Internal | Code::InvalidArgument), "{e:?}");

    // A request over the configured limit (16 MiB).
    let mut kv = KvServiceClient::new(ch.clone()).max_encoding_message_size(usize::MAX);
    let huge = pb::SetRequest {
        resource_path: path("t1/ns1/kv/k"),
        key: "k".into(),
        value: vec![0u8; 17 << 20].into(),
        ttl_seconds: 0,
    };
    let e = kv.set(authed(huge, TOKEN)).await.unwrap_err();
    assert!(matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted), "{e:?}");

    // Still serving, nothing stored by the rejected calls.
    let mut kv = KvServiceClient::new(srv.channel().await);
    let ok =
        pb::SetRequest { resource_path: path("t1/ns1/kv/k"), key: "after".into(), value: "v".into(), ttl_seconds: 0 };
    kv.set(authed(ok, TOKEN)).await.unwrap();
    let keys = kv
        .list_keys(authed(pb::ListKeysRequest { resource_path: path("t1/ns1/kv/k"), prefix: String::new() }, TOKEN))
        .await;
    assert_eq!(keys.unwrap().into_inner().keys, vec!["after".to_string()]);
    srv.shutdown().await.unwrap();
}

/// Sends pre-encoded bytes as the request body and decodes the response as `M`.
#[derive(Default)]
struct RawCodec<M>(std::marker::PhantomData<M>);

impl<M: prost::Message + Default + Send + 'static> tonic::codec::Codec for RawCodec<M> {
    type Encode = bytes::Bytes;
    type Decode = M;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<M>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: bytes::Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Self::Error> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

/// One HTTP/1.1 request over a fresh connection; returns (status code, body).
async fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: herald\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[tokio::test]
async fn admin_health_and_ready_in_flowmesh_form() {
    let srv = server(&[]).await;
    let admin = srv.admin_url().trim_start_matches("http://").to_string();
    let (code, body) = http(&admin, "GET", "/health").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"status": {"code": 200, "message": "healthy"}}));
    assert_eq!(http(&admin, "POST", "/health").await.0, 200);
    let (code, body) = http(&admin, "GET", "/ready").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, serde_json::json!({"status": {"code": 200, "message": "ready"}, "ready": true}));
    assert_eq!(http(&admin, "GET", "/health/x").await.0, 404);
    srv.shutdown().await.unwrap();
}

/// One gRPC call with a hand-made body (each chunk is one HTTP/2 DATA frame) over a fresh HTTP/2 connection;
/// returns `grpc-status`, `grpc-message` and the response body.
async fn raw_grpc(addr: &str, path: &str, token: Option<&str>, extra: &[(&str, &str)], chunks: &[&[u8]]) -> RawAnswer {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> =
        chunks.iter().map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c)))).collect();
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let mut req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let res = send.send_request(req.body(body).unwrap()).await.unwrap();
    let headers = res.headers().clone();
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let field = |name: &str| {
        let v = trailers.get(name).or_else(|| headers.get(name));
        v.map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    };
    RawAnswer {
        status: field("grpc-status"),
        message: percent_decode(&field("grpc-message")),
        body: collected.to_bytes(),
    }
}

/// `grpc-message` is percent-encoded on the wire.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

struct RawAnswer {
    status: String,
    message: String,
    body: bytes::Bytes,
}

/// The gRPC frame of one uncompressed message.
fn framed(msg: &impl prost::Message) -> Vec<u8> {
    let raw = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    out.extend_from_slice(&raw);
    out
}

/// The hottest unary RPCs are answered by the server's fast path (`grpc/fast.rs`) rather than tonic's router.
/// Ordinary calls must get the same bytes back, and every unusual request must reach tonic and get tonic's answer.
#[tokio::test]
async fn fast_path_answers_plain_calls_and_hands_everything_else_to_tonic() {
    use prost::Message;
    let srv = server(&["t1/ns1/kv/k"]).await;
    let addr = srv.grpc_url().trim_start_matches("http://").to_string();
    let set = |key: &str, value: &str| pb::SetRequest {
        resource_path: path("t1/ns1/kv/k"),
        key: key.into(),
        value: value.as_bytes().to_vec().into(),
        ttl_seconds: 0,
    };
    const SET: &str = "/flowmesh.v1.KVService/Set";

    // A plain call: one message, answered with the message frame and grpc-status 0.
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&framed(&set("plain", "1"))]).await;
    assert_eq!((a.status.as_str(), a.message.as_str()), ("0", ""));
    let reply = pb::SetResponse::decode(&a.body[5..]).unwrap();
    assert_eq!(reply.status.unwrap().message, "key-value pair set successfully");

    // The same message split over three DATA frames, the prefix itself cut in two.
    let whole = framed(&set("split", "2"));
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&whole[..3], &whole[3..9], &whole[9..]]).await;
    assert_eq!(a.status, "0", "{}", a.message);

    // No credentials: refused before the body is looked at.
    let a = raw_grpc(&addr, SET, None, &[], &[&framed(&set("anon", "x"))]).await;
    assert_eq!((a.status.as_str(), a.message.as_str()), ("16", "authentication required"));

    // Validation runs in the same handler: an empty key is the contract's INVALID_ARGUMENT.
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&framed(&set("", "x"))]).await;
    assert_eq!((a.status.as_str(), a.message.as_str()), ("3", "key cannot be empty"));

    // Everything below goes to tonic, which answers in its own words.
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[]).await;
    assert_eq!((a.status.as_str(), a.message.as_str()), ("13", "Missing request message."));
    let mut compressed = framed(&set("flag", "x"));
    compressed[0] = 1;
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&compressed]).await;
    assert_eq!(a.status, "13");
    assert!(a.message.contains("compressed-flag but no grpc-encoding"), "{}", a.message);
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[("grpc-encoding", "gzip")], &[&compressed]).await;
    assert_eq!(a.status, "12", "{}", a.message);
    let mut oversized = vec![0u8];
    oversized.extend_from_slice(&(17u32 << 20).to_be_bytes());
    oversized.extend_from_slice(b"only a few bytes follow");
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&oversized]).await;
    assert_eq!(a.status, "11", "{}", a.message);
    assert!(a.message.contains("too large"), "{}", a.message);
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&[0, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12]]).await;
    assert_eq!(a.status, "13", "{}", a.message);
    assert!(a.message.contains("decode"), "{}", a.message);
    let truncated = framed(&set("truncated", "x"));
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&truncated[..truncated.len() - 2]]).await;
    assert_ne!(a.status, "0", "a truncated message must not be applied");
    // Two messages in a unary body: tonic takes the first.
    let two = [framed(&set("two", "first")), framed(&set("two", "second"))].concat();
    let a = raw_grpc(&addr, SET, Some(TOKEN), &[], &[&two]).await;
    assert_eq!(a.status, "0", "{}", a.message);

    // What those calls left behind, read through the ordinary client.
    let mut kv = KvServiceClient::new(srv.channel().await);
    let keys = kv
        .list_keys(authed(pb::ListKeysRequest { resource_path: path("t1/ns1/kv/k"), prefix: String::new() }, TOKEN))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys, vec!["plain".to_string(), "split".to_string(), "two".to_string()]);
    let two = kv.get(authed(pb::GetRequest { resource_path: path("t1/ns1/kv/k"), key: "two".into() }, TOKEN)).await;
    assert_eq!(&two.unwrap().into_inner().value[..], b"first");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn schema_registry_calls_are_scoped_by_tenant_and_attachments_by_write_permission() {
    use herald_server::auth::TokenConfig;
    use herald_testkit::v1::schema_service_client::SchemaServiceClient;
    let srv = TestServer::start(TestOptions {
        tokens: vec![TOKEN.into()],
        resources: vec!["t1/ns1/stream/orders".into()],
        token_configs: vec![TokenConfig {
            token: "t1-reader".into(),
            tenants: vec!["t1".into()],
            permissions: vec!["stream.read".into()],
            ..Default::default()
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sc = SchemaServiceClient::new(srv.channel().await);
    let register = |tenant: &str| pb::RegisterSchemaRequest {
        tenant: tenant.into(),
        schema_id: "order".into(),
        schema_type: "jsonschema".into(),
        version: 1,
        definition: r#"{"type":"object","required":["id"]}"#.into(),
    };
    // Schema calls need no permission of FlowMesh's set, only the tenant.
    let ok = sc.register_schema(authed(register("t1"), "t1-reader")).await.unwrap().into_inner();
    assert_eq!(ok.status.unwrap().message, "schema registered successfully");
    let e = sc.register_schema(authed(register("t2"), "t1-reader")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "forbidden: schema.write on t2/*: tenant not allowed")
    );
    let list = pb::ListSchemasRequest { tenant: "t2".into(), schema_id: String::new() };
    let e = sc.list_schemas(authed(list, "t1-reader")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::PermissionDenied, "forbidden: schema.read on t2/*: tenant not allowed"));
    // The request's own checks come before authorization.
    let e = sc.register_schema(authed(register(""), "t1-reader")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "tenant is required"));

    // Attaching changes what the stream accepts: it needs stream.write.
    let attach = || pb::SetResourceSchemaRequest {
        resource_path: path("t1/ns1/stream/orders"),
        schema_id: "order".into(),
        version: 0,
    };
    let e = sc.set_resource_schema(authed(attach(), "t1-reader")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "forbidden: stream.write on t1/ns1: permission not granted")
    );
    let done = sc.set_resource_schema(authed(attach(), TOKEN)).await.unwrap().into_inner();
    assert_eq!(done.status.unwrap().message, "schema attached to resource successfully");

    // Writes through the gRPC fast path are validated by the engine like any other.
    let mut s = StreamServiceClient::new(srv.channel().await);
    let e = s.write_events(authed(write("t1/ns1/stream/orders", &[r#"{"id":1}"#, "{}"]), TOKEN)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("failed to write to stream t1/ns1/stream/orders: event 1 validation failed: "));
    let offsets = s.write_events(authed(write("t1/ns1/stream/orders", &[r#"{"id":1}"#]), TOKEN)).await.unwrap();
    assert_eq!(offsets.into_inner().offsets, [0]);
    let read = pb::ReadStreamRequest { resource_path: path("t1/ns1/stream/orders"), ..Default::default() };
    let msgs = s.read_stream(authed(read, "t1-reader")).await.unwrap().into_inner().messages;
    assert_eq!(msgs[0].schema_version, 1);
    srv.shutdown().await.unwrap();
}

/// The listener applies the request's `grpc-timeout` to the handler, as tonic's transport did: a 10 s long poll
/// sent with a 500 ms deadline is answered with tonic's status for an expired deadline soon after 500 ms.
#[tokio::test]
async fn grpc_timeout_bounds_a_long_poll_with_tonics_answer() {
    let srv = server(&["t1/ns1/queue/deadline"]).await;
    let mut q = QueueServiceClient::new(srv.channel().await);
    let req = reserve("t1/ns1/queue/deadline", 30, 10);
    let mut req = authed(req, TOKEN);
    // Sent as metadata rather than with `set_timeout`, so the client does not enforce it: the answer is the
    // server's.
    req.metadata_mut().insert("grpc-timeout", "500m".parse().unwrap());
    let t = Instant::now();
    let e = q.reserve(req).await.unwrap_err();
    let took = t.elapsed();
    assert_eq!((e.code(), e.message()), (Code::Cancelled, "Timeout expired"));
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(1500), "answered after {took:?}");
    // The connection and the queue are fine afterwards: a job enqueued now is reserved at once.
    let enqueue = pb::EnqueueRequest {
        resource_path: path("t1/ns1/queue/deadline"),
        payload: "after".into(),
        ..Default::default()
    };
    q.enqueue(authed(enqueue, TOKEN)).await.unwrap();
    let req = pb::ReserveRequest { resource_path: path("t1/ns1/queue/deadline"), ..Default::default() };
    let job = q.reserve(authed(req, TOKEN)).await.unwrap().into_inner().job.unwrap();
    assert_eq!(&job.payload[..], b"after");
    srv.shutdown().await.unwrap();
}

/// `flowmesh_stream_bytes_read_total` of one stream, from the admin listener's `/metrics` (0 when absent).
async fn stream_bytes_read(srv: &TestServer, name: &str) -> f64 {
    let admin = srv.admin_url().trim_start_matches("http://").to_string();
    let (code, text) = http(&admin, "GET", "/metrics").await;
    assert_eq!(code, 200);
    let label = format!("stream=\"{name}\"");
    text.lines()
        .find(|l| l.starts_with("flowmesh_stream_bytes_read_total{") && l.contains(&label))
        .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
}

/// A Subscribe the client cancels stops on the server: its tail reads nothing more (every batch a subscription
/// reads is counted in `flowmesh_stream_bytes_read_total`), and the same group can subscribe again.
#[tokio::test]
async fn a_cancelled_subscribe_stops_on_the_server() {
    let srv = server(&["t1/ns1/stream/cancel"]).await;
    let mut s = StreamServiceClient::new(srv.channel().await);
    let sub = || pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/cancel"),
        consumer_group: "g".into(),
        partition: 0,
        start_offset: 0,
    };
    s.write_events(authed(write("t1/ns1/stream/cancel", &["abc"]), TOKEN)).await.unwrap();
    let mut frames = s.subscribe(authed(sub(), TOKEN)).await.unwrap().into_inner();
    assert_eq!(frames.message().await.unwrap().unwrap().message.unwrap().offset, 0);
    assert_eq!(stream_bytes_read(&srv, "cancel").await, 3.0);
    // Dropping the response stream resets the HTTP/2 stream (RST_STREAM CANCEL).
    drop(frames);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A live subscription would read this at once; a stopped one reads nothing.
    s.write_events(authed(write("t1/ns1/stream/cancel", &["defgh"]), TOKEN)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stream_bytes_read(&srv, "cancel").await, 3.0, "the cancelled subscription kept reading");
    let mut again = s.subscribe(authed(sub(), TOKEN)).await.unwrap().into_inner();
    for expect in [0, 1] {
        assert_eq!(again.message().await.unwrap().unwrap().message.unwrap().offset, expect);
    }
    assert_eq!(stream_bytes_read(&srv, "cancel").await, 11.0);
    drop(again);
    srv.shutdown().await.unwrap();
}

/// Graceful shutdown while a unary call and a Subscribe are in flight: the listener sends GOAWAY but keeps serving
/// the open streams, so the unary call whose request is still arriving completes; the Subscribe ends with
/// UNAVAILABLE; the server exits and the port is closed.
#[tokio::test]
async fn graceful_shutdown_completes_in_flight_calls() {
    use futures::{SinkExt, StreamExt};
    use http_body_util::BodyExt;
    let srv = server(&["t1/ns1/stream/sd", "t1/ns1/kv/sd"]).await;
    let addr = srv.grpc_url().trim_start_matches("http://").to_string();
    let mut s = StreamServiceClient::new(srv.channel().await);
    let sub = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/sd"),
        consumer_group: "g".into(),
        partition: 0,
        start_offset: -2,
    };
    let mut frames = s.subscribe(authed(sub, TOKEN)).await.unwrap().into_inner();

    // A KV Set whose request body arrives in two pieces, the second after the shutdown has begun.
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (mut body_tx, body_rx) =
        futures::channel::mpsc::channel::<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>(4);
    let req = http::Request::post(format!("http://{addr}/flowmesh.v1.KVService/Set"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::StreamBody::new(body_rx))
        .unwrap();
    let call = tokio::spawn(async move { send.send_request(req).await });
    let set = pb::SetRequest {
        resource_path: path("t1/ns1/kv/sd"),
        key: "k".into(),
        value: "in flight".into(),
        ttl_seconds: 0,
    };
    let frame = framed(&set);
    let (first, second) = frame.split_at(7);
    body_tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(first)))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t = Instant::now();
    let stopping = tokio::spawn(srv.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "the server stopped with a call in flight");
    body_tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(second)))).await.unwrap();
    drop(body_tx);

    let res = call.await.unwrap().unwrap();
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    let answer = <pb::SetResponse as prost::Message>::decode(collected.to_bytes().slice(5..)).unwrap();
    assert_eq!(answer.status.unwrap().message, "key-value pair set successfully");

    let e = frames.message().await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::Unavailable, "server shutting down"));
    assert!(frames.next().await.is_none());
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("the server exits").unwrap().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "shutdown took {:?}", t.elapsed());
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "the gRPC port is closed");
}

/// One HTTP/2 frame as read off the wire: (type, flags, stream id, payload).
async fn read_frame(sock: &mut tokio::net::TcpStream) -> (u8, u8, u32, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 9];
    sock.read_exact(&mut head).await.unwrap();
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], stream, payload)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK "literal header field without indexing, new name" (no Huffman coding; both strings under 127 bytes).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0x00);
    for s in [name, value] {
        block.push(s.len() as u8);
        block.extend_from_slice(s.as_bytes());
    }
}

/// The listener lets clients send DATA frames of up to 1 MiB (HTTP/2's default is 16 KiB), so a batch of events
/// can arrive as one frame: the server says so in its SETTINGS, and a 300 KiB `WriteEvents` sent as a single DATA
/// frame is answered normally (a 16 KiB limit would have ended the connection with FRAME_SIZE_ERROR).
#[tokio::test]
async fn a_batch_of_events_in_one_large_data_frame() {
    use prost::Message;
    use tokio::io::AsyncWriteExt;
    let srv = server(&["t1/ns1/stream/big"]).await;
    let addr = srv.grpc_url().trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    sock.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();

    // The server's SETTINGS, then the WINDOW_UPDATE that opens its 16 MiB connection window.
    let (mut settings, mut connection_window) = (None, None);
    while settings.is_none() || connection_window.is_none() {
        match read_frame(&mut sock).await {
            (0x4, 0, 0, payload) => settings = Some(payload),
            (0x8, _, 0, payload) => connection_window = Some(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            _ => {}
        }
    }
    let settings: Vec<(u16, u32)> = settings
        .unwrap()
        .chunks(6)
        .map(|p| (u16::from_be_bytes([p[0], p[1]]), u32::from_be_bytes([p[2], p[3], p[4], p[5]])))
        .collect();
    assert!(settings.contains(&(0x5, 1 << 20)), "SETTINGS_MAX_FRAME_SIZE: {settings:?}");
    assert!(settings.contains(&(0x4, 2 << 20)), "SETTINGS_INITIAL_WINDOW_SIZE: {settings:?}");
    assert_eq!(connection_window, Some((16 << 20) - 65_535));
    sock.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap(); // ACK

    let events: Vec<pb::Event> = (0..300u32)
        .map(|i| pb::Event { payload: vec![(i % 251) as u8; 1024].into(), headers: Default::default() })
        .collect();
    let message = pb::WriteEventsRequest { resource_path: path("t1/ns1/stream/big"), events }.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    assert!(body.len() > 300 << 10 && body.len() < 1 << 20);

    let mut headers = vec![0x83, 0x86]; // :method POST, :scheme http (HPACK static table)
    literal(&mut headers, ":path", "/flowmesh.v1.StreamService/WriteEvents");
    literal(&mut headers, ":authority", &addr);
    literal(&mut headers, "content-type", "application/grpc");
    literal(&mut headers, "te", "trailers");
    literal(&mut headers, "authorization", &format!("Bearer {TOKEN}"));
    sock.write_all(&frame(0x1, 0x4, 1, &headers)).await.unwrap(); // END_HEADERS
    sock.write_all(&frame(0x0, 0x1, 1, &body)).await.unwrap(); // the whole request, one frame, END_STREAM

    let mut response = Vec::new();
    loop {
        match read_frame(&mut sock).await {
            (0x0, _, 1, data) => response.extend_from_slice(&data),
            (0x1, flags, 1, _) if flags & 0x1 != 0 => break, // trailers
            (kind @ (0x3 | 0x7), _, _, payload) => {
                panic!("stream reset or connection closed: type {kind}, {payload:?}")
            }
            _ => {}
        }
    }
    let reply = pb::WriteEventsResponse::decode(&response[5..]).unwrap();
    assert_eq!(reply.offsets, (0..300).collect::<Vec<i64>>());
    drop(sock); // graceful shutdown waits for open connections

    let mut s = StreamServiceClient::new(srv.channel().await);
    let latest = pb::GetLatestOffsetRequest { resource_path: path("t1/ns1/stream/big"), partition: 0 };
    assert_eq!(s.get_latest_offset(authed(latest, TOKEN)).await.unwrap().into_inner().offset, 299);
    srv.shutdown().await.unwrap();
}
