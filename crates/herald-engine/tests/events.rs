//! Addressed events (compat/ensync.md §7) with a manual clock: delivery to competing consumers, the in-flight
//! window, ack timeouts, defer / discard / ack on every state, replay, pause, sessions, and restart recovery.

use herald_engine::events::api::*;
use herald_engine::events::{EventsOptions, access_key_digest};
use herald_engine::*;
use herald_types::{ErrorCode, ManualClock};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;
const A: PublicKey = [0xa; 32];
const B: PublicKey = [0xb; 32];
const C: PublicKey = [0xc; 32];

fn identities() -> Vec<IdentityConfig> {
    [("key-A", A), ("key-B", B), ("key-C", C)]
        .into_iter()
        .map(|(k, pk)| IdentityConfig { name: k.into(), access_key_sha256: access_key_digest(k), public_key: pk })
        .collect()
}

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
    let mut cfg = EngineConfig::new(dir.join("data"));
    cfg.fsync = FsyncPolicy::Always;
    cfg.events = EventsOptions { identities: identities(), ack_timeout: Duration::from_secs(5), ..Default::default() };
    Engine::open(cfg, clock).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    Fixture { engine: open(dir.path(), Arc::clone(&clock)), clock, dir }
}

impl Fixture {
    fn ev(&self) -> &dyn Events {
        &*self.engine.events
    }

    fn reopen(self) -> Fixture {
        self.engine.sync_all().unwrap();
        let Fixture { engine, clock, dir } = self;
        drop(engine);
        Fixture { engine: open(dir.path(), Arc::clone(&clock)), clock, dir }
    }

    async fn connect(&self, key: &str) -> String {
        self.ev().connect(key, Transport::Grpc).await.unwrap().client_id
    }

    async fn publish(&self, from: &str, to: PublicKey, name: &str, payload: &str) -> Arc<StoredEvent> {
        let e = NewEvent {
            name: name.into(),
            recipient: to,
            payload: payload.into(),
            metadata: "{\"k\": \"v\"}".into(),
            payload_metadata: None,
        };
        self.ev().publish(from, e).await.unwrap()
    }

    /// Moves time and runs the timers.
    async fn advance_ms(&self, ms: i64) {
        self.clock.advance_ns(ms * MS);
        self.engine.tick().await.unwrap();
    }
}

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Arc<StoredEvent>>>,
    closed: Mutex<bool>,
    refuse: Mutex<bool>,
}

impl EventSink for Sink {
    fn deliver(&self, e: Arc<StoredEvent>) -> bool {
        if *self.refuse.lock() {
            return false;
        }
        self.got.lock().push(e);
        true
    }
    fn close(&self) {
        *self.closed.lock() = true;
    }
}

impl Sink {
    fn payloads(&self) -> Vec<String> {
        self.got.lock().iter().map(|e| e.payload.clone()).collect()
    }
    fn last(&self) -> Arc<StoredEvent> {
        Arc::clone(self.got.lock().last().expect("a delivery"))
    }
}

fn code(r: Result<impl std::fmt::Debug, herald_types::HeraldError>) -> (ErrorCode, String) {
    let e = r.unwrap_err();
    (e.code, e.message)
}

#[tokio::test]
async fn sessions_and_identities() {
    let f = fixture();
    let s1 = f.ev().connect("key-B", Transport::Grpc).await.unwrap();
    let s2 = f.ev().connect("key-B", Transport::Grpc).await.unwrap();
    assert_ne!(s1.client_id, s2.client_id);
    assert_eq!((s1.identity, s2.identity), (B, B));
    assert_eq!(s1.client_id.len(), 43);
    assert_eq!(
        code(f.ev().connect("bad-key", Transport::Grpc).await),
        (ErrorCode::Unauthenticated, "invalid access key".into())
    );
    assert!(f.ev().heartbeat(&s1.client_id).await.is_ok());
    assert_eq!(code(f.ev().heartbeat("nope").await).1, "unknown client");
}

