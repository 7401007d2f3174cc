//! Engine behaviour with a manual clock: no sleeping, every timing rule checked exactly.

use bytes::Bytes;
use herald_engine::*;
use herald_types::{ErrorCode, ManualClock, ResourceKind, ResourcePath};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn open_at(dir: &std::path::Path, clock: Arc<ManualClock>, auto_create: bool) -> Engine {
    let mut cfg = EngineConfig::new(dir.join("data"));
    cfg.auto_create = auto_create;
    cfg.fsync = FsyncPolicy::Always;
    Engine::open(cfg, clock).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let engine = open_at(dir.path(), Arc::clone(&clock), true);
    Fixture { engine, clock, dir }
}

impl Fixture {
    fn reopen(self) -> Fixture {
        self.engine.sync_all().unwrap();
        let Fixture { engine, clock, dir } = self;
        drop(engine);
        let engine = open_at(dir.path(), Arc::clone(&clock), true);
        Fixture { engine, clock, dir }
    }
}

fn q(name: &str) -> ResourcePath {
    ResourcePath::new("t1", "ns1", ResourceKind::Queue, name).unwrap()
}
fn s(name: &str) -> ResourcePath {
    ResourcePath::new("t1", "ns1", ResourceKind::Stream, name).unwrap()
}
fn kv(name: &str) -> ResourcePath {
    ResourcePath::new("t1", "ns1", ResourceKind::Kv, name).unwrap()
}
fn now_opts(max: i32, vis: i64) -> ReceiveOptions {
    ReceiveOptions { max_jobs: max, visibility_timeout_seconds: vis, long_poll: Duration::ZERO }
}
/// What the engine reported about its own changes ([`Engine::set_change_listener`]), as owned values.
#[derive(Debug, PartialEq)]
enum Reported {
    Expired { queue: String, dead_lettered: bool },
    Key { store: String, key: String },
}

fn record_changes(engine: &Engine) -> Arc<parking_lot::Mutex<Vec<Reported>>> {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    engine.set_change_listener(Arc::new(move |change| {
        sink.lock().push(match change {
            EngineChange::ReservationsExpired { queue, dead_lettered } => {
                Reported::Expired { queue: queue.to_string(), dead_lettered }
            }
            EngineChange::KeyExpired { store, key } => Reported::Key { store: store.to_string(), key: key.into() },
        })
    }));
    seen
}

fn ev(p: &str) -> EventIn {
    EventIn { payload: Bytes::copy_from_slice(p.as_bytes()), headers: Headers::new() }
}

#[tokio::test]
async fn visibility_expiry_redelivers_with_backoff_then_dead_letters() {
    let f = fixture();
    let reported = record_changes(&f.engine);
    let qs = &f.engine.queues;
    let queue = q("expiry");
    qs.enqueue(&queue, Bytes::from_static(b"job"), 0, Headers::new()).await.unwrap();
    qs.set_retry_policy(
        &queue,
        RetryPolicy {
            max_attempts: 2,
            initial_backoff_seconds: 5,
            max_backoff_seconds: 60,
            backoff_multiplier: 2.0,
            backoff_strategy: "exponential".into(),
        },
    )
    .await
    .unwrap();
    let first = qs.receive(&queue, now_opts(1, 10)).await.unwrap();
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].reserve_until, T0 + 10 * SEC);

    f.clock.advance_secs(9);
    f.engine.tick().await.unwrap();
    assert_eq!(qs.stats(&queue).await.unwrap().in_flight_jobs, 1, "not expired before reserve_until");
    assert!(reported.lock().is_empty(), "nothing changed, nothing reported");
    f.clock.advance_secs(1);
    f.engine.tick().await.unwrap();
    let st = qs.stats(&queue).await.unwrap();
    assert_eq!((st.pending_jobs, st.in_flight_jobs), (1, 0));
    let expired = |dead_lettered| Reported::Expired { queue: queue.to_string(), dead_lettered };
    assert_eq!(*reported.lock(), [expired(false)]);
    // backoff(1) = 5 s after the expiry.
    f.clock.advance_secs(4);
    assert!(qs.receive(&queue, now_opts(1, 10)).await.unwrap().is_empty());
    f.clock.advance_secs(1);
    let second = qs.receive(&queue, now_opts(1, 10)).await.unwrap();
    assert_eq!(second[0].attempts, 2);
    assert_eq!(second[0].visible_at, T0 + 15 * SEC);

    // Second expiry: attempts (2) >= max_attempts (2) → dead-lettered, silently.
    f.clock.advance_secs(10);
    f.engine.tick().await.unwrap();
    let st = qs.stats(&queue).await.unwrap();
    assert_eq!((st.pending_jobs, st.in_flight_jobs, st.failed_jobs), (0, 0, 1));
    let dlq = qs.list_dlq(&queue, 10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].headers["x-flowmesh-attempts"], "2");
    assert_eq!(dlq[0].headers["x-flowmesh-original-job-id"], first[0].id);
    assert_eq!(dlq[0].resource_path, "t1/ns1/queue/expiry-dlq");
    assert_eq!(*reported.lock(), [expired(false), expired(true)]);
}

