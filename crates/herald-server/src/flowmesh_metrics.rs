//! FlowMesh's Prometheus metrics (compat/flowmesh.md §5.9): the nineteen `flowmesh_*` families with FlowMesh's
//! names, types and labels, in a registry of their own, served as `GET /metrics` on the admin listener and on the
//! dedicated metrics listener (D23).
//!
//! Counters and histograms are updated where the operations succeed ([`crate::observe`], shared by every
//! transport). Gauges that describe state other operations change (queue depth, oldest job, DLQ depth, committed
//! offsets, lag, latest offsets) are also refreshed from the engine at every scrape, so they are current rather than
//! as old as the last GetQueueStats (FlowMesh's behaviour).
//!
//! The queue counters `total_jobs`, `completed_jobs` and `failed_jobs` follow the queue's durable counts (the same
//! numbers GetQueueStats reports, D6): the engine enqueues into dead-letter queues and dead-letters expired jobs
//! without a request, and those must be counted too. Each counter is raised to the newest count seen, never
//! lowered, with a high-water mark per series so that concurrent updates add up exactly.

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use herald_engine::{ConsumerGroupState, Engine, QueueStats};
use herald_types::{ResourceKind, ResourcePath};
use parking_lot::RwLock;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const STREAM_LABELS: &[&str] = &["tenant", "namespace", "stream", "partition"];
const QUEUE_LABELS: &[&str] = &["tenant", "namespace", "queue"];
const GROUP_LABELS: &[&str] = &["tenant", "namespace", "stream", "consumer_group", "partition"];

pub struct FlowmeshMetrics {
    registry: Registry,
    stream_events: IntCounterVec,
    stream_bytes_written: IntCounterVec,
    stream_bytes_read: IntCounterVec,
    stream_offset: IntGaugeVec,
    stream_write_duration: HistogramVec,
    stream_read_duration: HistogramVec,
    queue_total: IntCounterVec,
    queue_enqueue_duration: HistogramVec,
    queue_reserve_duration: HistogramVec,
    queue_pending: IntGaugeVec,
    queue_in_flight: IntGaugeVec,
    queue_depth: IntGaugeVec,
    queue_oldest_age: IntGaugeVec,
    queue_failed: IntCounterVec,
    queue_dlq: IntGaugeVec,
    queue_completed: IntCounterVec,
    group_commits: IntCounterVec,
    group_committed: IntGaugeVec,
    group_lag: IntGaugeVec,
    /// Each queue's series, resolved once (label lookups hash every label on each call; these are on the request
    /// path).
    queues: RwLock<HashMap<ResourcePath, Arc<QueueSeries>>>,
    /// Each stream's partition-0 series (the only partition that is ever written).
    streams: RwLock<HashMap<ResourcePath, Arc<StreamSeries>>>,
}

/// One queue's request-path series. `counts` are `total`, `completed` and `failed` with the highest count each has
/// been raised to.
struct QueueSeries {
    counts: [IntCounter; 3],
    marks: [AtomicU64; 3],
    enqueue: Histogram,
    reserve: Histogram,
}

impl QueueSeries {
    const TOTAL: usize = 0;
    const COMPLETED: usize = 1;
    const FAILED: usize = 2;

    /// Raises count `i` to `count`: `fetch_max` hands each caller the mark it replaced, so concurrent raises add
    /// exactly the difference between the old and the new maximum.
    fn raise(&self, i: usize, count: i64) {
        let count = count.max(0) as u64;
        let before = self.marks[i].fetch_max(count, Ordering::Relaxed);
        if count > before {
            self.counts[i].inc_by(count - before);
        }
    }
}

/// One stream's partition-0 series.
struct StreamSeries {
    events: IntCounter,
    bytes_written: IntCounter,
    bytes_read: IntCounter,
    offset: IntGauge,
    write: Histogram,
    read: Histogram,
}

fn queue_labels(path: &ResourcePath) -> [&str; 3] {
    [&path.tenant, &path.namespace, &path.name]
}

