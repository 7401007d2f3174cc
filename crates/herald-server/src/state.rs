//! What every front-end shares: the engine, the authenticator, readiness, the shutdown signal, and FlowMesh's
//! live feed and metrics.

use crate::auth::Authenticator;
use crate::feed::Feed;
use crate::flowmesh_metrics::FlowmeshMetrics;
use crate::nats::registry::Registry as NatsRegistry;
use herald_engine::Engine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub auth: Authenticator,
    /// Cancelled when the server begins a graceful shutdown: long-lived calls (subscriptions, long polls) end.
    pub shutdown: CancellationToken,
    /// The `/ws` hub: FlowMesh dashboard events (§5.8).
    pub feed: Feed,
    /// The `flowmesh_*` metrics (§5.9).
    pub metrics: Arc<FlowmeshMetrics>,
    /// The NATS listener's live connections (empty while it is off), for the admin API.
    pub nats: Arc<NatsRegistry>,
    ready: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, auth: Authenticator, shutdown: CancellationToken) -> Self {
        AppState {
            engine,
            auth,
            shutdown,
            feed: Feed::new(),
            metrics: Arc::new(FlowmeshMetrics::new()),
            nats: Arc::default(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Ready = storage recovered and serving, and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.shutdown.is_cancelled()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}