#[tokio::test]
async fn publish_validates_and_delivers_in_block_order() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let b = f.connect("key-B").await;
    let bad = |name: &str, to: PublicKey, payload: &str, metadata: &str| NewEvent {
        name: name.into(),
        recipient: to,
        payload: payload.into(),
        metadata: metadata.into(),
        payload_metadata: None,
    };
    assert_eq!(code(f.ev().publish(&a, bad("n", [0xee; 32], "p", "")).await).1, "recipient not found");
    assert_eq!(code(f.ev().publish(&a, bad("n", B, "p", "{oops")).await).1, "invalid metadata");
    assert_eq!(code(f.ev().publish(&a, bad("", B, "p", "")).await).0, ErrorCode::InvalidArgument);
    assert_eq!(code(f.ev().publish(&a, bad("n", B, &"x".repeat(1_000_001), "")).await).1, "payload too large");
    assert_eq!(code(f.ev().publish("nope", bad("n", B, "p", "")).await).1, "unknown client");

    // A backlog published before anyone subscribes is delivered in order, one at a time.
    let ids = [f.publish(&a, B, "orders", "1").await, f.publish(&a, B, "orders", "2").await];
    assert!(ids[0].block < ids[1].block && ids[0].block >= 1);
    assert_eq!((ids[0].sender, ids[0].recipient), (A, B));
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b, "orders", sink.clone()).await.unwrap();
    assert_eq!(sink.payloads(), ["1"]);
    let got = sink.last();
    assert_eq!((got.metadata.as_str(), got.logged_at), ("{\"k\": \"v\"}", T0 / MS));
    f.ev().ack(&b, &got.idem, "orders").await.unwrap();
    assert_eq!(sink.payloads(), ["1", "2"]);
    // Other names and other recipients are other queues.
    f.publish(&a, B, "other", "x").await;
    f.publish(&a, C, "orders", "y").await;
    f.ev().ack(&b, &sink.last().idem, "").await.unwrap();
    assert_eq!(sink.payloads(), ["1", "2"]);
    let stats = f.ev().stats().await.unwrap();
    assert_eq!((stats.open_events, stats.published_total, stats.acked_total), (2, 4, 2));
}

#[tokio::test]
async fn ack_timeout_redelivers_and_terminal_states_follow_the_table() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let b = f.connect("key-B").await;
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b, "n", sink.clone()).await.unwrap();
    let e = f.publish(&a, B, "n", "p").await;
    assert_eq!(sink.payloads(), ["p"]);
    f.advance_ms(4999).await;
    assert_eq!(sink.got.lock().len(), 1);
    f.advance_ms(1).await;
    assert_eq!(sink.got.lock().len(), 2, "redelivered after the ack timeout");
    assert_eq!(*sink.last(), *e, "same idem, block, payload");

    // Wrong name or another identity: not found.
    assert_eq!(code(f.ev().ack(&b, &e.idem, "other").await).1, "event not found");
    assert_eq!(code(f.ev().ack(&a, &e.idem, "").await).1, "event not found");
    assert_eq!(code(f.ev().ack(&b, "12-zz", "").await).1, "event not found");
    f.ev().ack(&b, &e.idem, "n").await.unwrap();
    f.ev().ack(&b, &e.idem, "n").await.unwrap(); // idempotent
    assert_eq!(code(f.ev().defer(&b, &e.idem, "n", 1000).await).1, "already acknowledged");
    assert_eq!(code(f.ev().discard(&b, &e.idem, "n").await).1, "already acknowledged");

    let d = f.publish(&a, B, "n", "q").await;
    f.ev().discard(&b, &d.idem, "n").await.unwrap();
    f.ev().discard(&b, &d.idem, "n").await.unwrap(); // idempotent
    assert_eq!(code(f.ev().ack(&b, &d.idem, "n").await).1, "already discarded");
    assert_eq!(code(f.ev().defer(&b, &d.idem, "n", 1000).await).1, "already discarded");
    // Replay works in every state and changes nothing.
    assert_eq!(f.ev().replay(&b, &d.idem, "n").await.unwrap().payload, "q");
    assert_eq!(f.ev().replay(&b, &e.idem, "").await.unwrap().payload, "p");
    assert_eq!(code(f.ev().replay(&a, &e.idem, "").await).1, "event not found");
    assert_eq!(code(f.ev().replay(&b, &e.idem, "x").await).1, "event not found");
    f.advance_ms(20_000).await;
    assert_eq!(sink.payloads(), ["p", "p", "q"], "nothing after ack or discard");
}

