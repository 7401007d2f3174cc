//! Replay sessions (compat/flowmesh.md §3.7) against the embedded engine: the state machine, the replay task, and
//! what survives a restart. Message times come from a manual clock; the tasks run on tokio's real timer, so tests
//! wait for a condition (with a deadline) rather than for a fixed time.

use bytes::Bytes;
use herald_engine::replay::{NewReplay, ReplayChange, ReplayEnd, ReplaySession, ReplayStart, ReplayStatus};
use herald_engine::*;
use herald_types::{ErrorCode, ManualClock, ResourceKind, ResourcePath};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

struct Fixture {
    engine: Engine,
    background: Background,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn open_at(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
    let mut cfg = EngineConfig::new(dir.join("data"));
    cfg.auto_create = true;
    cfg.fsync = FsyncPolicy::Always;
    Engine::open(cfg, clock).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let engine = open_at(dir.path(), Arc::clone(&clock));
    let background = engine.start_background();
    Fixture { engine, background, clock, dir }
}

impl Fixture {
    /// A clean shutdown (background and replay tasks stopped, everything synced), then a fresh engine on the same
    /// data directory.
    async fn restart(self) -> Fixture {
        let Fixture { engine, background, clock, dir } = self;
        background.stop().await;
        engine.sync_all().unwrap();
        drop(engine);
        let engine = open_at(dir.path(), Arc::clone(&clock));
        let background = engine.start_background();
        Fixture { engine, background, clock, dir }
    }

    async fn write(&self, stream: &ResourcePath, n: usize) -> Vec<i64> {
        let events =
            (0..n).map(|i| EventIn { payload: Bytes::from(format!("m{i}")), headers: Headers::new() }).collect();
        self.engine.streams.append(stream, events).await.unwrap()
    }

    async fn create(&self, stream: &ResourcePath, start: ReplayStart, end: ReplayEnd, group: &str) -> ReplaySession {
        self.engine.replays.create(stream, NewReplay { start, end, sandbox_group: group.into() }).await.unwrap()
    }

    async fn committed(&self, stream: &ResourcePath, group: &str) -> i64 {
        self.engine.streams.committed_offset(stream, group, 0).await.unwrap()
    }

