//! What follows a successful FlowMesh operation, whatever the transport: the §5.9 metrics and the §5.8 live-feed
//! events (D18). The gRPC handlers (`grpc/flowmesh/`) and the HTTP routes (`admin/`) call the same functions after
//! their engine call, so both transports count and publish alike; whatever decides *what* to count or publish
//! (which NACK failure still changed the queue, which Reserve counts) lives here, not in either front-end.
//!
//! Replay sessions are the exception to "the handlers call these": their changes also come from the replay task,
//! which runs without any request, so [`follow_replays`] registers the feed as the engine's replay listener once at
//! start-up and every stored change (start, pause, resume, stop, delete, progress, completion, error) is published
//! from there, whoever made it. Only get-one, which changes nothing, is published by the handlers
//! ([`replay_read`]). The engine's maintenance tasks change queues (expired reservations, dead-lettering) and KV
//! stores (expired keys) without a request too; [`follow_engine_changes`] publishes those.
//!
//! Payloads that cost an engine call (queue statistics) are fetched only when a `/ws` connection would receive
//! the event, or after a dead-lettering (rare), whose counts and DLQ depth are then current at once.

use crate::admin::replay_session_superset;
use crate::feed::{self, Feed, KvAction};
use crate::flowmesh_metrics::FlowmeshMetrics;
use crate::state::AppState;
use herald_engine::replay::{ReplayChange, ReplaySession};
use herald_engine::{ConsumerGroupState, EngineChange, EventIn, Job, QueueStats, Queues, StreamMessage};
use herald_types::{ErrorCode, HeraldError, ResourceKind, ResourcePath};
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------- streams

/// The payload bytes of a write (`flowmesh_stream_bytes_written_total` counts payloads, not headers); taken before
/// the events are handed to the engine.
pub fn payload_bytes(events: &[EventIn]) -> u64 {
    events.iter().map(|e| e.payload.len() as u64).sum()
}

/// After WriteEvents: `offsets` as returned by the engine, `bytes` the payload bytes written.
pub fn stream_written(state: &AppState, path: &ResourcePath, offsets: &[i64], bytes: u64, took: Duration) {
    let Some(&latest) = offsets.last() else { return };
    state.metrics.stream_written(path, offsets.len(), bytes, latest, took);
    state.feed.stream_stats(path, latest);
}

/// After a caller read a stream's statistics (HTTP `GET .../stats`): FlowMesh publishes them to the feed. The
/// topic names no partition and every write publishes partition 0's offset, so only a partition-0 read is
/// published: another partition's `-1` (always empty, §1.3) would read as "the stream is empty".
pub fn stream_stats_read(state: &AppState, path: &ResourcePath, partition: i32, latest_offset: i64) {
    if partition <= 0 {
        state.feed.stream_stats(path, latest_offset);
    }
}

/// After ReadStream, or after a subscription read a batch.
pub fn stream_read(state: &AppState, path: &ResourcePath, partition: i32, messages: &[StreamMessage], took: Duration) {
    let bytes = messages.iter().map(|m| m.payload.len() as u64).sum();
    state.metrics.stream_read(path, partition, bytes, took);
}

/// After CommitOffset.
pub fn offset_committed(state: &AppState, path: &ResourcePath, group: &str, partition: i32, offset: i64) {
    state.metrics.offset_committed(path, group, partition, offset);
}

/// After a consumer group's state was computed (GetConsumerGroupState, or a listing of groups).
pub fn group_state(state: &AppState, path: &ResourcePath, group: &ConsumerGroupState) {
    state.metrics.group_state(path, group);
}

// ---------------------------------------------------------------- queues

/// After Enqueue, which gave the job `seq`.
pub async fn enqueued(state: &AppState, path: &ResourcePath, seq: i64, took: Duration) {
    state.metrics.enqueued(path, seq, took);
    publish_queue_stats(state, path).await;
}

/// After a Reserve. Only one that returned a job is timed (`flowmesh_queue_reserve_duration_seconds`): an empty
/// answer measures the long poll, not the queue.
pub fn reserved(state: &AppState, path: &ResourcePath, job: Option<&Job>, took: Duration) {
    if job.is_some() {
        state.metrics.reserved(path, took);
    }
}

/// After ACK. `flowmesh_queue_completed_jobs` is the queue's durable completed count, which every scrape reads
/// from the engine (an ACK of a job that is not in flight succeeds without completing anything, so the handler
/// cannot count it itself); the ACK therefore costs no extra engine call unless a `/ws` connection wants the stats.
pub async fn acked(state: &AppState, path: &ResourcePath) {
    publish_queue_stats(state, path).await;
}

/// After NACK, with the engine's answer. FAILED_PRECONDITION means the job used its attempts and moved to the
/// `-dlq` queue: the call fails, yet both queues changed. Any other failure changed nothing.
pub async fn nacked(state: &AppState, path: &ResourcePath, outcome: &Result<(), HeraldError>) {
    let dead_lettered = match outcome {
        Ok(()) => false,
        Err(e) if e.code == ErrorCode::FailedPrecondition => true,
        Err(_) => return,
    };
    let view = QueueFeed::of(state);
    if dead_lettered {
        view.after_dead_lettering(path).await;
    } else {
        view.publish_stats(path).await;
    }
}