#[tokio::test]
async fn nack_dead_letters_with_failed_precondition_and_replay_moves_it_back() {
    let f = fixture();
    let qs = &f.engine.queues;
    let queue = q("poison");
    let mut h = Headers::new();
    h.insert("a".into(), "b".into());
    let (id, _) = qs.enqueue(&queue, Bytes::from_static(b"poison"), 0, h).await.unwrap();
    qs.set_retry_policy(
        &queue,
        RetryPolicy {
            max_attempts: 1,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 1,
            backoff_multiplier: 1.0,
            backoff_strategy: "fixed".into(),
        },
    )
    .await
    .unwrap();
    qs.receive(&queue, now_opts(1, 30)).await.unwrap();
    let err = qs.nack(&queue, &id, 0).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    assert_eq!(err.message, format!("job {id} exceeded max attempts (1/1) in queue t1/ns1/queue/poison"));
    let dlq = qs.list_dlq(&queue, 0).await.unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].headers["a"], "b");
    assert_eq!(dlq[0].headers["x-flowmesh-failed-at"], "2023-11-14T22:13:20Z");

    let (new_id, seq) = qs.replay_dlq(&queue, &dlq[0].id).await.unwrap();
    assert_eq!(seq, 1);
    assert_ne!(new_id, id);
    assert!(qs.list_dlq(&queue, 0).await.unwrap().is_empty(), "D12: replay removes the DLQ entry");
    let again = qs.receive(&queue, now_opts(1, 30)).await.unwrap();
    assert_eq!(again[0].id, new_id);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].headers.get("a").map(String::as_str), Some("b"));
    assert!(again[0].headers.keys().all(|k| !k.starts_with("x-flowmesh-")));
    let e = qs.replay_dlq(&queue, "00000000000000000000000000000000").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn queue_state_survives_a_restart_without_duplicates_or_fresh_attempts() {
    let f = fixture();
    let queue = q("durable");
    for i in 0..4 {
        f.engine.queues.enqueue(&queue, Bytes::from(format!("j{i}")), 0, Headers::new()).await.unwrap();
    }
    let got = f.engine.queues.receive(&queue, now_opts(3, 60)).await.unwrap();
    f.engine.queues.ack(&queue, &got[0].id).await.unwrap();
    f.engine.queues.nack(&queue, &got[1].id, 100).await.unwrap();
    // got[2] is in flight at the restart: it is ready again afterwards, with its attempt counted (D17).
    f.clock.advance_secs(5);
    let f = f.reopen();
    let qs = &f.engine.queues;
    let st = qs.stats(&queue).await.unwrap();
    assert_eq!((st.total_jobs, st.pending_jobs, st.in_flight_jobs, st.completed_jobs), (4, 3, 0, 1));
    let next = qs.receive(&queue, now_opts(10, 60)).await.unwrap();
    let payloads: Vec<&[u8]> = next.iter().map(|j| &j.payload[..]).collect();
    assert_eq!(
        payloads,
        [&b"j3"[..], b"j2"],
        "j3 (visible since enqueue) before j2 (visible since the restart); j1 waits out its NACK delay"
    );
    assert_eq!((next[0].attempts, next[1].attempts), (1, 2));
    assert_eq!(next[1].id, got[2].id);
    f.clock.advance_secs(100);
    let late = qs.receive(&queue, now_opts(10, 60)).await.unwrap();
    assert_eq!(late[0].id, got[1].id);
    assert_eq!(late[0].attempts, 2, "attempts are persisted, not reset");
    let (_, seq) = qs.enqueue(&queue, Bytes::from_static(b"x"), 0, Headers::new()).await.unwrap();
    assert_eq!(seq, 4, "seq continues after a restart");
}

