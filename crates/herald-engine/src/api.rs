//! The engine's service traits and the data they speak.
//!
//! Front-ends (gRPC, HTTP, WebSocket, NATS) talk only to these traits, never to a store. The traits are async and
//! free of file-system types so that a second backend (state in a Valkey/Redis cluster, several stateless Herald
//! nodes) can implement them without rework. Argument checks that are about *meaning* (ranges, existence) live behind
//! the traits, so every front-end gets the same answers; checks about the *shape* of a wire message (a missing field)
//! are the front-end's.

use async_trait::async_trait;
use bytes::Bytes;
use herald_types::{ResourceKind, ResourcePath, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

pub type Headers = BTreeMap<String, String>;

// ---------------------------------------------------------------- resources

/// A resource's configuration, in the exact JSON shape of FlowMesh's `resources.json` (compat/flowmesh.md §1.2), so
/// existing provisioning files load unchanged and the HTTP listings can return it as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceConfig {
    pub tenant: String,
    pub namespace: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    #[serde(default = "one")]
    pub partitions: i32,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq: Option<DlqConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// RFC 3339 with nanoseconds.
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub updated_at: String,
}

fn one() -> i32 {
    1
}

impl ResourceConfig {
    pub fn path(&self) -> Result<ResourcePath> {
        ResourcePath::new(&self.tenant, &self.namespace, self.kind, &self.name)
    }
}

/// Stream retention limits. FlowMesh stores but never enforces these; Herald enforces whatever is set (an empty
/// object, the default, keeps everything forever, which is FlowMesh's observable behaviour).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionConfig {
    /// Go duration in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i32>,
    #[serde(default)]
    pub dlq_path: String,
}

#[async_trait]
pub trait Resources: Send + Sync {
    /// Creates the resource, or updates the mutable parts of its configuration (retention, retry policy) if it
    /// exists. Returns whether it was created.
    async fn provision(&self, config: ResourceConfig) -> Result<bool>;
    async fn get(&self, path: &ResourcePath) -> Result<Option<ResourceConfig>>;
    /// All resources of a kind (or all), sorted by path (D15).
    async fn list(&self, kind: Option<ResourceKind>) -> Result<Vec<ResourceConfig>>;
}

// ---------------------------------------------------------------- streams

#[derive(Clone, Debug, PartialEq)]
pub struct EventIn {
    pub payload: Bytes,
    pub headers: Headers,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StreamMessage {
    pub id: String,
    pub resource_path: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Bytes,
    pub headers: Headers,
    /// Unix nanoseconds.
    pub created_at: i64,
    pub schema_version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupState {
    pub stream: String,
    pub group: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub latest_offset: i64,
    pub lag: i64,
}

/// A live position in a stream: yields batches of messages as they are written.
#[async_trait]
pub trait StreamTail: Send {
    /// The next batch (at least one message), in offset order, waiting as long as it takes.
    async fn next_batch(&mut self) -> Result<Vec<StreamMessage>>;
}

#[async_trait]
pub trait Streams: Send + Sync {
    /// Appends all events or none; returns one offset per event, in order. With a schema attached to the stream,
    /// every payload must validate first (INVALID_ARGUMENT otherwise) and each message records the schema version.
    async fn append(&self, stream: &ResourcePath, events: Vec<EventIn>) -> Result<Vec<i64>>;
    /// Messages with offset >= `offset`, ascending. `max_messages` is clamped as the contract says (≤0 → 100, >1000 → 1000).
    async fn read(
        &self,
        stream: &ResourcePath,
        partition: i32,
        offset: i64,
        max_messages: i32,
    ) -> Result<Vec<StreamMessage>>;
    /// Offset of the last message, -1 if empty.
    async fn latest_offset(&self, stream: &ResourcePath, partition: i32) -> Result<i64>;
    /// Offset of the first stored message whose `created_at` is at or after `timestamp` (Unix ns), `None` when no
    /// stored message is that recent. Replay sessions turn a timestamp bound into an offset with it.
    async fn offset_for_timestamp(&self, stream: &ResourcePath, partition: i32, timestamp: i64) -> Result<Option<i64>>;
    async fn commit_offset(&self, stream: &ResourcePath, group: &str, partition: i32, offset: i64) -> Result<()>;
    /// The committed offset, -1 if the group never committed.
    async fn committed_offset(&self, stream: &ResourcePath, group: &str, partition: i32) -> Result<i64>;
    async fn group_state(&self, stream: &ResourcePath, group: &str, partition: i32) -> Result<ConsumerGroupState>;
    /// All groups with a committed offset on the stream, sorted by name (D15).
    async fn list_groups(&self, stream: &ResourcePath) -> Result<Vec<ConsumerGroupState>>;
    /// Starts tailing. `start_offset`: ≥0 from there, -1 after the group's committed offset, -2 after the current end.
    async fn subscribe(
        &self,
        stream: &ResourcePath,
        group: &str,
        partition: i32,
        start_offset: i64,
    ) -> Result<Box<dyn StreamTail>>;
}

// ---------------------------------------------------------------- queues

#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub resource_path: String,
    pub seq: i64,
    pub payload: Bytes,
    pub headers: Headers,
    pub created_at: i64,
    pub visible_at: i64,
    /// 0 when not reserved.
    pub reserve_until: i64,
    pub attempts: i32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub total_jobs: i64,
    pub pending_jobs: i64,
    pub in_flight_jobs: i64,
    pub completed_jobs: i64,
    pub failed_jobs: i64,
    pub oldest_job_age_seconds: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub initial_backoff_seconds: i64,
    pub max_backoff_seconds: i64,
    pub backoff_multiplier: f64,
    pub backoff_strategy: String,
}

impl Default for RetryPolicy {
    /// FlowMesh's default: 3 attempts, 1 s initial, 60 s max, ×2, exponential.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 60,
            backoff_multiplier: 2.0,
            backoff_strategy: "exponential".into(),
        }
    }
}