#[tokio::test]
async fn defer_waits_and_ack_wins() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let b = f.connect("key-B").await;
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b, "n", sink.clone()).await.unwrap();
    let e = f.publish(&a, B, "n", "1").await;
    f.publish(&a, B, "n", "2").await;
    assert_eq!(code(f.ev().defer(&b, &e.idem, "n", 86_400_001).await).1, "invalid delay");
    assert_eq!(code(f.ev().defer(&b, &e.idem, "n", -1).await).1, "invalid delay");
    let until = f.ev().defer(&b, &e.idem, "n", 2000).await.unwrap();
    assert_eq!(until, T0 / MS + 2000);
    assert_eq!(sink.payloads(), ["1", "2"], "the window slot went to the next event");
    f.ev().ack(&b, &sink.last().idem, "n").await.unwrap();
    f.advance_ms(1999).await;
    assert_eq!(sink.got.lock().len(), 2);
    f.advance_ms(1).await;
    assert_eq!(sink.payloads(), ["1", "2", "1"], "redelivered when the deferral ends");
    // A deferred event acked before its time is not delivered again.
    f.ev().defer(&b, &e.idem, "n", 1000).await.unwrap();
    f.ev().ack(&b, &e.idem, "n").await.unwrap();
    f.advance_ms(5000).await;
    assert_eq!(sink.got.lock().len(), 3);
    // Defer 0: pending again at once.
    let z = f.publish(&a, B, "n", "z").await;
    f.ev().defer(&b, &z.idem, "n", 0).await.unwrap();
    assert_eq!(sink.payloads().last().map(String::as_str), Some("z"));
    assert_eq!(sink.got.lock().len(), 5);
}

#[tokio::test]
async fn competing_consumers_pause_and_supersede() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let (b1, b2) = (f.connect("key-B").await, f.connect("key-B").await);
    let (s1, s2) = (Arc::new(Sink::default()), Arc::new(Sink::default()));
    // Pause before subscribe is remembered.
    f.ev().pause(&b1, "n").await.unwrap();
    f.ev().subscribe(&b1, "n", s1.clone()).await.unwrap();
    f.ev().subscribe(&b2, "n", s2.clone()).await.unwrap();
    for i in 0..4 {
        let e = f.publish(&a, B, "n", &i.to_string()).await;
        f.ev().ack(&b2, &e.idem, "n").await.unwrap();
    }
    assert_eq!((s1.got.lock().len(), s2.got.lock().len()), (0, 4));
    f.ev().resume(&b1, "n").await.unwrap();
    for i in 0..10 {
        let e = f.publish(&a, B, "n", &format!("r{i}")).await;
        f.ev().ack(&b1, &e.idem, "n").await.unwrap(); // any session of the identity may ack
    }
    let (n1, n2) = (s1.got.lock().len(), s2.got.lock().len() - 4);
    assert_eq!(n1 + n2, 10);
    assert!(n1 > 0 && n2 > 0, "both sessions received some: {n1} / {n2}");

    // A newer sink for the same pair supersedes the older one and keeps its in-flight event.
    let e = f.publish(&a, B, "n", "held").await;
    let holder = if s1.last().idem == e.idem { &b1 } else { &b2 };
    let old = if holder == &b1 { &s1 } else { &s2 };
    let newer = Arc::new(Sink::default());
    f.ev().subscribe(holder, "n", newer.clone()).await.unwrap();
    assert!(*old.closed.lock(), "the older stream is ended");
    assert!(newer.got.lock().is_empty(), "the in-flight event is not re-sent");
    f.ev().ack(holder, &e.idem, "n").await.unwrap();

    // Unsubscribe releases in-flight events to the other session at once and clears the pause flag.
    let other = if holder == &b1 { &b2 } else { &b1 };
    let other_sink = if holder == &b1 { &s2 } else { &s1 };
    f.ev().pause(other, "n").await.unwrap();
    let x = f.publish(&a, B, "n", "x").await;
    assert_eq!(newer.last().idem, x.idem);
    f.ev().resume(other, "n").await.unwrap();
    f.ev().unsubscribe(holder, "n").await.unwrap();
    assert!(*newer.closed.lock());
    assert_eq!(other_sink.last().idem, x.idem, "released to the other subscription");
}

