//! The schema routes (compat/flowmesh.md §5.6) and replay-session routes (§5.7, D13, D19) of the admin listener,
//! and the `replay.session` events of the live feed (§5.8, D18), over the network against a whole server on port
//! 0: C28 over HTTP, C29's HTTP step exactly, every route's success and error paths, and `replay.session` events
//! from HTTP and gRPC requests and from the replay task itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use herald_testkit::v1::{self as pb, replay_service_client::ReplayServiceClient};
use herald_testkit::{TestOptions, TestServer, authed, http1, path};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "test-token";

async fn server(resources: &[&str]) -> TestServer {
    TestServer::start(TestOptions {
        tokens: vec![TOKEN.into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        fsync: Some("never".into()),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The answer, with the FlowMesh reading of its body (§5.1: one JSON object and a newline).
struct Reply(http1::Reply);

impl std::ops::Deref for Reply {
    type Target = http1::Reply;
    fn deref(&self) -> &http1::Reply {
        &self.0
    }
}

impl Reply {
    fn json(&self) -> Value {
        assert!(self.body.ends_with("}\n"), "one JSON object and a newline: {:?}", self.body);
        self.0.json()
    }

    fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.json()
    }

    fn assert_error(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.json(), json!({"status": "error", "message": message, "code": status}));
    }

    fn assert_success(&self, message: &str) {
        assert_eq!(self.ok(), json!({"status": "success", "message": message}));
    }
}

/// One HTTP/1.1 request on a fresh connection, the body sent as is (no Content-Type).
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    Reply(http1::request(addr, method, path, &[], body.as_bytes()).await.unwrap())
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

const ORDER: &str = r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;

// ---------------------------------------------------------------- schemas

#[tokio::test]
async fn schema_routes_register_list_get_delete() {
    let srv = server(&[]).await;
    let a = srv.admin_addr();
    // The three definition forms, and the tenant from the body, the query and the path.
    let object =
        format!(r#"{{"tenant":"t1","schema_id":"order","schema_type":"jsonschema","version":1,"definition":{ORDER}}}"#);
    call(a, "POST", "/api/v1/schemas", &object).await.assert_success("schema registered successfully");
    let text = json!({"schema_id": "order", "schema_type": "jsonschema", "version": 3, "definition": ORDER});
    call(a, "POST", "/api/v1/schemas/?tenant=t1", &text.to_string())
        .await
        .assert_success("schema registered successfully");
    let base = json!({"schema_id": "alpha", "schema_type": "jsonschema", "version": 1, "definition": b64(r#"{"type":"string"}"#)});
    call(a, "POST", "/api/v1/t1/schemas", &base.to_string()).await.assert_success("schema registered successfully");
    // Other schema types are stored unchecked; the path's tenant keeps it apart from t1.
    let avro = json!({"schema_id": "order", "schema_type": "avro", "version": 1, "definition": "{not json"});
    call(a, "POST", "/api/v1/t2/schemas/", &avro.to_string()).await.assert_success("schema registered successfully");

    // The list: sorted by id then version, definitions as JSON text, created_at in ns.
    let list = call(a, "GET", "/api/v1/schemas?tenant=t1", "").await.ok();
    assert_eq!(list.as_object().unwrap().keys().collect::<Vec<_>>(), ["status", "schemas"]);
    assert_eq!(list["status"], "success");
    let ids: Vec<(String, i64)> = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["version"].as_i64().unwrap()))
        .collect();
    assert_eq!(ids, [("alpha".to_owned(), 1), ("order".to_owned(), 1), ("order".to_owned(), 3)]);
    let first = &list["schemas"][1];
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "type", "version", "definition", "created_at"]
    );
    assert_eq!(first["definition"], ORDER);
    assert_eq!(first["type"], "jsonschema");
    assert!(first["created_at"].as_i64().unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(list["schemas"][0]["definition"], r#"{"type":"string"}"#);
    let filtered = call(a, "GET", "/api/v1/t1/schemas/?schema_id=alpha", "").await.ok();
    assert_eq!(filtered["schemas"].as_array().unwrap().len(), 1);
    let other = call(a, "GET", "/api/v1/t2/schemas", "").await.ok();
    assert_eq!(other["schemas"][0]["definition"], "{not json");
    assert_eq!(other["schemas"][0]["type"], "avro");

    // Get: v0 is the latest, both path forms.
    let latest = call(a, "GET", "/api/v1/t1/schemas/order/v0", "").await.ok();
    assert_eq!(latest.as_object().unwrap().keys().collect::<Vec<_>>(), ["status", "schema"]);
    assert_eq!(latest["schema"]["version"], 3);
    let one = call(a, "GET", "/api/v1/schemas/order/v1?tenant=t1", "").await.ok();
    assert_eq!((one["schema"]["version"].as_i64(), one["schema"]["definition"].as_str()), (Some(1), Some(ORDER)));
    call(a, "GET", "/api/v1/t1/schemas/order/v2", "").await.assert_error(404, "schema not found: order (version 2)");
    call(a, "GET", "/api/v1/t1/schemas/nope/v0", "").await.assert_error(404, "schema not found: nope");
    call(a, "GET", "/api/v1/t3/schemas/order/v0", "").await.assert_error(404, "schema not found: order");
    call(a, "GET", "/api/v1/schemas/order/v1", "").await.assert_error(400, "tenant is required");
    call(a, "GET", "/api/v1/t1/schemas/order/1", "").await.assert_error(400, "invalid version parameter");
    call(a, "GET", "/api/v1/t1/schemas/order/vx", "").await.assert_error(400, "invalid version parameter");

    // Delete.
    call(a, "DELETE", "/api/v1/t1/schemas/order/v3", "").await.assert_success("schema deleted successfully");
    call(a, "DELETE", "/api/v1/schemas/order/v3?tenant=t1", "")
        .await
        .assert_error(404, "schema not found: order (version 3)");
    call(a, "DELETE", "/api/v1/t1/schemas/order/v0", "").await.assert_error(400, "version must be positive");
    call(a, "DELETE", "/api/v1/schemas/order/v1", "").await.assert_error(400, "tenant is required");
    assert_eq!(call(a, "GET", "/api/v1/t1/schemas/order/v0", "").await.ok()["schema"]["version"], 1);
    // Unsupported methods are 404, as everywhere on this listener.
    call(a, "PUT", "/api/v1/t1/schemas", "{}").await.assert_error(404, "404 page not found");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn schema_registration_errors() {
    let srv = server(&[]).await;
    let a = srv.admin_addr();
    let post = |body: Value| async move { call(a, "POST", "/api/v1/schemas", &body.to_string()).await };
    let ok = json!({"tenant": "t1", "schema_id": "s", "schema_type": "jsonschema", "version": 1, "definition": ORDER});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    call(a, "POST", "/api/v1/schemas", "").await.assert_error(400, "invalid request body: EOF");
    call(a, "GET", "/api/v1/schemas", "").await.assert_error(400, "tenant is required");
    post(with("tenant", json!(""))).await.assert_error(400, "tenant is required");
    post(with("schema_id", json!(""))).await.assert_error(400, "schema_id is required");
    post(with("schema_type", json!(""))).await.assert_error(400, "schema_type is required");
    post(with("version", json!(0))).await.assert_error(400, "version must be positive");
    post(with("definition", Value::Null)).await.assert_error(400, "definition cannot be empty");
    post(with("definition", json!(""))).await.assert_error(400, "definition cannot be empty");
    post(with("definition", json!("not base64!")))
        .await
        .assert_error(400, "invalid request body: illegal base64 data at input byte 3");
    let bad = post(with("definition", json!({"type": 12}))).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["message"].as_str().unwrap().starts_with("invalid schema definition: "), "{}", bad.body);
    post(ok.clone()).await.assert_success("schema registered successfully");
    post(ok.clone()).await.assert_error(409, "schema s version 1 already exists");
    srv.shutdown().await.unwrap();
}

/// C28 over HTTP: register, duplicate, invalid definition, attach, then writes validated on the events route.
#[tokio::test]
async fn c28_schema_validation_on_write_over_http() {
    let srv = server(&["t1/ns1/stream/c28", "t1/ns1/queue/c28", "t1/ns1/kv/c28"]).await;
    let a = srv.admin_addr();
    let reg = json!({"schema_id": "order", "schema_type": "jsonschema", "version": 1, "definition": ORDER}).to_string();
    call(a, "POST", "/api/v1/t1/schemas", &reg).await.assert_success("schema registered successfully");
    call(a, "POST", "/api/v1/t1/schemas", &reg).await.assert_error(409, "schema order version 1 already exists");
    let broken = json!({"schema_id": "broken", "schema_type": "jsonschema", "version": 1, "definition": "{"});
    let r = call(a, "POST", "/api/v1/t1/schemas", &broken.to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().starts_with("invalid schema definition:"), "{}", r.body);
    assert_eq!(call(a, "GET", "/api/v1/t1/schemas/order/v0", "").await.ok()["schema"]["version"], 1);

    let attach = r#"{"schema_id":"order","version":0}"#;
    call(a, "PUT", "/api/v1/streams/t1/ns1/c28/schema", attach)
        .await
        .assert_success("schema attached to resource successfully");
    let events = |payloads: &[&str]| {
        let events: Vec<Value> = payloads.iter().map(|p| json!({"payload": b64(p)})).collect();
        json!({"events": events}).to_string()
    };
    let w = call(a, "POST", "/api/v1/streams/t1/ns1/c28/events", &events(&[r#"{"id":"a"}"#])).await.ok();
    assert_eq!(w["offsets"], json!([0]));
    let m = call(a, "GET", "/api/v1/streams/t1/ns1/c28/messages?offset=0", "").await.ok();
    assert_eq!(m["messages"][0]["schema_version"], 1);
    for bad in [events(&[r#"{"id":"b"}"#, r#"{"x":1}"#]), events(&["not json"])] {
        let r = call(a, "POST", "/api/v1/streams/t1/ns1/c28/events", &bad).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.json()["message"].as_str().unwrap().contains("validation failed"), "{}", r.body);
    }
    assert_eq!(call(a, "GET", "/api/v1/streams/t1/ns1/c28/offsets/latest", "").await.ok()["offset"], 0);

    // Queues too; an explicit version is taken as given.
    call(a, "PUT", "/api/v1/queues/t1/ns1/c28/schema", r#"{"schema_id":"order","version":1}"#)
        .await
        .assert_success("schema attached to resource successfully");
    let r = call(a, "POST", "/api/v1/queues/t1/ns1/c28/jobs", &json!({"payload": b64(r#"{"x":1}"#)}).to_string()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r =
        call(a, "POST", "/api/v1/queues/t1/ns1/c28/jobs", &json!({"payload": b64(r#"{"id":"j"}"#)}).to_string()).await;
    assert_eq!(r.ok()["seq"], 0);
    // The attachment shows in the resource listing.
    let streams = call(a, "GET", "/api/v1/streams?tenant=t1", "").await.ok();
    assert_eq!(streams["streams"][0]["schema"], json!({"id": "order", "type": "jsonschema", "version": 1}));

    // Attach errors: schema_id, path, missing resource, unknown schema for "latest".
    call(a, "PUT", "/api/v1/streams/t1/ns1/c28/schema", "").await.assert_error(400, "invalid request body: EOF");
    call(a, "PUT", "/api/v1/streams/t1/ns1/c28/schema", r#"{"version":1}"#)
        .await
        .assert_error(400, "schema_id is required");
    call(a, "PUT", "/api/v1/streams/%20/ns1/c28/schema", attach).await.assert_error(400, "tenant cannot be empty");
    call(a, "PUT", "/api/v1/streams/t1/ns1/missing/schema", attach)
        .await
        .assert_error(404, "resource not found: t1/ns1/stream/missing");
    call(a, "PUT", "/api/v1/queues/t1/ns1/missing/schema", attach)
        .await
        .assert_error(404, "resource not found: t1/ns1/queue/missing");
    call(a, "PUT", "/api/v1/streams/t1/ns1/c28/schema", r#"{"schema_id":"nope","version":0}"#)
        .await
        .assert_error(404, "schema not found: nope");
    call(a, "GET", "/api/v1/streams/t1/ns1/c28/schema", "").await.assert_error(404, "404 page not found");
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- replay

/// Writes `n` events to `stream` over HTTP.
async fn fill(a: SocketAddr, stream: &str, n: usize) {
    let events: Vec<Value> = (0..n).map(|i| json!({"payload": b64(&format!("m{i}"))})).collect();
    let body = json!({"events": events}).to_string();
    call(a, "POST", &format!("/api/v1/streams/{stream}/events"), &body).await.ok();
}

async fn create(a: SocketAddr, stream: &str, body: Value) -> Value {
    let r = call(a, "POST", &format!("/api/v1/replay/sessions?stream={stream}"), &body.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

/// Polls the single-session GET until `status` is reached (or 5 s pass).
async fn wait_for(a: SocketAddr, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = call(a, "GET", &format!("/api/v1/replay/sessions/{id}"), "").await.ok();
        if s["status"] == status || Instant::now() > deadline {
            assert_eq!(s["status"], status, "{s}");
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(list: &Value) -> Vec<&str> {
    list["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect()
}

/// C29's HTTP step exactly, then the list filter's other forms.
#[tokio::test]
async fn c29_http_create_and_list() {
    let srv = server(&["t1/ns1/stream/c29", "t1/ns1/stream/other"]).await;
    let a = srv.admin_addr();
    fill(a, "t1/ns1/c29", 5).await;
    let s = create(a, "t1/ns1/c29", json!({"start_offset": 0, "sandbox_consumer_group": "_replay_h"})).await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(s["status"], "created");
    assert_eq!(s["session"]["session_id"], id.as_str());
    // The bare object plus the `session` member holding the same object (D19); unset values are left out.
    let mut bare = s.clone();
    bare.as_object_mut().unwrap().remove("session");
    assert_eq!(s["session"], bare);
    assert_eq!(
        bare.as_object().unwrap().keys().collect::<Vec<_>>(),
        [
            "session_id",
            "stream",
            "partition",
            "start_offset",
            "sandbox_consumer_group",
            "status",
            "progress",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(bare["stream"], "t1/ns1/stream/c29");
    assert_eq!(bare["progress"], json!({"current_offset": 0, "messages_replayed": 0, "errors": 0}));

    let other = create(a, "t1/ns1/other", json!({"start_offset": 0, "sandbox_consumer_group": "_replay_o"})).await;
    for filter in ["t1/ns1/c29", "t1/ns1/stream/c29"] {
        let list = call(a, "GET", &format!("/api/v1/replay/sessions?stream={filter}"), "").await.ok();
        assert_eq!(list.as_object().unwrap().keys().collect::<Vec<_>>(), ["status", "sessions"]);
        assert_eq!(ids(&list), [id.as_str()], "{filter}");
        // Listed sessions are the bare object.
        assert!(list["sessions"][0].get("session").is_none());
    }
    let all = call(a, "GET", "/api/v1/replay/sessions/", "").await.ok();
    assert_eq!(ids(&all), [id.as_str(), other["session_id"].as_str().unwrap()], "sorted by created_at");
    let none = call(a, "GET", "/api/v1/replay/sessions?stream=t1/ns1/queue/c29", "").await.ok();
    assert_eq!(none["sessions"], json!([]));
    let none = call(a, "GET", "/api/v1/replay/sessions?stream=c29", "").await.ok();
    assert_eq!(none["sessions"], json!([]));
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn replay_create_errors() {
    let srv = server(&["t1/ns1/stream/r"]).await;
    let a = srv.admin_addr();
    let post = |q: &'static str, body: Value| async move {
        call(a, "POST", &format!("/api/v1/replay/sessions{q}"), &body.to_string()).await
    };
    let good = json!({"start_offset": 0, "sandbox_consumer_group": "_replay_x"});
    post("", good.clone()).await.assert_error(400, "stream query parameter is required");
    post("?stream=t1/ns1", good.clone())
        .await
        .assert_error(400, "invalid stream format, expected tenant/namespace/name");
    post("?stream=t1/ns1/stream/r", good.clone())
        .await
        .assert_error(400, "invalid stream format, expected tenant/namespace/name");
    post("?stream=%20/ns1/r", good.clone()).await.assert_error(400, "tenant cannot be empty");
    call(a, "POST", "/api/v1/replay/sessions?stream=t1/ns1/r", "").await.assert_error(400, "invalid request body: EOF");
    post("?stream=t1/ns1/r", json!({"start_offset": 0})).await.assert_error(400, "sandbox_consumer_group is required");
    post("?stream=t1/ns1/r", json!({"sandbox_consumer_group": "_replay_x"}))
        .await
        .assert_error(400, "either start_offset or start_timestamp must be provided");
    post("?stream=t1/ns1/r", json!({"start_offset": -1, "start_timestamp": 0, "sandbox_consumer_group": "_replay_x"}))
        .await
        .assert_error(400, "either start_offset or start_timestamp must be provided");
    post("?stream=t1/ns1/missing", good.clone()).await.assert_error(404, "stream not found: t1/ns1/stream/missing");
    post("?stream=t1/ns1/r", json!({"start_offset": 3, "end_offset": 1, "sandbox_consumer_group": "_replay_x"}))
        .await
        .assert_error(400, "invalid offset 1: end offset must be >= start offset");
    post("?stream=t1/ns1/r", json!({"start_offset": 0, "sandbox_consumer_group": "debug"}))
        .await
        .assert_error(400, "sandbox consumer group name must start with _replay_");

    // Bounds: a timestamp start wins, an end offset of 0 is set, a timestamp end is shown as such.
    let s = create(
        a,
        "t1/ns1/r",
        json!({"start_offset": 4, "start_timestamp": 7, "end_offset": 0, "sandbox_consumer_group": "_replay_x"}),
    )
    .await;
    assert_eq!(
        (s["start_offset"].clone(), s["start_timestamp"].clone(), s["end_offset"].clone()),
        (json!(0), json!(7), json!(0))
    );
    assert!(s.get("end_timestamp").is_none());
    let s =
        create(a, "t1/ns1/r", json!({"start_offset": 2, "end_timestamp": 9, "sandbox_consumer_group": "_replay_x"}))
            .await;
    assert_eq!((s["start_offset"].clone(), s["end_timestamp"].clone()), (json!(2), json!(9)));
    assert!(s.get("start_timestamp").is_none() && s.get("end_offset").is_none(), "{s}");
    assert_eq!(s["progress"]["current_offset"], 2);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn replay_session_life_cycle_over_http() {
    let srv = server(&["t1/ns1/stream/life"]).await;
    let a = srv.admin_addr();
    fill(a, "t1/ns1/life", 5).await;
    let at = |id: &str, action: &str| format!("/api/v1/replay/sessions/{id}/{action}");

    // A bounded session completes on its own (D14).
    let s =
        create(a, "t1/ns1/life", json!({"start_offset": 1, "end_offset": 3, "sandbox_consumer_group": "_replay_life"}))
            .await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    call(a, "POST", &at(&id, "start"), "").await.assert_success("replay started successfully");
    let done = wait_for(a, &id, "completed").await;
    assert_eq!(done["session"]["status"], "completed");
    assert_eq!(done["progress"]["messages_replayed"], 3);
    assert_eq!(done["progress"]["current_offset"], 4);
    assert!(done["progress"]["completed_at"].as_i64().unwrap() > 0);
    assert!(done["progress"]["started_at"].as_i64().unwrap() > 0);
    assert!(done["progress"].get("paused_at").is_none());
    let group = call(a, "GET", "/api/v1/streams/t1/ns1/life/consumer-groups/_replay_life/offsets", "").await.ok();
    assert_eq!(group["offset"], 3);
    // State errors are 400 here (D13), not the NACK route's 412.
    call(a, "POST", &at(&id, "start"), "").await.assert_error(
        400,
        &format!("invalid session state transition: session {id} is completed, cannot transition to active"),
    );
    call(a, "POST", &at(&id, "pause"), "").await.assert_error(400, &format!("replay session {id} is not active"));
    call(a, "POST", &at(&id, "resume"), "").await.assert_error(400, &format!("replay session {id} is not active"));
    call(a, "POST", &at(&id, "stop"), "").await.assert_error(
        400,
        &format!("invalid session state transition: session {id} is completed, cannot transition to stopped"),
    );

    // An open-ended session: start, pause, start-while-paused, resume, stop (twice), start, delete.
    let s = create(a, "t1/ns1/life", json!({"start_offset": 0, "sandbox_consumer_group": "_replay_open"})).await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    assert!(s.get("end_offset").is_none(), "absent end_offset is open-ended over HTTP: {s}");
    call(a, "POST", &at(&id, "resume"), "").await.assert_error(400, &format!("replay session {id} is not active"));
    call(a, "POST", &at(&id, "start"), "").await.assert_success("replay started successfully");
    let active = wait_for(a, &id, "active").await;
    assert_eq!(active["session"]["status"], "active");
    call(a, "POST", &at(&id, "resume"), "").await.assert_success("replay resumed successfully");
    call(a, "POST", &at(&id, "pause"), "").await.assert_success("replay paused successfully");
    let paused = wait_for(a, &id, "paused").await;
    assert!(paused["progress"]["paused_at"].as_i64().unwrap() > 0);
    call(a, "POST", &at(&id, "pause"), "").await.assert_success("replay paused successfully");
    call(a, "POST", &at(&id, "start"), "").await.assert_error(400, &format!("replay session {id} is already active"));
    call(a, "POST", &at(&id, "resume"), "").await.assert_success("replay resumed successfully");
    let resumed = wait_for(a, &id, "active").await;
    assert!(resumed["progress"].get("paused_at").is_none());
    call(a, "POST", &at(&id, "stop"), "").await.assert_success("replay stopped successfully");
    wait_for(a, &id, "stopped").await;
    call(a, "POST", &at(&id, "stop"), "").await.assert_success("replay stopped successfully");
    call(a, "POST", &at(&id, "start"), "").await.assert_error(
        400,
        &format!("invalid session state transition: session {id} is stopped, cannot transition to active"),
    );
    call(a, "DELETE", &format!("/api/v1/replay/sessions/{id}"), "")
        .await
        .assert_success("replay session deleted successfully");
    let gone = format!("replay session not found: {id}");
    call(a, "GET", &format!("/api/v1/replay/sessions/{id}"), "").await.assert_error(404, &gone);
    call(a, "DELETE", &format!("/api/v1/replay/sessions/{id}"), "").await.assert_error(404, &gone);
    for action in ["start", "pause", "resume", "stop"] {
        call(a, "POST", &at(&id, action), "").await.assert_error(404, &gone);
    }
    // A created session can be stopped directly.
    let s = create(a, "t1/ns1/life", json!({"start_offset": 0, "sandbox_consumer_group": "_replay_c"})).await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    call(a, "POST", &at(&id, "stop"), "").await.assert_success("replay stopped successfully");
    wait_for(a, &id, "stopped").await;
    // Unknown actions and methods are 404.
    call(a, "POST", &at(&id, "rewind"), "").await.assert_error(404, "404 page not found");
    call(a, "PUT", &format!("/api/v1/replay/sessions/{id}"), "").await.assert_error(404, "404 page not found");
    srv.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- feed

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(srv: &TestServer) -> Ws {
    let url = format!("{}/ws", srv.admin_url().replace("http://", "ws://"));
    let (ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    // The server registers the connection right after the upgrade.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws
}

/// The next event within `wait`, each frame exactly one JSON object.
async fn next_event(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(wait, ws.next()).await.ok()?;
        match msg.expect("socket open").expect("frame") {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// `replay.session` events for `id` until one has `status` (within 5 s); every one is checked for its shape.
async fn events_until(ws: &mut Ws, id: &str, status: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Some(e) = next_event(ws, Duration::from_secs(1)).await else { continue };
        if e["type"] != "replay.session" {
            continue;
        }
        assert_eq!(e["topic"], format!("replay.session.{id}"), "{e}");
        let p = &e["payload"];
        if p["status"] != "deleted" {
            assert_eq!(p["session_id"], id, "{e}");
            assert_eq!(p["session"]["session_id"], id, "the D19 superset: {e}");
        }
        let done = p["status"] == status;
        seen.push(p.clone());
        if done {
            return seen;
        }
    }
    panic!("no replay.session event with status {status} for {id}; saw {seen:?}");
}

#[tokio::test]
async fn replay_events_from_http_requests_and_the_task() {
    let srv = server(&["t1/ns1/stream/feed"]).await;
    let a = srv.admin_addr();
    fill(a, "t1/ns1/feed", 5).await;
    let mut ws = connect(&srv).await;
    // Creating publishes nothing (§5.8).
    let s =
        create(a, "t1/ns1/feed", json!({"start_offset": 0, "end_offset": 4, "sandbox_consumer_group": "_replay_f"}))
            .await;
    let id = s["session_id"].as_str().unwrap().to_owned();
    assert_eq!(next_event(&mut ws, Duration::from_millis(400)).await, None);

    // Start: the request's `active`, then the task's progress and its `completed`.
    call(a, "POST", &format!("/api/v1/replay/sessions/{id}/start"), "")
        .await
        .assert_success("replay started successfully");
    let seen = events_until(&mut ws, &id, "completed").await;
    assert_eq!(seen[0]["status"], "active", "{seen:?}");
    let last = seen.last().unwrap();
    assert_eq!(last["progress"]["messages_replayed"], 5);
    assert!(last["progress"]["completed_at"].as_i64().unwrap() > 0);
    assert_eq!(last["session"], {
        let mut bare = last.clone();
        bare.as_object_mut().unwrap().remove("session");
        bare
    });
    // Get-one publishes the session as it is.
    let got = call(a, "GET", &format!("/api/v1/replay/sessions/{id}"), "").await.ok();
    let e = events_until(&mut ws, &id, "completed").await;
    assert_eq!(e, [got]);
    // Delete publishes the deletion notice.
    call(a, "DELETE", &format!("/api/v1/replay/sessions/{id}"), "").await.ok();
    assert_eq!(events_until(&mut ws, &id, "deleted").await, [json!({"id": id, "status": "deleted"})]);

    // Pause, resume and stop publish too; a subscriber to another session's topic hears nothing of this one.
    let open = create(a, "t1/ns1/feed", json!({"start_offset": 0, "sandbox_consumer_group": "_replay_g"})).await;
    let oid = open["session_id"].as_str().unwrap().to_owned();
    let mut other = connect(&srv).await;
    futures::SinkExt::send(
        &mut other,
        Message::text(json!({"type": "subscribe", "payload": {"topics": ["replay.session.elsewhere"]}}).to_string()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (action, status) in [("start", "active"), ("pause", "paused"), ("resume", "active"), ("stop", "stopped")] {
        call(a, "POST", &format!("/api/v1/replay/sessions/{oid}/{action}"), "").await.ok();
        events_until(&mut ws, &oid, status).await;
        // The coalescing window: the next change is a window later, so each state is seen.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(next_event(&mut other, Duration::from_millis(300)).await, None);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn replay_events_from_grpc_requests_and_the_task() {
    let srv = server(&["t1/ns1/stream/gfeed"]).await;
    let a = srv.admin_addr();
    fill(a, "t1/ns1/gfeed", 3).await;
    let mut rs = ReplayServiceClient::new(srv.channel().await);
    let session = rs
        .create_replay_session(authed(
            pb::CreateReplaySessionRequest {
                resource_path: path("t1/ns1/stream/gfeed"),
                start_offset: 0,
                end_offset: 2,
                sandbox_consumer_group: "_replay_grpc".into(),
                ..Default::default()
            },
            TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let id = session.session_id;
    let mut ws = connect(&srv).await;
    futures::SinkExt::send(
        &mut ws,
        Message::text(
            json!({"type": "subscribe", "payload": {"topics": [format!("replay.session.{id}")]}}).to_string(),
        ),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    rs.start_replay(authed(pb::StartReplayRequest { session_id: id.clone() }, TOKEN)).await.unwrap();
    let seen = events_until(&mut ws, &id, "completed").await;
    assert_eq!(seen[0]["status"], "active", "{seen:?}");
    let last = seen.last().unwrap();
    assert_eq!(last["progress"]["messages_replayed"], 3);
    assert_eq!(last["progress"]["current_offset"], 3);
    assert_eq!(last["end_offset"], 2);
    assert!(last["progress"]["completed_at"].as_i64().unwrap() > 0);
    // GetReplaySession publishes like HTTP get-one.
    rs.get_replay_session(authed(pb::GetReplaySessionRequest { session_id: id.clone() }, TOKEN)).await.unwrap();
    assert_eq!(events_until(&mut ws, &id, "completed").await.len(), 1);
    rs.delete_replay_session(authed(pb::DeleteReplaySessionRequest { session_id: id.clone() }, TOKEN)).await.unwrap();
    assert_eq!(events_until(&mut ws, &id, "deleted").await, [json!({"id": id, "status": "deleted"})]);
    srv.shutdown().await.unwrap();
}