/// What a receive asks for. Seconds are the wire's whole seconds; the engine applies defaults and caps.
#[derive(Clone, Copy, Debug)]
pub struct ReceiveOptions {
    pub max_jobs: i32,
    pub visibility_timeout_seconds: i64,
    pub long_poll: Duration,
}

#[async_trait]
pub trait Queues: Send + Sync {
    /// Returns `(job_id, seq)`. With a schema attached to the queue, the payload must validate against it.
    async fn enqueue(
        &self,
        queue: &ResourcePath,
        payload: Bytes,
        delay_seconds: i64,
        headers: Headers,
    ) -> Result<(String, i64)>;
    /// Reserves up to `max_jobs` visible jobs (earliest `visible_at`, then lowest `seq`), long-polling if none is.
    async fn receive(&self, queue: &ResourcePath, options: ReceiveOptions) -> Result<Vec<Job>>;
    /// Idempotent: a job that is not in flight is a successful no-op.
    async fn ack(&self, queue: &ResourcePath, job_id: &str) -> Result<()>;
    /// Requeues with `delay_seconds` (>0) or the retry policy's backoff; dead-letters and fails with
    /// FAILED_PRECONDITION when the job has used its attempts.
    async fn nack(&self, queue: &ResourcePath, job_id: &str, delay_seconds: i64) -> Result<()>;
    async fn stats(&self, queue: &ResourcePath) -> Result<QueueStats>;
    async fn set_retry_policy(&self, queue: &ResourcePath, policy: RetryPolicy) -> Result<()>;
    async fn retry_policy(&self, queue: &ResourcePath) -> Result<RetryPolicy>;
    async fn list_dlq(&self, queue: &ResourcePath, max_jobs: i32) -> Result<Vec<Job>>;
    /// Moves a DLQ job back to the main queue as a new job; returns `(job_id, seq)`.
    async fn replay_dlq(&self, queue: &ResourcePath, dlq_job_id: &str) -> Result<(String, i64)>;
}

// ---------------------------------------------------------------- kv

/// One live KV entry as the dashboard lists it: its key, how big its value is and when it expires, without the
/// value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntryInfo {
    pub key: String,
    /// Bytes of the value.
    pub size: u64,
    /// Unix nanoseconds, or `None` for an entry that never expires.
    pub expires_at: Option<i64>,
}

#[async_trait]
pub trait Kv: Send + Sync {
    /// Inserts or overwrites value and expiry (D9). `ttl_seconds <= 0` means no expiry.
    async fn set(&self, store: &ResourcePath, key: &str, value: Bytes, ttl_seconds: i64) -> Result<()>;
    async fn get(&self, store: &ResourcePath, key: &str) -> Result<Bytes>;
    /// Idempotent.
    async fn delete(&self, store: &ResourcePath, key: &str) -> Result<()>;
    async fn exists(&self, store: &ResourcePath, key: &str) -> Result<bool>;
    /// Live keys starting with `prefix`, in ascending byte order.
    async fn list_keys(&self, store: &ResourcePath, prefix: &str) -> Result<Vec<String>>;
    /// The first `limit` live entries whose key starts with `prefix`, in ascending key order: key, value size and
    /// expiry (values are not copied out).
    async fn list_entries(&self, store: &ResourcePath, prefix: &str, limit: usize) -> Result<Vec<KvEntryInfo>>;
}

/// A change the engine makes on its own, with no request behind it (its maintenance tasks). Front-ends that mirror
/// changes elsewhere (the FlowMesh live feed, §5.8: "expiry/dead-lettering → `queue.stats`", "KV expiry →
/// `kv.update`") learn of these through the listener given to [`crate::Engine::set_change_listener`]; changes made
/// by a request are reported by the front-end that made the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineChange<'a> {
    /// Reservations in `queue` ran out (visibility timeout): their jobs are pending again or, out of attempts, were
    /// moved to the queue's `-dlq` queue (`dead_lettered`). Reported once the change is durable.
    ReservationsExpired { queue: &'a ResourcePath, dead_lettered: bool },
    /// A KV entry reached its TTL and was reclaimed. It was invisible from the moment it expired (D9); this reports
    /// the reclaim, which follows within about a second.
    KeyExpired { store: &'a ResourcePath, key: &'a str },
}

/// Told about every [`EngineChange`]. Called from the maintenance work that made the change (a tokio task, or a
/// blocking thread for the KV reaper), so it must not block or await: anything slow belongs on a task of the
/// listener's own, spawned on a runtime handle it captured.
pub type ChangeListener = std::sync::Arc<dyn Fn(EngineChange<'_>) + Send + Sync>;
