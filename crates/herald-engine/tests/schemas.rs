//! The schema registry (compat/flowmesh.md §1.7, §3.6) and validation on write (§3.3, §3.4, D13), against the
//! embedded engine with a manual clock.

use bytes::Bytes;
use herald_engine::*;
use herald_types::{ErrorCode, HeraldError, ManualClock, ResourceKind, ResourcePath};
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000_000_000;
const ORDER: &str = r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}"#;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn open_at(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
    let mut cfg = EngineConfig::new(dir.join("data"));
    cfg.fsync = FsyncPolicy::Always;
    Engine::open(cfg, clock).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let engine = open_at(dir.path(), Arc::clone(&clock));
    for path in
        [s("orders"), q("orders"), path("t1", ResourceKind::Kv, "cache"), path("t2", ResourceKind::Stream, "orders")]
    {
        engine.resources.provision(config(&path)).await.unwrap();
    }
    Fixture { engine, clock, dir }
}

impl Fixture {
    fn reopen(self) -> Fixture {
        self.engine.sync_all().unwrap();
        let Fixture { engine, clock, dir } = self;
        drop(engine);
        let engine = open_at(dir.path(), Arc::clone(&clock));
        Fixture { engine, clock, dir }
    }

    fn schemas(&self) -> &dyn Schemas {
        &*self.engine.schemas
    }

    async fn register(&self, tenant: &str, id: &str, version: i32, definition: &str) {
        self.schemas()
            .register(tenant, id, "jsonschema", version, Bytes::copy_from_slice(definition.as_bytes()))
            .await
            .unwrap();
    }

    async fn latest(&self, stream: &ResourcePath) -> i64 {
        self.engine.streams.latest_offset(stream, 0).await.unwrap()
    }
}

fn path(tenant: &str, kind: ResourceKind, name: &str) -> ResourcePath {
    ResourcePath::new(tenant, "ns1", kind, name).unwrap()
}
fn s(name: &str) -> ResourcePath {
    path("t1", ResourceKind::Stream, name)
}
fn q(name: &str) -> ResourcePath {
    path("t1", ResourceKind::Queue, name)
}