#[tokio::test]
async fn a_job_in_flight_with_no_attempts_left_is_dead_lettered_at_restart() {
    let f = fixture();
    let queue = q("last-try");
    f.engine.queues.enqueue(&queue, Bytes::from_static(b"x"), 0, Headers::new()).await.unwrap();
    let policy = RetryPolicy {
        max_attempts: 1,
        initial_backoff_seconds: 1,
        max_backoff_seconds: 1,
        backoff_multiplier: 1.0,
        backoff_strategy: "fixed".into(),
    };
    f.engine.queues.set_retry_policy(&queue, policy).await.unwrap();
    f.engine.queues.receive(&queue, now_opts(1, 60)).await.unwrap();
    let f = f.reopen();
    let st = f.engine.queues.stats(&queue).await.unwrap();
    assert_eq!((st.pending_jobs, st.in_flight_jobs, st.failed_jobs), (0, 0, 1));
    assert_eq!(f.engine.queues.list_dlq(&queue, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn kv_ttl_is_exact_and_set_replaces_expiry() {
    let f = fixture();
    let reported = record_changes(&f.engine);
    let store = kv("cache");
    let k = &f.engine.kv;
    k.set(&store, "t", Bytes::from_static(b"x"), 1).await.unwrap();
    assert_eq!(&k.get(&store, "t").await.unwrap()[..], b"x");
    f.clock.advance_ns(SEC - 1);
    assert!(k.exists(&store, "t").await.unwrap());
    f.clock.advance_ns(1);
    let e = k.get(&store, "t").await.unwrap_err();
    assert_eq!(e.message, "key t in KV store t1/ns1/kv/cache has expired");
    assert!(!k.exists(&store, "t").await.unwrap());
    assert!(k.list_keys(&store, "").await.unwrap().is_empty());

    k.set(&store, "t2", Bytes::from_static(b"x"), 1).await.unwrap();
    k.set(&store, "t2", Bytes::from_static(b"y"), 0).await.unwrap();
    f.clock.advance_secs(20);
    f.engine.tick().await.unwrap();
    assert_eq!(&k.get(&store, "t2").await.unwrap()[..], b"y", "D9: overwrite cancels the old TTL");
    // The reaper reports the key it reclaimed, and not the overwritten one.
    assert_eq!(*reported.lock(), [Reported::Key { store: store.to_string(), key: "t".into() }]);

    for key in ["user:2", "user:10", "order:1", "user:1", "a.b"] {
        k.set(&store, key, Bytes::from_static(b"v"), 0).await.unwrap();
    }
    assert_eq!(k.list_keys(&store, "user:").await.unwrap(), ["user:1", "user:10", "user:2"]);
    assert_eq!(k.list_keys(&store, "").await.unwrap(), ["a.b", "order:1", "t2", "user:1", "user:10", "user:2"]);
    let e = k.set(&store, "k", Bytes::from_static(b"v"), 31_536_001).await.unwrap_err();
    assert_eq!(e.message, "ttl_seconds cannot exceed 31536000 (1 year)");
}

#[tokio::test]
async fn streams_offsets_groups_and_restart() {
    let f = fixture();
    let stream = s("orders");
    let st = &f.engine.streams;
    assert_eq!(st.append(&stream, vec![ev("a"), ev("b"), ev("c")]).await.unwrap(), [0, 1, 2]);
    let e = st.append(&stream, vec![ev("x"), ev("")]).await.unwrap_err();
    assert_eq!(e.message, "event 1: payload cannot be empty");
    assert_eq!(st.latest_offset(&stream, 0).await.unwrap(), 2, "a rejected batch writes nothing");
    st.commit_offset(&stream, "g", 0, 1).await.unwrap();
    let gs = st.group_state(&stream, "g", 0).await.unwrap();
    assert_eq!((gs.committed_offset, gs.latest_offset, gs.lag), (1, 2, 1));
    let f = f.reopen();
    let st = &f.engine.streams;
    assert_eq!(st.append(&stream, vec![ev("d")]).await.unwrap(), [3]);
    let msgs = st.read(&stream, 0, 0, 0).await.unwrap();
    assert_eq!(msgs.iter().map(|m| &m.payload[..]).collect::<Vec<_>>(), [b"a", b"b", b"c", b"d"]);
    assert_eq!(st.committed_offset(&stream, "g", 0).await.unwrap(), 1);
    let mut tail = st.subscribe(&stream, "g", 0, -1).await.unwrap();
    let batch = tail.next_batch().await.unwrap();
    assert_eq!(batch.first().map(|m| m.offset), Some(2));
    assert!(st.read(&stream, 1, 0, 10).await.unwrap().is_empty());
    assert_eq!(st.latest_offset(&stream, 1).await.unwrap(), -1);
    assert_eq!(st.list_groups(&stream).await.unwrap().len(), 1);
}

#[tokio::test]
async fn stream_retention_from_the_provisioning_file_drops_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resources.json");
    std::fs::write(
        &file,
        r#"{"t1/ns1/stream/short": {"tenant": "t1", "namespace": "ns1", "name": "short", "type": "stream",
             "retention": {"max_messages": 50}}}"#,
    )
    .unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.provisioning_file = Some(file);
    cfg.segment_max_bytes = 4096;
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::open(cfg, clock).unwrap();
    let stream = s("short");
    let payload = "x".repeat(200);
    for _ in 0..40 {
        engine
            .streams
            .append(&stream, vec![ev(&payload), ev(&payload), ev(&payload), ev(&payload), ev(&payload)])
            .await
            .unwrap();
    }
    engine.tick().await.unwrap();
    let msgs = engine.streams.read(&stream, 0, 0, 1000).await.unwrap();
    let first = msgs.first().unwrap().offset;
    assert!(first > 0, "old segments were deleted");
    assert!(msgs.len() >= 50 && msgs.len() < 200, "kept at least max_messages, in whole segments: {}", msgs.len());
    assert_eq!(msgs.last().unwrap().offset, 199);
    assert!(msgs.windows(2).all(|w| w[1].offset == w[0].offset + 1), "what remains is contiguous");
    assert_eq!(engine.streams.latest_offset(&stream, 0).await.unwrap(), 199);
}

