//! `[auth] http = true`: the admin listener asks for the gRPC side's tokens (compat/flowmesh.md §4.2) — FlowMesh's
//! 401 bodies, the gRPC permission map as 403s, `/ws?token=` for browsers, and health, readiness, metrics and the
//! dashboard left open.

use herald_server::auth::TokenConfig;
use herald_testkit::{TestOptions, TestServer, http1};
use serde_json::json;
use std::net::SocketAddr;

const ALL: &str = "all-token";
const READER: &str = "t1-reader";

async fn server() -> TestServer {
    TestServer::start(TestOptions {
        tokens: vec![ALL.into()],
        token_configs: vec![TokenConfig {
            token: READER.into(),
            tenants: vec!["t1".into()],
            permissions: vec!["stream.read".into(), "kv.read".into()],
            ..Default::default()
        }],
        resources: ["t1/ns1/stream/s", "t2/ns1/stream/s", "t1/ns1/kv/c"].iter().map(|s| s.to_string()).collect(),
        http_auth: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn call(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &str) -> http1::Reply {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    http1::request(addr, method, path, &headers, body.as_bytes()).await.unwrap()
}

#[tokio::test]
async fn tokens_are_required_and_scopes_apply() {
    let srv = server().await;
    let addr = srv.admin_addr();
    let bearer = |t: &str| format!("Bearer {t}");

    // Open: health, readiness, metrics and the dashboard.
    for path in ["/health", "/ready", "/metrics", "/ui/"] {
        assert_eq!(call(addr, "GET", path, None, "").await.status, 200, "{path}");
    }

    // FlowMesh's three 401 answers.
    let r = call(addr, "GET", "/api/v1/streams", None, "").await;
    assert_eq!((r.status, r.body.as_str()), (401, "{\"error\":\"missing authorization header\"}\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = call(addr, "GET", "/api/v1/streams", Some("Token x"), "").await;
    assert_eq!((r.status, r.body.as_str()), (401, "{\"error\":\"invalid authorization header format\"}\n"));
    let r = call(addr, "GET", "/api/v1/streams", Some("Bearer wrong"), "").await;
    assert_eq!((r.status, r.body.as_str()), (401, "{\"error\":\"unauthorized\"}\n"));

    // A token for everything may do everything.
    let events = r#"{"events":[{"payload":"aGk="}]}"#;
    let r = call(addr, "POST", "/api/v1/streams/t1/ns1/s/events", Some(&bearer(ALL)), events).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(call(addr, "GET", "/api/v1/streams", Some(&bearer(ALL)), "").await.status, 200);

    // A scoped token: its permissions on its tenant only, refused with the gRPC side's message.
    let r = call(addr, "GET", "/api/v1/streams/t1/ns1/s/messages?offset=0", Some(&bearer(READER)), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["messages"][0]["payload"], "aGk=");
    let r = call(addr, "POST", "/api/v1/streams/t1/ns1/s/events", Some(&bearer(READER)), events).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json(),
        json!({"status": "error", "message": "forbidden: stream.write on t1/ns1: permission not granted", "code": 403})
    );
    let r = call(addr, "GET", "/api/v1/streams/t2/ns1/s/messages?offset=0", Some(&bearer(READER)), "").await;
    assert_eq!(r.json()["message"], "forbidden: stream.read on t2/ns1: tenant not allowed");
    let r = call(addr, "PUT", "/api/v1/kv/t1/ns1/c/keys/k", Some(&bearer(READER)), r#"{"value":"eA=="}"#).await;
    assert_eq!(r.json()["message"], "forbidden: kv.write on t1/ns1: permission not granted");
    let r = call(addr, "GET", "/api/herald/kv/t1/ns1/c/entries", Some(&bearer(READER)), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Schemas name a tenant: the scoped token may read its own tenant's registry, not another's.
    assert_eq!(call(addr, "GET", "/api/v1/t1/schemas", Some(&bearer(READER)), "").await.status, 200);
    let r = call(addr, "GET", "/api/v1/schemas?tenant=t2", Some(&bearer(READER)), "").await;
    assert_eq!(r.json()["message"], "forbidden: schema.read on t2/*: tenant not allowed");
    // Unknown API paths still answer 404, once authenticated.
    assert_eq!(call(addr, "GET", "/api/v1/nothing", Some(&bearer(ALL)), "").await.status, 404);

    // /ws: refused without a token, accepted with `?token=` (browsers cannot set headers on a WebSocket).
    let url = format!("ws://{addr}/ws");
    let err = tokio_tungstenite::connect_async(url.as_str()).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={ALL}")).await.unwrap();
    ws.close(None).await.unwrap();
    srv.shutdown().await.unwrap();
}