#[tokio::test]
async fn a_refusing_sink_loses_its_subscription_and_its_event() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let (b1, b2) = (f.connect("key-B").await, f.connect("key-B").await);
    let dead = Arc::new(Sink::default());
    *dead.refuse.lock() = true;
    let live = Arc::new(Sink::default());
    f.ev().subscribe(&b1, "n", dead.clone()).await.unwrap();
    f.ev().subscribe(&b2, "n", live.clone()).await.unwrap();
    f.publish(&a, B, "n", "1").await;
    f.publish(&a, B, "n", "2").await;
    assert_eq!(live.payloads(), ["1"]);
    f.ev().ack(&b2, &live.last().idem, "n").await.unwrap();
    assert_eq!(live.payloads(), ["1", "2"]);
}

#[tokio::test]
async fn ending_a_session_releases_its_events() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let ws = f.ev().connect("key-B", Transport::WebSocket).await.unwrap().client_id;
    let b = f.connect("key-B").await;
    let s_ws = Arc::new(Sink::default());
    f.ev().subscribe(&ws, "n", s_ws.clone()).await.unwrap();
    let e = f.publish(&a, B, "n", "1").await;
    assert_eq!(s_ws.last().idem, e.idem);
    let s_b = Arc::new(Sink::default());
    f.ev().subscribe(&b, "n", s_b.clone()).await.unwrap();
    assert!(s_b.got.lock().is_empty());
    f.ev().end_session(&ws).await;
    assert_eq!(s_b.last().idem, e.idem);
    assert_eq!(code(f.ev().heartbeat(&ws).await).1, "unknown client");
}

#[tokio::test]
async fn everything_but_in_flight_state_survives_a_restart() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let b = f.connect("key-B").await;
    let acked = f.publish(&a, B, "n", "acked").await;
    let discarded = f.publish(&a, B, "n", "discarded").await;
    let deferred = f.publish(&a, B, "n", "deferred").await;
    let in_flight = f.publish(&a, B, "n", "in-flight").await;
    let pending = f.publish(&a, B, "n", "pending").await;
    f.ev().ack(&b, &acked.idem, "").await.unwrap();
    f.ev().discard(&b, &discarded.idem, "").await.unwrap();
    f.ev().defer(&b, &deferred.idem, "", 10_000).await.unwrap();
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b, "n", sink.clone()).await.unwrap();
    assert_eq!(sink.last().idem, in_flight.idem);
    f.advance_ms(1500).await; // the watermark is written back

    let f = f.reopen();
    // The gRPC sessions are still valid.
    f.ev().heartbeat(&a).await.unwrap();
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b, "n", sink.clone()).await.unwrap();
    assert_eq!(sink.payloads(), ["in-flight"], "in flight before the restart: pending again, lowest block first");
    f.ev().ack(&b, &sink.last().idem, "").await.unwrap();
    assert_eq!(sink.payloads(), ["in-flight", "pending"]);
    f.ev().ack(&b, &pending.idem, "").await.unwrap();
    f.advance_ms(8_000).await;
    assert_eq!(sink.payloads(), ["in-flight", "pending"], "the deferral is kept");
    f.advance_ms(1_000).await;
    assert_eq!(sink.payloads(), ["in-flight", "pending", "deferred"]);
    assert_eq!(code(f.ev().ack(&b, &discarded.idem, "").await).1, "already discarded");
    f.ev().ack(&b, &acked.idem, "").await.unwrap();
    assert_eq!(f.ev().replay(&b, &acked.idem, "").await.unwrap().payload, "acked");
    // New events continue the block sequence.
    let next = f.publish(&a, B, "m", "next").await;
    assert_eq!(next.block, pending.block + 1);
}

