//! The embedded [`Events`] service: identities from the configuration, sessions, the events log, the closed /
//! deferred records in fjall, and the in-memory [`Dispatch`].
//!
//! Locking: one mutex over `Dispatch`, held briefly. A publish appends to the log under it, so blocks enter the
//! dispatcher in log order and the watermark (everything below it closed) never passes an event that is stored but
//! not yet known to the dispatcher. Acks and discards commit their fjall record under it before the event leaves the
//! dispatcher, for the same reason. Events are handed to sinks after the lock is released.

use super::EventsOptions;
use super::api::*;
use super::dispatch::{Delivery, Dispatch, QueueKey};
use super::records::{self, ACKED, DISCARDED, WATERMARK};
use crate::durability::FsyncPolicy;
use crate::store::{SharedStore, fjall_err, read_i64, read_u64};
use async_trait::async_trait;
use herald_log::{Log, LogOptions, NewRecord, Retention};
use herald_types::{Clock, HeraldError, Result};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How often a session's `last_seen` is written back (it only matters for expiry after a restart).
const SEEN_PERSIST_MS: i64 = 60_000;
/// How often the watermark is written back at most.
const WATERMARK_PERSIST_MS: i64 = 1_000;
/// How often idle sessions are looked for (the timers run more often; a session's expiry needs no precision).
const SESSION_SCAN_MS: i64 = 1_000;
/// Largest record read back from the log (an event is at most `max_event_bytes` plus its header).
const READ_MAX: usize = 64 << 20;

struct SessionState {
    id: Arc<str>,
    session: Session,
    last_seen: EpochMs,
    stored_seen: EpochMs,
}

/// Recently published events, served to sinks without a log read. Bounded by bytes, oldest out first.
#[derive(Default)]
struct Hot {
    map: HashMap<u64, Arc<StoredEvent>>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl Hot {
    fn insert(&mut self, e: Arc<StoredEvent>, cap: usize) {
        let size = e.counted_bytes() + 128;
        if size > cap {
            return;
        }
        while self.bytes + size > cap {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(o) = self.map.remove(&old) {
                self.bytes -= o.counted_bytes() + 128;
            }
        }
        self.bytes += size;
        self.order.push_back(e.block);
        self.map.insert(e.block, e);
    }

    fn remove(&mut self, block: u64) {
        if let Some(o) = self.map.remove(&block) {
            self.bytes -= o.counted_bytes() + 128;
        }
        // `order` keeps the stale block until it reaches the front; `insert` skips it there.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order.retain(|b| map.contains_key(b));
        }
    }
}

pub(crate) struct EmbeddedEvents {
    clock: Arc<dyn Clock>,
    store: SharedStore,
    log: Arc<Log>,
    policy: FsyncPolicy,
    opts: EventsOptions,
    /// access-key digest → identity.
    by_key: HashMap<[u8; 32], IdentityConfig>,
    registered: HashSet<PublicKey>,
    sessions: Mutex<HashMap<Arc<str>, SessionState>>,
    dispatch: Mutex<Dispatch>,
    hot: Mutex<Hot>,
    watermark_saved: Mutex<(u64, EpochMs)>,
    /// When idle sessions were last looked for.
    sessions_scanned: Mutex<EpochMs>,
    published: AtomicU64,
    acked: AtomicU64,
}

fn log_err(context: &'static str) -> impl Fn(herald_log::LogError) -> HeraldError {
    move |e| HeraldError::storage(context, e)
}

fn unknown_client() -> HeraldError {
    HeraldError::unauthenticated("unknown client")
}

fn not_found() -> HeraldError {
    HeraldError::not_found("event not found")
}

/// The block an idem names: `<block>-<16 hex>`.
fn block_of(idem: &str) -> Option<u64> {
    let (b, tag) = idem.split_once('-')?;
    (tag.len() == 16 && tag.bytes().all(|c| c.is_ascii_hexdigit())).then_some(())?;
    b.parse().ok().filter(|&b| b >= 1)
}

fn new_idem(block: u64) -> String {
    let r = herald_types::id::new_id_bytes();
    format!("{block}-{}", herald_types::id::to_hex(&r)[..16].to_owned())
}

