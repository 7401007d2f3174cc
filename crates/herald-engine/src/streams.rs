//! Streams: append-only logs with consumer-group offsets (compat/flowmesh.md §1.3, §1.4, §3.3).
//!
//! Each stream's partition 0 is one `herald-log` directory (`<data>/streams/<rid>/p0`). FlowMesh writes everything to
//! partition 0; other partition numbers are accepted and behave as empty partitions. Committed offsets live in fjall.
//! Live subscribers wait on a `watch` channel that carries the log's next offset, so a write wakes them at once
//! (FlowMesh polls every 100 ms). A stream with an attached schema (`schemas.rs`) has every payload of a write
//! validated before anything is appended.

use crate::api::{ConsumerGroupState, EventIn, StreamMessage, StreamTail, Streams};
use crate::codec::{decode_message, encode_message_header};
use crate::durability::FsyncPolicy;
use crate::resources::{Registry, Resource};
use crate::schemas::SchemaRegistry;
use crate::store::{SharedStore, fjall_err, key2, read_i64};
use async_trait::async_trait;
use herald_log::{Log, LogOptions, NewRecord, Retention};
use herald_types::{Clock, HeraldError, ResourcePath, Result};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Largest read a subscriber does per wake-up; bounds the memory one slow subscriber can pin.
const TAIL_BATCH: usize = 100;
const READ_MAX_BYTES: usize = 64 << 20;

pub(crate) struct StreamState {
    log: Log,
    path: String,
    /// The log's next offset after the last durable append; subscribers wait for it to move.
    next_tx: watch::Sender<u64>,
}

pub(crate) struct EmbeddedStreams {
    registry: Arc<Registry>,
    schemas: Arc<SchemaRegistry>,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    dir: PathBuf,
    policy: FsyncPolicy,
    segment_max_bytes: u64,
    logs: RwLock<HashMap<u64, Arc<StreamState>>>,
    open_lock: parking_lot::Mutex<()>,
}

fn log_err(context: &'static str) -> impl Fn(herald_log::LogError) -> HeraldError {
    move |e| HeraldError::storage(context, e)
}

fn retention_of(res: &Resource) -> Retention {
    let cfg = res.config.read();
    let pos = |v: Option<i64>| v.filter(|v| *v > 0);
    Retention {
        max_age: pos(cfg.retention.max_age).map(|ns| Duration::from_nanos(ns as u64)),
        max_bytes: pos(cfg.retention.max_size).map(|v| v as u64),
        max_records: pos(cfg.retention.max_messages).map(|v| v as u64),
    }
}

impl EmbeddedStreams {
    pub fn open(
        registry: Arc<Registry>,
        schemas: Arc<SchemaRegistry>,
        store: SharedStore,
        clock: Arc<dyn Clock>,
        dir: PathBuf,
        policy: FsyncPolicy,
        segment_max_bytes: u64,
    ) -> Result<Self> {
        let s = EmbeddedStreams {
            registry,
            schemas,
            store,
            clock,
            dir,
            policy,
            segment_max_bytes,
            logs: RwLock::new(HashMap::new()),
            open_lock: parking_lot::Mutex::new(()),
        };
        // Open every stream now, so crash recovery runs (and reports) at start-up rather than on first use.
        for res in s.registry.all(herald_types::ResourceKind::Stream) {
            s.state(&res)?;
        }
        Ok(s)
    }

    fn state(&self, res: &Arc<Resource>) -> Result<Arc<StreamState>> {
        if let Some(s) = self.logs.read().get(&res.rid) {
            return Ok(Arc::clone(s));
        }
        let _guard = self.open_lock.lock();
        if let Some(s) = self.logs.read().get(&res.rid) {
            return Ok(Arc::clone(s));
        }
        let dir = self.dir.join(res.rid.to_string()).join("p0");
        let opts = LogOptions {
            segment_max_bytes: self.segment_max_bytes,
            retention: retention_of(res),
            ..LogOptions::default()
        };
        let (log, report) = Log::open(&dir, opts).map_err(log_err("opening stream log"))?;
        if report.lost_anything() {
            tracing::warn!(stream = %res.path, %report, "stream log recovered with data loss at the torn tail");
        } else {
            tracing::debug!(stream = %res.path, %report, "stream log opened");
        }
        let (next_tx, _) = watch::channel(log.next_offset());
        let state = Arc::new(StreamState { log, path: res.path.to_string(), next_tx });
        self.logs.write().insert(res.rid, Arc::clone(&state));
        Ok(state)
    }

    /// Every open log, for the fsync and retention tasks.
    pub fn all_logs(&self) -> Vec<Arc<StreamState>> {
        self.logs.read().values().cloned().collect()
    }

    pub fn sync_all(&self) -> Result<()> {
        for s in self.all_logs() {
            s.log.sync().map_err(log_err("syncing stream log"))?;
        }
        Ok(())
    }

