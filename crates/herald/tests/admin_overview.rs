//! Herald's own admin API end to end, on a real server on port 0: `/api/herald/overview` after relay publishes,
//! NATS clients with subscriptions and traffic, and EnSync events waiting for a recipient with no subscriber; and
//! `/api/herald/kv/.../entries` with and without TTLs, set over gRPC.

use herald_testkit::v1::{self as pb, kv_service_client::KvServiceClient};
use herald_testkit::{EventsConfig, IdentityEntry, TestOptions, TestServer, path, relay_http, relay_test_config};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PK_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const PK_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn server() -> TestServer {
    let identity = |name: &str, pk: &str, key: &str| IdentityEntry {
        name: name.into(),
        public_key: pk.into(),
        access_key: Some(key.into()),
        ..Default::default()
    };
    let events = EventsConfig {
        identities: vec![identity("a", PK_A, "key-A"), identity("b", PK_B, "key-B")],
        ..Default::default()
    };
    TestServer::start(TestOptions {
        relay: Some(relay_test_config()),
        events: Some(events),
        resources: vec!["t1/ns1/kv/cache".into()],
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn get(admin: SocketAddr, path: &str) -> (u16, Value) {
    let r = relay_http::http(admin, "GET", path, None, "", b"").await.unwrap();
    (r.status, r.json())
}

/// Polls the overview until `ready` holds for it (at most 10 s) and returns it.
async fn wait_for(admin: SocketAddr, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, o) = get(admin, "/api/herald/overview").await;
        if ready(&o) {
            return o;
        }
        assert!(tokio::time::Instant::now() < deadline, "the overview never got there: {o}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_shows_relay_topics_nats_connections_and_event_recipients() {
    let srv = server().await;
    let admin = srv.admin_addr();

    let (status, empty) = get(admin, "/api/herald/overview").await;
    assert_eq!(status, 200);
    let idle = |pk: &str| json!({"recipient": pk, "pending": 0, "in_flight": 0, "deferred": 0, "sessions": 0});
    assert_eq!(
        empty,
        json!({
            "relay": {"topics": [], "topics_total": 0},
            "nats": {"connections": [], "connections_total": 0, "subscriptions": [], "subscriptions_total": 0},
            "events": {"recipients": [idle(PK_A), idle(PK_B)], "recipients_total": 2},
        })
    );

    // Relay: one topic created empty, one auto-created by three publishes.
    let relay = srv.relay_addr();
    let token = relay_http::login_admin(relay).await["access_token"].as_str().unwrap().to_string();
    let r = relay_http::post_json(relay, "/api/v1/topics", &token, &json!({"topic_name": "quiet"})).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let mut last_ts = String::new();
    for i in 0..3 {
        let body = json!({"topic": "news", "payload": {"i": i}});
        let r = relay_http::post_json(relay, "/api/v1/messages", &token, &body).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        last_ts = r.json()["timestamp"].as_str().unwrap().to_string();
    }
    // The relay shows a time without fraction digits when its microseconds are zero; the overview always has six.
    if !last_ts.contains('.') {
        last_ts = last_ts.replace('Z', ".000000Z");
    }

    // NATS: a named client with a plain and a queue subscription that publishes twice, and an anonymous one.
    let named = async_nats::ConnectOptions::new().name("dashboard-test").connect(srv.nats_url()).await.unwrap();
    let mut wide = named.subscribe("orders.>").await.unwrap();
    let _workers = named.queue_subscribe("work", "workers".into()).await.unwrap();
    named.flush().await.unwrap();
    let anon = async_nats::connect(srv.nats_url()).await.unwrap();
    let mut narrow = anon.subscribe("orders.new").await.unwrap();
    anon.flush().await.unwrap();
    // async-nats's flush only writes; the registry lists a subscription once the router has it, so wait for that
    // before publishing from the other connection.
    wait_for(admin, |o| o["nats"]["subscriptions_total"] == 3).await;
    for i in 0..2 {
        named.publish("orders.new", format!("m{i}").into()).await.unwrap();
    }
    named.flush().await.unwrap();
    // Received means routed, and a message is counted before it is queued for its subscriber.
    for sub in [&mut wide, &mut narrow] {
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(sub)).await.unwrap().unwrap();
        }
    }

    // Events: two events for b, who has no session and no subscriber; a is connected.
    let mut ensync = herald_testkit::ensync::Client::new(srv.grpc_url().trim_start_matches("http://")).await.unwrap();
    let a = ensync.connect("key-A").await.unwrap();
    for i in 0..2 {
        ensync.publish(&a, "greet", PK_B, format!("e{i}")).await.unwrap();
    }

    let (status, mut got) = get(admin, "/api/herald/overview").await;
    assert_eq!(status, 200, "{got}");
    // Peer addresses are the clients' ephemeral ports: checked, then left out of the exact comparison.
    for c in got["nats"]["connections"].as_array_mut().unwrap() {
        let addr = c["addr"].take();
        let addr: SocketAddr = addr.as_str().unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
    }
    assert_eq!(
        got,
        json!({
            "relay": {
                "topics": [
                    {"name": "admin/news", "messages": 3, "last_message_at": last_ts},
                    {"name": "admin/quiet", "messages": 0, "last_message_at": null},
                ],
                "topics_total": 2,
            },
            "nats": {
                "connections": [
                    {"id": 1, "addr": null, "name": "dashboard-test", "subscriptions": 2, "in_msgs": 2, "out_msgs": 2},
                    {"id": 2, "addr": null, "name": "", "subscriptions": 1, "in_msgs": 0, "out_msgs": 2},
                ],
                "connections_total": 2,
                "subscriptions": [
                    {"subject": "orders.>", "queue": null, "connection": 1},
                    {"subject": "orders.new", "queue": null, "connection": 2},
                    {"subject": "work", "queue": "workers", "connection": 1},
                ],
                "subscriptions_total": 3,
            },
            "events": {
                "recipients": [
                    {"recipient": PK_A, "pending": 0, "in_flight": 0, "deferred": 0, "sessions": 1},
                    {"recipient": PK_B, "pending": 2, "in_flight": 0, "deferred": 0, "sessions": 0},
                ],
                "recipients_total": 2,
            },
        })
    );

    // A closed connection leaves the registry with its subscriptions.
    drop(narrow);
    drop(anon);
    let o = wait_for(admin, |o| o["nats"]["connections_total"] == 1).await;
    assert_eq!(o["nats"]["subscriptions_total"], 2);
    assert_eq!(o["nats"]["connections"][0]["id"], 1);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn kv_entries_show_sizes_and_expiry_times() {
    let srv = server().await;
    let admin = srv.admin_addr();
    let mut kv = KvServiceClient::new(srv.channel().await);
    let before = now_ns();
    for (key, value, ttl) in [("user:2", "xy", 3600), ("user:1", "hello", 0), ("other", "z", 0), ("user:3", "abc", 0)] {
        let set = pb::SetRequest {
            resource_path: path("t1/ns1/kv/cache"),
            key: key.into(),
            value: value.as_bytes().to_vec().into(),
            ttl_seconds: ttl,
        };
        kv.set(set).await.unwrap();
    }
    let after = now_ns();

    let (status, mut got) = get(admin, "/api/herald/kv/t1/ns1/cache/entries?prefix=user%3A&limit=2").await;
    assert_eq!(status, 200, "{got}");
    let expires_at = got["entries"][1]["expires_at"].take().as_i64().unwrap();
    assert!((before + 3600 * 1_000_000_000..=after + 3600 * 1_000_000_000).contains(&expires_at), "{expires_at}");
    assert_eq!(
        got,
        json!({"entries": [
            {"key": "user:1", "size": 5, "expires_at": null},
            {"key": "user:2", "size": 2, "expires_at": null},
        ]})
    );

    // No prefix and no limit: everything (the default limit is 100).
    let (status, got) = get(admin, "/api/herald/kv/t1/ns1/cache/entries").await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = got["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["other", "user:1", "user:2", "user:3"]);

    let (status, got) = get(admin, "/api/herald/kv/t1/ns1/nope/entries").await;
    assert_eq!(
        (status, got),
        (404, json!({"status": "error", "message": "KV store not found: t1/ns1/kv/nope", "code": 404}))
    );
    let (status, got) = get(admin, "/api/herald/kv/t1/ns1/cache/entries?limit=0").await;
    assert_eq!((status, got), (400, json!({"status": "error", "message": "invalid limit parameter", "code": 400})));
    srv.shutdown().await.unwrap();
}
