//! The admin listener's FlowMesh live feed (`/ws`, compat/flowmesh.md §5.8, D18) and metrics (§5.9, D23) against a
//! whole server on port 0: C26 exactly as written (HTTP mutations, plus a gRPC enqueue) and driven by gRPC mutations
//! (D18: gRPC publishes the same events as HTTP), every "publishes" route of §5.3–§5.5, the filtering rule, one JSON
//! object per frame, slow clients, and C27 over gRPC and over HTTP on both the admin and the dedicated listener.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt, StreamExt};
use herald_testkit::v1::{
    self as pb, kv_service_client::KvServiceClient, queue_service_client::QueueServiceClient,
    stream_service_client::StreamServiceClient,
};
use herald_testkit::{TestOptions, TestServer, authed, http1, path};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "test-token";

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn server(resources: &[&str], fsync: &str) -> TestServer {
    TestServer::start(TestOptions {
        tokens: vec![TOKEN.into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        fsync: Some(fsync.into()),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn ws_url(srv: &TestServer) -> String {
    format!("{}/ws", srv.admin_url().replace("http://", "ws://"))
}

/// Connects with a browser-like Origin (any is accepted) and gives the server a moment to register the connection.
async fn connect(srv: &TestServer) -> Ws {
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url(srv)).unwrap();
    req.headers_mut().insert("origin", "http://dashboard.example".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("sec-websocket-protocol").is_none(), "no subprotocol");
    settle().await;
    ws
}

/// Client messages get no reply, so a test cannot see when one was applied; this waits long enough.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
    settle().await;
}

/// The next event within `wait`, checking that its frame is exactly one JSON object.
async fn next_event(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(wait, ws.next()).await.ok()?;
        match msg.expect("socket open").expect("frame") {
            Message::Text(t) => {
                let v: Value =
                    serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("one JSON object ({e}): {t}"));
                assert!(v.is_object(), "{t}");
                let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
                assert_eq!(keys.len(), 3, "type, topic, payload: {t}");
                return Some(v);
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn event(ws: &mut Ws) -> Value {
    next_event(ws, Duration::from_secs(1)).await.expect("an event within 1 s")
}

fn enqueue(queue: &str, payload: &str) -> tonic::Request<pb::EnqueueRequest> {
    authed(
        pb::EnqueueRequest {
            resource_path: path(queue),
            payload: payload.as_bytes().to_vec().into(),
            ..Default::default()
        },
        TOKEN,
    )
}

fn write(stream: &str, payloads: &[&str]) -> tonic::Request<pb::WriteEventsRequest> {
    let events = payloads
        .iter()
        .map(|p| pb::Event { payload: p.as_bytes().to_vec().into(), headers: Default::default() })
        .collect();
    authed(pb::WriteEventsRequest { resource_path: path(stream), events }, TOKEN)
}

fn kv_set(store: &str, key: &str) -> tonic::Request<pb::SetRequest> {
    authed(
        pb::SetRequest { resource_path: path(store), key: key.into(), value: b"v".to_vec().into(), ttl_seconds: 0 },
        TOKEN,
    )
}

/// One HTTP/1.1 request to the admin listener on a fresh connection: (status, body as JSON, or Null when empty).
async fn http(srv: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let reply = http1::request(srv.admin_addr(), method, path, &[], body.as_bytes()).await.unwrap();
    let body = if reply.body.is_empty() { Value::Null } else { reply.json() };
    (reply.status, body)
}

/// `http` that must answer 200; returns the body.
async fn http_ok(srv: &TestServer, method: &str, path: &str, body: Value) -> Value {
    let (status, reply) = http(srv, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {reply}");
    reply
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

async fn http_enqueue(srv: &TestServer, queue: &str, payload: &str) -> Value {
    http_ok(srv, "POST", &format!("/api/v1/queues/t1/ns1/{queue}/jobs"), json!({"payload": b64(payload)})).await
}

async fn http_write(srv: &TestServer, stream: &str, payloads: &[&str]) -> Value {
    let events: Vec<Value> = payloads.iter().map(|p| json!({"payload": b64(p)})).collect();
    http_ok(srv, "POST", &format!("/api/v1/streams/t1/ns1/{stream}/events"), json!({"events": events})).await
}

/// A `queue.stats` event with these counts; compared through [`aged`], since the oldest job's age depends on timing.
fn queue_stats(queue: &str, total: i64, pending: i64, in_flight: i64, completed: i64, failed: i64) -> Value {
    json!({"type": "queue.stats", "topic": format!("queue.stats.t1/ns1/{queue}"), "payload": {
        "total_jobs": total, "pending_jobs": pending, "in_flight_jobs": in_flight, "completed_jobs": completed,
        "failed_jobs": failed, "oldest_job_age_seconds": 0}})
}

/// `event` with `payload.oldest_job_age_seconds` checked to be a small number and then zeroed.
fn aged(mut event: Value) -> Value {
    let age = &mut event["payload"]["oldest_job_age_seconds"];
    assert!(age.as_i64().is_some_and(|a| (0..30).contains(&a)), "{age}");
    *age = json!(0);
    event
}

#[tokio::test]
async fn c26_http_mutations_publish_and_a_grpc_enqueue_too() {
    let srv = server(&["t1/ns1/queue/c26", "t1/ns1/stream/c26", "t1/ns1/kv/c26"], "never").await;
    let mut a = connect(&srv).await;
    let mut b = connect(&srv).await;
    send(&mut a, json!({"type": "subscribe", "payload": {"topics": ["queue.stats.t1/ns1/c26"]}})).await;

    http_enqueue(&srv, "c26", "job").await;
    let stats = queue_stats("c26", 1, 1, 0, 0, 0);
    assert_eq!(aged(event(&mut a).await), stats);
    assert_eq!(aged(event(&mut b).await), stats);
    // Exactly one frame each.
    assert_eq!(next_event(&mut b, Duration::from_millis(300)).await, None);

    http_write(&srv, "c26", &["e"]).await;
    assert_eq!(
        event(&mut b).await,
        json!({"type": "stream.stats", "topic": "stream.stats.t1/ns1/c26", "payload": {"latest_offset": 0}})
    );
    assert_eq!(next_event(&mut a, Duration::from_secs(1)).await, None, "A subscribed to the queue only");

    http_ok(&srv, "PUT", "/api/v1/kv/t1/ns1/c26/keys/k", json!({"value": b64("v")})).await;
    assert_eq!(
        event(&mut b).await,
        json!({"type": "kv.update", "topic": "kv.update.t1/ns1/c26", "payload": {"action": "set", "key": "k"}})
    );

    let mut q = QueueServiceClient::new(srv.channel().await);
    q.enqueue(enqueue("t1/ns1/queue/c26", "job")).await.unwrap();
    assert_eq!(aged(event(&mut a).await), queue_stats("c26", 2, 2, 0, 0, 0));
    srv.shutdown().await.unwrap();
}

/// Every other route that §5.3–§5.5 mark "publishes", and the failures that publish nothing.
#[tokio::test]
async fn every_publishing_http_route_publishes() {
    let srv = server(&["t1/ns1/queue/q", "t1/ns1/stream/s", "t1/ns1/stream/e", "t1/ns1/kv/kv"], "never").await;
    let mut ws = connect(&srv).await;
    let topics = [
        "queue.stats.t1/ns1/q",
        "queue.stats.t1/ns1/q-dlq",
        "stream.stats.t1/ns1/s",
        "stream.stats.t1/ns1/e",
        "kv.update.t1/ns1/kv",
    ];
    send(&mut ws, json!({"type": "subscribe", "payload": {"topics": topics}})).await;
    let base = "/api/v1/queues/t1/ns1/q";

    // Stream statistics read over HTTP publish the value read.
    http_write(&srv, "s", &["a", "b"]).await;
    assert_eq!(event(&mut ws).await["payload"], json!({"latest_offset": 1}));
    let stats = http_ok(&srv, "GET", "/api/v1/streams/t1/ns1/s/stats", Value::Null).await;
    assert_eq!(stats["stats"], json!({"latest_offset": 1}));
    assert_eq!(event(&mut ws).await["topic"], "stream.stats.t1/ns1/s");
    // Another partition (always empty) is not published under the stream's topic; partition 0 of an empty stream is.
    let other = http_ok(&srv, "GET", "/api/v1/streams/t1/ns1/e/stats?partition=1", Value::Null).await;
    assert_eq!(other["stats"], json!({"latest_offset": -1}));
    assert_eq!(next_event(&mut ws, Duration::from_millis(300)).await, None);
    http_ok(&srv, "GET", "/api/v1/streams/t1/ns1/e/stats", Value::Null).await;
    assert_eq!(
        event(&mut ws).await,
        json!({"type": "stream.stats", "topic": "stream.stats.t1/ns1/e", "payload": {"latest_offset": -1}})
    );

    // Enqueue, reserve (publishes nothing), ACK.
    http_enqueue(&srv, "q", "one").await;
    assert_eq!(aged(event(&mut ws).await), queue_stats("q", 1, 1, 0, 0, 0));
    let job = http_ok(&srv, "POST", &format!("{base}/reserve"), Value::Null).await["job"]["id"].clone();
    assert_eq!(next_event(&mut ws, Duration::from_millis(300)).await, None, "reserve does not publish");
    http_ok(&srv, "POST", &format!("{base}/jobs/{}/ack", job.as_str().unwrap()), Value::Null).await;
    assert_eq!(aged(event(&mut ws).await), queue_stats("q", 1, 0, 0, 1, 0));

    // A NACK that requeues.
    http_enqueue(&srv, "q", "two").await;
    assert_eq!(aged(event(&mut ws).await), queue_stats("q", 2, 1, 0, 1, 0));
    let job = http_ok(&srv, "POST", &format!("{base}/reserve"), Value::Null).await["job"]["id"].clone();
    let job = job.as_str().unwrap().to_owned();
    http_ok(&srv, "POST", &format!("{base}/jobs/{job}/nack"), json!({"delay_seconds": 0})).await;
    assert_eq!(aged(event(&mut ws).await), queue_stats("q", 2, 1, 0, 1, 0));

    // The dead-lettering NACK answers 412, yet both queues changed and both publish.
    let policy = json!({"max_attempts": 2, "initial_backoff_seconds": 1, "max_backoff_seconds": 1,
        "backoff_multiplier": 1.0, "backoff_strategy": "fixed"});
    http_ok(&srv, "PUT", &format!("{base}/retry-policy"), policy).await;
    // The NACK's backoff (1 s by default) makes the job visible again shortly.
    let again = http_ok(&srv, "POST", &format!("{base}/reserve?long_poll_timeout=5"), Value::Null).await;
    assert_eq!(again["job"]["id"], job.as_str());
    let (status, _) = http(&srv, "POST", &format!("{base}/jobs/{job}/nack"), Value::Null).await;
    assert_eq!(status, 412);
    let mut seen = BTreeMap::new();
    for _ in 0..2 {
        let e = event(&mut ws).await;
        seen.insert(e["topic"].as_str().unwrap().to_owned(), e);
    }
    assert_eq!(aged(seen["queue.stats.t1/ns1/q"].clone()), queue_stats("q", 2, 0, 0, 1, 1));
    assert_eq!(aged(seen["queue.stats.t1/ns1/q-dlq"].clone()), queue_stats("q-dlq", 1, 1, 0, 0, 0));

    // Replaying the dead job publishes for the queue and its dead-letter queue.
    let dlq = http_ok(&srv, "GET", &format!("{base}/dlq/jobs"), Value::Null).await;
    let dead = dlq["jobs"][0]["id"].as_str().unwrap().to_owned();
    http_ok(&srv, "POST", &format!("{base}/dlq/jobs/{dead}/replay"), Value::Null).await;
    let mut seen = BTreeMap::new();
    for _ in 0..2 {
        let e = event(&mut ws).await;
        seen.insert(e["topic"].as_str().unwrap().to_owned(), e);
    }
    assert_eq!(seen["queue.stats.t1/ns1/q"]["payload"]["pending_jobs"], 1);
    assert_eq!(seen["queue.stats.t1/ns1/q-dlq"]["payload"]["pending_jobs"], 0);

    // Reading the queue's statistics publishes them.
    let read = http_ok(&srv, "GET", &format!("{base}/stats"), Value::Null).await;
    let published = event(&mut ws).await;
    assert_eq!(published["topic"], "queue.stats.t1/ns1/q");
    assert_eq!(published["payload"], read["stats"]);

    // KV DELETE publishes, also for a key that does not exist (the call succeeds).
    http_ok(&srv, "DELETE", "/api/v1/kv/t1/ns1/kv/keys/nope", Value::Null).await;
    assert_eq!(
        event(&mut ws).await,
        json!({"type": "kv.update", "topic": "kv.update.t1/ns1/kv", "payload": {"action": "delete", "key": "nope"}})
    );
    // A key with `/` in it is published whole.
    http_ok(&srv, "PUT", "/api/v1/kv/t1/ns1/kv/keys/a/b", json!({"value": b64("v")})).await;
    assert_eq!(event(&mut ws).await["payload"], json!({"action": "set", "key": "a/b"}));

    // Failed calls publish nothing: an empty payload, an unknown job, a missing store.
    assert_eq!(http(&srv, "POST", &format!("{base}/jobs"), json!({"payload": ""})).await.0, 400);
    assert_eq!(http(&srv, "POST", &format!("{base}/jobs/nope/nack"), Value::Null).await.0, 404);
    assert_eq!(http(&srv, "PUT", "/api/v1/kv/t1/ns1/kv/keys/k", json!({"value": ""})).await.0, 400);
    assert_eq!(next_event(&mut ws, Duration::from_millis(500)).await, None);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn c26_grpc_mutations_publish_and_topics_filter() {
    let srv = server(&["t1/ns1/queue/c26", "t1/ns1/stream/c26", "t1/ns1/kv/c26"], "never").await;
    let ch = srv.channel().await;
    let (mut q, mut s, mut kv) =
        (QueueServiceClient::new(ch.clone()), StreamServiceClient::new(ch.clone()), KvServiceClient::new(ch));
    let mut a = connect(&srv).await;
    let mut b = connect(&srv).await;
    send(&mut a, json!({"type": "subscribe", "payload": {"topics": ["queue.stats.t1/ns1/c26"]}})).await;
    // Anything that is not a subscribe/unsubscribe is ignored, without a reply.
    send(&mut b, json!({"type": "hello", "payload": {"topics": ["queue.stats.t1/ns1/c26"]}})).await;
    b.send(Message::text("not json")).await.unwrap();
    b.send(Message::binary(vec![1, 2, 3])).await.unwrap();

    q.enqueue(enqueue("t1/ns1/queue/c26", "job")).await.unwrap();
    let stats = json!({"type": "queue.stats", "topic": "queue.stats.t1/ns1/c26", "payload": {
        "total_jobs": 1, "pending_jobs": 1, "in_flight_jobs": 0, "completed_jobs": 0, "failed_jobs": 0,
        "oldest_job_age_seconds": 0}});
    assert_eq!(event(&mut a).await, stats);
    assert_eq!(event(&mut b).await, stats);

    s.write_events(write("t1/ns1/stream/c26", &["e"])).await.unwrap();
    assert_eq!(
        event(&mut b).await,
        json!({"type": "stream.stats", "topic": "stream.stats.t1/ns1/c26", "payload": {"latest_offset": 0}})
    );
    kv.set(kv_set("t1/ns1/kv/c26", "k")).await.unwrap();
    assert_eq!(
        event(&mut b).await,
        json!({"type": "kv.update", "topic": "kv.update.t1/ns1/c26", "payload": {"action": "set", "key": "k"}})
    );
    kv.delete(authed(pb::DeleteRequest { resource_path: path("t1/ns1/kv/c26"), key: "k".into() }, TOKEN))
        .await
        .unwrap();
    assert_eq!(event(&mut b).await["payload"], json!({"action": "delete", "key": "k"}));
    // A subscribed to the queue only: nothing from the stream or the store.
    assert_eq!(next_event(&mut a, Duration::from_secs(1)).await, None);

    // Reserve and ACK: the queue's newest statistics arrive (stats events are coalesced, the last one wins).
    let job = q
        .reserve(authed(pb::ReserveRequest { resource_path: path("t1/ns1/queue/c26"), ..Default::default() }, TOKEN))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    q.ack(authed(pb::AckRequest { resource_path: path("t1/ns1/queue/c26"), job_id: job.id }, TOKEN)).await.unwrap();
    let last = event(&mut a).await;
    assert_eq!(last["payload"]["completed_jobs"], 1, "{last}");
    assert_eq!(last["payload"]["in_flight_jobs"], 0, "{last}");

    // Unsubscribing from every topic means everything again.
    send(&mut a, json!({"type": "unsubscribe", "payload": {"topics": ["queue.stats.t1/ns1/c26"]}})).await;
    kv.set(kv_set("t1/ns1/kv/c26", "again")).await.unwrap();
    assert_eq!(event(&mut a).await["topic"], "kv.update.t1/ns1/c26");

    // A burst is one frame per event, each a single JSON object (next_event checks every frame).
    for i in 0..50 {
        kv.set(kv_set("t1/ns1/kv/c26", &format!("burst-{i}"))).await.unwrap();
    }
    let mut keys = Vec::new();
    while keys.len() < 50 {
        let e = event(&mut b).await;
        if e["payload"]["key"].as_str().is_some_and(|k| k.starts_with("burst-")) {
            keys.push(e["payload"]["key"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(keys, (0..50).map(|i| format!("burst-{i}")).collect::<Vec<_>>());
    srv.shutdown().await.unwrap();
}

/// §5.8: what the engine changes on its own is published too — an expired reservation (job back to pending), one
/// that used the last attempt (the queue and its `-dlq` queue), and an expired KV key (`kv.update` `delete`).
#[tokio::test]
async fn expiry_and_dead_lettering_without_a_request_publish() {
    let srv = server(&["t1/ns1/queue/exp", "t1/ns1/queue/dead", "t1/ns1/kv/exp"], "never").await;
    let ch = srv.channel().await;
    let (mut q, mut kv) = (QueueServiceClient::new(ch.clone()), KvServiceClient::new(ch));
    let mut ws = connect(&srv).await;
    let topics =
        ["queue.stats.t1/ns1/exp", "queue.stats.t1/ns1/dead", "queue.stats.t1/ns1/dead-dlq", "kv.update.t1/ns1/exp"];
    send(&mut ws, json!({"type": "subscribe", "payload": {"topics": topics}})).await;
    let reserve = |queue: &str| {
        authed(
            pb::ReserveRequest { resource_path: path(queue), visibility_timeout_seconds: 1, ..Default::default() },
            TOKEN,
        )
    };
    /// Events until one matches, or none within 4 s (expiry is checked every 200 ms, keys reaped every 1 s).
    async fn until(ws: &mut Ws, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = next_event(ws, left).await.expect("the event within 4 s");
            if want(&e) {
                return e;
            }
        }
    }

    // Back to pending with nobody calling (a Reserve publishes nothing, as in FlowMesh: the next event is the
    // expiry's).
    q.enqueue(enqueue("t1/ns1/queue/exp", "job")).await.unwrap();
    assert_eq!(aged(event(&mut ws).await), queue_stats("exp", 1, 1, 0, 0, 0));
    q.reserve(reserve("t1/ns1/queue/exp")).await.unwrap().into_inner().job.expect("a job");
    let e = until(&mut ws, |e| e["topic"] == "queue.stats.t1/ns1/exp" && e["payload"]["in_flight_jobs"] == 0).await;
    assert_eq!(aged(e), queue_stats("exp", 1, 1, 0, 0, 0));

    // Out of attempts: the queue shows the failure and the dead-letter queue its new job.
    let mut policy = pb::SetRetryPolicyRequest { resource_path: path("t1/ns1/queue/dead"), ..Default::default() };
    policy.policy = Some(pb::RetryPolicy {
        max_attempts: 1,
        initial_backoff_seconds: 1,
        max_backoff_seconds: 1,
        backoff_multiplier: 1.0,
        backoff_strategy: "fixed".into(),
    });
    q.set_retry_policy(authed(policy, TOKEN)).await.unwrap();
    q.enqueue(enqueue("t1/ns1/queue/dead", "poison")).await.unwrap();
    q.reserve(reserve("t1/ns1/queue/dead")).await.unwrap().into_inner().job.expect("a job");
    let e = until(&mut ws, |e| e["topic"] == "queue.stats.t1/ns1/dead" && e["payload"]["failed_jobs"] == 1).await;
    assert_eq!(aged(e), queue_stats("dead", 1, 0, 0, 0, 1));
    let e = until(&mut ws, |e| e["topic"] == "queue.stats.t1/ns1/dead-dlq").await;
    assert_eq!(aged(e), queue_stats("dead-dlq", 1, 1, 0, 0, 0));

    // A key reaches its TTL: reported as a delete once reclaimed; an overwritten TTL is not.
    let mut set = kv_set("t1/ns1/kv/exp", "short");
    set.get_mut().ttl_seconds = 1;
    kv.set(set).await.unwrap();
    let mut set = kv_set("t1/ns1/kv/exp", "kept");
    set.get_mut().ttl_seconds = 1;
    kv.set(set).await.unwrap();
    kv.set(kv_set("t1/ns1/kv/exp", "kept")).await.unwrap();
    let e = until(&mut ws, |e| e["payload"]["action"] == "delete").await;
    assert_eq!(
        e,
        json!({"type": "kv.update", "topic": "kv.update.t1/ns1/exp", "payload": {"action": "delete", "key": "short"}})
    );
    assert_eq!(next_event(&mut ws, Duration::from_millis(1500)).await, None, "`kept` lost its TTL: no delete");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn stream_stats_bursts_end_with_the_final_offset() {
    let srv = server(&["t1/ns1/stream/burst"], "never").await;
    let mut s = StreamServiceClient::new(srv.channel().await);
    let mut ws = connect(&srv).await;
    for i in 0..40 {
        s.write_events(write("t1/ns1/stream/burst", &[&i.to_string()])).await.unwrap();
    }
    // At most one event per 100 ms per stream, and the last one carries the final offset.
    let mut offsets = Vec::new();
    while let Some(e) = next_event(&mut ws, Duration::from_millis(500)).await {
        offsets.push(e["payload"]["latest_offset"].as_i64().unwrap());
    }
    assert_eq!(offsets.last(), Some(&39), "{offsets:?}");
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_others_are_not() {
    let srv = server(&["t1/ns1/kv/big"], "never").await;
    let mut kv = KvServiceClient::new(srv.channel().await);
    // The slow client: a small receive buffer, and it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(srv.admin_url().trim_start_matches("http://").parse().unwrap()).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(ws_url(&srv), MaybeTlsStream::Plain(tcp)).await.unwrap();
    let mut fast = connect(&srv).await;

    // Each event carries a 48 KiB key, so the slow client's socket and its 256-event buffer fill quickly.
    const EVENTS: usize = 500;
    let key = "k".repeat(48 << 10);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < EVENTS {
            let e = next_event(&mut fast, Duration::from_secs(10)).await.expect("the fast client gets every event");
            assert_eq!(e["type"], "kv.update");
            n += 1;
        }
        n
    });
    for _ in 0..EVENTS {
        kv.set(kv_set("t1/ns1/kv/big", &key)).await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), EVENTS);

    // The slow client finds what was already on its socket, then the end of the connection.
    let mut received = 0;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Text(_))) => received += 1,
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow client's connection was closed");
    assert!(received < EVENTS, "received {received}");
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- metrics

/// `GET /metrics` over plain HTTP/1.1: (status, content type, body).
async fn scrape(base: &str) -> (u16, String, String) {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").or_else(|| l.strip_prefix("Content-Type: ")))
        .unwrap_or_default()
        .to_owned();
    (status, ctype, body.to_owned())
}

/// The samples of an exposition: (name, labels) → value; label order does not matter.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.insert((name.to_owned(), labels), value.parse().unwrap());
    }
    out
}

fn value(samples: &BTreeMap<(String, BTreeMap<String, String>), f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (name.to_owned(), labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    *samples.get(&key).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// `# TYPE` lines: family → type.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (n.to_owned(), t.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn c27_metrics_on_the_admin_and_the_dedicated_listener() {
    let srv = server(&["t1/ns1/stream/c27", "t1/ns1/queue/c27", "t1/ns1/queue/dead"], "never").await;
    let ch = srv.channel().await;
    let (mut s, mut q) = (StreamServiceClient::new(ch.clone()), QueueServiceClient::new(ch));
    s.write_events(write("t1/ns1/stream/c27", &["a", "bb", "ccc"])).await.unwrap();
    q.enqueue(enqueue("t1/ns1/queue/c27", "j0")).await.unwrap();
    q.enqueue(enqueue("t1/ns1/queue/c27", "j1")).await.unwrap();
    let commit = pb::CommitOffsetRequest {
        resource_path: path("t1/ns1/stream/c27"),
        consumer_group: "g".into(),
        partition: 0,
        offset: 1,
    };
    s.commit_offset(authed(commit, TOKEN)).await.unwrap();
    let read = pb::ReadStreamRequest { resource_path: path("t1/ns1/stream/c27"), ..Default::default() };
    s.read_stream(authed(read, TOKEN)).await.unwrap();

    let (status, ctype, text) = scrape(&srv.admin_url()).await;
    assert_eq!(status, 200);
    assert_eq!(ctype, "text/plain; version=0.0.4");
    let m = samples(&text);
    let stream = [("tenant", "t1"), ("namespace", "ns1"), ("stream", "c27"), ("partition", "0")];
    let queue = [("tenant", "t1"), ("namespace", "ns1"), ("queue", "c27")];
    let group =
        [("tenant", "t1"), ("namespace", "ns1"), ("stream", "c27"), ("consumer_group", "g"), ("partition", "0")];
    assert_eq!(value(&m, "flowmesh_stream_events_total", &stream), 3.0);
    assert_eq!(value(&m, "flowmesh_stream_bytes_written_total", &stream), 6.0);
    assert_eq!(value(&m, "flowmesh_stream_bytes_read_total", &stream), 6.0);
    assert_eq!(value(&m, "flowmesh_stream_offset", &stream), 2.0);
    assert_eq!(value(&m, "flowmesh_stream_write_duration_seconds_count", &stream), 1.0);
    assert_eq!(value(&m, "flowmesh_stream_read_duration_seconds_count", &stream), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_total_jobs", &queue), 2.0);
    assert_eq!(value(&m, "flowmesh_queue_enqueue_duration_seconds_count", &queue), 2.0);
    // Gauges are current at scrape time without a GetQueueStats.
    assert_eq!(value(&m, "flowmesh_queue_pending", &queue), 2.0);
    assert_eq!(value(&m, "flowmesh_queue_in_flight", &queue), 0.0);
    assert_eq!(value(&m, "flowmesh_queue_depth", &queue), 2.0);
    assert_eq!(value(&m, "flowmesh_consumer_group_committed_offset", &group), 1.0);
    assert_eq!(value(&m, "flowmesh_consumer_group_offset_commits_total", &group), 1.0);
    assert_eq!(value(&m, "flowmesh_consumer_group_lag", &group), 1.0);

    // Reserve + ACK completes a job (D6); a NACK past max_attempts dead-letters one.
    let reserve = |queue: &str| {
        authed(
            pb::ReserveRequest {
                resource_path: path(queue),
                visibility_timeout_seconds: 30,
                long_poll_timeout_seconds: 0,
            },
            TOKEN,
        )
    };
    let job = q.reserve(reserve("t1/ns1/queue/c27")).await.unwrap().into_inner().job.unwrap();
    q.ack(authed(pb::AckRequest { resource_path: path("t1/ns1/queue/c27"), job_id: job.id.clone() }, TOKEN))
        .await
        .unwrap();
    // A second ACK of the same job completes nothing.
    q.ack(authed(pb::AckRequest { resource_path: path("t1/ns1/queue/c27"), job_id: job.id }, TOKEN)).await.unwrap();
    let policy = pb::RetryPolicy {
        max_attempts: 1,
        initial_backoff_seconds: 1,
        max_backoff_seconds: 1,
        backoff_multiplier: 1.0,
        backoff_strategy: "fixed".into(),
    };
    q.set_retry_policy(authed(
        pb::SetRetryPolicyRequest { resource_path: path("t1/ns1/queue/dead"), policy: Some(policy) },
        TOKEN,
    ))
    .await
    .unwrap();
    q.enqueue(enqueue("t1/ns1/queue/dead", "poison")).await.unwrap();
    let job = q.reserve(reserve("t1/ns1/queue/dead")).await.unwrap().into_inner().job.unwrap();
    let nack = pb::NackRequest { resource_path: path("t1/ns1/queue/dead"), job_id: job.id, delay_seconds: 0 };
    assert_eq!(q.nack(authed(nack, TOKEN)).await.unwrap_err().code(), tonic::Code::FailedPrecondition);

    let (_, _, text) = scrape(&srv.admin_url()).await;
    let m = samples(&text);
    let dead = [("tenant", "t1"), ("namespace", "ns1"), ("queue", "dead")];
    let dlq = [("tenant", "t1"), ("namespace", "ns1"), ("queue", "dead-dlq")];
    assert_eq!(value(&m, "flowmesh_queue_completed_jobs", &queue), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_reserve_duration_seconds_count", &queue), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_pending", &queue), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_failed_jobs", &dead), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_dlq_jobs", &dead), 1.0);
    assert_eq!(value(&m, "flowmesh_queue_depth", &dead), 0.0);
    // The dead-letter queue counts the engine's enqueue.
    assert_eq!(value(&m, "flowmesh_queue_total_jobs", &dlq), 1.0);

    // The nineteen families, with FlowMesh's types.
    let want: BTreeMap<String, String> = [
        ("flowmesh_stream_events_total", "counter"),
        ("flowmesh_stream_bytes_written_total", "counter"),
        ("flowmesh_stream_bytes_read_total", "counter"),
        ("flowmesh_stream_offset", "gauge"),
        ("flowmesh_stream_write_duration_seconds", "histogram"),
        ("flowmesh_stream_read_duration_seconds", "histogram"),
        ("flowmesh_queue_total_jobs", "counter"),
        ("flowmesh_queue_enqueue_duration_seconds", "histogram"),
        ("flowmesh_queue_reserve_duration_seconds", "histogram"),
        ("flowmesh_queue_pending", "gauge"),
        ("flowmesh_queue_in_flight", "gauge"),
        ("flowmesh_queue_depth", "gauge"),
        ("flowmesh_queue_oldest_job_age_seconds", "gauge"),
        ("flowmesh_queue_failed_jobs", "counter"),
        ("flowmesh_queue_dlq_jobs", "gauge"),
        ("flowmesh_queue_completed_jobs", "counter"),
        ("flowmesh_consumer_group_offset_commits_total", "counter"),
        ("flowmesh_consumer_group_committed_offset", "gauge"),
        ("flowmesh_consumer_group_lag", "gauge"),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_owned(), t.to_owned()))
    .collect();
    assert_eq!(types(&text), want);

    // The dedicated listener (D23) serves the same families and samples.
    let (status, ctype, dedicated) = scrape(&srv.metrics_url()).await;
    assert_eq!((status, ctype.as_str()), (200, "text/plain; version=0.0.4"));
    assert_eq!(types(&dedicated), want);
    let d = samples(&dedicated);
    assert_eq!(value(&d, "flowmesh_stream_events_total", &stream), 3.0);
    assert_eq!(value(&d, "flowmesh_queue_total_jobs", &queue), 2.0);
    assert_eq!(value(&d, "flowmesh_consumer_group_committed_offset", &group), 1.0);
    assert_eq!(value(&d, "flowmesh_stream_offset", &stream), 2.0);
    srv.shutdown().await.unwrap();
}

/// C27 with every step over HTTP, plus the HTTP reads and queue operations that move metrics.
#[tokio::test]
async fn c27_metrics_from_http_calls() {
    let srv = server(&["t1/ns1/stream/c27", "t1/ns1/queue/c27"], "never").await;
    http_write(&srv, "c27", &["a", "bb", "ccc"]).await;
    http_enqueue(&srv, "c27", "j0").await;
    http_enqueue(&srv, "c27", "j1").await;
    let group = "/api/v1/streams/t1/ns1/c27/consumer-groups/g";
    http_ok(&srv, "POST", &format!("{group}/offsets"), json!({"offset": 1})).await;
    let read = http_ok(&srv, "GET", "/api/v1/streams/t1/ns1/c27/messages?offset=1", Value::Null).await;
    assert_eq!(read["messages"].as_array().unwrap().len(), 2);
    let job = http_ok(&srv, "POST", "/api/v1/queues/t1/ns1/c27/reserve", Value::Null).await["job"]["id"].clone();
    http_ok(&srv, "POST", &format!("/api/v1/queues/t1/ns1/c27/jobs/{}/ack", job.as_str().unwrap()), Value::Null).await;
    // An empty Reserve is not timed.
    http_ok(&srv, "POST", "/api/v1/queues/t1/ns1/c27/receive?max_jobs=10", Value::Null).await;
    http_ok(&srv, "POST", "/api/v1/queues/t1/ns1/c27/reserve", Value::Null).await;

    let stream = [("tenant", "t1"), ("namespace", "ns1"), ("stream", "c27"), ("partition", "0")];
    let queue = [("tenant", "t1"), ("namespace", "ns1"), ("queue", "c27")];
    let groups =
        [("tenant", "t1"), ("namespace", "ns1"), ("stream", "c27"), ("consumer_group", "g"), ("partition", "0")];
    for base in [srv.admin_url(), srv.metrics_url()] {
        let (status, ctype, text) = scrape(&base).await;
        assert_eq!((status, ctype.as_str()), (200, "text/plain; version=0.0.4"), "{base}");
        let m = samples(&text);
        assert_eq!(value(&m, "flowmesh_stream_events_total", &stream), 3.0);
        assert_eq!(value(&m, "flowmesh_queue_total_jobs", &queue), 2.0);
        assert_eq!(value(&m, "flowmesh_consumer_group_committed_offset", &groups), 1.0);
        assert_eq!(value(&m, "flowmesh_stream_offset", &stream), 2.0);
        assert_eq!(value(&m, "flowmesh_stream_bytes_written_total", &stream), 6.0);
        assert_eq!(value(&m, "flowmesh_stream_write_duration_seconds_count", &stream), 1.0);
        // Bytes read by `GET .../messages` from offset 1: "bb" and "ccc".
        assert_eq!(value(&m, "flowmesh_stream_bytes_read_total", &stream), 5.0);
        assert_eq!(value(&m, "flowmesh_stream_read_duration_seconds_count", &stream), 1.0);
        assert_eq!(value(&m, "flowmesh_consumer_group_offset_commits_total", &groups), 1.0);
        assert_eq!(value(&m, "flowmesh_queue_enqueue_duration_seconds_count", &queue), 2.0);
        assert_eq!(value(&m, "flowmesh_queue_reserve_duration_seconds_count", &queue), 1.0);
        assert_eq!(value(&m, "flowmesh_queue_completed_jobs", &queue), 1.0);
    }

    // The group's state over HTTP refreshes its lag (latest 2, committed 1).
    let state = http_ok(&srv, "GET", &format!("{group}/state"), Value::Null).await;
    assert_eq!(state["state"]["lag"], 1);
    let (_, _, text) = scrape(&srv.admin_url()).await;
    assert_eq!(value(&samples(&text), "flowmesh_consumer_group_lag", &groups), 1.0);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn subscriptions_count_the_bytes_they_read() {
    let srv = server(&["t1/ns1/stream/sub"], "never").await;
    let mut s = StreamServiceClient::new(srv.channel().await);
    s.write_events(write("t1/ns1/stream/sub", &["1234", "56"])).await.unwrap();
    let sub = pb::SubscribeRequest {
        resource_path: path("t1/ns1/stream/sub"),
        consumer_group: "g".into(),
        partition: 0,
        start_offset: 0,
    };
    let mut frames = s.subscribe(authed(sub, TOKEN)).await.unwrap().into_inner();
    for _ in 0..2 {
        frames.message().await.unwrap().unwrap();
    }
    let (_, _, text) = scrape(&srv.admin_url()).await;
    let stream = [("tenant", "t1"), ("namespace", "ns1"), ("stream", "sub"), ("partition", "0")];
    assert_eq!(value(&samples(&text), "flowmesh_stream_bytes_read_total", &stream), 6.0);
    drop(frames);
    srv.shutdown().await.unwrap();
}

/// Herald's own `herald.overview` event is opt-in: pushed once a second to a connection that subscribed to it, never
/// to a FlowMesh client that receives everything (it has no topics).
#[tokio::test]
async fn herald_overview_is_pushed_to_subscribers_only() {
    let srv = server(&["t1/ns1/kv/c"], "always").await;
    let mut everything = connect(&srv).await;
    let mut dashboard = connect(&srv).await;
    send(&mut dashboard, json!({"type": "subscribe", "payload": {"topics": ["herald.overview"]}})).await;
    // A NATS client shows up in the next snapshot.
    let nats = async_nats::ConnectOptions::new().name("overview-test").token(TOKEN.into()).connect(srv.nats_url());
    let nats = nats.await.unwrap();
    nats.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = next_event(&mut dashboard, Duration::from_secs(3)).await.expect("a herald.overview event");
        assert_eq!((e["type"].as_str(), e["topic"].as_str()), (Some("herald.overview"), Some("herald.overview")));
        assert!(e["payload"]["relay"]["topics"].is_array() && e["payload"]["events"]["recipients"].is_array(), "{e}");
        let names: Vec<&str> =
            e["payload"]["nats"]["connections"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
        if names.contains(&"overview-test") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the NATS connection never appeared: {e}");
    }
    assert!(next_event(&mut everything, Duration::from_millis(1500)).await.is_none(), "opt-in only");
    drop(nats);
    srv.shutdown().await.unwrap();
}