    pub fn enforce_retention(&self) -> Result<()> {
        let now = self.clock.now_ns();
        for s in self.all_logs() {
            let out = s.log.enforce_retention(now).map_err(log_err("enforcing retention"))?;
            if out.segments_removed > 0 {
                tracing::info!(stream = %s.path, records = out.records_removed, bytes = out.bytes_removed, "retention removed old segments");
            }
        }
        Ok(())
    }

    fn decode(state: &StreamState, rec: herald_log::Record) -> Result<StreamMessage> {
        let value = rec.value;
        let m = decode_message(&value).ok_or_else(|| {
            HeraldError::internal(format!("corrupt message at offset {} in stream {}", rec.offset, state.path))
        })?;
        Ok(StreamMessage {
            id: hex_id(&m.id),
            resource_path: state.path.clone(),
            partition: 0,
            offset: rec.offset as i64,
            payload: m.payload,
            headers: m.headers,
            created_at: rec.timestamp,
            schema_version: m.schema_version,
        })
    }

    fn read_from(state: &StreamState, from: u64, max: usize) -> Result<Vec<StreamMessage>> {
        let recs = state.log.read(from, max, READ_MAX_BYTES).map_err(log_err("reading stream"))?;
        recs.into_iter().map(|r| Self::decode(state, r)).collect()
    }

    /// Validates every event against the stream's attached schema, if it has one, before anything is written
    /// (a failure rejects the whole request, D13/D17). Returns the schema version to record in each message (0: none).
    fn validate(&self, res: &Resource, events: &[EventIn]) -> Result<i32> {
        let attached = self.schemas.attached(res).map_err(|e| HeraldError {
            message: format!("failed to write to stream {}: {}", res.path, e.message),
            ..e
        })?;
        let Some(attached) = attached else { return Ok(0) };
        for (i, e) in events.iter().enumerate() {
            attached.check(&e.payload).map_err(|detail| {
                HeraldError::invalid(format!(
                    "failed to write to stream {}: event {i} validation failed: {detail}",
                    res.path
                ))
            })?;
        }
        Ok(attached.version)
    }

    fn latest(state: &StreamState) -> i64 {
        state.log.next_offset() as i64 - 1
    }

    fn offset_key(rid: u64, group: &str, partition: i32) -> Vec<u8> {
        let mut rest = Vec::with_capacity(4 + group.len());
        rest.extend_from_slice(&partition.to_be_bytes());
        rest.extend_from_slice(group.as_bytes());
        key2(rid, &rest)
    }

    fn committed(&self, rid: u64, group: &str, partition: i32) -> Result<i64> {
        let v = self.store.offsets.get(Self::offset_key(rid, group, partition)).map_err(fjall_err("reading offset"))?;
        Ok(v.and_then(|v| read_i64(&v)).unwrap_or(-1))
    }
}

pub(crate) use herald_types::id::to_hex as hex_id;

/// Lag as FlowMesh defines it (§1.4).
fn lag(latest: i64, committed: i64) -> i64 {
    if latest < 0 {
        -1
    } else if committed < 0 {
        latest + 1
    } else {
        (latest - committed).max(0)
    }
}