/// After ReplayDLQJob moved a job from `path`'s dead-letter queue back into `path`, where it was given `seq`.
pub async fn dlq_replayed(state: &AppState, path: &ResourcePath, seq: i64) {
    state.metrics.jobs_total(path, seq);
    publish_queue_stats(state, path).await;
    let dlq = path.sibling(ResourceKind::Queue, format!("{}-dlq", path.name));
    if let Ok(stats) = state.engine.queues.stats(&dlq).await {
        state.metrics.dlq_depth(path, &stats);
        state.feed.queue_stats(&dlq, &stats);
    }
}

/// After a queue's statistics were computed for a caller (GetQueueStats, HTTP `GET .../stats`): FlowMesh refreshes
/// its gauges here, and its HTTP route publishes them. Herald publishes for gRPC too: the stats are in hand, so
/// this costs no engine call, and a dashboard sees the same thing whichever client asked.
pub fn queue_stats_read(state: &AppState, path: &ResourcePath, stats: &QueueStats) {
    state.metrics.queue_stats(path, stats);
    state.feed.queue_stats(path, stats);
}

/// Publishes `queue.stats` for `path` if a `/ws` connection would receive it; otherwise costs no engine call.
pub async fn publish_queue_stats(state: &AppState, path: &ResourcePath) {
    QueueFeed::of(state).publish_stats(path).await;
}

/// What publishing a queue's statistics needs. Borrowed from [`AppState`] by the handlers; the engine's change
/// listener builds it from parts it owns, because it must not hold the engine (the engine holds the listener).
struct QueueFeed<'a> {
    queues: &'a dyn Queues,
    feed: &'a Feed,
    metrics: &'a FlowmeshMetrics,
}

impl<'a> QueueFeed<'a> {
    fn of(state: &'a AppState) -> Self {
        QueueFeed { queues: &*state.engine.queues, feed: &state.feed, metrics: &state.metrics }
    }

    async fn publish_stats(&self, path: &ResourcePath) {
        if self.feed.connections() == 0 || !self.feed.wants(&feed::resource_topic(feed::kind::QUEUE_STATS, path)) {
            return;
        }
        if let Ok(stats) = self.queues.stats(path).await {
            self.feed.queue_stats(path, &stats);
        }
    }

    /// After jobs of `path` moved to its `-dlq` queue (a NACK out of attempts, or an expired reservation): both
    /// queues changed, and the DLQ depth with them.
    async fn after_dead_lettering(&self, path: &ResourcePath) {
        if let Ok(stats) = self.queues.stats(path).await {
            self.metrics.queue_stats(path, &stats);
            self.feed.queue_stats(path, &stats);
        }
        let dlq = path.sibling(ResourceKind::Queue, format!("{}-dlq", path.name));
        if let Ok(stats) = self.queues.stats(&dlq).await {
            self.metrics.queue_stats(&dlq, &stats);
            self.metrics.dlq_depth(path, &stats);
            self.feed.queue_stats(&dlq, &stats);
        }
    }
}

// ---------------------------------------------------------------- kv

/// After KV Set.
pub fn kv_set(state: &AppState, path: &ResourcePath, key: &str) {
    state.feed.kv_update(path, KvAction::Set, key);
}

/// After KV Delete (also when the key did not exist: the call succeeded).
pub fn kv_deleted(state: &AppState, path: &ResourcePath, key: &str) {
    state.feed.kv_update(path, KvAction::Delete, key);
}

// ---------------------------------------------------------------- replay

// ---------------------------------------------------------------- changes the engine makes on its own

/// Publishes what the engine's maintenance tasks change without a request (§5.8: expiry and dead-lettering →
/// `queue.stats`, KV expiry → `kv.update` with action `delete`). Called once, when the server starts, inside the
/// runtime: the listener is called from those tasks and must not wait, so queue statistics are fetched on a task
/// of their own.
pub fn follow_engine_changes(state: &AppState) {
    let runtime = tokio::runtime::Handle::current();
    let (queues, feed, metrics) = (Arc::clone(&state.engine.queues), state.feed.clone(), Arc::clone(&state.metrics));
    state.engine.set_change_listener(Arc::new(move |change| match change {
        EngineChange::ReservationsExpired { queue, dead_lettered } => {
            let (queues, feed, metrics, queue) = (queues.clone(), feed.clone(), metrics.clone(), queue.clone());
            runtime.spawn(async move {
                let view = QueueFeed { queues: &*queues, feed: &feed, metrics: &metrics };
                if dead_lettered {
                    view.after_dead_lettering(&queue).await;
                } else {
                    view.publish_stats(&queue).await;
                }
            });
        }
        EngineChange::KeyExpired { store, key } => feed.kv_update(store, KvAction::Delete, key),
    }));
}

/// Publishes `replay.session` (§5.8, D18, D19) for every change the engine stores, from either transport or from a
/// replay task. Called once, when the server starts.
pub fn follow_replays(state: &AppState) {
    let feed = state.feed.clone();
    state.engine.replays.set_listener(Arc::new(move |change| match change {
        ReplayChange::Updated(session) => publish_session(&feed, session),
        // Nothing about a session can follow its deletion, hence the highest order.
        ReplayChange::Deleted(id) => {
            feed.replay_session(id, i64::MAX, || serde_json::json!({"id": id, "status": "deleted"}))
        }
    }));
}

/// After a session was read by id (HTTP get-one, gRPC GetReplaySession): FlowMesh publishes it then, so a
/// dashboard that asks sees the answer on the feed as well.
pub fn replay_read(state: &AppState, session: &ReplaySession) {
    publish_session(&state.feed, session);
}

fn publish_session(feed: &Feed, session: &ReplaySession) {
    feed.replay_session(&session.id, session.updated_at, || replay_session_superset(session));
}
