//! The relay service (compat/pulsar-relay.md) with a manual clock: history pages and cursors, retention, restart,
//! live fan-out order, refresh-token rotation, idempotency and the deny-list.

use bytes::Bytes;
use herald_engine::pubsub::{Delivery, Published, Subscriber};
use herald_engine::relay::api::*;
use herald_engine::*;
use herald_types::{ErrorCode, ManualClock};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    opts: RelayOptions,
    segment_max_bytes: u64,
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>, opts: RelayOptions, segment_max_bytes: u64) -> Engine {
    let mut cfg = EngineConfig::new(dir.join("data"));
    cfg.fsync = FsyncPolicy::Always;
    cfg.relay = opts;
    cfg.segment_max_bytes = segment_max_bytes;
    Engine::open(cfg, clock).unwrap()
}

fn fixture_with(opts: RelayOptions, segment_max_bytes: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let engine = open(dir.path(), Arc::clone(&clock), opts.clone(), segment_max_bytes);
    Fixture { engine, clock, dir, opts, segment_max_bytes }
}

fn fixture() -> Fixture {
    fixture_with(RelayOptions::default(), 128 << 20)
}

/// Hot tier sizes worth checking: the default (everything served from memory), none (everything from the log), and
/// a small one (pages that straddle the boundary).
fn hot_sizes() -> [usize; 3] {
    [1024, 0, 3]
}

fn hot(n: usize) -> RelayOptions {
    RelayOptions { hot_messages: n, ..RelayOptions::default() }
}

impl Fixture {
    fn relay(&self) -> &dyn Relay {
        &*self.engine.relay
    }

    fn reopen(self) -> Fixture {
        self.engine.sync_all().unwrap();
        let Fixture { engine, clock, dir, opts, segment_max_bytes } = self;
        drop(engine);
        let engine = open(dir.path(), Arc::clone(&clock), opts.clone(), segment_max_bytes);
        Fixture { engine, clock, dir, opts, segment_max_bytes }
    }

    async fn publish(&self, owner: &str, topic: &str, payloads: &[&str]) -> Vec<RelayMessage> {
        let msgs = payloads
            .iter()
            .map(|p| RelayMessageIn { payload: Bytes::copy_from_slice(p.as_bytes()), metadata: None })
            .collect();
        self.relay().publish(owner, topic, msgs, &frame).await.unwrap()
    }

    async fn page(&self, topic: &str, order: HistoryOrder, cursor: Option<RelayId>, limit: usize) -> Vec<String> {
        let page = self.relay().history(OWNER, topic, order, cursor, limit).await.unwrap();
        payloads(&page)
    }

    async fn after(&self, topic: &str, after: Option<RelayId>, limit: usize) -> Vec<String> {
        payloads(&self.relay().read_after(OWNER, topic, after, limit).await.unwrap())
    }
}

const OWNER: &str = "6c194e16-0000-4000-8000-000000000001";

fn frame(topic: &str, m: &RelayMessage) -> Bytes {
    Bytes::from(format!("{topic}|{}|{}", m.id, String::from_utf8_lossy(&m.payload)))
}

fn payloads(msgs: &[RelayMessage]) -> Vec<String> {
    msgs.iter().map(|m| String::from_utf8(m.payload.to_vec()).unwrap()).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"id\":{i}}}")).collect()
}

fn p(i: usize) -> String {
    format!("{{\"id\":{i}}}")
}

// ---------------------------------------------------------------- history and cursors