#[async_trait]
impl Streams for EmbeddedStreams {
    async fn append(&self, stream: &ResourcePath, events: Vec<EventIn>) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Err(HeraldError::invalid("at least one event is required"));
        }
        if let Some(i) = events.iter().position(|e| e.payload.is_empty()) {
            return Err(HeraldError::invalid(format!("event {i}: payload cannot be empty")));
        }
        let res = self.registry.require_or_create(stream)?;
        let schema_version = self.validate(&res, &events)?;
        let state = self.state(&res)?;
        let now = self.clock.now_ns();
        let heads: Vec<Vec<u8>> = events
            .iter()
            .map(|e| encode_message_header(&herald_types::id::new_id_bytes(), schema_version, &e.headers))
            .collect();
        let records: Vec<NewRecord<'_>> = heads
            .iter()
            .zip(&events)
            .map(|(head, e)| NewRecord { timestamp: now, prefix: head, value: &e.payload })
            .collect();
        let outcome = state.log.append(&records).map_err(log_err("appending to stream"))?;
        if self.policy == FsyncPolicy::Always {
            let st = Arc::clone(&state);
            tokio::task::spawn_blocking(move || st.log.sync())
                .await
                .map_err(|e| HeraldError::internal(format!("fsync task failed: {e}")))?
                .map_err(log_err("syncing stream"))?;
        }
        let next = outcome.last_offset + 1;
        state.next_tx.send_if_modified(|v| {
            if *v < next {
                *v = next;
                true
            } else {
                false
            }
        });
        Ok((outcome.first_offset..=outcome.last_offset).map(|o| o as i64).collect())
    }

    async fn read(
        &self,
        stream: &ResourcePath,
        partition: i32,
        offset: i64,
        max_messages: i32,
    ) -> Result<Vec<StreamMessage>> {
        if offset < 0 {
            return Err(HeraldError::invalid("offset cannot be negative"));
        }
        let max = if max_messages <= 0 { 100 } else { max_messages.min(1000) } as usize;
        let res = self.registry.require(stream)?;
        if partition > 0 {
            return Ok(Vec::new());
        }
        let state = self.state(&res)?;
        Self::read_from(&state, offset as u64, max)
    }

    async fn latest_offset(&self, stream: &ResourcePath, partition: i32) -> Result<i64> {
        let res = self.registry.require(stream)?;
        if partition > 0 {
            return Ok(-1);
        }
        let state = self.state(&res)?;
        Ok(Self::latest(&state))
    }

    async fn offset_for_timestamp(&self, stream: &ResourcePath, partition: i32, timestamp: i64) -> Result<Option<i64>> {
        let res = self.registry.require(stream)?;
        if partition > 0 {
            return Ok(None);
        }
        let state = self.state(&res)?;
        let found = state.log.offset_for_timestamp(timestamp).map_err(log_err("looking up a timestamp"))?;
        Ok(found.map(|o| o as i64))
    }

    async fn commit_offset(&self, stream: &ResourcePath, group: &str, partition: i32, offset: i64) -> Result<()> {
        if offset < -1 {
            return Err(HeraldError::invalid("offset cannot be less than -1"));
        }
        let res = self.registry.require(stream)?;
        let mut batch = self.store.batch();
        batch.insert(
            &self.store.offsets,
            Self::offset_key(res.rid, group, partition.max(0)),
            offset.to_be_bytes().to_vec(),
        );
        self.store.commit_durable(batch).await
    }

    async fn committed_offset(&self, stream: &ResourcePath, group: &str, partition: i32) -> Result<i64> {
        let res = self.registry.require(stream)?;
        self.committed(res.rid, group, partition.max(0))
    }

    async fn group_state(&self, stream: &ResourcePath, group: &str, partition: i32) -> Result<ConsumerGroupState> {
        let res = self.registry.require(stream)?;
        let partition = partition.max(0);
        let committed = self.committed(res.rid, group, partition)?;
        let state = self.state(&res)?;
        let latest = if partition > 0 { -1 } else { Self::latest(&state) };
        Ok(ConsumerGroupState {
            stream: res.path.to_string(),
            group: group.to_owned(),
            partition,
            committed_offset: committed,
            latest_offset: latest,
            lag: lag(latest, committed),
        })
    }

    async fn list_groups(&self, stream: &ResourcePath) -> Result<Vec<ConsumerGroupState>> {
        let res = self.registry.require(stream)?;
        let state = self.state(&res)?;
        let latest0 = Self::latest(&state);
        let mut out = Vec::new();
        for item in self.store.offsets.prefix(res.rid.to_be_bytes()) {
            let (k, v) = item.into_inner().map_err(fjall_err("listing consumer groups"))?;
            let Some(rest) = k.get(8..) else { continue };
            let Some(partition) = rest.get(..4).map(|p| i32::from_be_bytes(p.try_into().expect("4 bytes"))) else {
                continue;
            };
            let group = String::from_utf8_lossy(&rest[4..]).into_owned();
            let committed = read_i64(&v).unwrap_or(-1);
            let latest = if partition == 0 { latest0 } else { -1 };
            out.push(ConsumerGroupState {
                stream: res.path.to_string(),
                group,
                partition,
                committed_offset: committed,
                latest_offset: latest,
                lag: lag(latest, committed),
            });
        }
        out.sort_by(|a, b| a.group.cmp(&b.group).then(a.partition.cmp(&b.partition)));
        Ok(out)
    }

    async fn subscribe(
        &self,
        stream: &ResourcePath,
        group: &str,
        partition: i32,
        start_offset: i64,
    ) -> Result<Box<dyn StreamTail>> {
        let res = self.registry.require(stream)?;
        let partition = partition.max(0);
        let state = self.state(&res)?;
        let start = match start_offset {
            -1 => (self.committed(res.rid, group, partition)? + 1) as u64,
            -2 => state.log.next_offset(),
            s if s >= 0 => s as u64,
            _ => return Err(HeraldError::invalid("start_offset must be >= 0, -1 (committed), or -2 (latest)")),
        };
        let rx = state.next_tx.subscribe();
        Ok(Box::new(Tail { state, next: start, rx, partition }))
    }
}

struct Tail {
    state: Arc<StreamState>,
    next: u64,
    rx: watch::Receiver<u64>,
    partition: i32,
}

#[async_trait]
impl StreamTail for Tail {
    async fn next_batch(&mut self) -> Result<Vec<StreamMessage>> {
        if self.partition != 0 {
            // FlowMesh writes only partition 0: other partitions never receive anything.
            std::future::pending::<()>().await;
        }
        loop {
            // Mark the current value seen *before* reading, so a write that lands after the read wakes us.
            let _ = self.rx.borrow_and_update();
            let from = self.next.max(self.state.log.start_offset());
            let batch = EmbeddedStreams::read_from(&self.state, from, TAIL_BATCH)?;
            if let Some(last) = batch.last() {
                self.next = last.offset as u64 + 1;
                return Ok(batch);
            }
            if self.rx.changed().await.is_err() {
                return Err(HeraldError::unavailable("stream closed"));
            }
        }
    }
}