#[tokio::test]
async fn missing_resources_are_not_found_without_auto_create() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_at(dir.path(), Arc::new(ManualClock::new(T0)), false);
    let e = engine.streams.append(&s("missing"), vec![ev("a")]).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, "stream not found: t1/ns1/stream/missing"));
    let e = engine.queues.enqueue(&q("missing"), Bytes::from_static(b"a"), 0, Headers::new()).await.unwrap_err();
    assert_eq!(e.message, "queue not found: t1/ns1/queue/missing");
    let e = engine.kv.set(&kv("missing"), "k", Bytes::from_static(b"v"), 0).await.unwrap_err();
    assert_eq!(e.message, "KV store not found: t1/ns1/kv/missing");
    let e = engine.queues.list_dlq(&q("missing"), 1).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(engine.resources.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn kv_entries_list_sizes_and_expiry_of_live_keys_only() {
    let f = fixture();
    let store = kv("entries");
    let k = &f.engine.kv;
    k.set(&store, "user:2", Bytes::from_static(b"two"), 0).await.unwrap();
    k.set(&store, "user:1", Bytes::from_static(b"one!"), 10).await.unwrap();
    k.set(&store, "user:3", Bytes::from_static(b"x"), 1).await.unwrap();
    k.set(&store, "order:1", Bytes::from(vec![b'o'; 1000]), 0).await.unwrap();
    let info = |key: &str, size, expires_at| KvEntryInfo { key: key.into(), size, expires_at };
    assert_eq!(
        k.list_entries(&store, "", 100).await.unwrap(),
        [
            info("order:1", 1000, None),
            info("user:1", 4, Some(T0 + 10 * SEC)),
            info("user:2", 3, None),
            info("user:3", 1, Some(T0 + SEC)),
        ]
    );
    assert_eq!(
        k.list_entries(&store, "user:", 2).await.unwrap(),
        [info("user:1", 4, Some(T0 + 10 * SEC)), info("user:2", 3, None)],
        "the prefix and the limit apply"
    );
    // Expired entries are skipped the moment they expire, and the limit counts live entries only.
    f.clock.advance_ns(SEC);
    assert_eq!(
        k.list_entries(&store, "user:", 2).await.unwrap(),
        [info("user:1", 4, Some(T0 + 10 * SEC)), info("user:2", 3, None)]
    );
    f.clock.advance_ns(9 * SEC);
    assert_eq!(k.list_entries(&store, "user:", 10).await.unwrap(), [info("user:2", 3, None)]);
    assert!(k.list_entries(&store, "nothing", 10).await.unwrap().is_empty());
    let e = k.list_entries(&kv("missing"), "", 10).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, "KV store not found: t1/ns1/kv/missing"));
}