#[tokio::test]
async fn history_pages_both_ways_as_in_the_acceptance_checklist() {
    for n in hot_sizes() {
        let f = fixture_with(hot(n), 128 << 20);
        let all = ids(10);
        // One publish per message, all in the same millisecond: the ids differ only in seq.
        for m in &all {
            f.publish(OWNER, "p", &[m]).await;
        }
        let stored = f.relay().history(OWNER, "p", HistoryOrder::Asc, None, 100).await.unwrap();
        assert_eq!(stored.len(), 10);
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id), "ids increase");

        // desc: 9,8,7 then (cursor = id of 7) 6,5,4
        let page = f.relay().history(OWNER, "p", HistoryOrder::Desc, None, 3).await.unwrap();
        assert_eq!(payloads(&page), [p(9), p(8), p(7)], "hot {n}");
        let next = page.last().unwrap().id;
        assert_eq!(next, stored[7].id);
        assert_eq!(f.page("p", HistoryOrder::Desc, Some(next), 3).await, [p(6), p(5), p(4)]);
        assert_eq!(f.page("p", HistoryOrder::Desc, Some(stored[3].id), 3).await, [p(2), p(1), p(0)]);
        assert_eq!(f.page("p", HistoryOrder::Desc, Some(stored[1].id), 3).await, [p(0)]);
        assert!(f.page("p", HistoryOrder::Desc, Some(stored[0].id), 3).await.is_empty());

        // asc: 0,1,2 then (cursor = id of 2) 3,4,5
        let page = f.relay().history(OWNER, "p", HistoryOrder::Asc, None, 3).await.unwrap();
        assert_eq!(payloads(&page), [p(0), p(1), p(2)]);
        assert_eq!(f.page("p", HistoryOrder::Asc, Some(page[2].id), 3).await, [p(3), p(4), p(5)]);
        assert_eq!(f.page("p", HistoryOrder::Asc, Some(stored[8].id), 3).await, [p(9)]);
        assert!(f.page("p", HistoryOrder::Asc, Some(stored[9].id), 3).await.is_empty());

        // A zero limit, an unknown topic, another owner's namespace: nothing.
        assert!(f.page("p", HistoryOrder::Desc, None, 0).await.is_empty());
        assert!(f.page("nope", HistoryOrder::Desc, None, 3).await.is_empty());
        assert!(f.relay().history("someone-else", "p", HistoryOrder::Asc, None, 3).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn read_after_with_and_without_a_cursor() {
    for n in hot_sizes() {
        let f = fixture_with(hot(n), 128 << 20);
        assert!(f.after("q", None, 100).await.is_empty());
        let m = f.publish(OWNER, "q", &["1", "2", "3"]).await;
        assert_eq!(f.after("q", None, 100).await, strs(&["1", "2", "3"]), "hot {n}");
        assert_eq!(f.after("q", None, 2).await, strs(&["1", "2"]));
        assert_eq!(f.after("q", Some(m[0].id), 100).await, strs(&["2", "3"]));
        assert!(f.after("q", Some(m[2].id), 100).await.is_empty());
        assert!(f.after("q", Some(m[0].id), 0).await.is_empty());
    }
}

#[tokio::test]
async fn cursors_need_not_exist_and_compare_as_pairs() {
    for n in hot_sizes() {
        let f = fixture_with(hot(n), 128 << 20);
        // Three messages in one millisecond, then two 5 ms later, then one 1 s later.
        let a = f.publish(OWNER, "c", &["a0", "a1", "a2"]).await;
        f.clock.advance_ns(5 * MS);
        let b = f.publish(OWNER, "c", &["b0", "b1"]).await;
        f.clock.advance_ns(SEC);
        let c = f.publish(OWNER, "c", &["c0"]).await;
        let (ma, mb, mc) = (a[0].id.ms, b[0].id.ms, c[0].id.ms);
        assert_eq!((mb - ma, mc - mb), (5, 1000));
        assert_eq!(a.iter().chain(&b).chain(&c).map(|m| m.id.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        let id = |ms, seq| Some(RelayId { ms, seq });
        let after = |c| f.after("c", c, 100);

        // Older than everything retained: from the oldest.
        assert_eq!(after(id(1, 0)).await.len(), 6, "hot {n}");
        assert_eq!(after(id(ma - 1, 99)).await.len(), 6);
        // In the future: nothing.
        assert!(after(id(mc + 1, 0)).await.is_empty());
        assert!(after(id(u64::MAX, u64::MAX)).await.is_empty());
        // Exact ids.
        assert_eq!(after(id(ma, 1)).await, strs(&["a2", "b0", "b1", "c0"]));
        assert_eq!(after(id(mb, 4)).await, strs(&["c0"]));
        // Same ms, a seq that is not there: below the ms's first seq, or beyond its last.
        assert_eq!(after(id(mb, 0)).await, strs(&["b0", "b1", "c0"]));
        assert_eq!(after(id(ma, 77)).await, strs(&["b0", "b1", "c0"]));
        // Between two ms values.
        assert_eq!(after(id(ma + 2, 0)).await, strs(&["b0", "b1", "c0"]));
        assert_eq!(after(id(mb + 1, 0)).await, strs(&["c0"]));

        // Desc is strictly older than the cursor.
        let before = |c| f.page("c", HistoryOrder::Desc, c, 100);
        assert_eq!(before(id(mb, 4)).await, strs(&["b0", "a2", "a1", "a0"]));
        assert_eq!(before(id(mb, 0)).await, strs(&["a2", "a1", "a0"]));
        assert_eq!(before(id(ma, 77)).await, strs(&["a2", "a1", "a0"]));
        assert_eq!(before(id(mc + 1, 0)).await.len(), 6);
        assert!(before(id(ma, 0)).await.is_empty());
        assert!(before(id(0, 0)).await.is_empty());
    }
}

#[tokio::test]
async fn timestamps_never_go_backwards_within_a_topic() {
    let f = fixture();
    let a = f.publish(OWNER, "t", &["a"]).await;
    f.clock.advance_ns(-10 * SEC);
    let b = f.publish(OWNER, "t", &["b", "c"]).await;
    assert_eq!(b[0].timestamp, a[0].timestamp);
    assert!(a[0].id < b[0].id && b[0].id < b[1].id);
    // Another topic has its own clock floor.
    let other = f.publish(OWNER, "u", &["x"]).await;
    assert_eq!(other[0].timestamp, (T0 - 10 * SEC) / 1000);
    assert_eq!(other[0].id.seq, 0);
    f.clock.advance_ns(20 * SEC);
    let d = f.publish(OWNER, "t", &["d"]).await;
    assert_eq!(d[0].timestamp, (T0 + 10 * SEC) / 1000);
    assert_eq!(d[0].id.ms, (T0 + 10 * SEC) as u64 / 1_000_000);
}

#[tokio::test]
async fn metadata_round_trips_byte_for_byte() {
    let f = fixture_with(hot(0), 128 << 20);
    let msgs = vec![
        RelayMessageIn { payload: Bytes::from_static(br#"{"b":2,"a":1.50}"#), metadata: None },
        RelayMessageIn { payload: Bytes::from_static(b"{}"), metadata: Some(Bytes::from_static(br#"{"k":"v"}"#)) },
        RelayMessageIn { payload: Bytes::from_static(b"{}"), metadata: Some(Bytes::from_static(b"{}")) },
    ];
    let stored = f.relay().publish(OWNER, "m", msgs, &frame).await.unwrap();
    let read = f.relay().read_after(OWNER, "m", None, 10).await.unwrap();
    assert_eq!(read, stored);
    assert_eq!(&read[0].payload[..], br#"{"b":2,"a":1.50}"#);
    assert_eq!(read[0].metadata, None);
    assert_eq!(read[1].metadata.as_deref(), Some(&br#"{"k":"v"}"#[..]));
    assert_eq!(read[2].metadata.as_deref(), Some(&b"{}"[..]));
}

// ---------------------------------------------------------------- retention

#[tokio::test]
async fn retention_keeps_exactly_the_newest_messages() {
    for n in hot_sizes() {
        let opts = RelayOptions { max_messages_per_topic: 5, hot_messages: n };
        let f = fixture_with(opts, 128 << 20);
        let mut stored = Vec::new();
        for i in 0..7 {
            stored.extend(f.publish(OWNER, "r", &[&p(i)]).await);
            f.clock.advance_ns(MS);
        }
        let newest5: Vec<String> = (2..7).map(p).collect();
        assert_eq!(f.after("r", None, 100).await, newest5, "hot {n}");
        // A cursor that was trimmed away resumes from the oldest retained message.
        assert_eq!(f.after("r", Some(stored[0].id), 100).await, newest5);
        assert_eq!(f.after("r", Some(stored[2].id), 100).await, newest5[1..]);
        let mut desc = newest5.clone();
        desc.reverse();
        assert_eq!(f.page("r", HistoryOrder::Desc, None, 100).await, desc);
        assert_eq!(f.page("r", HistoryOrder::Desc, Some(stored[3].id), 100).await, [p(2)]);
        assert!(f.page("r", HistoryOrder::Desc, Some(stored[2].id), 100).await.is_empty());
        // And after a restart.
        let f = f.reopen();
        assert_eq!(f.after("r", Some(stored[0].id), 100).await, newest5);
    }
}

fn log_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for stream in std::fs::read_dir(dir.join("data/relay")).unwrap() {
        for file in std::fs::read_dir(stream.unwrap().path()).unwrap() {
            n += usize::from(file.unwrap().path().extension().is_some_and(|e| e == "log"));
        }
    }
    n
}

#[tokio::test]
async fn retention_removes_whole_old_segments() {
    let opts = RelayOptions { max_messages_per_topic: 20, hot_messages: 4 };
    let f = fixture_with(opts, 4096);
    let payload = "x".repeat(200);
    let mut last = Vec::new();
    for _ in 0..30 {
        last = f.publish(OWNER, "big", &[&payload, &payload, &payload, &payload, &payload]).await;
        f.clock.advance_ns(MS);
    }
    let before = log_files(f.dir.path());
    assert!(before > 5, "small segments: {before}");
    f.engine.tick().await.unwrap();
    let after = log_files(f.dir.path());
    assert!(after < before, "{after} < {before}");
    let kept = f.relay().read_after(OWNER, "big", None, 100).await.unwrap();
    assert_eq!(kept.len(), 20);
    assert_eq!(kept.last().unwrap().id, last[4].id);
    assert_eq!(kept[0].id.seq, 130);
    assert!(f.relay().read_after(OWNER, "big", Some(RelayId { ms: 0, seq: 0 }), 100).await.unwrap() == kept);
    // Still exactly the newest 20 after more retention passes and a restart (read from the log alone).
    f.engine.tick().await.unwrap();
    let f = f.reopen();
    let again = f.relay().history(OWNER, "big", HistoryOrder::Desc, None, 100).await.unwrap();
    assert_eq!(again.len(), 20);
    assert_eq!(again.last().unwrap().id, kept[0].id);
}

// ---------------------------------------------------------------- restart and topics

#[tokio::test]
async fn state_survives_a_restart_and_ids_keep_increasing() {
    let f = fixture();
    let user = f
        .relay()
        .create_user(NewRelayUser {
            username: "alice".into(),
            email: Some("a@example.com".into()),
            password_hash: Some("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA".into()),
            permissions: strs(&["read", "write"]),
        })
        .await
        .unwrap();
    let topic = f.relay().create_topic(&user.user_id, "jobs", Some("d".into())).await.unwrap();
    let before = {
        let msgs = (0..3).map(|i| RelayMessageIn { payload: p(i).into(), metadata: None }).collect();
        f.relay().publish(&user.user_id, "jobs", msgs, &frame).await.unwrap()
    };
    let token = refresh_record("jti-1", &user.user_id, None, T0 / 1000 + 1_000_000_000);
    f.relay().put_refresh(token.clone()).await.unwrap();

    let f = f.reopen();
    // The clock went backwards across the restart: ids still grow.
    f.clock.advance_ns(-60 * SEC);
    assert_eq!(f.relay().user(&user.user_id).await.unwrap(), Some(user.clone()));
    assert_eq!(f.relay().user_by_name("alice").await.unwrap(), Some(user.clone()));
    assert_eq!(f.relay().topic(&user.user_id, "jobs").await.unwrap(), Some(topic.clone()));
    assert_eq!(f.relay().topic_count().await.unwrap(), 1);
    assert_eq!(f.relay().refresh("jti-1").await.unwrap(), Some(token));
    let read = f.relay().read_after(&user.user_id, "jobs", None, 100).await.unwrap();
    assert_eq!(read, before);
    let more = f.publish(&user.user_id, "jobs", &["late"]).await;
    assert!(more[0].id > before[2].id);
    assert_eq!(more[0].id.seq, 3);
    assert_eq!(more[0].timestamp, before[2].timestamp);
    // The same after a second restart, this time read from the log only.
    let f = f.reopen();
    let all = f.relay().history(&user.user_id, "jobs", HistoryOrder::Desc, None, 2).await.unwrap();
    assert_eq!(payloads(&all), ["late".to_string(), p(2)]);
}

#[tokio::test]
async fn a_deleted_topic_keeps_its_messages_for_when_it_is_created_again() {
    let f = fixture();
    f.relay().create_topic(OWNER, "old", None).await.unwrap();
    f.publish(OWNER, "old", &["1", "2"]).await;
    assert!(f.relay().delete_topic(OWNER, "old").await.unwrap());
    assert!(!f.relay().delete_topic(OWNER, "old").await.unwrap());
    assert_eq!(f.relay().topic(OWNER, "old").await.unwrap(), None);
    assert_eq!(f.relay().topic_count().await.unwrap(), 0);
    let again = f.relay().get_or_create_topic(OWNER, "old", "Auto-created topic by u").await.unwrap();
    assert_eq!(again.description.as_deref(), Some("Auto-created topic by u"));
    assert_eq!(f.after("old", None, 10).await, strs(&["1", "2"]));
    let m = f.publish(OWNER, "old", &["3"]).await;
    assert_eq!(m[0].id.seq, 2);
    // Also across a restart, with the record deleted in between.
    assert!(f.relay().delete_topic(OWNER, "old").await.unwrap());
    let f = f.reopen();
    f.relay().create_topic(OWNER, "old", None).await.unwrap();
    assert_eq!(f.after("old", None, 10).await, strs(&["1", "2", "3"]));
}

#[tokio::test]
async fn topics_are_per_owner_sorted_and_updatable() {
    let f = fixture();
    let r = f.relay();
    for name in ["zeta", "alpha", "mid"] {
        r.create_topic("owner-a", name, None).await.unwrap();
    }
    r.create_topic("owner-b", "alpha", Some("b's".into())).await.unwrap();
    let e = r.create_topic("owner-a", "mid", None).await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::AlreadyExists, "Topic 'mid' already exists for owner owner-a")
    );
    let names: Vec<String> = r.topics("owner-a").await.unwrap().into_iter().map(|t| t.topic_name).collect();
    assert_eq!(names, strs(&["alpha", "mid", "zeta"]));
    // "owner-a" is not a prefix match for "owner-ab".
    r.create_topic("owner-ab", "x", None).await.unwrap();
    assert_eq!(r.topics("owner-a").await.unwrap().len(), 3);
    assert_eq!(r.topic_count().await.unwrap(), 5);

    let t = r.update_topic("owner-a", "mid", Some("new".into())).await.unwrap();
    assert_eq!(t.description.as_deref(), Some("new"));
    let t = r.update_topic("owner-a", "mid", None).await.unwrap();
    assert_eq!(t.description.as_deref(), Some("new"));
    // Reads see the change at once (the in-memory copy is written through).
    assert_eq!(r.topic("owner-a", "mid").await.unwrap().and_then(|t| t.description).as_deref(), Some("new"));
    let e = r.update_topic("owner-a", "nope", None).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, "Topic 'nope' not found"));
    let existing = r.get_or_create_topic("owner-b", "alpha", "ignored").await.unwrap();
    assert_eq!(existing.description.as_deref(), Some("b's"));
    assert_eq!(existing.topic_id.len(), 36);
    assert_eq!(existing.owner_id, "owner-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_topic_creation_has_one_winner() {
    let f = Arc::new(fixture());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move { f.relay().create_topic(OWNER, "race", None).await }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.code, ErrorCode::AlreadyExists),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(f.relay().topic_count().await.unwrap(), 1);
}

// ---------------------------------------------------------------- live fan-out

#[derive(Default)]
struct Probe {
    got: Mutex<Vec<Bytes>>,
}

impl Subscriber for Probe {
    fn origin(&self) -> u64 {
        7
    }
    fn deliver(&self, _sid: &Bytes, msg: &Published<'_>) -> Delivery {
        self.got.lock().push(msg.body.clone());
        Delivery::Taken
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_fans_out_frames_in_stored_order() {
    let f = Arc::new(fixture());
    let probe = Arc::new(Probe::default());
    let subject = f.relay().subject(OWNER, "live");
    assert_eq!(subject, format!("{OWNER}.live"));
    let sub = f.relay().router().subscribe(probe.clone(), subject.into(), None, Bytes::from_static(b"1"));
    let other = Arc::new(Probe::default());
    f.relay().router().subscribe(other.clone(), format!("{OWNER}.elsewhere").into(), None, Bytes::from_static(b"2"));

    let first = f.publish(OWNER, "live", &["a", "b"]).await;
    assert_eq!(
        probe.got.lock().clone(),
        [frame("live", &first[0]), frame("live", &first[1])],
        "routed before publish returns, one frame per message"
    );
    // Concurrent publishers: live order = stored order.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            for j in 0..20 {
                f.publish(OWNER, "live", &[&format!("{i}-{j}"), &format!("{i}-{j}'")]).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = f.relay().read_after(OWNER, "live", None, 1000).await.unwrap();
    assert_eq!(stored.len(), 2 + 8 * 20 * 2);
    let expected: Vec<Bytes> = stored.iter().map(|m| frame("live", m)).collect();
    assert_eq!(*probe.got.lock(), expected);
    assert!(other.got.lock().is_empty());
    f.relay().router().unsubscribe(&sub);
    f.publish(OWNER, "live", &["after"]).await;
    assert_eq!(probe.got.lock().len(), expected.len());
    // The engine's NATS router is a different one.
    assert!(f.engine.pubsub.is_empty());
}

// ---------------------------------------------------------------- users

#[tokio::test]
async fn users_are_unique_by_name_and_patchable() {
    let f = fixture();
    let r = f.relay();
    let new = |name: &str| NewRelayUser {
        username: name.into(),
        email: None,
        password_hash: None,
        permissions: strs(&["read"]),
    };
    let bob = r.create_user(new("bob")).await.unwrap();
    assert_eq!(bob.user_id.len(), 36);
    assert_eq!(&bob.user_id[14..15], "4");
    assert!(bob.is_active);
    assert_eq!(bob.created_at, T0 / 1000);
    let e = r.create_user(new("bob")).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::AlreadyExists, "Username 'bob' already exists"));
    f.clock.advance_secs(1);
    let carol = r.create_user(new("carol")).await.unwrap();
    assert_eq!(r.users().await.unwrap(), [bob.clone(), carol.clone()]);

    let patched = r
        .update_user(
            &bob.user_id,
            RelayUserPatch {
                email: Some(Some("b@x".into())),
                password_hash: Some("h".into()),
                permissions: Some(strs(&["admin", "read", "write"])),
                is_active: Some(false),
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.email.as_deref(), Some("b@x"));
    assert_eq!(patched.password_hash.as_deref(), Some("h"));
    assert_eq!(patched.permissions, strs(&["admin", "read", "write"]));
    assert!(!patched.is_active);
    let cleared =
        r.update_user(&bob.user_id, RelayUserPatch { email: Some(None), ..Default::default() }).await.unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(cleared.password_hash.as_deref(), Some("h"));
    assert_eq!(r.user(&bob.user_id).await.unwrap(), Some(cleared));

    let e = r.update_user("missing", RelayUserPatch::default()).await.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotFound, "User with ID 'missing' not found"));
    r.delete_user(&bob.user_id).await.unwrap();
    assert_eq!(r.user(&bob.user_id).await.unwrap(), None);
    assert_eq!(r.user_by_name("bob").await.unwrap(), None);
    let e = r.delete_user(&bob.user_id).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // The name is free again.
    let bob2 = r.create_user(new("bob")).await.unwrap();
    assert_ne!(bob2.user_id, bob.user_id);
}

// ---------------------------------------------------------------- refresh tokens

fn refresh_record(jti: &str, user: &str, parent: Option<&str>, expires_at: Micros) -> RefreshRecord {
    RefreshRecord {
        jti: jti.into(),
        user_id: user.into(),
        secret_hash: format!("hash-{jti}"),
        parent_jti: parent.map(Into::into),
        issued_at: T0 / 1000,
        expires_at,
        last_used_at: None,
        revoked: None,
        client_hint: Some("password-login".into()),
    }
}

async fn session_ids(r: &dyn Relay, user: &str) -> Vec<String> {
    r.sessions(user).await.unwrap().into_iter().map(|s| s.jti).collect()
}

const DAY: Micros = 86_400_000_000;

#[tokio::test]
async fn rotation_is_single_use_and_a_replay_revokes_the_chain() {
    let f = fixture();
    let r = f.relay();
    let now = T0 / 1000;
    r.put_refresh(refresh_record("root", "u1", None, now + 90 * DAY)).await.unwrap();
    r.put_refresh(refresh_record("other", "u1", None, now + 90 * DAY)).await.unwrap();
    assert_eq!(r.put_refresh(refresh_record("root", "u1", None, 0)).await.unwrap_err().code, ErrorCode::AlreadyExists);

    // Wrong secret or unknown jti: nothing happens.
    assert_eq!(r.rotate_refresh("root", "wrong", "x".into(), "hx".into(), DAY).await.unwrap(), Rotation::Unknown);
    assert_eq!(r.rotate_refresh("nope", "hash-nope", "x".into(), "hx".into(), DAY).await.unwrap(), Rotation::Unknown);
    assert_eq!(r.refresh("root").await.unwrap().unwrap().revoked, None);

    f.clock.advance_secs(10);
    let now = now + 10_000_000;
    let Rotation::Rotated(s1) =
        r.rotate_refresh("root", "hash-root", "s1".into(), "hash-s1".into(), 90 * DAY).await.unwrap()
    else {
        panic!("rotated")
    };
    assert_eq!(
        s1,
        RefreshRecord {
            jti: "s1".into(),
            user_id: "u1".into(),
            secret_hash: "hash-s1".into(),
            parent_jti: Some("root".into()),
            issued_at: now,
            expires_at: now + 90 * DAY,
            last_used_at: None,
            revoked: None,
            client_hint: Some("password-login".into()),
        }
    );
    let root = r.refresh("root").await.unwrap().unwrap();
    assert_eq!((root.revoked.as_deref(), root.last_used_at), (Some("rotated"), Some(now)));
    let Rotation::Rotated(s2) = r.rotate_refresh("s1", "hash-s1", "s2".into(), "hash-s2".into(), DAY).await.unwrap()
    else {
        panic!("rotated")
    };
    assert_eq!(session_ids(r, "u1").await, strs(&["other", "s2"]));

    // Presenting the used s1 again: the whole chain (root, s1, s2) is revoked; "other" is a separate chain.
    assert_eq!(r.rotate_refresh("s1", "hash-s1", "s3".into(), "h".into(), DAY).await.unwrap(), Rotation::Replayed);
    assert_eq!(r.refresh("s3").await.unwrap(), None);
    assert_eq!(r.refresh("s2").await.unwrap().unwrap().revoked.as_deref(), Some("replay"));
    assert_eq!(r.refresh("s1").await.unwrap().unwrap().revoked.as_deref(), Some("rotated"));
    assert_eq!(r.rotate_refresh(&s2.jti, "hash-s2", "s4".into(), "h".into(), DAY).await.unwrap(), Rotation::Replayed);
    assert_eq!(session_ids(r, "u1").await, strs(&["other"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_have_one_winner() {
    let f = Arc::new(fixture());
    f.relay().put_refresh(refresh_record("t", "u", None, T0 / 1000 + DAY)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            f.relay().rotate_refresh("t", "hash-t", format!("n{i}"), "h".into(), DAY).await.unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == Rotation::Replayed).count(), 7);
    // The winner's successor was revoked by the losers.
    assert!(f.relay().sessions("u").await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_tokens_and_explicit_revocation() {
    let f = fixture();
    let r = f.relay();
    let now = T0 / 1000;
    r.put_refresh(refresh_record("e", "u", None, now + 1_000_000)).await.unwrap();
    f.clock.advance_secs(1);
    assert!(r.sessions("u").await.unwrap().is_empty(), "expired at exactly expires_at");
    assert_eq!(r.rotate_refresh("e", "hash-e", "n".into(), "h".into(), DAY).await.unwrap(), Rotation::Expired);
    assert_eq!(r.refresh("e").await.unwrap().unwrap().revoked.as_deref(), Some("expired"));

    // revoke one, or the chain.
    r.put_refresh(refresh_record("a", "u", None, now + DAY)).await.unwrap();
    r.put_refresh(refresh_record("b", "u", Some("a"), now + DAY)).await.unwrap();
    r.put_refresh(refresh_record("c", "u", Some("b"), now + DAY)).await.unwrap();
    r.put_refresh(refresh_record("b2", "u", Some("a"), now + DAY)).await.unwrap();
    r.revoke_refresh("c", "logout", false).await.unwrap();
    assert_eq!(session_ids(r, "u").await, strs(&["a", "b", "b2"]));
    r.revoke_refresh("c", "admin", true).await.unwrap();
    assert!(session_ids(r, "u").await.is_empty());
    assert_eq!(r.refresh("c").await.unwrap().unwrap().revoked.as_deref(), Some("logout"));
    assert_eq!(r.refresh("b2").await.unwrap().unwrap().revoked.as_deref(), Some("admin"));
    r.revoke_refresh("unknown", "logout", true).await.unwrap();

    // Reclaimed an hour after expiry, not before.
    f.clock.advance_ns(DAY * 1000 + 3_598 * SEC);
    f.engine.tick().await.unwrap();
    assert!(r.refresh("a").await.unwrap().is_some());
    f.clock.advance_secs(2);
    f.engine.tick().await.unwrap();
    for jti in ["e", "a", "b", "c", "b2"] {
        assert_eq!(r.refresh(jti).await.unwrap(), None, "{jti}");
    }
}

// ---------------------------------------------------------------- deny-list

#[tokio::test]
async fn denied_access_tokens_expire() {
    let f = fixture();
    let r = f.relay();
    let now = T0 / 1000;
    assert!(!r.is_access_token_denied("j").await.unwrap());
    r.deny_access_token("j", now + 10_000_000).await.unwrap();
    assert!(r.is_access_token_denied("j").await.unwrap());
    let f = f.reopen();
    let r = f.relay();
    assert!(r.is_access_token_denied("j").await.unwrap());
    f.clock.advance_secs(10);
    assert!(!r.is_access_token_denied("j").await.unwrap());
    f.engine.tick().await.unwrap();
    assert!(!r.is_access_token_denied("j").await.unwrap());
    // Denying again after reclamation works.
    r.deny_access_token("j", now + 20_000_000).await.unwrap();
    assert!(r.is_access_token_denied("j").await.unwrap());
}

// ---------------------------------------------------------------- idempotency

#[tokio::test]
async fn idempotency_claims_results_and_windows() {
    let f = fixture();
    let r = f.relay();
    assert_eq!(r.idem_claim("u1", "k1", IdemEndpoint::Single).await.unwrap(), IdemClaim::Claimed);
    assert_eq!(
        r.idem_claim("u1", "k1", IdemEndpoint::Bulk).await.unwrap(),
        IdemClaim::InFlight { endpoint: IdemEndpoint::Single }
    );
    // Scoped by user.
    assert_eq!(r.idem_claim("u2", "k1", IdemEndpoint::Bulk).await.unwrap(), IdemClaim::Claimed);

    f.clock.advance_secs(599);
    r.idem_complete("u1", "k1", Bytes::from_static(b"{\"message_id\":\"1-0\"}")).await.unwrap();
    let done =
        IdemClaim::Done { endpoint: IdemEndpoint::Single, body: Bytes::from_static(b"{\"message_id\":\"1-0\"}") };
    assert_eq!(r.idem_claim("u1", "k1", IdemEndpoint::Single).await.unwrap(), done);
    // The stored body has a fresh window from the completion, and survives a restart.
    let f = f.reopen();
    let r = f.relay();
    f.clock.advance_secs(599);
    assert_eq!(r.idem_claim("u1", "k1", IdemEndpoint::Single).await.unwrap(), done);
    assert_eq!(r.idem_wait("u1", "k1", Duration::ZERO).await.unwrap(), Some(done_body()));
    f.clock.advance_secs(1);
    assert_eq!(r.idem_claim("u1", "k1", IdemEndpoint::Bulk).await.unwrap(), IdemClaim::Claimed);

    // An abandoned claim lets the next request through.
    r.idem_abandon("u1", "k1").await.unwrap();
    assert_eq!(r.idem_claim("u1", "k1", IdemEndpoint::Single).await.unwrap(), IdemClaim::Claimed);

    // u2's claim from before the restart expired: reclaimed by the reaper, then claimable.
    f.engine.tick().await.unwrap();
    assert_eq!(r.idem_wait("u2", "k1", Duration::from_secs(5)).await.unwrap(), None);
    assert_eq!(r.idem_claim("u2", "k1", IdemEndpoint::Bulk).await.unwrap(), IdemClaim::Claimed);
}

fn done_body() -> Bytes {
    Bytes::from_static(b"{\"message_id\":\"1-0\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_waiters_see_the_result_or_the_abandonment() {
    let f = Arc::new(fixture());
    let r = Arc::clone(&f.engine.relay);
    assert_eq!(r.idem_claim("u", "k", IdemEndpoint::Single).await.unwrap(), IdemClaim::Claimed);
    let waiter = {
        let r = Arc::clone(&r);
        tokio::spawn(async move { r.idem_wait("u", "k", Duration::from_secs(30)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.idem_complete("u", "k", done_body()).await.unwrap();
    assert_eq!(waiter.await.unwrap(), Some(done_body()));

    assert_eq!(r.idem_claim("u", "k2", IdemEndpoint::Bulk).await.unwrap(), IdemClaim::Claimed);
    let waiter = {
        let r = Arc::clone(&r);
        tokio::spawn(async move { r.idem_wait("u", "k2", Duration::from_secs(30)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.idem_abandon("u", "k2").await.unwrap();
    assert_eq!(waiter.await.unwrap(), None);

    // Nothing happens: the wait ends at its timeout.
    assert_eq!(r.idem_claim("u", "k3", IdemEndpoint::Bulk).await.unwrap(), IdemClaim::Claimed);
    let started = std::time::Instant::now();
    assert_eq!(r.idem_wait("u", "k3", Duration::from_millis(100)).await.unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(100));
    // Unknown keys do not wait.
    assert_eq!(r.idem_wait("u", "nothing", Duration::from_secs(30)).await.unwrap(), None);
}

// ---------------------------------------------------------------- dashboard figures

#[tokio::test]
async fn all_topics_and_topic_stats_come_from_what_the_log_knows() {
    for n in hot_sizes() {
        let opts = RelayOptions { max_messages_per_topic: 3, hot_messages: n };
        let f = fixture_with(opts, 128 << 20);
        const OTHER: &str = "6c194e16-0000-4000-8000-000000000002";
        f.relay().create_topic(OTHER, "zeta", None).await.unwrap();
        f.relay().create_topic(OWNER, "beta", None).await.unwrap();
        f.relay().create_topic(OWNER, "alpha", None).await.unwrap();
        let names = |ts: Vec<RelayTopic>| ts.into_iter().map(|t| (t.owner_id, t.topic_name)).collect::<Vec<_>>();
        assert_eq!(
            names(f.relay().all_topics().await.unwrap()),
            [(OWNER.into(), "alpha".into()), (OWNER.into(), "beta".into()), (OTHER.into(), "zeta".into())]
        );
        assert_eq!(f.relay().topic_stats(OWNER, "alpha").await.unwrap(), RelayTopicStats::default());

        f.publish(OWNER, "alpha", &["{}", "{}"]).await;
        f.clock.advance_ns(5 * MS);
        let last = f.publish(OWNER, "alpha", &["{}", "{}"]).await;
        let want = RelayTopicStats { messages: 3, last_message_at: Some(last[1].timestamp) };
        assert_eq!(f.relay().topic_stats(OWNER, "alpha").await.unwrap(), want, "retained count, newest time");
        assert_eq!(last[1].timestamp, (T0 + 5 * MS) / 1000);

        // After a restart the figures come back from the log itself, without a topic record being needed.
        f.relay().delete_topic(OWNER, "alpha").await.unwrap();
        let f = f.reopen();
        assert_eq!(f.relay().topic_stats(OWNER, "alpha").await.unwrap(), want, "hot tier {n}");
        assert_eq!(names(f.relay().all_topics().await.unwrap()).len(), 2);
    }
}