fn new_client_id() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&herald_types::id::new_id_bytes());
    b[16..].copy_from_slice(&herald_types::id::new_id_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl EmbeddedEvents {
    /// Opens the events log (recovering it), drops state that refers past its end, rebuilds the open events from
    /// the watermark on, and loads the gRPC sessions that have not expired. `dir` is `<data>/events`.
    pub fn open(
        store: SharedStore,
        clock: Arc<dyn Clock>,
        dir: PathBuf,
        policy: FsyncPolicy,
        segment_max_bytes: u64,
        opts: EventsOptions,
    ) -> Result<Self> {
        let log_opts = LogOptions {
            segment_max_bytes,
            retention: Retention { max_age: Some(opts.retention), ..Retention::default() },
            ..LogOptions::default()
        };
        let (log, report) = Log::open(&dir, log_opts).map_err(log_err("opening the events log"))?;
        if report.lost_anything() {
            tracing::warn!(%report, "events log recovered with data loss at the torn tail");
        }
        let mut by_key = HashMap::new();
        let mut registered = HashSet::new();
        for id in &opts.identities {
            by_key.insert(id.access_key_sha256, id.clone());
            registered.insert(id.public_key);
        }
        let ks = &store.events;
        // Blocks past the log's end belong to events lost with a torn tail: their records must not attach to the
        // new events that will reuse those blocks.
        let end_block = log.next_offset(); // the last stored block (block = offset + 1)
        let mut batch = store.batch();
        for tree in [&ks.closed, &ks.deferred] {
            for item in tree.range((end_block + 1).to_be_bytes()..) {
                let k = item.key().map_err(fjall_err("reading event state"))?;
                batch.remove(tree, k.to_vec());
            }
        }
        let now = clock.now_ns().div_euclid(1_000_000);
        let mut dispatch = Dispatch::new(opts.ack_timeout.as_millis() as i64);
        let watermark = ks.meta.get(WATERMARK).map_err(fjall_err("reading the events watermark"))?;
        let watermark = watermark.and_then(|v| read_u64(&v)).unwrap_or(1).min(end_block + 1);
        let mut at = (watermark - 1).max(log.start_offset());
        let mut recovered = 0usize;
        loop {
            let recs = log.read(at, 4096, READ_MAX).map_err(log_err("reading the events log"))?;
            if recs.is_empty() {
                break;
            }
            for rec in recs {
                at = rec.offset + 1;
                let block = rec.offset + 1;
                if ks.closed.contains_key(block.to_be_bytes()).map_err(fjall_err("reading event state"))? {
                    continue;
                }
                let e = records::decode_event(block, &rec.value)?;
                let until = ks.deferred.get(block.to_be_bytes()).map_err(fjall_err("reading event state"))?;
                let until = until.and_then(|v| read_i64(&v)).filter(|&u| u > now);
                dispatch.add(block, Arc::from(e.idem), e.recipient, Arc::from(e.name), until);
                recovered += 1;
            }
        }
        let mut sessions = HashMap::new();
        let ttl = opts.session_idle_ttl.as_millis() as i64;
        for item in ks.sessions.iter() {
            let (k, v) = item.into_inner().map_err(fjall_err("reading event sessions"))?;
            let client_id = String::from_utf8_lossy(&k).into_owned();
            match records::parse_session_value(&v) {
                Some((identity, seen)) if seen + ttl > now && registered.contains(&identity) => {
                    let session = Session { client_id: client_id.clone(), identity, transport: Transport::Grpc };
                    let id: Arc<str> = Arc::from(client_id);
                    sessions.insert(Arc::clone(&id), SessionState { id, session, last_seen: seen, stored_seen: seen });
                }
                _ => batch.remove(&ks.sessions, k.to_vec()),
            }
        }
        store.commit(batch)?;
        if recovered > 0 || !sessions.is_empty() {
            tracing::info!(open_events = recovered, sessions = sessions.len(), "addressed events recovered");
        }
        Ok(EmbeddedEvents {
            clock,
            store,
            log: Arc::new(log),
            policy,
            opts,
            by_key,
            registered,
            sessions: Mutex::new(sessions),
            dispatch: Mutex::new(dispatch),
            hot: Mutex::new(Hot::default()),
            watermark_saved: Mutex::new((watermark, 0)),
            sessions_scanned: Mutex::new(now),
            published: AtomicU64::new(0),
            acked: AtomicU64::new(0),
        })
    }

    fn now(&self) -> EpochMs {
        self.clock.now_ns().div_euclid(1_000_000)
    }

    /// The live session, touched (its idle timer restarts).
    fn touch(&self, client_id: &str) -> Result<(Arc<str>, Session)> {
        let now = self.now();
        let mut sessions = self.sessions.lock();
        let s = sessions.get_mut(client_id).ok_or_else(unknown_client)?;
        s.last_seen = now;
        let out = (Arc::clone(&s.id), s.session.clone());
        if s.session.transport == Transport::Grpc && now - s.stored_seen >= SEEN_PERSIST_MS {
            s.stored_seen = now;
            let mut batch = self.store.batch();
            batch.insert(
                &self.store.events.sessions,
                client_id.as_bytes(),
                records::session_value(&out.1.identity, now),
            );
            // Best effort: only expiry after a restart depends on it.
            if let Err(e) = self.store.commit(batch) {
                tracing::warn!(error = %e, "could not record a session's last activity");
            }
        }
        Ok(out)
    }

    fn window(&self, t: Transport) -> usize {
        match t {
            Transport::Grpc => self.opts.grpc_window,
            Transport::WebSocket => self.opts.ws_window,
        }
    }

    /// The stored event at `block`, from memory or the log.
    fn fetch(&self, block: u64) -> Result<Option<Arc<StoredEvent>>> {
        if let Some(e) = self.hot.lock().map.get(&block) {
            return Ok(Some(Arc::clone(e)));
        }
        let Some(offset) = block.checked_sub(1) else { return Ok(None) };
        if offset < self.log.start_offset() {
            return Ok(None);
        }
        let recs = self.log.read(offset, 1, READ_MAX).map_err(log_err("reading the events log"))?;
        match recs.into_iter().next() {
            Some(r) if r.offset == offset => Ok(Some(Arc::new(records::decode_event(block, &r.value)?))),
            _ => Ok(None),
        }
    }

    /// Hands events to their sinks. A sink that refuses (its connection is gone) loses its subscription, and what
    /// it held goes to someone else.
    fn deliver(&self, mut deliveries: Vec<Delivery>) {
        while !deliveries.is_empty() {
            let mut retry: Vec<QueueKey> = Vec::new();
            for d in deliveries.drain(..) {
                let event = match self.fetch(d.block) {
                    Ok(Some(e)) => e,
                    Ok(None) => {
                        // Gone with retention while it waited.
                        self.dispatch.lock().close(d.block);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, block = d.block, "could not read an event for delivery");
                        self.dispatch.lock().undeliverable(d.block);
                        continue;
                    }
                };
                if !d.sink.deliver(event) {
                    let mut dispatch = self.dispatch.lock();
                    dispatch.undeliverable(d.block);
                    dispatch.unsubscribe(&d.client_id, &d.name, Some(d.sink_id));
                    if let Some(k) = dispatch.queue_of(&d.client_id, &d.name) {
                        retry.push(k);
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            let now = self.now();
            let mut dispatch = self.dispatch.lock();
            for k in &retry {
                dispatch.pump(k, now, &mut deliveries);
            }
        }
    }

    fn pump_and_deliver(&self, dispatch: parking_lot::MutexGuard<'_, Dispatch>, keys: &[QueueKey]) {
        let mut dispatch = dispatch;
        let now = self.now();
        let mut out = Vec::new();
        for k in keys {
            dispatch.pump(k, now, &mut out);
        }
        drop(dispatch);
        self.deliver(out);
    }

    async fn durable_log(&self) -> Result<()> {
        if self.policy != FsyncPolicy::Always {
            return Ok(());
        }
        // `Log::sync` is a group commit; a blocking thread keeps the fsync off the runtime's workers.
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(|e| HeraldError::internal(format!("fsync task failed: {e}")))?
            .map_err(log_err("syncing the events log"))
    }

    /// Resolves an idem addressed to `identity` (and `name`, when given) to its block, whether the event is open or
    /// closed. `Ok(None)` for anything the caller may not see.
    fn locate(&self, identity: &PublicKey, idem: &str, name: &str) -> Result<Option<(u64, Option<u8>)>> {
        let Some(block) = block_of(idem) else { return Ok(None) };
        {
            let dispatch = self.dispatch.lock();
            if let Some(o) = dispatch.get(block) {
                let ok = &*o.idem == idem && o.recipient == *identity && (name.is_empty() || *o.name == *name);
                return Ok(ok.then_some((block, None)));
            }
        }
        let Some(e) = self.fetch(block)? else { return Ok(None) };
        if e.idem != idem || e.recipient != *identity || (!name.is_empty() && e.name != name) {
            return Ok(None);
        }
        let state = self.store.events.closed.get(block.to_be_bytes()).map_err(fjall_err("reading event state"))?;
        match state.and_then(|v| v.first().copied()) {
            Some(s) => Ok(Some((block, Some(s)))),
            // Stored, not open, not closed: being published right now, or below a lost watermark. Not visible.
            None => Ok(None),
        }
    }

    /// Closes an open event as acked or discarded: the record first, then the dispatcher. `false` if it was no
    /// longer open when the lock was taken.
    async fn close_open(&self, block: u64, how: u8) -> Result<bool> {
        let ticket = {
            let mut dispatch = self.dispatch.lock();
            if dispatch.get(block).is_none() {
                return Ok(false);
            }
            let mut batch = self.store.batch();
            batch.insert(&self.store.events.closed, block.to_be_bytes(), [how]);
            batch.remove(&self.store.events.deferred, block.to_be_bytes());
            let ticket = self.store.commit(batch)?;
            let key = dispatch.close(block);
            self.hot.lock().remove(block);
            self.pump_and_deliver(dispatch, key.as_slice());
            ticket
        };
        self.store.durable(ticket).await?;
        Ok(true)
    }

    /// Periodic work: due timers fire and the watermark is written back; about once a second, idle sessions end.
    pub fn tick(&self) -> Result<()> {
        let now = self.now();
        let scan = {
            let mut at = self.sessions_scanned.lock();
            let due = *at + SESSION_SCAN_MS <= now;
            if due {
                *at = now;
            }
            due
        };
        if scan {
            self.expire_sessions(now)?;
        }
        self.run_timers(now)
    }

    /// Ends gRPC sessions idle for longer than the TTL that have no open stream.
    fn expire_sessions(&self, now: EpochMs) -> Result<()> {
        let ttl = self.opts.session_idle_ttl.as_millis() as i64;
        let expired: Vec<Arc<str>> = {
            let dispatch = self.dispatch.lock();
            let sessions = self.sessions.lock();
            sessions
                .iter()
                .filter(|(id, s)| {
                    s.session.transport == Transport::Grpc && s.last_seen + ttl <= now && !dispatch.has_sinks(id)
                })
                .map(|(id, _)| Arc::clone(id))
                .collect()
        };
        if !expired.is_empty() {
            let mut batch = self.store.batch();
            for id in &expired {
                self.sessions.lock().remove(id);
                batch.remove(&self.store.events.sessions, id.as_bytes());
                let mut dispatch = self.dispatch.lock();
                let (sinks, keys) = dispatch.end_client(id);
                self.pump_and_deliver(dispatch, &keys);
                sinks.iter().for_each(|s| s.close());
            }
            self.store.commit(batch)?;
            tracing::debug!(sessions = expired.len(), "idle event sessions expired");
        }
        Ok(())
    }

    /// Due timers fire (ack deadlines, deferrals) and the watermark is written back.
    fn run_timers(&self, now: EpochMs) -> Result<()> {
        let mut dispatch = self.dispatch.lock();
        let keys = dispatch.due(now);
        let watermark = dispatch.first_open().unwrap_or_else(|| self.log.next_offset() + 1);
        self.pump_and_deliver(dispatch, &keys);
        let mut saved = self.watermark_saved.lock();
        if watermark != saved.0 && now - saved.1 >= WATERMARK_PERSIST_MS {
            let mut batch = self.store.batch();
            batch.insert(&self.store.events.meta, WATERMARK, watermark.to_be_bytes());
            self.store.commit(batch)?;
            *saved = (watermark, now);
        }
        Ok(())
    }

    /// Deletes events older than the retention period, with their records.
    pub fn enforce_retention(&self) -> Result<()> {
        let out = self.log.enforce_retention(self.clock.now_ns()).map_err(log_err("events retention"))?;
        if out.segments_removed == 0 {
            return Ok(());
        }
        let start_block = self.log.start_offset() + 1;
        let ks = &self.store.events;
        let mut batch = self.store.batch();
        for tree in [&ks.closed, &ks.deferred] {
            for item in tree.range(..start_block.to_be_bytes()) {
                let k = item.key().map_err(fjall_err("reading event state"))?;
                batch.remove(tree, k.to_vec());
            }
        }
        self.store.commit(batch)?;
        let mut dispatch = self.dispatch.lock();
        let mut expired = 0;
        while let Some(b) = dispatch.first_open().filter(|&b| b < start_block) {
            dispatch.close(b);
            expired += 1;
        }
        tracing::info!(segments = out.segments_removed, open_events_expired = expired, "events retention");
        Ok(())
    }

    pub fn sync_all(&self) -> Result<()> {
        self.log.sync().map_err(log_err("syncing the events log"))
    }
}

#[async_trait]
impl Events for EmbeddedEvents {
    async fn connect(&self, access_key: &str, transport: Transport) -> Result<Session> {
        let identity = self
            .by_key
            .get(&super::access_key_digest(access_key))
            .ok_or_else(|| HeraldError::unauthenticated("invalid access key"))?;
        let session = Session { client_id: new_client_id(), identity: identity.public_key, transport };
        let now = self.now();
        if transport == Transport::Grpc {
            let mut batch = self.store.batch();
            batch.insert(
                &self.store.events.sessions,
                session.client_id.as_bytes(),
                records::session_value(&session.identity, now),
            );
            self.store.commit_durable(batch).await?;
        }
        let id: Arc<str> = Arc::from(session.client_id.as_str());
        self.sessions
            .lock()
            .insert(Arc::clone(&id), SessionState { id, session: session.clone(), last_seen: now, stored_seen: now });
        tracing::debug!(identity = %identity.name, ?transport, "event session opened");
        Ok(session)
    }

    async fn heartbeat(&self, client_id: &str) -> Result<()> {
        self.touch(client_id).map(|_| ())
    }

    async fn session(&self, client_id: &str) -> Result<Session> {
        self.touch(client_id).map(|(_, s)| s)
    }

    async fn end_session(&self, client_id: &str) {
        let Some(s) = self.sessions.lock().remove(client_id) else { return };
        let id = s.id;
        if s.session.transport == Transport::Grpc {
            let mut batch = self.store.batch();
            batch.remove(&self.store.events.sessions, client_id.as_bytes());
            if let Err(e) = self.store.commit(batch) {
                tracing::warn!(error = %e, "could not remove an event session");
            }
        }
        let mut dispatch = self.dispatch.lock();
        // Released events go to the identity's other subscriptions.
        let (sinks, keys) = dispatch.end_client(&id);
        self.pump_and_deliver(dispatch, &keys);
        sinks.iter().for_each(|s| s.close());
    }

    async fn publish(&self, client_id: &str, ev: NewEvent) -> Result<Arc<StoredEvent>> {
        let (_, session) = self.touch(client_id)?;
        super::check_name(&ev.name)?;
        if !self.registered.contains(&ev.recipient) {
            return Err(HeraldError::not_found("recipient not found"));
        }
        if ev.payload.is_empty() {
            return Err(HeraldError::invalid("payload must not be empty"));
        }
        if !ev.metadata.trim().is_empty() && serde_json::from_str::<serde::de::IgnoredAny>(&ev.metadata).is_err() {
            return Err(HeraldError::invalid("invalid metadata"));
        }
        if ev.payload.len() + ev.metadata.len() > self.opts.max_event_bytes {
            return Err(HeraldError::new(herald_types::ErrorCode::ResourceExhausted, "payload too large"));
        }
        let now = self.now();
        let event = {
            let mut dispatch = self.dispatch.lock();
            let block = self.log.next_offset() + 1;
            let event = Arc::new(StoredEvent {
                idem: new_idem(block),
                block,
                name: ev.name,
                recipient: ev.recipient,
                sender: session.identity,
                payload: ev.payload,
                metadata: ev.metadata,
                payload_metadata: ev.payload_metadata,
                logged_at: now,
            });
            let value = records::encode_event(&event);
            let rec = NewRecord { timestamp: now.saturating_mul(1_000_000), prefix: &[], value: &value };
            let out = self.log.append(std::slice::from_ref(&rec)).map_err(log_err("appending to the events log"))?;
            debug_assert_eq!(out.first_offset + 1, block);
            self.hot.lock().insert(Arc::clone(&event), self.opts.hot_bytes);
            let key = dispatch.add(
                block,
                Arc::from(event.idem.as_str()),
                event.recipient,
                Arc::from(event.name.as_str()),
                None,
            );
            self.pump_and_deliver(dispatch, key.as_slice());
            event
        };
        self.published.fetch_add(1, Ordering::Relaxed);
        self.durable_log().await?;
        Ok(event)
    }

    async fn subscribe(&self, client_id: &str, name: &str, sink: Arc<dyn EventSink>) -> Result<SinkId> {
        let (id, session) = self.touch(client_id)?;
        super::check_name(name)?;
        let name: Arc<str> = Arc::from(name);
        let mut dispatch = self.dispatch.lock();
        let (sink_id, old) = dispatch.subscribe(&id, session.identity, &name, sink, self.window(session.transport));
        self.pump_and_deliver(dispatch, &[(session.identity, name)]);
        if let Some(old) = old {
            old.close();
        }
        Ok(sink_id)
    }

    async fn detach(&self, client_id: &str, name: &str, sink: SinkId) {
        let name: Arc<str> = Arc::from(name);
        let id: Arc<str> = Arc::from(client_id);
        let mut dispatch = self.dispatch.lock();
        let key = dispatch.queue_of(client_id, &name);
        if dispatch.unsubscribe(&id, &name, Some(sink)).is_some() {
            self.pump_and_deliver(dispatch, key.as_slice());
        }
    }

    async fn unsubscribe(&self, client_id: &str, name: &str) -> Result<()> {
        let (id, session) = self.touch(client_id)?;
        let name: Arc<str> = Arc::from(name);
        let mut dispatch = self.dispatch.lock();
        let sink = dispatch.unsubscribe(&id, &name, None);
        dispatch.clear_pause(client_id, &name);
        self.pump_and_deliver(dispatch, &[(session.identity, name)]);
        if let Some(s) = sink {
            s.close();
        }
        Ok(())
    }

    async fn ack(&self, client_id: &str, idem: &str, name: &str) -> Result<()> {
        let (_, session) = self.touch(client_id)?;
        loop {
            match self.locate(&session.identity, idem, name)? {
                None => return Err(not_found()),
                Some((block, None)) => {
                    if self.close_open(block, ACKED).await? {
                        self.acked.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    // Closed by someone else meanwhile: look again.
                }
                Some((_, Some(ACKED))) => return Ok(()),
                Some((_, Some(_))) => return Err(HeraldError::failed_precondition("already discarded")),
            }
        }
    }

    async fn defer(&self, client_id: &str, idem: &str, name: &str, delay_ms: i64) -> Result<EpochMs> {
        let (_, session) = self.touch(client_id)?;
        if !(0..=super::MAX_DEFER_MS).contains(&delay_ms) {
            return Err(HeraldError::invalid("invalid delay"));
        }
        match self.locate(&session.identity, idem, name)? {
            None => Err(not_found()),
            Some((_, Some(ACKED))) => Err(HeraldError::failed_precondition("already acknowledged")),
            Some((_, Some(_))) => Err(HeraldError::failed_precondition("already discarded")),
            Some((block, None)) => {
                let until = self.now() + delay_ms;
                let ticket = {
                    let mut dispatch = self.dispatch.lock();
                    if dispatch.get(block).is_none() {
                        drop(dispatch);
                        // Closed meanwhile: answer as for a closed event.
                        return match self.locate(&session.identity, idem, name)? {
                            Some((_, Some(ACKED))) => Err(HeraldError::failed_precondition("already acknowledged")),
                            Some((_, Some(_))) => Err(HeraldError::failed_precondition("already discarded")),
                            _ => Err(not_found()),
                        };
                    }
                    let mut batch = self.store.batch();
                    batch.insert(&self.store.events.deferred, block.to_be_bytes(), until.to_be_bytes());
                    let ticket = self.store.commit(batch)?;
                    let key = dispatch.defer(block, until);
                    // A zero delay is due at once; any other frees a window slot now.
                    let mut keys: Vec<QueueKey> = key.into_iter().collect();
                    if delay_ms == 0 {
                        keys.extend(dispatch.due(until));
                    }
                    self.pump_and_deliver(dispatch, &keys);
                    ticket
                };
                self.store.durable(ticket).await?;
                Ok(until)
            }
        }
    }

    async fn discard(&self, client_id: &str, idem: &str, name: &str) -> Result<()> {
        let (_, session) = self.touch(client_id)?;
        loop {
            match self.locate(&session.identity, idem, name)? {
                None => return Err(not_found()),
                Some((block, None)) => {
                    if self.close_open(block, DISCARDED).await? {
                        return Ok(());
                    }
                }
                Some((_, Some(ACKED))) => return Err(HeraldError::failed_precondition("already acknowledged")),
                Some((_, Some(_))) => return Ok(()),
            }
        }
    }

    async fn replay(&self, client_id: &str, idem: &str, name: &str) -> Result<Arc<StoredEvent>> {
        let (_, session) = self.touch(client_id)?;
        let Some(block) = block_of(idem) else { return Err(not_found()) };
        let e = self.fetch(block)?.ok_or_else(not_found)?;
        if e.idem != idem || e.recipient != session.identity || (!name.is_empty() && e.name != name) {
            return Err(not_found());
        }
        Ok(e)
    }

    async fn pause(&self, client_id: &str, name: &str) -> Result<()> {
        let (id, session) = self.touch(client_id)?;
        super::check_name(name)?;
        self.dispatch.lock().set_paused(&id, session.identity, &Arc::from(name), true);
        Ok(())
    }

    async fn resume(&self, client_id: &str, name: &str) -> Result<()> {
        let (id, session) = self.touch(client_id)?;
        super::check_name(name)?;
        let name: Arc<str> = Arc::from(name);
        let mut dispatch = self.dispatch.lock();
        dispatch.set_paused(&id, session.identity, &name, false);
        self.pump_and_deliver(dispatch, &[(session.identity, name)]);
        Ok(())
    }

    async fn stats(&self) -> Result<EventsStats> {
        let sessions = self.sessions.lock().len() as u64;
        let d = self.dispatch.lock();
        Ok(EventsStats {
            sessions,
            subscriptions: d.subscription_count() as u64,
            open_events: d.open_count() as u64,
            in_flight: d.in_flight_count() as u64,
            published_total: self.published.load(Ordering::Relaxed),
            delivered_total: d.delivered_total,
            acked_total: self.acked.load(Ordering::Relaxed),
        })
    }

    async fn recipients(&self) -> Result<Vec<RecipientSnapshot>> {
        // The two locks are taken one after the other, never nested, so this cannot deadlock with a path that takes
        // them in the other order; the figures are each exact, and together as close to one instant as that allows.
        let mut sessions: HashMap<PublicKey, u64> = HashMap::new();
        for s in self.sessions.lock().values() {
            *sessions.entry(s.session.identity).or_default() += 1;
        }
        let counts = self.dispatch.lock().recipient_counts();
        let mut out: BTreeMap<PublicKey, RecipientSnapshot> =
            self.registered.iter().map(|&pk| (pk, RecipientSnapshot { recipient: pk, ..Default::default() })).collect();
        for (pk, c) in counts {
            let e = out.entry(pk).or_insert_with(|| RecipientSnapshot { recipient: pk, ..Default::default() });
            e.pending = c.pending as u64;
            e.in_flight = c.in_flight as u64;
            e.deferred = c.deferred as u64;
        }
        for (pk, n) in sessions {
            if let Some(e) = out.get_mut(&pk) {
                e.sessions = n;
            }
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idems_name_their_block() {
        let i = new_idem(42);
        assert_eq!(block_of(&i), Some(42));
        assert!(i.bytes().all(|c| c.is_ascii_hexdigit() || c.is_ascii_digit() || c == b'-'));
        assert_eq!(block_of("42"), None);
        assert_eq!(block_of("0-0123456789abcdef"), None);
        assert_eq!(block_of("x-0123456789abcdef"), None);
        assert_eq!(block_of("1-0123"), None);
        let c = new_client_id();
        assert_eq!(c.len(), 43);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}
