//! `/metrics` of the relay listener (contract §2.10): the real server's metric names and labels, the HTTP
//! instrumentation its exporter adds, and Herald's own counters. Declared-but-unused metrics of the reference are
//! registered too, so their HELP/TYPE lines are there for dashboards.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct RelayMetrics {
    registry: Registry,
    pub received: IntCounterVec,
    pub delivered: IntCounterVec,
    pub latency: HistogramVec,
    pub ws_active: IntGauge,
    pub ws_total: IntCounter,
    pub ws_closed: IntCounter,
    pub storage_ops: IntCounterVec,
    pub topic_messages: IntGaugeVec,
    pub errors: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_duration_highr: Histogram,
    pub ws_slow_consumers: IntCounter,
    pub published: IntCounter,
}

impl RelayMetrics {
    pub fn new() -> RelayMetrics {
        let registry = Registry::new();
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone())).expect("metric names are unique");
            m
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
        };
        let buckets = vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
        RelayMetrics {
            received: counter_vec("relay_messages_received_total", "Total messages received", &["topic"]),
            delivered: counter_vec(
                "relay_messages_delivered_total",
                "Total messages delivered",
                &["topic", "delivery_type"],
            ),
            latency: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new("relay_message_latency_seconds", "Message storage latency").buckets(buckets),
                    &["topic"],
                )
                .expect("valid metric"),
            ),
            ws_active: reg(
                &registry,
                IntGauge::new("relay_websocket_connections_active", "Active WebSocket connections").expect("valid"),
            ),
            ws_total: reg(
                &registry,
                IntCounter::new("relay_websocket_connections_total", "Total WebSocket connections").expect("valid"),
            ),
            ws_closed: reg(
                &registry,
                IntCounter::new("relay_websocket_disconnections_total", "Total WebSocket disconnections")
                    .expect("valid"),
            ),
            storage_ops: counter_vec(
                "relay_storage_operations_total",
                "Total storage operations",
                &["operation", "status"],
            ),
            topic_messages: reg(
                &registry,
                IntGaugeVec::new(Opts::new("relay_topic_message_count", "Number of messages in topic"), &["topic"])
                    .expect("valid metric"),
            ),
            errors: counter_vec("relay_errors_total", "Total errors", &["type", "code"]),
            http_requests: counter_vec(
                "http_requests_total",
                "Total number of requests by method, status and handler.",
                &["handler", "method", "status"],
            ),
            http_duration: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important.",
                    )
                    .buckets(vec![0.1, 0.5, 1.0]),
                    &["handler", "method"],
                )
                .expect("valid metric"),
            ),
            http_duration_highr: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "http_request_duration_highr_seconds",
                        "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations.",
                    )
                    .buckets(vec![
                        0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
                        7.5, 10.0, 30.0, 60.0,
                    ]),
                )
                .expect("valid metric"),
            ),
            ws_slow_consumers: reg(
                &registry,
                IntCounter::new(
                    "herald_relay_ws_slow_consumers_total",
                    "WebSockets closed because their outbound buffer was full",
                )
                .expect("valid"),
            ),
            published: reg(
                &registry,
                IntCounter::new("herald_relay_messages_stored_total", "Messages stored (single and bulk publishes)")
                    .expect("valid"),
            ),
            registry,
        }
    }

    /// The Prometheus text exposition. Metric families without samples yet still get their HELP/TYPE lines.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&families, &mut out);
        let mut text = String::from_utf8(out).unwrap_or_default();
        let declared: [(&str, &str, &str); 5] = [
            ("relay_messages_received_total", "Total messages received", "counter"),
            ("relay_messages_delivered_total", "Total messages delivered", "counter"),
            ("relay_storage_operations_total", "Total storage operations", "counter"),
            ("relay_topic_message_count", "Number of messages in topic", "gauge"),
            ("relay_errors_total", "Total errors", "counter"),
        ];
        for (name, help, kind) in declared {
            if !families.iter().any(|f| f.name() == name) {
                text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            }
        }
        text
    }
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
