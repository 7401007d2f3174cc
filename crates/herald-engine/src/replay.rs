//! Replay sessions (compat/flowmesh.md §1.8, §3.7): walk a range of a stream and commit every message's offset to a
//! sandbox consumer group (`_replay_…`), so a consumer can reprocess history without touching production groups.
//!
//! [`Replays`] is the service trait front-ends call. The embedded implementation keeps every session in memory and
//! in fjall (`replay_sessions`, layout in [`record`]); each `active` session has one tokio task ([`task`]) that runs
//! independently of the request that started it (D14) until the session completes, fails, is paused, stopped or
//! deleted, or the engine shuts down.
//!
//! Observing: a front-end that wants to follow sessions (the live feed) registers one [`ReplayListener`] with
//! [`Replays::set_listener`]. It is called after every stored change — a request's transition, a replay batch's
//! progress, the task's completion or failure — and after a deletion, whichever transport or task made it, so the
//! engine needs to know nothing about who listens. It runs under the session's lock (so calls for one session arrive
//! in the order of the changes) and must therefore not block.
//!
//! Locking: every change to a session (a request's transition or a batch of the task) happens under the session's
//! async `control` mutex, so a pause that has returned has really stopped the replay: the task either finished its
//! batch before the pause took the lock, or finds itself superseded when it gets the lock. Reads (`get`, `list`)
//! only take the short `view` lock and never wait for a batch.

mod record;
mod task;

use crate::api::Streams;
use crate::store::{SharedStore, fjall_err};
use async_trait::async_trait;
use herald_types::{Clock, HeraldError, ResourceKind, ResourcePath, Result};
use parking_lot::{Mutex, RwLock};
use record::Record;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::JoinHandle;

/// Sandbox consumer groups must start with this (§3.7).
pub const SANDBOX_PREFIX: &str = "_replay_";

/// A session's state (§3.7 state machine). `stopped`, `completed` and `error` are terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStatus {
    Created,
    Active,
    Paused,
    Stopped,
    Completed,
    Error,
}

impl ReplayStatus {
    /// The wire name (`ReplaySession.status`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayStatus::Created => "created",
            ReplayStatus::Active => "active",
            ReplayStatus::Paused => "paused",
            ReplayStatus::Stopped => "stopped",
            ReplayStatus::Completed => "completed",
            ReplayStatus::Error => "error",
        }
    }
}

impl std::fmt::Display for ReplayStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a replay begins: an offset, or the first message written at or after a time (Unix ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStart {
    Offset(i64),
    Timestamp(i64),
}

impl ReplayStart {
    /// The contract's rule for the request fields (§3.7): a positive `start_timestamp` wins, else a non-negative
    /// `start_offset`. A front-end passes `-1`/`0` for a field the client did not send.
    pub fn from_fields(start_offset: i64, start_timestamp: i64) -> Result<ReplayStart> {
        if start_timestamp > 0 {
            Ok(ReplayStart::Timestamp(start_timestamp))
        } else if start_offset >= 0 {
            Ok(ReplayStart::Offset(start_offset))
        } else {
            Err(HeraldError::invalid("either start_offset or start_timestamp must be provided"))
        }
    }
}

/// Where a replay ends (inclusive), or `Open`: keep following new messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayEnd {
    Open,
    Offset(i64),
    Timestamp(i64),
}

impl ReplayEnd {
    /// The contract's rule (§3.7): a positive `end_timestamp`, else a non-negative `end_offset`, else open-ended.
    /// Over gRPC an unset `end_offset` is 0 and therefore means "stop after offset 0".
    pub fn from_fields(end_offset: i64, end_timestamp: i64) -> ReplayEnd {
        if end_timestamp > 0 {
            ReplayEnd::Timestamp(end_timestamp)
        } else if end_offset >= 0 {
            ReplayEnd::Offset(end_offset)
        } else {
            ReplayEnd::Open
        }
    }
}