impl FlowmeshMetrics {
    pub fn new() -> FlowmeshMetrics {
        let registry = Registry::new();
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone())).expect("metric names are unique");
            m
        }
        let counter = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        // Default buckets, which are the Go client's defaults too.
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, HistogramVec::new(HistogramOpts::new(name, help), labels).expect("valid metric"))
        };
        FlowmeshMetrics {
            stream_events: counter(
                "flowmesh_stream_events_total",
                "Total number of events written to streams",
                STREAM_LABELS,
            ),
            stream_bytes_written: counter(
                "flowmesh_stream_bytes_written_total",
                "Total bytes written to streams",
                STREAM_LABELS,
            ),
            stream_bytes_read: counter(
                "flowmesh_stream_bytes_read_total",
                "Total bytes read from streams",
                STREAM_LABELS,
            ),
            stream_offset: gauge("flowmesh_stream_offset", "Latest offset in stream partition", STREAM_LABELS),
            stream_write_duration: histogram(
                "flowmesh_stream_write_duration_seconds",
                "Duration of stream write operations",
                STREAM_LABELS,
            ),
            stream_read_duration: histogram(
                "flowmesh_stream_read_duration_seconds",
                "Duration of stream read operations",
                STREAM_LABELS,
            ),
            queue_total: counter("flowmesh_queue_total_jobs", "Total number of jobs enqueued", QUEUE_LABELS),
            queue_enqueue_duration: histogram(
                "flowmesh_queue_enqueue_duration_seconds",
                "Duration of enqueue operations",
                QUEUE_LABELS,
            ),
            queue_reserve_duration: histogram(
                "flowmesh_queue_reserve_duration_seconds",
                "Duration of reserve operations",
                QUEUE_LABELS,
            ),
            queue_pending: gauge("flowmesh_queue_pending", "Number of pending jobs in queue", QUEUE_LABELS),
            queue_in_flight: gauge("flowmesh_queue_in_flight", "Number of in-flight jobs in queue", QUEUE_LABELS),
            queue_depth: gauge("flowmesh_queue_depth", "Total queue depth (pending + in-flight)", QUEUE_LABELS),
            queue_oldest_age: gauge(
                "flowmesh_queue_oldest_job_age_seconds",
                "Age of the oldest pending job in seconds",
                QUEUE_LABELS,
            ),
            queue_failed: counter("flowmesh_queue_failed_jobs", "Total number of failed jobs", QUEUE_LABELS),
            queue_dlq: gauge("flowmesh_queue_dlq_jobs", "Number of jobs in dead letter queue", QUEUE_LABELS),
            queue_completed: counter("flowmesh_queue_completed_jobs", "Total number of completed jobs", QUEUE_LABELS),
            group_commits: counter(
                "flowmesh_consumer_group_offset_commits_total",
                "Total number of offset commits",
                GROUP_LABELS,
            ),
            group_committed: gauge(
                "flowmesh_consumer_group_committed_offset",
                "Committed offset for consumer group",
                GROUP_LABELS,
            ),
            group_lag: gauge("flowmesh_consumer_group_lag", "Consumer group lag (messages behind)", GROUP_LABELS),
            queues: RwLock::new(HashMap::new()),
            streams: RwLock::new(HashMap::new()),
            registry,
        }
    }

    // ------------------------------------------------------------------ streams

    fn stream(&self, path: &ResourcePath) -> Arc<StreamSeries> {
        if let Some(s) = self.streams.read().get(path) {
            return Arc::clone(s);
        }
        let labels = [path.tenant.as_str(), &path.namespace, &path.name, "0"];
        let series = Arc::new(StreamSeries {
            events: self.stream_events.with_label_values(&labels),
            bytes_written: self.stream_bytes_written.with_label_values(&labels),
            bytes_read: self.stream_bytes_read.with_label_values(&labels),
            offset: self.stream_offset.with_label_values(&labels),
            write: self.stream_write_duration.with_label_values(&labels),
            read: self.stream_read_duration.with_label_values(&labels),
        });
        Arc::clone(self.streams.write().entry(path.clone()).or_insert(series))
    }

    /// A successful write of `events` events (`bytes` payload bytes) ending at `latest_offset` (partition 0).
    pub fn stream_written(&self, path: &ResourcePath, events: usize, bytes: u64, latest_offset: i64, took: Duration) {
        let s = self.stream(path);
        s.events.inc_by(events as u64);
        s.bytes_written.inc_by(bytes);
        // Concurrent writers may finish out of order; the gauge only moves forward.
        if latest_offset > s.offset.get() {
            s.offset.set(latest_offset);
        }
        s.write.observe(took.as_secs_f64());
    }

    /// A read (ReadStream, or one batch of a subscription) that returned `bytes` payload bytes.
    pub fn stream_read(&self, path: &ResourcePath, partition: i32, bytes: u64, took: Duration) {
        if partition <= 0 {
            let s = self.stream(path);
            s.bytes_read.inc_by(bytes);
            s.read.observe(took.as_secs_f64());
            return;
        }
        let partition = partition.to_string();
        let labels = [path.tenant.as_str(), &path.namespace, &path.name, &partition];
        self.stream_bytes_read.with_label_values(&labels).inc_by(bytes);
        self.stream_read_duration.with_label_values(&labels).observe(took.as_secs_f64());
    }

    pub fn offset_committed(&self, path: &ResourcePath, group: &str, partition: i32, offset: i64) {
        let partition = partition.max(0).to_string();
        let labels = [path.tenant.as_str(), &path.namespace, &path.name, group, &partition];
        self.group_commits.with_label_values(&labels).inc();
        self.group_committed.with_label_values(&labels).set(offset);
    }

    /// A computed group state: its lag (when there is one, as in FlowMesh) and committed offset.
    pub fn group_state(&self, path: &ResourcePath, state: &ConsumerGroupState) {
        let partition = state.partition.max(0).to_string();
        let labels = [path.tenant.as_str(), &path.namespace, &path.name, &state.group, &partition];
        if state.lag >= 0 {
            self.group_lag.with_label_values(&labels).set(state.lag);
        }
        if state.committed_offset >= 0 {
            self.group_committed.with_label_values(&labels).set(state.committed_offset);
        }
    }

    // ------------------------------------------------------------------ queues

    fn queue(&self, path: &ResourcePath) -> Arc<QueueSeries> {
        if let Some(q) = self.queues.read().get(path) {
            return Arc::clone(q);
        }
        let labels = queue_labels(path);
        let series = Arc::new(QueueSeries {
            counts: [
                self.queue_total.with_label_values(&labels),
                self.queue_completed.with_label_values(&labels),
                self.queue_failed.with_label_values(&labels),
            ],
            marks: Default::default(),
            enqueue: self.queue_enqueue_duration.with_label_values(&labels),
            reserve: self.queue_reserve_duration.with_label_values(&labels),
        });
        Arc::clone(self.queues.write().entry(path.clone()).or_insert(series))
    }

    /// A successful enqueue that was given `seq`: the queue has had `seq + 1` jobs.
    pub fn enqueued(&self, path: &ResourcePath, seq: i64, took: Duration) {
        let q = self.queue(path);
        q.raise(QueueSeries::TOTAL, seq + 1);
        q.enqueue.observe(took.as_secs_f64());
    }

    /// A job entered the queue other than by Enqueue (a DLQ replay) and was given `seq`.
    pub fn jobs_total(&self, path: &ResourcePath, seq: i64) {
        self.queue(path).raise(QueueSeries::TOTAL, seq + 1);
    }

    /// A Reserve that returned a job (Receive is not counted, as in FlowMesh).
    pub fn reserved(&self, path: &ResourcePath, took: Duration) {
        self.queue(path).reserve.observe(took.as_secs_f64());
    }

    /// The queue's durable counts (from its statistics): raises `total`, `completed` and `failed`.
    fn queue_counts(&self, path: &ResourcePath, stats: &QueueStats) {
        let q = self.queue(path);
        q.raise(QueueSeries::TOTAL, stats.total_jobs);
        q.raise(QueueSeries::COMPLETED, stats.completed_jobs);
        q.raise(QueueSeries::FAILED, stats.failed_jobs);
    }

    /// The queue's current statistics: its counters and its gauges.
    pub fn queue_stats(&self, path: &ResourcePath, stats: &QueueStats) {
        self.queue_counts(path, stats);
        let labels = queue_labels(path);
        self.queue_pending.with_label_values(&labels).set(stats.pending_jobs);
        self.queue_in_flight.with_label_values(&labels).set(stats.in_flight_jobs);
        self.queue_depth.with_label_values(&labels).set(stats.pending_jobs + stats.in_flight_jobs);
        self.queue_oldest_age.with_label_values(&labels).set(stats.oldest_job_age_seconds);
    }

    /// The depth (pending + in flight) of `path`'s dead-letter queue, labelled with `path` itself.
    pub fn dlq_depth(&self, path: &ResourcePath, dlq: &QueueStats) {
        self.queue_dlq.with_label_values(&queue_labels(path)).set(dlq.pending_jobs + dlq.in_flight_jobs);
    }

    // ------------------------------------------------------------------ scrape

    /// Brings the state gauges (and the queue counters) up to date from the engine. Failures are skipped: a
    /// resource that disappears mid-scrape just keeps its last values.
    pub async fn refresh(&self, engine: &Engine) {
        if let Ok(queues) = engine.resources.list(Some(ResourceKind::Queue)).await {
            for config in queues {
                let Ok(path) = config.path() else { continue };
                if let Ok(stats) = engine.queues.stats(&path).await {
                    self.queue_stats(&path, &stats);
                }
                let dlq = config.dlq.filter(|d| d.enabled).and_then(|d| ResourcePath::parse_joined(&d.dlq_path).ok());
                if let Some(dlq) = dlq
                    && let Ok(stats) = engine.queues.stats(&dlq).await
                {
                    self.dlq_depth(&path, &stats);
                }
            }
        }
        if let Ok(streams) = engine.resources.list(Some(ResourceKind::Stream)).await {
            for config in streams {
                let Ok(path) = config.path() else { continue };
                if let Ok(latest) = engine.streams.latest_offset(&path, 0).await
                    && latest >= 0
                {
                    self.stream(&path).offset.set(latest);
                }
                if let Ok(groups) = engine.streams.list_groups(&path).await {
                    for g in &groups {
                        self.group_state(&path, g);
                    }
                }
            }
        }
    }

    /// The Prometheus text exposition of the registry.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for these metric types.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for FlowmeshMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics`, for the admin listener and the dedicated metrics listener alike.
