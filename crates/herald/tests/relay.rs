//! The relay listener end to end, in process: HTTP publish and history, WebSocket fan-out order, handshake
//! refusals, and what survives a restart. The full acceptance checklist runs with the real clients in
//! tests/compat/relay.

use futures::{SinkExt, StreamExt};
use herald_testkit::relay_http::{self, Reply};
use herald_testkit::{TestOptions, TestServer, relay_test_config};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, ctype: &str, body: &[u8]) -> Reply {
    relay_http::http(addr, method, path, token, ctype, body).await.unwrap()
}

async fn post_json(addr: SocketAddr, path: &str, token: &str, body: Value) -> Reply {
    relay_http::post_json(addr, path, token, &body).await.unwrap()
}

async fn login(addr: SocketAddr) -> Value {
    relay_http::login_admin(addr).await
}

async fn relay_server(data_dir: Option<std::path::PathBuf>) -> TestServer {
    TestServer::start(TestOptions { relay: Some(relay_test_config()), data_dir, ..Default::default() }).await.unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(addr: SocketAddr, token: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("Host", "localhost".parse().unwrap());
    req.headers_mut().insert("Sec-WebSocket-Protocol", format!("bearer, bearer.{token}").parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "bearer");
    Ok(ws)
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn publishes_are_stored_and_fanned_out_in_order() {
    let srv = relay_server(None).await;
    let addr = srv.relay_addr();
    let token = login(addr).await["access_token"].as_str().unwrap().to_string();

    let mut ws = ws_connect(addr, &token).await.unwrap();
    ws.send(Message::text(json!({"type":"subscribe","topics":["t"],"client_id":"c1"}).to_string())).await.unwrap();
    let sub = next_json(&mut ws).await;
    assert_eq!(sub["type"], "subscribed");
    assert!(sub["session_id"].as_str().unwrap().starts_with("sess_"));

    // Concurrent single publishes and a bulk: live order must equal stored order.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            post_json(addr, "/api/v1/messages", &token, json!({"topic":"t","payload":{"i":i}})).await
        }));
    }
    let bulk: Vec<Value> = (20..70).map(|i| json!({"topic":"t","payload":{"i":i}})).collect();
    let b = post_json(addr, "/api/v1/messages/bulk", &token, json!({ "messages": bulk })).await;
    assert_eq!(b.status, 207, "{}", b.body);
    assert_eq!(b.json()["summary"], json!({"total":50,"accepted":50,"rejected":0}));
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
    }

    let mut live = Vec::new();
    for _ in 0..70 {
        let f = next_json(&mut ws).await;
        assert_eq!(f["type"], "message");
        assert_eq!(f["metadata"], Value::Null);
        live.push(f["message_id"].as_str().unwrap().to_string());
    }
    let mut stored = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/topics/t/messages?order=asc&limit=100".to_string(),
            Some(c) => format!("/api/v1/topics/t/messages?order=asc&limit=100&cursor={c}"),
        };
        let page = http(addr, "GET", &path, Some(&token), "", b"").await.json();
        let items = page["messages"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        for m in &items {
            stored.push(m["message_id"].as_str().unwrap().to_string());
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(live, stored, "WebSocket order equals stored order");
    // The payload keeps its exact text: key order, and a float written 1.50 stays 1.50.
    let body = br#"{"topic": "exact", "payload": {"z": 1, "f": 1.50, "big": 123456789012345678901234567890}}"#;
    let r = http(addr, "POST", "/api/v1/messages", Some(&token), "application/json", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page = http(addr, "GET", "/api/v1/topics/exact/messages", Some(&token), "", b"").await;
    assert!(page.body.contains(r#""payload":{"z":1,"f":1.50,"big":123456789012345678901234567890}"#), "{}", page.body);
}

#[tokio::test]
async fn websocket_handshakes_are_refused_with_403() {
    let srv = relay_server(None).await;
    let addr = srv.relay_addr();
    let expect_403 = |r: Result<Ws, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    };
    expect_403(ws_connect(addr, "not-a-jwt").await);
    // No subprotocol at all.
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("Host", "localhost".parse().unwrap());
    expect_403(tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws));
    // A logged-out token is refused too (the reference lets it in; the contract asks Herald not to).
    let token = login(addr).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(http(addr, "POST", "/auth/logout", Some(&token), "", b"").await.status, 204);
    expect_403(ws_connect(addr, &token).await);
}

#[tokio::test]
async fn topics_messages_users_and_refresh_tokens_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (last_id, refresh) = {
        let srv = relay_server(Some(data.clone())).await;
        let addr = srv.relay_addr();
        let tokens = login(addr).await;
        let token = tokens["access_token"].as_str().unwrap();
        let mut last = String::new();
        for i in 0..3 {
            let r = post_json(addr, "/api/v1/messages", token, json!({"topic":"keep","payload":{"i":i}})).await;
            assert_eq!(r.status, 201, "{}", r.body);
            last = r.json()["message_id"].as_str().unwrap().to_string();
        }
        srv.shutdown().await.unwrap();
        (last, tokens["refresh_token"].as_str().unwrap().to_string())
    };
    let srv = relay_server(Some(data)).await;
    let addr = srv.relay_addr();
    let r = http(
        addr,
        "POST",
        "/auth/token/refresh",
        None,
        "application/json",
        json!({"refresh_token": refresh}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "refresh token survives: {}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let page = http(addr, "GET", "/api/v1/topics/keep/messages?order=asc", Some(&token), "", b"").await.json();
    let payloads: Vec<i64> =
        page["messages"].as_array().unwrap().iter().map(|m| m["payload"]["i"].as_i64().unwrap()).collect();
    assert_eq!(payloads, vec![0, 1, 2]);
    let r = post_json(addr, "/api/v1/messages", &token, json!({"topic":"keep","payload":{"i":3}})).await;
    let id = r.json()["message_id"].as_str().unwrap().to_string();
    let parse = |s: &str| {
        let (a, b) = s.split_once('-').unwrap();
        (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap())
    };
    assert!(parse(&id) > parse(&last_id), "{id} after {last_id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_websocket_that_stops_reading_is_cut_off_and_holds_up_no_one() {
    let config = herald_testkit::RelayConfig { ws_max_pending_bytes: Some(1 << 20), ..relay_test_config() };
    let srv = TestServer::start(TestOptions { relay: Some(config), ..Default::default() }).await.unwrap();
    let addr = srv.relay_addr();
    let token = login(addr).await["access_token"].as_str().unwrap().to_string();
    let subscribe = json!({"type":"subscribe","topics":["firehose"],"client_id":"c"}).to_string();

    // The slow one subscribes and then never reads again.
    let mut slow = ws_connect(addr, &token).await.unwrap();
    slow.send(Message::text(subscribe.clone())).await.unwrap();
    assert_eq!(next_json(&mut slow).await["type"], "subscribed");
    let mut fast = ws_connect(addr, &token).await.unwrap();
    fast.send(Message::text(subscribe)).await.unwrap();
    assert_eq!(next_json(&mut fast).await["type"], "subscribed");

    const BULKS: usize = 300;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < BULKS * 100 {
            let f = next_json(&mut fast).await;
            assert_eq!(f["payload"]["n"].as_u64().unwrap() as usize, n, "in order, nothing lost");
            n += 1;
        }
        n
    });
    let pad = "x".repeat(1000);
    for b in 0..BULKS {
        let items: Vec<Value> =
            (b * 100..(b + 1) * 100).map(|n| json!({"topic":"firehose","payload":{"n":n,"pad":pad}})).collect();
        let r = post_json(addr, "/api/v1/messages/bulk", &token, json!({ "messages": items })).await;
        assert_eq!(r.status, 207, "{}", r.body);
    }
    assert_eq!(reader.await.unwrap(), BULKS * 100, "the reading subscriber got all 30 MB");
    let metrics = http(addr, "GET", "/metrics", None, "", b"").await.body;
    assert!(metrics.contains("herald_relay_ws_slow_consumers_total 1"), "{metrics}");
    drop(slow);
}
