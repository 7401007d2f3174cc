//! Topic history: one `herald-log` per topic stream, an in-memory hot tier of each open topic's newest messages,
//! cursor arithmetic, count retention, and live fan-out in stored order.
//!
//! A topic's history is keyed by a permanent *stream id* (`relay_streams`), not by its topic record, so history
//! outlives a deleted record (contract §1.6). Message ids are `<ms>-<offset>`: the offset grows by one per message
//! and the timestamp never goes backwards within a topic, so ids are strictly increasing and the set of messages
//! with an id at or below any given id is a prefix of the log. Every cursor, existing or not, therefore maps to one
//! offset, found from the log's time index (see [`prefix_end`]).
//!
//! Retention is the contract's exact count cap, applied when reading (the newest `max_messages_per_topic` are
//! visible); the retention task deletes whole segments that fall entirely outside it (see `open_log` for how).
//!
//! A topic's log stays open, with its hot tier, from first use until shutdown: memory is at most `hot_messages`
//! messages per topic used since start-up, plus each log's sparse index.

use super::api::{FrameEncoder, HistoryOrder, Micros, RelayId, RelayMessage, RelayMessageIn, RelayTopicStats};
use super::records::{check_key_part, decode_message, encode_message_head, pair_key};
use crate::durability::FsyncPolicy;
use crate::pubsub::{Published, Router};
use crate::store::{SharedStore, fjall_err, read_u64};
use bytes::Bytes;
use herald_log::{Log, LogOptions, NewRecord, Record, Retention};
use herald_types::{Clock, HeraldError, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

/// Stop a single log read at this many bytes of values (a page is at most 100 messages, so this only guards
/// against pathological payloads).
const READ_MAX_BYTES: usize = 64 << 20;

pub(crate) struct MessagesConfig {
    pub dir: PathBuf,
    pub policy: FsyncPolicy,
    pub segment_max_bytes: u64,
    pub max_messages: u64,
    pub hot_messages: usize,
}

pub(crate) struct Messages {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    cfg: MessagesConfig,
    router: Arc<Router>,
    /// Open topic logs by `owner \0 name`.
    logs: RwLock<HashMap<Vec<u8>, Arc<TopicLog>>>,
    /// The next stream id to assign. Held while assigning an id and while opening a log, so each (owner, name) gets
    /// one id and each log directory one `Log`.
    assign: Mutex<u64>,
}

struct TopicLog {
    stream_id: u64,
    log: Log,
    /// Taken by a publisher from choosing the timestamp until its last frame is routed, so that timestamps never go
    /// backwards and live order equals stored order. Holds the newest message's timestamp.
    publish: Mutex<Micros>,
    hot: RwLock<Hot>,
}

/// The newest messages of a topic, in memory.
struct Hot {
    /// Consecutive offsets ending at `end - 1` (at most `hot_messages` of them).
    msgs: VecDeque<RelayMessage>,
    /// One past the newest message; readers see nothing at or beyond it.
    end: u64,
}

impl Hot {
    fn front_seq(&self) -> Option<u64> {
        self.msgs.front().map(|m| m.id.seq)
    }
}

fn log_err(context: &'static str) -> impl Fn(herald_log::LogError) -> HeraldError {
    move |e| HeraldError::storage(context, e)
}

fn micros(clock: &dyn Clock) -> Micros {
    clock.now_ns().div_euclid(1000)
}

fn id_of(timestamp: Micros, offset: u64) -> RelayId {
    RelayId { ms: (timestamp.max(0) / 1000) as u64, seq: offset }
}

fn decode(stream_id: u64, rec: Record) -> Result<RelayMessage> {
    let (payload, metadata) = decode_message(&rec.value).ok_or_else(|| {
        HeraldError::internal(format!("corrupt relay message at offset {} in stream {stream_id}", rec.offset))
    })?;
    let timestamp = rec.timestamp.div_euclid(1000);
    Ok(RelayMessage { id: id_of(timestamp, rec.offset), timestamp, payload, metadata })
}

/// The end of the prefix of a topic's log holding the messages with id `<= cursor` (`inclusive`) or `< cursor`:
/// the first offset whose message is beyond it, at most `end`.
///
/// `first_at_ms(ms)` is the first offset whose message has an id `ms` at or above `ms` (`end` if none). The
/// messages with exactly `cursor.ms` are then `[a, b)` with `a = first_at_ms(cursor.ms)` and
/// `b = first_at_ms(cursor.ms + 1)`; since a message's `seq` is its offset, those at or below the cursor are
/// `[a, min(b, seq + 1))`, and everything before `a` is below it.
pub(crate) fn prefix_end(
    cursor: RelayId,
    inclusive: bool,
    end: u64,
    mut first_at_ms: impl FnMut(u64) -> Result<u64>,
) -> Result<u64> {
    let a = first_at_ms(cursor.ms)?.min(end);
    let b = match cursor.ms.checked_add(1) {
        Some(next_ms) if a < end => first_at_ms(next_ms)?.min(end),
        _ => end,
    };
    let seq_bound = if inclusive { cursor.seq.saturating_add(1) } else { cursor.seq };
    Ok(a.max(b.min(seq_bound)))
}

impl Messages {
    pub fn open(store: SharedStore, clock: Arc<dyn Clock>, router: Arc<Router>, cfg: MessagesConfig) -> Result<Self> {
        std::fs::create_dir_all(&cfg.dir).map_err(|e| HeraldError::storage("creating the relay directory", e))?;
        // The next id is past every id in use, counting directories too: if a crash lost an assignment whose
        // log directory already existed, the id is not handed out again.
        let mut max_id = 0u64;
        for item in store.relay.streams.iter() {
            let (_, v) = item.into_inner().map_err(fjall_err("reading relay stream ids"))?;
            max_id = max_id.max(read_u64(&v).unwrap_or(0));
        }
        let entries = std::fs::read_dir(&cfg.dir).map_err(|e| HeraldError::storage("listing relay logs", e))?;
        for entry in entries.flatten() {
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                max_id = max_id.max(id);
            }
        }
        let cfg = MessagesConfig { max_messages: cfg.max_messages.max(1), ..cfg };
        Ok(Messages { store, clock, cfg, router, logs: RwLock::new(HashMap::new()), assign: Mutex::new(max_id + 1) })
    }

    /// The topic's log, opened if needed. Without `create`, `None` if the topic has never had a message.
    async fn topic_log(&self, owner_id: &str, topic: &str, create: bool) -> Result<Option<Arc<TopicLog>>> {
        check_key_part("owner id", owner_id)?;
        let key = pair_key(owner_id, topic);
        if let Some(t) = self.logs.read().get(&key) {
            return Ok(Some(Arc::clone(t)));
        }
        let (stream_id, ticket) = {
            let mut next = self.assign.lock();
            if let Some(t) = self.logs.read().get(&key) {
                return Ok(Some(Arc::clone(t)));
            }
            let existing = self.store.relay.streams.get(&key).map_err(fjall_err("reading a relay stream id"))?;
            match existing {
                Some(v) => {
                    let id = read_u64(&v).ok_or_else(|| HeraldError::internal("corrupt relay stream id"))?;
                    (id, None)
                }
                None if !create => return Ok(None),
                None => {
                    let id = *next;
                    let mut batch = self.store.batch();
                    batch.insert(&self.store.relay.streams, key.as_slice(), id.to_be_bytes());
                    let ticket = self.store.commit(batch)?;
                    *next += 1;
                    (id, Some(ticket))
                }
            }
        };
        // The assignment is durable (under `always`) before anything is written to the log it names.
        if let Some(ticket) = ticket {
            self.store.durable(ticket).await?;
        }
        let _guard = self.assign.lock();
        if let Some(t) = self.logs.read().get(&key) {
            return Ok(Some(Arc::clone(t)));
        }
        let t = Arc::new(self.open_log(stream_id)?);
        self.logs.write().insert(key, Arc::clone(&t));
        Ok(Some(t))
    }

    /// Opens (recovering) a stream's log and loads its newest messages into the hot tier.
    fn open_log(&self, stream_id: u64) -> Result<TopicLog> {
        // Count retention is not herald-log's `max_records`, which deletes a segment whenever the log is over the
        // limit, even if that leaves fewer records than the limit: the contract wants exactly the newest N visible.
        // Instead, age retention with a zero age turns `enforce_retention(t)` into "delete the segments whose newest
        // record is older than t", and `enforce_retention` below passes the timestamp of the oldest retained
        // message. Timestamps never decrease along a log, so such segments lie wholly before the retained window.
        let opts = LogOptions {
            segment_max_bytes: self.cfg.segment_max_bytes,
            retention: Retention { max_age: Some(std::time::Duration::ZERO), ..Retention::default() },
            ..LogOptions::default()
        };
        let (log, report) =
            Log::open(self.cfg.dir.join(stream_id.to_string()), opts).map_err(log_err("opening a relay topic log"))?;
        if report.lost_anything() {
            tracing::warn!(stream_id, %report, "relay topic log recovered with data loss at the torn tail");
        } else {
            tracing::debug!(stream_id, %report, "relay topic log opened");
        }
        let end = log.next_offset();
        // At least the newest message is read, for its timestamp, even with the hot tier off.
        let want = self.cfg.hot_messages.max(1) as u64;
        let from = end.saturating_sub(want).max(log.start_offset());
        let newest = read_range(stream_id, &log, from, end)?;
        let last_ts = newest.last().map_or(Micros::MIN, |m| m.timestamp);
        let mut msgs: VecDeque<RelayMessage> = newest.into();
        while msgs.len() > self.cfg.hot_messages {
            msgs.pop_front();
        }
        Ok(TopicLog { stream_id, log, publish: Mutex::new(last_ts), hot: RwLock::new(Hot { msgs, end }) })
    }

    pub async fn publish(
        &self,
        owner_id: &str,
        topic: &str,
        subject: &str,
        messages: Vec<RelayMessageIn>,
        encode: FrameEncoder<'_>,
    ) -> Result<Vec<RelayMessage>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let t = self.topic_log(owner_id, topic, true).await?.expect("created on demand");
        let heads: Vec<Vec<u8>> = messages.iter().map(|m| encode_message_head(m.metadata.as_deref())).collect();
        let stored = {
            let mut last = t.publish.lock();
            // Each message gets its own timestamp (bulk items too), never earlier than the one before it.
            let stamps: Vec<Micros> = messages
                .iter()
                .scan(*last, |prev, _| {
                    *prev = micros(&*self.clock).max(*prev);
                    Some(*prev)
                })
                .collect();
            let records: Vec<NewRecord<'_>> = heads
                .iter()
                .zip(&messages)
                .zip(&stamps)
                .map(|((head, m), ts)| NewRecord {
                    timestamp: ts.saturating_mul(1000),
                    prefix: head,
                    value: &m.payload,
                })
                .collect();
            let out = t.log.append(&records).map_err(log_err("appending to a relay topic"))?;
            *last = *stamps.last().expect("not empty");
            let stored: Vec<RelayMessage> = messages
                .into_iter()
                .zip(stamps)
                .zip(out.first_offset..)
                .map(|((m, ts), offset)| RelayMessage {
                    id: id_of(ts, offset),
                    timestamp: ts,
                    payload: m.payload,
                    metadata: m.metadata,
                })
                .collect();
            self.remember(&t, &stored, out.last_offset + 1);
            for m in &stored {
                let frame = encode(topic, m);
                let msg = Published { subject: subject.as_bytes(), reply: None, header_len: 0, body: &frame };
                self.router.publish(0, true, &msg);
            }
            stored
        };
        if self.cfg.policy == FsyncPolicy::Always {
            let t = Arc::clone(&t);
            tokio::task::spawn_blocking(move || t.log.sync())
                .await
                .map_err(|e| HeraldError::internal(format!("fsync task failed: {e}")))?
                .map_err(log_err("syncing a relay topic"))?;
        }
        Ok(stored)
    }

    /// The retained count and the newest message's time, from the open log's in-memory state (no log read once
    /// the log is open).
    pub async fn stats(&self, owner_id: &str, topic: &str) -> Result<RelayTopicStats> {
        let Some(t) = self.topic_log(owner_id, topic, false).await? else { return Ok(RelayTopicStats::default()) };
        let (first, end) = self.window(&t);
        let messages = end.saturating_sub(first);
        // The publish lock holds the newest timestamp (`Micros::MIN` until the first message).
        let newest = *t.publish.lock();
        Ok(RelayTopicStats { messages, last_message_at: (messages > 0 && newest != Micros::MIN).then_some(newest) })
    }

    /// Adds freshly stored messages to the hot tier and makes them visible to readers.
    ///
    /// The hot copies share one buffer per batch rather than the caller's buffers: a payload handed in may be a
    /// slice of a much larger request body, which the hot tier must not keep alive.
    fn remember(&self, t: &TopicLog, stored: &[RelayMessage], end: u64) {
        let keep = self.cfg.hot_messages;
        let skip = stored.len().saturating_sub(keep);
        let mut hot_copies = Vec::with_capacity(stored.len() - skip);
        if keep > 0 {
            let size: usize =
                stored[skip..].iter().map(|m| m.payload.len() + m.metadata.as_ref().map_or(0, |b| b.len())).sum();
            let mut buf = Vec::with_capacity(size);
            for m in &stored[skip..] {
                buf.extend_from_slice(&m.payload);
                if let Some(meta) = &m.metadata {
                    buf.extend_from_slice(meta);
                }
            }
            let buf = Bytes::from(buf);
            let mut at = 0;
            for m in &stored[skip..] {
                let payload = buf.slice(at..at + m.payload.len());
                at += m.payload.len();
                let metadata = m.metadata.as_ref().map(|meta| {
                    let s = buf.slice(at..at + meta.len());
                    at += meta.len();
                    s
                });
                hot_copies.push(RelayMessage { id: m.id, timestamp: m.timestamp, payload, metadata });
            }
        }
        let mut hot = t.hot.write();
        hot.msgs.extend(hot_copies);
        while hot.msgs.len() > keep {
            hot.msgs.pop_front();
        }
        hot.end = end;
    }

    /// (first retained offset, end) as of now.
    fn window(&self, t: &TopicLog) -> (u64, u64) {
        let end = t.hot.read().end;
        (t.log.start_offset().max(end.saturating_sub(self.cfg.max_messages)), end)
    }

    /// The messages at offsets `[lo, hi)`, oldest first; from the hot tier when it covers the range.
    fn read(&self, t: &TopicLog, lo: u64, hi: u64) -> Result<Vec<RelayMessage>> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        {
            let hot = t.hot.read();
            if let Some(front) = hot.front_seq()
                && lo >= front
                && hi <= hot.end
            {
                return Ok(hot.msgs.range((lo - front) as usize..(hi - front) as usize).cloned().collect());
            }
        }
        read_range(t.stream_id, &t.log, lo, hi)
    }

    /// [`prefix_end`] for `cursor` in this topic, answered from the hot tier when the cursor is at or past its
    /// oldest message (everything older is then below the cursor), else from the log's time index.
    fn cursor_end(&self, t: &TopicLog, cursor: RelayId, inclusive: bool, end: u64) -> Result<u64> {
        {
            let hot = t.hot.read();
            if let Some(front) = hot.msgs.front()
                && cursor >= front.id
            {
                let n = hot.msgs.partition_point(|m| if inclusive { m.id <= cursor } else { m.id < cursor });
                return Ok((front.id.seq + n as u64).min(end));
            }
        }
        prefix_end(cursor, inclusive, end, |ms| {
            let Some(ns) = ms.checked_mul(1_000_000).and_then(|ns| i64::try_from(ns).ok()) else { return Ok(end) };
            Ok(t.log.offset_for_timestamp(ns).map_err(log_err("searching a relay topic"))?.unwrap_or(end))
        })
    }

    pub async fn history(
        &self,
        owner_id: &str,
        topic: &str,
        order: HistoryOrder,
        cursor: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>> {
        match order {
            HistoryOrder::Asc => self.read_after(owner_id, topic, cursor, limit).await,
            HistoryOrder::Desc => {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let Some(t) = self.topic_log(owner_id, topic, false).await? else { return Ok(Vec::new()) };
                let (start, end) = self.window(&t);
                let hi = match cursor {
                    Some(c) => self.cursor_end(&t, c, false, end)?,
                    None => end,
                };
                let lo = hi.saturating_sub(limit as u64).max(start);
                let mut page = self.read(&t, lo, hi)?;
                page.reverse();
                Ok(page)
            }
        }
    }

    pub async fn read_after(
        &self,
        owner_id: &str,
        topic: &str,
        after: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(t) = self.topic_log(owner_id, topic, false).await? else { return Ok(Vec::new()) };
        let (start, end) = self.window(&t);
        let lo = match after {
            Some(c) => self.cursor_end(&t, c, true, end)?.max(start),
            None => start,
        };
        let hi = lo.saturating_add(limit as u64).min(end);
        self.read(&t, lo, hi)
    }

    fn all_logs(&self) -> Vec<Arc<TopicLog>> {
        self.logs.read().values().cloned().collect()
    }

    pub fn sync_all(&self) -> Result<()> {
        for t in self.all_logs() {
            t.log.sync().map_err(log_err("syncing a relay topic"))?;
        }
        Ok(())
    }

    /// Deletes whole segments that lie entirely outside the count cap (see `open_log`).
    pub fn enforce_retention(&self) -> Result<()> {
        for t in self.all_logs() {
            let (start, _) = self.window(&t);
            if start <= t.log.start_offset() {
                continue;
            }
            let Some(oldest_kept) = read_range(t.stream_id, &t.log, start, start + 1)?.pop() else { continue };
            let cutoff_ns = oldest_kept.timestamp.saturating_mul(1000);
            let out = t.log.enforce_retention(cutoff_ns).map_err(log_err("enforcing relay retention"))?;
            if out.segments_removed > 0 {
                tracing::debug!(
                    stream_id = t.stream_id,
                    records = out.records_removed,
                    bytes = out.bytes_removed,
                    "relay retention removed old segments"
                );
            }
        }
        Ok(())
    }
}