/// What a session has done so far. Times are Unix ns, 0 when not set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayProgress {
    /// The next offset the replay will look at.
    pub current_offset: i64,
    pub messages_replayed: i64,
    /// Commits to the sandbox group that failed.
    pub errors: i64,
    pub started_at: i64,
    pub paused_at: i64,
    pub completed_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplaySession {
    /// 32 lowercase hex characters.
    pub id: String,
    /// The stream's resource path, `tenant/namespace/stream/name`.
    pub stream: String,
    /// Always 0: FlowMesh writes only partition 0.
    pub partition: i32,
    pub start: ReplayStart,
    pub end: ReplayEnd,
    pub sandbox_group: String,
    pub status: ReplayStatus,
    pub progress: ReplayProgress,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ReplaySession {
    /// `start_offset` as FlowMesh reports it: 0 when the start is a timestamp.
    pub fn start_offset(&self) -> i64 {
        match self.start {
            ReplayStart::Offset(o) => o,
            ReplayStart::Timestamp(_) => 0,
        }
    }

    /// 0 when the start is an offset.
    pub fn start_timestamp(&self) -> i64 {
        match self.start {
            ReplayStart::Timestamp(t) => t,
            ReplayStart::Offset(_) => 0,
        }
    }

    /// −1 when open-ended or timestamp-bounded.
    pub fn end_offset(&self) -> i64 {
        match self.end {
            ReplayEnd::Offset(o) => o,
            _ => -1,
        }
    }

    /// 0 when not set.
    pub fn end_timestamp(&self) -> i64 {
        match self.end {
            ReplayEnd::Timestamp(t) => t,
            _ => 0,
        }
    }
}

/// What a [`ReplayListener`] is told.
#[derive(Clone, Copy, Debug)]
pub enum ReplayChange<'a> {
    /// The session as just stored (status, progress or both changed).
    Updated(&'a ReplaySession),
    /// The session with this id was deleted.
    Deleted(&'a str),
}

/// Called after every stored change of a session; must not block (it runs under the session's lock).
pub type ReplayListener = Arc<dyn Fn(ReplayChange<'_>) + Send + Sync>;

/// A session to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReplay {
    pub start: ReplayStart,
    pub end: ReplayEnd,
    pub sandbox_group: String,
}

#[async_trait]
pub trait Replays: Send + Sync {
    /// Checks, in the contract's order: the stream exists, the end is not before the start (both offsets), the
    /// sandbox group starts with `_replay_`. The session starts in `created`.
    async fn create(&self, stream: &ResourcePath, spec: NewReplay) -> Result<ReplaySession>;
    async fn get(&self, id: &str) -> Result<ReplaySession>;
    /// All sessions, or those of one stream path; sorted by `created_at` (D15), then id.
    async fn list(&self, stream: Option<&ResourcePath>) -> Result<Vec<ReplaySession>>;
    /// `created → active`; starts the replay task.
    async fn start(&self, id: &str) -> Result<()>;
    /// `active → paused` (stops the task); a no-op when paused.
    async fn pause(&self, id: &str) -> Result<()>;
    /// `paused → active` (starts a task again); a no-op when active.
    async fn resume(&self, id: &str) -> Result<()>;
    /// `created | active | paused → stopped`; a no-op when stopped.
    async fn stop(&self, id: &str) -> Result<()>;
    /// Stops the task and forgets the session. The sandbox group's offsets stay.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Registers the one listener told about every later change (replacing any previous one). Creation is not a
    /// change: the creator has the session in hand.
    fn set_listener(&self, listener: ReplayListener);
}

fn session_not_found(id: &str) -> HeraldError {
    HeraldError::not_found(format!("replay session not found: {id}"))
}

fn illegal_transition(id: &str, from: ReplayStatus, to: ReplayStatus) -> HeraldError {
    HeraldError::failed_precondition(format!(
        "invalid session state transition: session {id} is {from}, cannot transition to {to}"
    ))
}

/// Pause and resume on a session without a running task (D13: FAILED_PRECONDITION, FlowMesh's text).
fn not_active(id: &str) -> HeraldError {
    HeraldError::failed_precondition(format!("replay session {id} is not active"))
}

/// What the replay tasks share with the service.
struct Shared {
    streams: Arc<dyn Streams>,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    listener: RwLock<Option<ReplayListener>>,
}

impl Shared {
    /// Tells the listener, if any, the session's current state. Callers hold the session's `control` lock.
    fn notify(&self, entry: &Entry) {
        if let Some(listener) = self.listener.read().as_ref() {
            listener(ReplayChange::Updated(&entry.session()));
        }
    }

    async fn save(&self, key: &[u8; 16], rec: &Record) -> Result<()> {
        let mut batch = self.store.batch();
        batch.insert(&self.store.replay_sessions, key.to_vec(), rec.encode());
        self.store.commit_durable(batch).await
    }

    /// Applies `change` to a copy of the session, stores it, and only then shows it: a failed write changes
    /// nothing. Callers hold the session's `control` lock.
    async fn commit(&self, entry: &Entry, change: impl FnOnce(&mut Record)) -> Result<()> {
        let mut rec = entry.view.lock().clone();
        change(&mut rec);
        rec.updated_at = self.clock.now_ns();
        self.save(&entry.key, &rec).await?;
        *entry.view.lock() = rec;
        self.notify(entry);
        Ok(())
    }
}

/// One session in memory.
struct Entry {
    id: String,
    key: [u8; 16],
    stream: ResourcePath,
    /// The current record, for readers; changed only by holders of `control`.
    view: Mutex<Record>,
    control: tokio::sync::Mutex<Control>,
}

impl Entry {
    fn status(&self) -> ReplayStatus {
        self.view.lock().status
    }

    fn session(&self) -> ReplaySession {
        self.view.lock().to_session(&self.id)
    }
}

struct Control {
    /// Bumped whenever the running task is replaced or told to stop; a task whose generation is stale exits.
    generation: u64,
    task: Option<JoinHandle<()>>,
    deleted: bool,
}

impl Control {
    /// Whether the task started as `generation` is still the session's task.
    fn owned_by(&self, generation: u64) -> bool {
        !self.deleted && self.generation == generation
    }

    /// Stops the running task, if any. It may be waiting for this very lock, so it is not awaited: its stale
    /// generation makes it exit at once when it gets the lock.
    fn halt(&mut self) {
        self.generation += 1;
        if let Some(h) = self.task.take() {
            h.abort();
        }
    }
}

pub(crate) struct EmbeddedReplays {
    shared: Arc<Shared>,
    sessions: RwLock<HashMap<String, Arc<Entry>>>,
    /// Set by [`EmbeddedReplays::shutdown`]: no task is started after it.
    closed: AtomicBool,
}

impl EmbeddedReplays {
    /// Loads every stored session. Sessions that were `active` when the server stopped come back as `error`
    /// (their task is gone and the contract says so); `paused` ones can be resumed.
    pub fn open(streams: Arc<dyn Streams>, store: SharedStore, clock: Arc<dyn Clock>) -> Result<EmbeddedReplays> {
        let now = clock.now_ns();
        let mut sessions = HashMap::new();
        let mut batch = store.batch();
        let mut interrupted = 0usize;
        for item in store.replay_sessions.iter() {
            let (k, v) = item.into_inner().map_err(fjall_err("reading replay sessions"))?;
            let key: [u8; 16] = k.as_ref().try_into().map_err(|_| corrupt(&k))?;
            let mut rec = Record::decode(&v).ok_or_else(|| corrupt(&k))?;
            let stream = ResourcePath::parse_joined(&rec.stream).map_err(|_| corrupt(&k))?;
            let id = herald_types::id::to_hex(&key);
            if rec.status == ReplayStatus::Active {
                rec.status = ReplayStatus::Error;
                rec.updated_at = now;
                batch.insert(&store.replay_sessions, key.to_vec(), rec.encode());
                tracing::warn!(session = %id, stream = %rec.stream, "replay session was active when the server stopped; marked error");
                interrupted += 1;
            }
            let entry = Entry {
                id: id.clone(),
                key,
                stream,
                view: Mutex::new(rec),
                control: tokio::sync::Mutex::new(Control { generation: 0, task: None, deleted: false }),
            };
            sessions.insert(id, Arc::new(entry));
        }
        if interrupted > 0 {
            store.commit(batch)?;
        }
        Ok(EmbeddedReplays {
            shared: Arc::new(Shared { streams, store, clock, listener: RwLock::new(None) }),
            sessions: RwLock::new(sessions),
            closed: AtomicBool::new(false),
        })
    }

    /// Stops every replay task (engine shutdown). Each is stopped between batches, so its progress is stored; the
    /// sessions stay `active` on disk and therefore come back as `error` after a restart.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<Entry>> = self.sessions.read().values().cloned().collect();
        let mut handles = Vec::new();
        for entry in entries {
            let mut ctl = entry.control.lock().await;
            ctl.generation += 1;
            if let Some(h) = ctl.task.take() {
                h.abort();
                handles.push(h);
            }
        }
        for h in handles {
            let _ = h.await;
        }
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>> {
        self.sessions.read().get(id).cloned().ok_or_else(|| session_not_found(id))
    }

    /// Starts the session's task (replacing any previous one). Callers hold `control` and have just set `active`.
    fn spawn(&self, entry: &Arc<Entry>, ctl: &mut Control) {
        ctl.halt();
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let run = task::run(Arc::clone(&self.shared), Arc::clone(entry), ctl.generation);
        ctl.task = Some(tokio::spawn(run));
    }
}

fn corrupt(key: &[u8]) -> HeraldError {
    HeraldError::internal(format!("corrupt replay session record {}", hex_key(key)))
}

fn hex_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a new session's bounds and group, in the contract's order after the stream's existence.
fn check_spec(spec: &NewReplay) -> Result<()> {
    match spec.start {
        ReplayStart::Offset(o) if o < 0 => {
            return Err(HeraldError::invalid("either start_offset or start_timestamp must be provided"));
        }
        ReplayStart::Timestamp(t) if t <= 0 => {
            return Err(HeraldError::invalid("either start_offset or start_timestamp must be provided"));
        }
        _ => {}
    }
    match spec.end {
        ReplayEnd::Offset(e) if e < 0 => return Err(HeraldError::invalid("end_offset cannot be negative")),
        ReplayEnd::Timestamp(t) if t <= 0 => return Err(HeraldError::invalid("end_timestamp must be positive")),
        _ => {}
    }
    if let (ReplayStart::Offset(start), ReplayEnd::Offset(end)) = (spec.start, spec.end)
        && end < start
    {
        return Err(HeraldError::invalid(format!("invalid offset {end}: end offset must be >= start offset")));
    }
    if !spec.sandbox_group.starts_with(SANDBOX_PREFIX) {
        return Err(HeraldError::invalid("sandbox consumer group name must start with _replay_"));
    }
    // D22: a group name with `/` cannot be addressed through the HTTP routes.
    if spec.sandbox_group.contains('/') {
        return Err(HeraldError::invalid("sandbox_consumer_group cannot contain '/'"));
    }
    Ok(())
}

#[async_trait]
impl Replays for EmbeddedReplays {
    async fn create(&self, stream: &ResourcePath, spec: NewReplay) -> Result<ReplaySession> {
        if spec.sandbox_group.is_empty() {
            return Err(HeraldError::invalid("sandbox_consumer_group is required"));
        }
        stream.expect_kind(ResourceKind::Stream)?;
        // Existence first (NOT_FOUND `stream not found: <path>`), as the contract orders the checks.
        self.shared.streams.latest_offset(stream, 0).await?;
        check_spec(&spec)?;
        let key = herald_types::id::new_id_bytes();
        let id = herald_types::id::to_hex(&key);
        let now = self.shared.clock.now_ns();
        let current_offset = match spec.start {
            ReplayStart::Offset(o) => o,
            ReplayStart::Timestamp(_) => 0,
        };
        let rec = Record {
            stream: stream.to_string(),
            start: spec.start,
            end: spec.end,
            sandbox_group: spec.sandbox_group,
            status: ReplayStatus::Created,
            progress: ReplayProgress { current_offset, ..ReplayProgress::default() },
            created_at: now,
            updated_at: now,
            start_found: matches!(spec.start, ReplayStart::Offset(_)),
        };
        self.shared.save(&key, &rec).await?;
        let session = rec.to_session(&id);
        let entry = Entry {
            id: id.clone(),
            key,
            stream: stream.clone(),
            view: Mutex::new(rec),
            control: tokio::sync::Mutex::new(Control { generation: 0, task: None, deleted: false }),
        };
        self.sessions.write().insert(id, Arc::new(entry));
        Ok(session)
    }

    async fn get(&self, id: &str) -> Result<ReplaySession> {
        Ok(self.entry(id)?.session())
    }

    async fn list(&self, stream: Option<&ResourcePath>) -> Result<Vec<ReplaySession>> {
        let wanted = stream.map(ResourcePath::to_string);
        let mut out: Vec<ReplaySession> = self
            .sessions
            .read()
            .values()
            .map(|e| e.session())
            .filter(|s| wanted.as_ref().is_none_or(|w| *w == s.stream))
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let mut ctl = entry.control.lock().await;
        if ctl.deleted {
            return Err(session_not_found(id));
        }
        match entry.status() {
            ReplayStatus::Created => {
                let now = self.shared.clock.now_ns();
                self.shared
                    .commit(&entry, |r| {
                        r.status = ReplayStatus::Active;
                        r.progress.started_at = now;
                    })
                    .await?;
                self.spawn(&entry, &mut ctl);
                Ok(())
            }
            // D13: FlowMesh answers INTERNAL here; resuming is `ResumeReplay`'s job.
            ReplayStatus::Paused => {
                Err(HeraldError::failed_precondition(format!("replay session {id} is already active")))
            }
            // Re-requesting `active` is not a no-op for StartReplay (§3.7).
            s => Err(illegal_transition(id, s, ReplayStatus::Active)),
        }
    }

    async fn pause(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let mut ctl = entry.control.lock().await;
        if ctl.deleted {
            return Err(session_not_found(id));
        }
        match entry.status() {
            ReplayStatus::Paused => Ok(()),
            ReplayStatus::Active => {
                let now = self.shared.clock.now_ns();
                self.shared
                    .commit(&entry, |r| {
                        r.status = ReplayStatus::Paused;
                        r.progress.paused_at = now;
                    })
                    .await?;
                ctl.halt();
                Ok(())
            }
            _ => Err(not_active(id)),
        }
    }

    async fn resume(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let mut ctl = entry.control.lock().await;
        if ctl.deleted {
            return Err(session_not_found(id));
        }
        match entry.status() {
            ReplayStatus::Active => Ok(()),
            ReplayStatus::Paused => {
                self.shared
                    .commit(&entry, |r| {
                        r.status = ReplayStatus::Active;
                        r.progress.paused_at = 0;
                    })
                    .await?;
                self.spawn(&entry, &mut ctl);
                Ok(())
            }
            _ => Err(not_active(id)),
        }
    }

    async fn stop(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let mut ctl = entry.control.lock().await;
        if ctl.deleted {
            return Err(session_not_found(id));
        }
        match entry.status() {
            ReplayStatus::Stopped => Ok(()),
            ReplayStatus::Created | ReplayStatus::Active | ReplayStatus::Paused => {
                self.shared.commit(&entry, |r| r.status = ReplayStatus::Stopped).await?;
                ctl.halt();
                Ok(())
            }
            s => Err(illegal_transition(id, s, ReplayStatus::Stopped)),
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let entry = self.entry(id)?;
        let mut ctl = entry.control.lock().await;
        if ctl.deleted {
            return Err(session_not_found(id));
        }
        let mut batch = self.shared.store.batch();
        batch.remove(&self.shared.store.replay_sessions, entry.key.to_vec());
        self.shared.store.commit_durable(batch).await?;
        ctl.halt();
        ctl.deleted = true;
        self.sessions.write().remove(id);
        if let Some(listener) = self.shared.listener.read().as_ref() {
            listener(ReplayChange::Deleted(id));
        }
        Ok(())
    }

    fn set_listener(&self, listener: ReplayListener) {
        *self.shared.listener.write() = Some(listener);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(start: ReplayStart, end: ReplayEnd, group: &str) -> NewReplay {
        NewReplay { start, end, sandbox_group: group.into() }
    }

    #[test]
    fn bounds_follow_the_contract_field_rules() {
        assert_eq!(ReplayStart::from_fields(5, 0).unwrap(), ReplayStart::Offset(5));
        assert_eq!(ReplayStart::from_fields(5, 7).unwrap(), ReplayStart::Timestamp(7));
        assert_eq!(ReplayStart::from_fields(0, 0).unwrap(), ReplayStart::Offset(0));
        assert_eq!(
            ReplayStart::from_fields(-1, 0).unwrap_err().message,
            "either start_offset or start_timestamp must be provided"
        );
        assert_eq!(ReplayEnd::from_fields(0, 0), ReplayEnd::Offset(0));
        assert_eq!(ReplayEnd::from_fields(-1, 0), ReplayEnd::Open);
        assert_eq!(ReplayEnd::from_fields(3, 9), ReplayEnd::Timestamp(9));
    }

    #[test]
    fn spec_checks_in_order() {
        let err = check_spec(&spec(ReplayStart::Offset(1), ReplayEnd::Offset(0), "debug")).unwrap_err();
        assert_eq!(err.message, "invalid offset 0: end offset must be >= start offset");
        let err = check_spec(&spec(ReplayStart::Offset(0), ReplayEnd::Open, "debug")).unwrap_err();
        assert_eq!(err.message, "sandbox consumer group name must start with _replay_");
        let err = check_spec(&spec(ReplayStart::Offset(0), ReplayEnd::Open, "_replay_a/b")).unwrap_err();
        assert_eq!(err.message, "sandbox_consumer_group cannot contain '/'");
        check_spec(&spec(ReplayStart::Timestamp(9), ReplayEnd::Offset(0), "_replay_x")).unwrap();
    }

    #[test]
    fn reported_fields_use_flowmesh_placeholders() {
        let s = ReplaySession {
            id: "0".repeat(32),
            stream: "t/n/stream/s".into(),
            partition: 0,
            start: ReplayStart::Timestamp(42),
            end: ReplayEnd::Open,
            sandbox_group: "_replay_x".into(),
            status: ReplayStatus::Created,
            progress: ReplayProgress::default(),
            created_at: 1,
            updated_at: 1,
        };
        assert_eq!((s.start_offset(), s.start_timestamp(), s.end_offset(), s.end_timestamp()), (0, 42, -1, 0));
        let s = ReplaySession { start: ReplayStart::Offset(3), end: ReplayEnd::Timestamp(7), ..s };
        assert_eq!((s.start_offset(), s.start_timestamp(), s.end_offset(), s.end_timestamp()), (3, 0, -1, 7));
    }
}