fn config(path: &ResourcePath) -> ResourceConfig {
    ResourceConfig {
        tenant: path.tenant.clone(),
        namespace: path.namespace.clone(),
        name: path.name.clone(),
        kind: path.kind,
        partitions: 1,
        retention: Default::default(),
        dlq: None,
        retry_policy: None,
        schema: None,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

fn ev(p: &str) -> EventIn {
    EventIn { payload: Bytes::copy_from_slice(p.as_bytes()), headers: Headers::new() }
}

fn bytes(p: &str) -> Bytes {
    Bytes::copy_from_slice(p.as_bytes())
}

#[track_caller]
fn assert_err<T: std::fmt::Debug>(r: Result<T, HeraldError>, code: ErrorCode, message: &str) {
    let e = r.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

#[track_caller]
fn assert_err_prefix<T: std::fmt::Debug>(r: Result<T, HeraldError>, code: ErrorCode, prefix: &str) -> String {
    let e = r.unwrap_err();
    assert_eq!(e.code, code, "{}", e.message);
    assert!(e.message.starts_with(prefix), "{:?} does not start with {prefix:?}", e.message);
    e.message
}

#[tokio::test]
async fn register_checks_fields_in_the_contract_order() {
    let f = fixture().await;
    let reg = |t: &'static str, id: &'static str, ty: &'static str, v: i32, d: &'static str| {
        f.schemas().register(t, id, ty, v, Bytes::from_static(d.as_bytes()))
    };
    use ErrorCode::InvalidArgument as Inv;
    assert_err(reg("", "", "", 0, "").await, Inv, "tenant is required");
    assert_err(reg("t1", "", "", 0, "").await, Inv, "schema_id is required");
    assert_err(reg("t1", "order", "", 0, "").await, Inv, "schema_type is required");
    assert_err(reg("t1", "order", "jsonschema", 0, "").await, Inv, "version must be positive");
    assert_err(reg("t1", "order", "jsonschema", -3, "{}").await, Inv, "version must be positive");
    assert_err(reg("t1", "order", "jsonschema", 1, "").await, Inv, "definition cannot be empty");
    // Not JSON, and JSON that is no schema: both rejected with the detail.
    let m = assert_err_prefix(reg("t1", "order", "jsonschema", 1, "{").await, Inv, "invalid schema definition: ");
    assert!(m.len() > "invalid schema definition: ".len(), "{m}");
    assert_err_prefix(reg("t1", "order", "jsonschema", 1, r#"{"type":12}"#).await, Inv, "invalid schema definition: ");
    assert_err_prefix(reg("t1", "order", "jsonschema", 1, "[1,2]").await, Inv, "invalid schema definition: ");
    // Other schema types are stored without any check.
    reg("t1", "legacy", "avro", 1, "not json at all").await.unwrap();
    let got = f.schemas().get("t1", "legacy", 1).await.unwrap();
    assert_eq!((got.schema_type.as_str(), &got.definition[..]), ("avro", &b"not json at all"[..]));
    // Nothing was registered by the failed calls.
    assert_err(f.schemas().get("t1", "order", 0).await, ErrorCode::NotFound, "schema not found: order");
}

#[tokio::test]
async fn duplicates_latest_versions_listing_and_deletion() {
    let f = fixture().await;
    f.register("t1", "order", 1, ORDER).await;
    assert_err(
        f.schemas().register("t1", "order", "jsonschema", 1, bytes(ORDER)).await,
        ErrorCode::AlreadyExists,
        "schema order version 1 already exists",
    );
    // Versions need not be consecutive; "latest" is the highest, whatever the registration order.
    f.clock.advance_secs(1);
    f.register("t1", "order", 5, r#"{"type":"object"}"#).await;
    f.register("t1", "order", 3, ORDER).await;
    f.register("t1", "invoice", 2, ORDER).await;
    f.register("t1", "audit", 1, ORDER).await;

    let latest = f.schemas().get("t1", "order", 0).await.unwrap();
    assert_eq!((latest.id.as_str(), latest.version), ("order", 5));
    assert_eq!(&latest.definition[..], br#"{"type":"object"}"#);
    assert_eq!(latest.created_at, T0 + 1_000_000_000);
    assert_eq!(f.schemas().get("t1", "order", -1).await.unwrap().version, 5);
    let v1 = f.schemas().get("t1", "order", 1).await.unwrap();
    assert_eq!((v1.version, v1.schema_type.as_str(), v1.created_at), (1, "jsonschema", T0));
    assert_eq!(&v1.definition[..], ORDER.as_bytes());
    assert_err(f.schemas().get("t1", "order", 2).await, ErrorCode::NotFound, "schema not found: order (version 2)");
    assert_err(f.schemas().get("t1", "nope", 0).await, ErrorCode::NotFound, "schema not found: nope");
    assert_err(f.schemas().get("", "order", 0).await, ErrorCode::InvalidArgument, "tenant is required");
    assert_err(f.schemas().get("t1", "", 0).await, ErrorCode::InvalidArgument, "schema_id is required");

    let ids = |v: Vec<Schema>| v.into_iter().map(|s| (s.id, s.version)).collect::<Vec<_>>();
    let all = ids(f.schemas().list("t1", None).await.unwrap());
    let want = [("audit", 1), ("invoice", 2), ("order", 1), ("order", 3), ("order", 5)];
    assert_eq!(all, want.map(|(i, v)| (i.to_owned(), v)));
    let orders = ids(f.schemas().list("t1", Some("order")).await.unwrap());
    assert_eq!(orders, [("order".to_owned(), 1), ("order".to_owned(), 3), ("order".to_owned(), 5)]);
    assert!(f.schemas().list("t1", Some("nope")).await.unwrap().is_empty());
    assert!(f.schemas().list("nobody", None).await.unwrap().is_empty());
    assert_err(f.schemas().list("", None).await, ErrorCode::InvalidArgument, "tenant is required");

    f.schemas().delete("t1", "order", 5).await.unwrap();
    assert_eq!(f.schemas().get("t1", "order", 0).await.unwrap().version, 3);
    assert_err(f.schemas().delete("t1", "order", 5).await, ErrorCode::NotFound, "schema not found: order (version 5)");
    assert_err(f.schemas().delete("t1", "order", 0).await, ErrorCode::InvalidArgument, "version must be positive");
    assert_err(f.schemas().delete("t1", "", 1).await, ErrorCode::InvalidArgument, "schema_id is required");
    assert_err(f.schemas().delete("", "order", 1).await, ErrorCode::InvalidArgument, "tenant is required");
    // A deleted version can be registered again.
    f.register("t1", "order", 5, ORDER).await;
    assert_eq!(f.schemas().get("t1", "order", 0).await.unwrap().version, 5);
}

#[tokio::test]
async fn attaching_resolves_latest_now_and_shows_in_the_resource_configuration() {
    let f = fixture().await;
    let sc = f.schemas();
    assert_err(sc.attach(&s("orders"), "", 0).await, ErrorCode::InvalidArgument, "schema_id is required");
    assert_err(
        sc.attach(&path("t1", ResourceKind::Kv, "cache"), "order", 1).await,
        ErrorCode::InvalidArgument,
        "resource_type must be 'stream' or 'queue'",
    );
    assert_err(
        sc.attach(&s("missing"), "order", 1).await,
        ErrorCode::NotFound,
        "resource not found: t1/ns1/stream/missing",
    );
    // Latest of a schema that does not exist.
    assert_err(sc.attach(&s("orders"), "order", 0).await, ErrorCode::NotFound, "schema not found: order");

    f.register("t1", "order", 1, ORDER).await;
    f.register("t1", "order", 2, ORDER).await;
    sc.attach(&s("orders"), "order", 0).await.unwrap();
    let cfg = f.engine.resources.get(&s("orders")).await.unwrap().unwrap();
    assert_eq!(cfg.schema, Some(json!({"id": "order", "type": "jsonschema", "version": 2})));
    // "Latest" was resolved at attach time: a newer version does not move the attachment.
    f.register("t1", "order", 3, ORDER).await;
    f.engine.streams.append(&s("orders"), vec![ev(r#"{"id":"a"}"#)]).await.unwrap();
    assert_eq!(f.engine.streams.read(&s("orders"), 0, 0, 10).await.unwrap()[0].schema_version, 2);

    // An explicit version is not checked; it replaces the attachment, and writes then fail with INTERNAL.
    sc.attach(&s("orders"), "order", 99).await.unwrap();
    let listed = f.engine.resources.list(Some(ResourceKind::Stream)).await.unwrap();
    let orders = listed.iter().find(|c| c.name == "orders" && c.tenant == "t1").unwrap();
    assert_eq!(orders.schema, Some(json!({"id": "order", "type": "jsonschema", "version": 99})));
    assert_err(
        f.engine.streams.append(&s("orders"), vec![ev(r#"{"id":"b"}"#)]).await,
        ErrorCode::Internal,
        "failed to write to stream t1/ns1/stream/orders: failed to get schema: schema not found: order (version 99)",
    );
    assert_eq!(f.latest(&s("orders")).await, 0);
}

#[tokio::test]
async fn stream_writes_are_validated_all_or_nothing_and_record_the_version() {
    let f = fixture().await;
    let st = &f.engine.streams;
    // Before any attachment: anything goes, and messages carry schema_version 0.
    st.append(&s("orders"), vec![ev("not json")]).await.unwrap();
    f.register("t1", "order", 1, ORDER).await;
    f.engine.schemas.attach(&s("orders"), "order", 1).await.unwrap();

    assert_eq!(st.append(&s("orders"), vec![ev(r#"{"id":"a"}"#), ev(r#"{"id":"b","n":1}"#)]).await.unwrap(), [1, 2]);
    let msgs = st.read(&s("orders"), 0, 0, 10).await.unwrap();
    assert_eq!(msgs.iter().map(|m| m.schema_version).collect::<Vec<_>>(), [0, 1, 1]);

    // One bad event rejects the whole request, naming its index and the validation error.
    let m = assert_err_prefix(
        st.append(&s("orders"), vec![ev(r#"{"id":"c"}"#), ev(r#"{"x":1}"#)]).await,
        ErrorCode::InvalidArgument,
        "failed to write to stream t1/ns1/stream/orders: event 1 validation failed: payload does not match schema order v1: ",
    );
    assert!(m.contains("\"id\" is a required property"), "{m}");
    let m = assert_err_prefix(
        st.append(&s("orders"), vec![ev(r#"{"id":7}"#)]).await,
        ErrorCode::InvalidArgument,
        "failed to write to stream t1/ns1/stream/orders: event 0 validation failed: payload does not match schema order v1: ",
    );
    assert!(m.contains("/id"), "the instance path is named: {m}");
    assert_err_prefix(
        st.append(&s("orders"), vec![ev(r#"{"id":"d"}"#), ev(r#"{"id":"e"}"#), ev("{oops")]).await,
        ErrorCode::InvalidArgument,
        "failed to write to stream t1/ns1/stream/orders: event 2 validation failed: payload is not valid JSON: ",
    );
    assert_eq!(f.latest(&s("orders")).await, 2, "nothing of a rejected request is written");

    // The same schema id in another tenant is another schema: t2's stream is not affected by t1's attachment.
    let t2 = path("t2", ResourceKind::Stream, "orders");
    st.append(&t2, vec![ev(r#"{"x":1}"#)]).await.unwrap();
}

#[tokio::test]
async fn queue_enqueues_are_validated() {
    let f = fixture().await;
    let qs = &f.engine.queues;
    f.register("t1", "order", 4, ORDER).await;
    f.engine.schemas.attach(&q("orders"), "order", 0).await.unwrap();
    qs.enqueue(&q("orders"), bytes(r#"{"id":"a"}"#), 0, Headers::new()).await.unwrap();
    let m = assert_err_prefix(
        qs.enqueue(&q("orders"), bytes(r#"{"id":false}"#), 0, Headers::new()).await,
        ErrorCode::InvalidArgument,
        "failed to enqueue job to queue t1/ns1/queue/orders: payload validation failed: payload does not match schema order v4: ",
    );
    assert!(m.contains("string"), "{m}");
    assert_err_prefix(
        qs.enqueue(&q("orders"), bytes("<xml/>"), 0, Headers::new()).await,
        ErrorCode::InvalidArgument,
        "failed to enqueue job to queue t1/ns1/queue/orders: payload validation failed: payload is not valid JSON: ",
    );
    assert_eq!(qs.stats(&q("orders")).await.unwrap().total_jobs, 1, "rejected jobs are not enqueued");

    // Deleting the attached version makes enqueues fail with INTERNAL `failed to get schema`.
    f.engine.schemas.delete("t1", "order", 4).await.unwrap();
    assert_err(
        qs.enqueue(&q("orders"), bytes(r#"{"id":"b"}"#), 0, Headers::new()).await,
        ErrorCode::Internal,
        "failed to enqueue job to queue t1/ns1/queue/orders: failed to get schema: schema not found: order (version 4)",
    );
    // Registering that version again with another definition is picked up: the compiled validator went with the
    // deleted version.
    f.register("t1", "order", 4, r#"{"type":"array"}"#).await;
    qs.enqueue(&q("orders"), bytes("[1]"), 0, Headers::new()).await.unwrap();
    assert_err_prefix(
        qs.enqueue(&q("orders"), bytes(r#"{"id":"c"}"#), 0, Headers::new()).await,
        ErrorCode::InvalidArgument,
        "failed to enqueue job to queue t1/ns1/queue/orders: payload validation failed: ",
    );
}

#[tokio::test]
async fn non_json_schema_types_are_validated_as_json_schema_when_attached() {
    let f = fixture().await;
    f.schemas().register("t1", "loose", "custom", 1, bytes(r#"{"type":"string"}"#)).await.unwrap();
    f.schemas().register("t1", "broken", "custom", 1, bytes("not json")).await.unwrap();
    f.engine.schemas.attach(&s("orders"), "loose", 1).await.unwrap();
    let cfg = f.engine.resources.get(&s("orders")).await.unwrap().unwrap();
    assert_eq!(cfg.schema, Some(json!({"id": "loose", "type": "custom", "version": 1})));
    f.engine.streams.append(&s("orders"), vec![ev(r#""text""#)]).await.unwrap();
    assert_err_prefix(
        f.engine.streams.append(&s("orders"), vec![ev("{}")]).await,
        ErrorCode::InvalidArgument,
        "failed to write to stream t1/ns1/stream/orders: event 0 validation failed: ",
    );
    f.engine.schemas.attach(&s("orders"), "broken", 1).await.unwrap();
    assert_err_prefix(
        f.engine.streams.append(&s("orders"), vec![ev("{}")]).await,
        ErrorCode::Internal,
        "failed to write to stream t1/ns1/stream/orders: failed to get schema: schema broken version 1 does not compile: ",
    );
}

#[tokio::test]
async fn schemas_and_attachments_survive_a_restart() {
    let f = fixture().await;
    f.register("t1", "order", 1, ORDER).await;
    f.clock.advance_secs(2);
    f.register("t1", "order", 2, r#"{"type":"object","required":["id","qty"]}"#).await;
    f.register("t2", "order", 7, r#"{"type":"string"}"#).await;
    f.schemas().register("t1", "legacy", "avro", 1, bytes("opaque")).await.unwrap();
    f.engine.schemas.attach(&s("orders"), "order", 1).await.unwrap();
    f.engine.schemas.attach(&q("orders"), "order", 0).await.unwrap();
    f.schemas().delete("t1", "legacy", 1).await.unwrap();

    let f = f.reopen();
    let listed: Vec<(String, i32, i64)> =
        f.schemas().list("t1", None).await.unwrap().into_iter().map(|s| (s.id, s.version, s.created_at)).collect();
    assert_eq!(listed, [("order".to_owned(), 1, T0), ("order".to_owned(), 2, T0 + 2_000_000_000)]);
    assert_eq!(f.schemas().get("t2", "order", 0).await.unwrap().version, 7);
    // Attachments persisted with their resources, and validation uses them.
    assert_eq!(
        f.engine.resources.get(&q("orders")).await.unwrap().unwrap().schema,
        Some(json!({"id": "order", "type": "jsonschema", "version": 2}))
    );
    f.engine.streams.append(&s("orders"), vec![ev(r#"{"id":"a"}"#)]).await.unwrap();
    assert_eq!(f.engine.streams.read(&s("orders"), 0, 0, 1).await.unwrap()[0].schema_version, 1);
    assert_err_prefix(
        f.engine.queues.enqueue(&q("orders"), bytes(r#"{"id":"a"}"#), 0, Headers::new()).await,
        ErrorCode::InvalidArgument,
        "failed to enqueue job to queue t1/ns1/queue/orders: payload validation failed: payload does not match schema order v2: ",
    );
    // Duplicate detection still works after the restart.
    assert_eq!(
        f.schemas().register("t1", "order", "jsonschema", 2, bytes(ORDER)).await.unwrap_err().code,
        ErrorCode::AlreadyExists
    );
}

#[tokio::test]
async fn tenants_are_isolated() {
    let f = fixture().await;
    f.register("t1", "order", 9, ORDER).await;
    f.register("t2", "order", 1, r#"{"type":"array"}"#).await;
    // No cross-tenant "latest" (the FlowMesh quirk of §3.6): t2's latest is its own version 1.
    assert_eq!(f.schemas().get("t2", "order", 0).await.unwrap().version, 1);
    assert_err(f.schemas().get("t2", "order", 9).await, ErrorCode::NotFound, "schema not found: order (version 9)");
    assert_eq!(f.schemas().list("t2", None).await.unwrap().len(), 1);
    // Registering t1's version number in t2 is not a duplicate.
    f.register("t2", "order", 9, r#"{"type":"number"}"#).await;
    f.schemas().delete("t2", "order", 9).await.unwrap();
    assert_eq!(f.schemas().get("t1", "order", 9).await.unwrap().version, 9, "t2's delete left t1's schema alone");

    // Attaching "latest" to a t2 resource resolves among t2's schemas only, and validates with t2's definition.
    let t2 = path("t2", ResourceKind::Stream, "orders");
    f.engine.schemas.attach(&t2, "order", 0).await.unwrap();
    assert_eq!(
        f.engine.resources.get(&t2).await.unwrap().unwrap().schema,
        Some(json!({"id": "order", "type": "jsonschema", "version": 1}))
    );
    f.engine.streams.append(&t2, vec![ev("[1,2]")]).await.unwrap();
    assert_err_prefix(
        f.engine.streams.append(&t2, vec![ev(r#"{"id":"a"}"#)]).await,
        ErrorCode::InvalidArgument,
        "failed to write to stream t2/ns1/stream/orders: event 0 validation failed: payload does not match schema order v1: ",
    );
    // A schema only t1 has cannot be attached by "latest" in t2.
    f.register("t1", "invoice", 1, ORDER).await;
    assert_err(f.engine.schemas.attach(&t2, "invoice", 0).await, ErrorCode::NotFound, "schema not found: invoice");
}