pub fn router(state: AppState) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(state)
}

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.refresh(&state.engine).await;
    ([(CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_counters_follow_the_highest_count_seen() {
        let m = FlowmeshMetrics::new();
        let q = ResourcePath::new("t1", "ns1", ResourceKind::Queue, "q").unwrap();
        m.enqueued(&q, 0, Duration::from_millis(1));
        m.enqueued(&q, 2, Duration::from_millis(1));
        // A late, smaller count never lowers or double-counts.
        m.enqueued(&q, 1, Duration::from_millis(1));
        let stats =
            QueueStats { total_jobs: 3, completed_jobs: 1, failed_jobs: 1, pending_jobs: 1, ..Default::default() };
        m.queue_stats(&q, &stats);
        m.queue_stats(&q, &stats);
        let text = m.render();
        assert!(text.contains("flowmesh_queue_total_jobs{namespace=\"ns1\",queue=\"q\",tenant=\"t1\"} 3"), "{text}");
        assert!(
            text.contains("flowmesh_queue_completed_jobs{namespace=\"ns1\",queue=\"q\",tenant=\"t1\"} 1"),
            "{text}"
        );
        assert!(text.contains("flowmesh_queue_depth{namespace=\"ns1\",queue=\"q\",tenant=\"t1\"} 1"), "{text}");
        assert!(text.contains("# TYPE flowmesh_queue_enqueue_duration_seconds histogram"), "{text}");
    }
}