#[tokio::test]
async fn idle_grpc_sessions_expire_unless_subscribed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let mut cfg = EngineConfig::new(dir.path().join("data"));
    cfg.events =
        EventsOptions { identities: identities(), session_idle_ttl: Duration::from_secs(90), ..Default::default() };
    let engine = Engine::open(cfg, Arc::clone(&clock) as Arc<dyn herald_types::Clock>).unwrap();
    let ev = &*engine.events;
    let idle = ev.connect("key-B", Transport::Grpc).await.unwrap().client_id;
    let busy = ev.connect("key-B", Transport::Grpc).await.unwrap().client_id;
    let sink = Arc::new(Sink::default());
    ev.subscribe(&busy, "n", sink.clone()).await.unwrap();
    clock.advance_ns(91_000 * MS);
    engine.tick().await.unwrap();
    assert_eq!(code(ev.heartbeat(&idle).await).1, "unknown client");
    ev.heartbeat(&busy).await.unwrap();
    assert!(!*sink.closed.lock());
}

#[tokio::test]
async fn recipients_show_pending_in_flight_deferred_and_sessions() {
    let f = fixture();
    let a = f.connect("key-A").await;
    let b1 = f.connect("key-B").await;
    let _b2 = f.connect("key-B").await;
    for i in 0..4 {
        f.publish(&a, B, "orders", &format!("p{i}")).await;
    }
    let snap = |pk, pending, in_flight, deferred, sessions| RecipientSnapshot {
        recipient: pk,
        pending,
        in_flight,
        deferred,
        sessions,
    };
    assert_eq!(
        f.ev().recipients().await.unwrap(),
        [snap(A, 0, 0, 0, 1), snap(B, 4, 0, 0, 2), snap(C, 0, 0, 0, 0)],
        "every registered identity, in key order"
    );
    let sink = Arc::new(Sink::default());
    f.ev().subscribe(&b1, "orders", sink.clone()).await.unwrap();
    assert_eq!(f.ev().recipients().await.unwrap()[1], snap(B, 3, 1, 0, 2), "a window of one");
    let first = sink.last();
    f.ev().defer(&b1, &first.idem, "orders", 10_000).await.unwrap();
    assert_eq!(f.ev().recipients().await.unwrap()[1], snap(B, 2, 1, 1, 2), "the next one went out");
    f.ev().ack(&b1, &sink.last().idem, "orders").await.unwrap();
    assert_eq!(f.ev().recipients().await.unwrap()[1], snap(B, 1, 1, 1, 2));

    // After a restart: in-flight events are pending again, deferrals and gRPC sessions are kept.
    let f = f.reopen();
    assert_eq!(f.ev().recipients().await.unwrap()[1], snap(B, 2, 0, 1, 2));
    f.advance_ms(10_000).await;
    assert_eq!(f.ev().recipients().await.unwrap()[1], snap(B, 3, 0, 0, 2), "the deferral ended");
}