/// Reads offsets `[lo, hi)` from the log (fewer if retention removed some meanwhile).
fn read_range(stream_id: u64, log: &Log, lo: u64, hi: u64) -> Result<Vec<RelayMessage>> {
    let mut out = Vec::with_capacity(hi.saturating_sub(lo).min(1024) as usize);
    let mut at = lo;
    while at < hi {
        let recs =
            log.read(at, (hi - at).min(1 << 16) as usize, READ_MAX_BYTES).map_err(log_err("reading a relay topic"))?;
        if recs.is_empty() {
            break;
        }
        for rec in recs {
            if rec.offset >= hi {
                return Ok(out);
            }
            at = rec.offset + 1;
            out.push(decode(stream_id, rec)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids as the engine makes them: `seq` = position, `ms` never decreasing.
    fn model(ms: &[u64]) -> Vec<RelayId> {
        assert!(ms.windows(2).all(|w| w[0] <= w[1]));
        ms.iter().enumerate().map(|(i, &ms)| RelayId { ms, seq: i as u64 }).collect()
    }

    /// `prefix_end` over a model log whose oldest `trimmed` entries are gone (as `offset_for_timestamp` only sees
    /// stored segments, it answers with the first stored offset at or above the time).
    fn end_of(ids: &[RelayId], trimmed: usize, cursor: RelayId, inclusive: bool) -> u64 {
        let end = ids.len() as u64;
        prefix_end(cursor, inclusive, end, |ms| {
            Ok(ids[trimmed..].iter().position(|id| id.ms >= ms).map_or(end, |i| (i + trimmed) as u64))
        })
        .unwrap()
    }

    fn brute(ids: &[RelayId], cursor: RelayId, inclusive: bool) -> u64 {
        ids.iter().filter(|id| if inclusive { **id <= cursor } else { **id < cursor }).count() as u64
    }

    #[test]
    fn prefix_end_matches_a_brute_force_count() {
        let logs = [model(&[]), model(&[5]), model(&[5, 5, 5]), model(&[1, 1, 2, 4, 4, 4, 9, 10, 10])];
        for ids in &logs {
            let max_ms = ids.last().map_or(0, |id| id.ms) + 2;
            for ms in 0..=max_ms {
                for seq in 0..=(ids.len() as u64 + 2) {
                    let c = RelayId { ms, seq };
                    for inclusive in [false, true] {
                        assert_eq!(end_of(ids, 0, c, inclusive), brute(ids, c, inclusive), "{ids:?} {c} {inclusive}");
                        // With a trimmed head, the answer only has to agree from the first stored offset on.
                        for trimmed in 0..ids.len() {
                            let got = end_of(ids, trimmed, c, inclusive).max(trimmed as u64);
                            assert_eq!(got, brute(ids, c, inclusive).max(trimmed as u64), "{ids:?} -{trimmed} {c}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prefix_end_edge_cases() {
        let ids = model(&[100, 100, 100, 105, 110]);
        // A cursor older than everything: nothing is at or below it.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 1, seq: 99 }, true), 0);
        // A future cursor: everything is below it.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 200, seq: 0 }, true), 5);
        assert_eq!(end_of(&ids, 0, RelayId { ms: u64::MAX, seq: u64::MAX }, true), 5);
        // An exact id: inclusive counts it, strict does not.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 100, seq: 1 }, true), 2);
        assert_eq!(end_of(&ids, 0, RelayId { ms: 100, seq: 1 }, false), 1);
        // Same ms, a seq beyond that ms's messages: all of that ms, nothing after.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 100, seq: 50 }, true), 3);
        // Same ms, a seq below that ms's first message: nothing of that ms.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 105, seq: 0 }, true), 3);
        // A gap between two ms values.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 107, seq: 0 }, false), 4);
        // The smallest id.
        assert_eq!(end_of(&ids, 0, RelayId { ms: 0, seq: 0 }, false), 0);
    }
}