    /// Polls the session until `done` holds (5 s at most).
    async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&ReplaySession) -> bool) -> ReplaySession {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.engine.replays.get(id).await.unwrap();
            if done(&s) {
                return s;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn stream(name: &str) -> ResourcePath {
    ResourcePath::new("t1", "ns1", ResourceKind::Stream, name).unwrap()
}

fn assert_err<T: std::fmt::Debug>(r: herald_types::Result<T>, code: ErrorCode, message: &str) {
    let e = r.unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (code, message));
}

#[tokio::test]
async fn create_checks_and_reports_the_contract_fields() {
    let f = fixture();
    let s = stream("create");
    f.write(&s, 5).await;
    let r = &f.engine.replays;

    let created = f.create(&s, ReplayStart::Offset(1), ReplayEnd::Offset(3), "_replay_c").await;
    assert_eq!(created.id.len(), 32);
    assert!(created.id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{}", created.id);
    assert_eq!(created.stream, "t1/ns1/stream/create");
    assert_eq!(created.partition, 0);
    assert_eq!((created.start_offset(), created.start_timestamp()), (1, 0));
    assert_eq!((created.end_offset(), created.end_timestamp()), (3, 0));
    assert_eq!(created.sandbox_group, "_replay_c");
    assert_eq!(created.status, ReplayStatus::Created);
    assert_eq!(created.progress.current_offset, 1);
    assert_eq!((created.progress.messages_replayed, created.progress.errors), (0, 0));
    assert_eq!((created.progress.started_at, created.progress.paused_at, created.progress.completed_at), (0, 0, 0));
    assert_eq!((created.created_at, created.updated_at), (T0, T0));
    assert_eq!(r.get(&created.id).await.unwrap(), created);

    let by_time = f.create(&s, ReplayStart::Timestamp(T0), ReplayEnd::Timestamp(T0 + SEC), "_replay_t").await;
    assert_eq!((by_time.start_offset(), by_time.start_timestamp()), (0, T0));
    assert_eq!((by_time.end_offset(), by_time.end_timestamp()), (-1, T0 + SEC));
    assert_eq!(by_time.progress.current_offset, 0);
    let open = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_o").await;
    assert_eq!(open.end_offset(), -1);

    let new = |start, end, group: &str| NewReplay { start, end, sandbox_group: group.into() };
    assert_err(
        r.create(&stream("missing"), new(ReplayStart::Offset(0), ReplayEnd::Open, "debug")).await,
        ErrorCode::NotFound,
        "stream not found: t1/ns1/stream/missing",
    );
    assert_err(
        r.create(&s, new(ReplayStart::Offset(1), ReplayEnd::Offset(0), "debug")).await,
        ErrorCode::InvalidArgument,
        "invalid offset 0: end offset must be >= start offset",
    );
    assert_err(
        r.create(&s, new(ReplayStart::Offset(0), ReplayEnd::Open, "debug")).await,
        ErrorCode::InvalidArgument,
        "sandbox consumer group name must start with _replay_",
    );
    assert_err(
        r.create(&s, new(ReplayStart::Offset(0), ReplayEnd::Open, "")).await,
        ErrorCode::InvalidArgument,
        "sandbox_consumer_group is required",
    );
    assert_err(
        r.create(&s, new(ReplayStart::Offset(-1), ReplayEnd::Open, "_replay_x")).await,
        ErrorCode::InvalidArgument,
        "either start_offset or start_timestamp must be provided",
    );

    // Sorted by creation time (D15), and filtered by exact stream path.
    f.clock.advance_secs(1);
    let other = stream("create-other");
    f.write(&other, 1).await;
    let later = f.create(&other, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_o").await;
    let all: Vec<String> = r.list(None).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(all.len(), 4);
    assert_eq!(all.last(), Some(&later.id));
    let mine: Vec<String> = r.list(Some(&s)).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(mine.len(), 3);
    assert!(!mine.contains(&later.id));
    let as_queue = ResourcePath::new("t1", "ns1", ResourceKind::Queue, "create").unwrap();
    assert!(r.list(Some(&as_queue)).await.unwrap().is_empty());
    f.background.stop().await;
}

#[tokio::test]
async fn state_machine_no_ops_and_illegal_transitions() {
    let f = fixture();
    let s = stream("states");
    f.write(&s, 1).await;
    let r = &f.engine.replays;

    // created → stopped; stop again is a no-op; nothing can start it again.
    let a = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_a").await.id;
    assert_err(r.pause(&a).await, ErrorCode::FailedPrecondition, &format!("replay session {a} is not active"));
    assert_err(r.resume(&a).await, ErrorCode::FailedPrecondition, &format!("replay session {a} is not active"));
    r.stop(&a).await.unwrap();
    assert_eq!(r.get(&a).await.unwrap().status, ReplayStatus::Stopped);
    r.stop(&a).await.unwrap();
    assert_err(
        r.start(&a).await,
        ErrorCode::FailedPrecondition,
        &format!("invalid session state transition: session {a} is stopped, cannot transition to active"),
    );
    assert_err(r.pause(&a).await, ErrorCode::FailedPrecondition, &format!("replay session {a} is not active"));

    // created → active → paused → active → stopped, with the no-ops in between.
    let b = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_b").await.id;
    f.clock.advance_secs(1);
    r.start(&b).await.unwrap();
    let started = r.get(&b).await.unwrap();
    assert_eq!(started.status, ReplayStatus::Active);
    assert_eq!(started.progress.started_at, T0 + SEC);
    assert_err(
        r.start(&b).await,
        ErrorCode::FailedPrecondition,
        &format!("invalid session state transition: session {b} is active, cannot transition to active"),
    );
    r.resume(&b).await.unwrap(); // active → active: no-op
    f.clock.advance_secs(1);
    r.pause(&b).await.unwrap();
    let paused = r.get(&b).await.unwrap();
    assert_eq!(paused.status, ReplayStatus::Paused);
    assert_eq!(paused.progress.paused_at, T0 + 2 * SEC);
    r.pause(&b).await.unwrap(); // paused → paused: no-op
    assert_eq!(r.get(&b).await.unwrap().progress.paused_at, T0 + 2 * SEC);
    // D13: FAILED_PRECONDITION rather than FlowMesh's INTERNAL.
    assert_err(r.start(&b).await, ErrorCode::FailedPrecondition, &format!("replay session {b} is already active"));
    r.resume(&b).await.unwrap();
    let resumed = r.get(&b).await.unwrap();
    assert_eq!((resumed.status, resumed.progress.paused_at), (ReplayStatus::Active, 0));
    r.stop(&b).await.unwrap();
    assert_eq!(r.get(&b).await.unwrap().status, ReplayStatus::Stopped);

    // paused → stopped.
    let c = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_c").await.id;
    r.start(&c).await.unwrap();
    r.pause(&c).await.unwrap();
    r.stop(&c).await.unwrap();
    assert_eq!(r.get(&c).await.unwrap().status, ReplayStatus::Stopped);

    // completed is terminal.
    let d = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Offset(0), "_replay_d").await.id;
    r.start(&d).await.unwrap();
    f.wait_for(&d, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_err(
        r.stop(&d).await,
        ErrorCode::FailedPrecondition,
        &format!("invalid session state transition: session {d} is completed, cannot transition to stopped"),
    );
    assert_err(
        r.start(&d).await,
        ErrorCode::FailedPrecondition,
        &format!("invalid session state transition: session {d} is completed, cannot transition to active"),
    );
    assert_err(r.pause(&d).await, ErrorCode::FailedPrecondition, &format!("replay session {d} is not active"));
    assert_err(r.resume(&d).await, ErrorCode::FailedPrecondition, &format!("replay session {d} is not active"));

    // Delete works in any state and leaves the group's offsets alone; the id is then unknown everywhere.
    r.delete(&d).await.unwrap();
    assert_eq!(f.committed(&s, "_replay_d").await, 0);
    let unknown = "0123456789abcdef0123456789abcdef";
    for id in [d.as_str(), unknown] {
        let msg = format!("replay session not found: {id}");
        assert_err(r.get(id).await, ErrorCode::NotFound, &msg);
        assert_err(r.start(id).await, ErrorCode::NotFound, &msg);
        assert_err(r.pause(id).await, ErrorCode::NotFound, &msg);
        assert_err(r.resume(id).await, ErrorCode::NotFound, &msg);
        assert_err(r.stop(id).await, ErrorCode::NotFound, &msg);
        assert_err(r.delete(id).await, ErrorCode::NotFound, &msg);
    }
    assert_eq!(r.list(None).await.unwrap().len(), 3);
    f.background.stop().await;
}

/// What a listener heard, in order: `(id, status)` for a change, `(id, "deleted")` for a deletion.
fn record_changes(engine: &Engine) -> Arc<parking_lot::Mutex<Vec<(String, String, i64)>>> {
    let heard = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    engine.replays.set_listener(Arc::new(move |change| {
        let entry = match change {
            ReplayChange::Updated(s) => (s.id.clone(), s.status.as_str().to_owned(), s.progress.messages_replayed),
            ReplayChange::Deleted(id) => (id.to_owned(), "deleted".to_owned(), 0),
        };
        log.lock().push(entry);
    }));
    heard
}

#[tokio::test]
async fn the_listener_hears_every_stored_change_from_requests_and_the_task() {
    let f = fixture();
    let s = stream("heard");
    f.write(&s, 3).await;
    let heard = record_changes(&f.engine);
    let r = &f.engine.replays;
    let id = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Offset(2), "_replay_h").await.id;
    assert!(heard.lock().is_empty(), "creation is not a change");
    r.start(&id).await.unwrap();
    f.wait_for(&id, "completion", |s| s.status == ReplayStatus::Completed).await;
    r.delete(&id).await.unwrap();
    let heard_now = heard.lock().clone();
    let statuses: Vec<&str> = heard_now.iter().map(|(_, st, _)| st.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"active"), "{heard_now:?}");
    assert_eq!(&statuses[statuses.len() - 2..], ["completed", "deleted"], "{heard_now:?}");
    assert!(heard_now.iter().all(|(i, _, _)| *i == id));
    // The batch's progress was told before the completion (here in the same change or one before it).
    assert_eq!(heard_now[heard_now.len() - 2].2, 3);

    // Request transitions of another session, including the no-op that changes nothing.
    heard.lock().clear();
    let open = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_o").await.id;
    r.start(&open).await.unwrap();
    r.pause(&open).await.unwrap();
    r.pause(&open).await.unwrap();
    r.resume(&open).await.unwrap();
    r.stop(&open).await.unwrap();
    let statuses: Vec<String> = heard.lock().iter().map(|(_, st, _)| st.clone()).filter(|st| st != "active").collect();
    assert_eq!(statuses, ["paused", "stopped"]);
    f.background.stop().await;
}

#[tokio::test]
async fn bounded_replay_commits_each_offset_and_completes() {
    let f = fixture();
    let s = stream("bounded");
    f.write(&s, 5).await;
    let r = &f.engine.replays;
    let id = f.create(&s, ReplayStart::Offset(1), ReplayEnd::Offset(3), "_replay_b").await.id;
    assert_eq!(f.committed(&s, "_replay_b").await, -1, "nothing is committed before the start");
    f.clock.advance_secs(2);
    r.start(&id).await.unwrap();
    let done = f.wait_for(&id, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_eq!(done.progress.messages_replayed, 3);
    assert_eq!(done.progress.errors, 0);
    assert_eq!(done.progress.current_offset, 4);
    assert_eq!(done.progress.started_at, T0 + 2 * SEC);
    assert_eq!(done.progress.completed_at, T0 + 2 * SEC);
    // The sandbox group is an ordinary group, seen through the same calls as any other.
    let state = f.engine.streams.group_state(&s, "_replay_b", 0).await.unwrap();
    assert_eq!((state.committed_offset, state.latest_offset, state.lag), (3, 4, 1));
    let groups: Vec<String> = f.engine.streams.list_groups(&s).await.unwrap().into_iter().map(|g| g.group).collect();
    assert_eq!(groups, vec!["_replay_b".to_string()]);

    // The end is inclusive and may lie beyond the stream: the replay waits for it.
    let ahead = f.create(&s, ReplayStart::Offset(3), ReplayEnd::Offset(6), "_replay_ahead").await.id;
    r.start(&ahead).await.unwrap();
    let waiting = f.wait_for(&ahead, "catching up", |s| s.progress.current_offset == 5).await;
    assert_eq!((waiting.status, waiting.progress.messages_replayed), (ReplayStatus::Active, 2));
    f.write(&s, 3).await; // offsets 5, 6, 7
    let done = f.wait_for(&ahead, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_eq!((done.progress.messages_replayed, done.progress.current_offset), (4, 7));
    assert_eq!(f.committed(&s, "_replay_ahead").await, 6);
    f.background.stop().await;
}

#[tokio::test]
async fn open_ended_replay_follows_new_writes() {
    let f = fixture();
    let s = stream("follow");
    f.write(&s, 3).await;
    let r = &f.engine.replays;
    let id = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_f").await.id;
    r.start(&id).await.unwrap();
    f.wait_for(&id, "the first three", |s| s.progress.messages_replayed == 3).await;
    assert_eq!(f.committed(&s, "_replay_f").await, 2);
    f.write(&s, 2).await;
    let s2 = f.wait_for(&id, "the new writes", |s| s.progress.messages_replayed == 5).await;
    assert_eq!((s2.status, s2.progress.current_offset), (ReplayStatus::Active, 5));
    assert_eq!(f.committed(&s, "_replay_f").await, 4);
    // More than one batch (100) at once.
    f.write(&s, 250).await;
    f.wait_for(&id, "a large write", |s| s.progress.messages_replayed == 255).await;
    assert_eq!(f.committed(&s, "_replay_f").await, 254);
    assert_eq!(r.get(&id).await.unwrap().status, ReplayStatus::Active);
    f.background.stop().await;
}

#[tokio::test]
async fn pause_really_pauses_and_resume_continues() {
    let f = fixture();
    let s = stream("pause");
    f.write(&s, 2).await;
    let r = &f.engine.replays;
    let id = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_p").await.id;
    r.start(&id).await.unwrap();
    f.wait_for(&id, "the first two", |s| s.progress.messages_replayed == 2).await;
    r.pause(&id).await.unwrap();
    f.write(&s, 3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let paused = r.get(&id).await.unwrap();
    assert_eq!(paused.status, ReplayStatus::Paused);
    assert_eq!((paused.progress.messages_replayed, paused.progress.current_offset), (2, 2));
    assert_eq!(f.committed(&s, "_replay_p").await, 1, "nothing is committed while paused");

    r.resume(&id).await.unwrap();
    let resumed = f.wait_for(&id, "the writes made while paused", |s| s.progress.messages_replayed == 5).await;
    assert_eq!(resumed.progress.current_offset, 5);
    assert_eq!(f.committed(&s, "_replay_p").await, 4);

    // Stop and delete end the task as well.
    r.stop(&id).await.unwrap();
    f.write(&s, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.committed(&s, "_replay_p").await, 4);
    assert_eq!(r.get(&id).await.unwrap().progress.current_offset, 5);
    let other = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_q").await.id;
    r.start(&other).await.unwrap();
    f.wait_for(&other, "catching up", |s| s.progress.messages_replayed == 6).await;
    r.delete(&other).await.unwrap();
    f.write(&s, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.committed(&s, "_replay_q").await, 5);
    f.background.stop().await;
}

#[tokio::test]
async fn timestamp_bounds() {
    let f = fixture();
    let s = stream("times");
    // Offsets 0,1 at T0; 2,3 at T0+10s; 4 at T0+20s.
    f.write(&s, 2).await;
    f.clock.advance_secs(10);
    f.write(&s, 2).await;
    f.clock.advance_secs(10);
    f.write(&s, 1).await;
    let r = &f.engine.replays;

    // A start between two writes begins at the first message written at or after it.
    let from = f.create(&s, ReplayStart::Timestamp(T0 + 5 * SEC), ReplayEnd::Open, "_replay_from").await.id;
    assert_eq!(r.get(&from).await.unwrap().progress.current_offset, 0);
    r.start(&from).await.unwrap();
    let s1 = f.wait_for(&from, "offsets 2..4", |s| s.progress.current_offset == 5).await;
    assert_eq!((s1.status, s1.progress.messages_replayed), (ReplayStatus::Active, 3));
    assert_eq!(f.committed(&s, "_replay_from").await, 4);
    assert_eq!(s1.start_timestamp(), T0 + 5 * SEC);
    assert_eq!(s1.start_offset(), 0);

    // An end time is inclusive: messages written after it are not replayed.
    let window =
        f.create(&s, ReplayStart::Timestamp(T0), ReplayEnd::Timestamp(T0 + 10 * SEC), "_replay_window").await.id;
    r.start(&window).await.unwrap();
    let done = f.wait_for(&window, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_eq!((done.progress.messages_replayed, done.progress.current_offset), (4, 4));
    assert_eq!(f.committed(&s, "_replay_window").await, 3);

    // A start in the future: the replay waits at the end of the stream and skips messages older than the start.
    let future = f.create(&s, ReplayStart::Timestamp(T0 + 30 * SEC), ReplayEnd::Open, "_replay_future").await.id;
    r.start(&future).await.unwrap();
    f.wait_for(&future, "the end of the stream", |s| s.progress.current_offset == 5).await;
    f.write(&s, 1).await; // offset 5 at T0+20s: before the start
    f.wait_for(&future, "skipping offset 5", |s| s.progress.current_offset == 6).await;
    assert_eq!(r.get(&future).await.unwrap().progress.messages_replayed, 0);
    f.clock.advance_secs(10);
    f.write(&s, 1).await; // offset 6 at T0+30s
    let s3 = f.wait_for(&future, "offset 6", |s| s.progress.messages_replayed == 1).await;
    assert_eq!(s3.progress.current_offset, 7);
    assert_eq!(f.committed(&s, "_replay_future").await, 6);

    // An end time that has not come yet: the session waits, then completes once it has passed.
    let until = f.create(&s, ReplayStart::Offset(6), ReplayEnd::Timestamp(T0 + 40 * SEC), "_replay_until").await.id;
    r.start(&until).await.unwrap();
    f.wait_for(&until, "offset 6", |s| s.progress.current_offset == 7).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.get(&until).await.unwrap().status, ReplayStatus::Active);
    f.clock.advance_secs(11);
    let done = f.wait_for(&until, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_eq!((done.progress.messages_replayed, done.progress.completed_at), (1, T0 + 41 * SEC));
    f.background.stop().await;
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let f = fixture();
    let s = stream("restart");
    f.write(&s, 4).await;
    let r = &f.engine.replays;
    let created = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_created").await.id;
    let active = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Open, "_replay_active").await.id;
    let paused = f.create(&s, ReplayStart::Offset(1), ReplayEnd::Offset(5), "_replay_paused").await.id;
    let done = f.create(&s, ReplayStart::Offset(0), ReplayEnd::Offset(1), "_replay_done").await.id;
    r.start(&active).await.unwrap();
    r.start(&paused).await.unwrap();
    r.start(&done).await.unwrap();
    f.wait_for(&active, "catching up", |s| s.progress.messages_replayed == 4).await;
    f.wait_for(&paused, "catching up", |s| s.progress.current_offset == 4).await;
    f.wait_for(&done, "completion", |s| s.status == ReplayStatus::Completed).await;
    r.pause(&paused).await.unwrap();
    let before: Vec<ReplaySession> = r.list(None).await.unwrap();

    f.clock.advance_secs(5);
    let f = f.restart().await;
    let r = &f.engine.replays;
    let after = r.list(None).await.unwrap();
    assert_eq!(after.len(), 4);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.id, b.id, "same sessions in the same (creation) order");
        assert_eq!((a.start, a.end, &a.sandbox_group, &a.stream), (b.start, b.end, &b.sandbox_group, &b.stream));
        assert_eq!(a.progress, b.progress, "progress is stored");
        assert_eq!(a.created_at, b.created_at);
    }
    let get = |id: &str| after.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(get(&created).status, ReplayStatus::Created);
    assert_eq!(get(&done).status, ReplayStatus::Completed);
    // Active when the server stopped: its task is gone, so the session is in error (§3.7).
    let was_active = get(&active);
    assert_eq!(was_active.status, ReplayStatus::Error);
    assert_eq!(was_active.updated_at, T0 + 5 * SEC);
    assert_err(
        r.resume(&active).await,
        ErrorCode::FailedPrecondition,
        &format!("replay session {active} is not active"),
    );
    assert_err(
        r.stop(&active).await,
        ErrorCode::FailedPrecondition,
        &format!("invalid session state transition: session {active} is error, cannot transition to stopped"),
    );
    // Paused: Herald lets it resume where it was.
    let was_paused = get(&paused);
    assert_eq!((was_paused.status, was_paused.progress.current_offset), (ReplayStatus::Paused, 4));
    f.write(&s, 3).await; // offsets 4, 5, 6
    r.resume(&paused).await.unwrap();
    let finished = f.wait_for(&paused, "completion", |s| s.status == ReplayStatus::Completed).await;
    assert_eq!((finished.progress.messages_replayed, finished.progress.current_offset), (5, 6));
    assert_eq!(f.committed(&s, "_replay_paused").await, 5);

    // A created session starts normally after a restart, and a deleted one stays deleted.
    r.start(&created).await.unwrap();
    f.wait_for(&created, "catching up", |s| s.progress.messages_replayed == 7).await;
    r.delete(&done).await.unwrap();
    let f = f.restart().await;
    let r = &f.engine.replays;
    assert_err(r.get(&done).await, ErrorCode::NotFound, &format!("replay session not found: {done}"));
    assert_eq!(r.get(&created).await.unwrap().status, ReplayStatus::Error);
    assert_eq!(r.list(None).await.unwrap().len(), 3);
    f.background.stop().await;
}
