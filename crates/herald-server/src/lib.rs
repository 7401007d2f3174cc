//! Herald's protocol front-ends and the server life cycle.
//!
//! - [`grpc`]: the gRPC listener (`flowmesh.v1` today), thin adapters over the engine's service traits, with the one
//!   error → gRPC status mapping in [`grpc::status`].
//! - [`nats`]: the NATS client-protocol listener over the engine's subject router.
//! - [`admin`]: the admin HTTP listener, with FlowMesh's live feed ([`feed`]) and metrics ([`flowmesh_metrics`]),
//!   which [`observe`] updates after every FlowMesh operation; the metrics also have a listener of their own.
//! - [`herald_api`]: Herald's own admin API on the admin listener (the dashboard's overview, KV entries).
//! - [`auth`]: principals and credentials; [`config`]: the configuration and its validation.
//!
//! [`start`] binds every listener (port 0 works, which is how tests run whole servers), opens the engine and
//! returns a [`RunningServer`] with the bound addresses; [`run`] does the same and serves until a shutdown future
//! completes. This is the only crate that knows about gRPC and HTTP.

pub mod admin;
pub mod auth;
pub mod config;
pub mod events;
pub mod feed;
pub mod flowmesh_metrics;
pub mod grpc;
pub mod herald_api;
pub mod nats;
pub mod observe;
pub mod relay;
pub mod state;
mod ui;

use anyhow::Context;
use auth::{Authenticator, TokenConfig};
use config::Validated;
use herald_engine::{Engine, EngineConfig};
use herald_types::{Clock, SystemClock};
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A server that is serving.
pub struct RunningServer {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The NATS listener's address, when it is on.
    pub nats_addr: Option<SocketAddr>,
    /// The realtime (relay) listener's address, when it is on.
    pub relay_addr: Option<SocketAddr>,
    /// The dedicated metrics listener's address, when it is on.
    pub metrics_addr: Option<SocketAddr>,
    nats: Option<nats::NatsListener>,
    /// The development token generated at start-up, if any (auth enabled with no tokens configured).
    pub generated_token: Option<String>,
    state: AppState,
    background: herald_engine::Background,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// Chooses how callers authenticate, and says loudly when they don't have to.
fn authenticator(v: &Validated) -> (Authenticator, Option<String>) {
    let a = &v.config.auth;
    match (a.enabled, a.tokens.is_empty() && a.users.is_empty()) {
        (Some(false), _) | (None, true) => {
            tracing::warn!(
                "AUTHENTICATION IS OFF (development mode): any client can read and write every resource. \
                 Configure [[auth.tokens]] or --token before exposing this server."
            );
            (Authenticator::disabled(), None)
        }
        (Some(true), true) => {
            let token = herald_types::id::new_id();
            tracing::warn!(token = %token, "no auth tokens configured: generated a development token (changes on every start)");
            (
                Authenticator::with_tokens(&[TokenConfig {
                    token: token.clone(),
                    tenants: vec!["*".into()],
                    ..Default::default()
                }]),
                Some(token),
            )
        }
        _ => (Authenticator::with_credentials(&a.tokens, &a.users), None),
    }
}

/// Binds the listeners, opens the engine (running crash recovery) and starts serving.
pub async fn start(v: Validated) -> anyhow::Result<RunningServer> {
    start_with_clock(v, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(v: Validated, clock: Arc<dyn Clock>) -> anyhow::Result<RunningServer> {
    let grpc_listener =
        TcpListener::bind(v.grpc_addr).await.with_context(|| format!("binding gRPC listener {}", v.grpc_addr))?;
    let admin_listener =
        TcpListener::bind(v.admin_addr).await.with_context(|| format!("binding admin listener {}", v.admin_addr))?;
    let nats_listener = match v.nats_addr {
        Some(a) => Some(TcpListener::bind(a).await.with_context(|| format!("binding NATS listener {a}"))?),
        None => None,
    };
    let relay_listener = match v.relay_addr {
        Some(a) => Some(TcpListener::bind(a).await.with_context(|| format!("binding relay listener {a}"))?),
        None => None,
    };
    let metrics_listener = match v.metrics_addr {
        Some(a) => Some(TcpListener::bind(a).await.with_context(|| format!("binding metrics listener {a}"))?),
        None => None,
    };
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let metrics_addr = metrics_listener.as_ref().map(TcpListener::local_addr).transpose()?;

    let engine_config = EngineConfig {
        data_dir: v.config.data_dir.clone(),
        fsync: v.fsync,
        auto_create: v.config.storage.auto_create,
        segment_max_bytes: v.config.storage.segment_max_bytes,
        provisioning_file: v.config.storage.resources_file.clone(),
        relay: herald_engine::RelayOptions {
            max_messages_per_topic: v.relay.max_messages_per_topic,
            hot_messages: v.relay.hot_messages,
        },
        events: v.events.clone(),
    };
    let started = std::time::Instant::now();
    let engine = tokio::task::spawn_blocking(move || Engine::open(engine_config, clock))
        .await?
        .map_err(|e| anyhow::anyhow!("opening storage in {}: {}", v.config.data_dir.display(), e.message))?;
    tracing::info!(data_dir = %v.config.data_dir.display(), fsync = %v.fsync, elapsed_ms = started.elapsed().as_millis() as u64, "storage ready");
    let engine = Arc::new(engine);
    let background = engine.start_background();

    let (auth, generated_token) = authenticator(&v);
    let shutdown = CancellationToken::new();
    let state = AppState::new(Arc::clone(&engine), auth, shutdown.clone());
    // Replay sessions and the maintenance tasks (expiry, dead-lettering) change state without requests too: the
    // feed follows them from the engine.
    observe::follow_replays(&state);
    observe::follow_engine_changes(&state);

    let mut tasks = Vec::new();
    let grpc_service = grpc::service(&state, v.config.grpc.max_message_bytes);
    // Herald's own HTTP/2 listener (grpc/listener.rs): TCP_NODELAY, large flow-control windows, `grpc-timeout`,
    // GOAWAY on shutdown.
    tasks.push(tokio::spawn(grpc::listener::serve(
        grpc_listener,
        grpc_service,
        grpc::in_connection_task,
        shutdown.clone(),
    )));
    // Herald's own admin API joins FlowMesh's routes here, so the admin module stays FlowMesh's alone.
    let admin = admin::router(state.clone(), v.config.auth.http);
    // The dashboard's overview, pushed over /ws to the connections that ask for it; ends with the shutdown signal.
    herald_api::follow_overview(state.clone());
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(sd.cancelled_owned())
            .await
            .context("admin listener failed")
    }));
    if let Some(l) = metrics_listener {
        // FlowMesh's dedicated metrics port (D23): the same registry as the admin listener's /metrics.
        let app = flowmesh_metrics::router(state.clone());
        let sd = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(l, app).with_graceful_shutdown(sd.cancelled_owned()).await.context("metrics listener failed")
        }));
    }
    let nats = match nats_listener {
        Some(l) => {
            let (listener, task) = nats::NatsListener::start(
                l,
                Arc::clone(&engine.pubsub),
                state.auth.clone(),
                v.nats.clone(),
                Arc::clone(&state.nats),
                shutdown.clone(),
            )?;
            tasks.push(task);
            Some(listener)
        }
        None => None,
    };
    let nats_addr = nats.as_ref().map(nats::NatsListener::local_addr);
    let relay_addr = match relay_listener {
        Some(l) => {
            let addr = l.local_addr()?;
            let ctx = relay::RelayCtx::new(Arc::clone(&engine.relay), v.relay.clone(), shutdown.clone());
            ctx.bootstrap_admin().await;
            // EnSync's WebSocket protocol shares the listener (its `/message` is outside the relay's middleware).
            let app = relay::router(ctx)
                .merge(events::ws::router(Arc::clone(&engine.events), shutdown.clone()))
                .into_make_service_with_connect_info::<SocketAddr>();
            let sd = shutdown.clone();
            // Small frames (a publish answer, a WebSocket message) must not wait for Nagle's algorithm.
            let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tasks.push(tokio::spawn(async move {
                axum::serve(l, app).with_graceful_shutdown(sd.cancelled_owned()).await.context("relay listener failed")
            }));
            Some(addr)
        }
        None => None,
    };
    state.set_ready(true);
    tracing::info!(
        grpc = %grpc_addr,
        admin = %admin_addr,
        nats = %nats_addr.map_or("off".to_string(), |a| a.to_string()),
        relay = %relay_addr.map_or("off".to_string(), |a| a.to_string()),
        metrics = %metrics_addr.map_or("off".to_string(), |a| a.to_string()),
        auth = state.auth.is_enabled(),
        "herald is serving"
    );
    Ok(RunningServer {
        grpc_addr,
        admin_addr,
        nats_addr,
        relay_addr,
        metrics_addr,
        nats,
        generated_token,
        state,
        background,
        tasks,
    })
}

impl RunningServer {
    /// Graceful shutdown: stop accepting, end subscriptions and long polls, let in-flight calls finish, stop the
    /// maintenance tasks, then flush and fsync everything whatever the fsync policy.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.state.set_ready(false);
        self.state.shutdown.cancel();
        for t in self.tasks {
            match tokio::time::timeout(std::time::Duration::from_secs(10), t).await {
                Ok(Ok(Err(e))) => tracing::error!(error = %e, "listener ended with an error"),
                Ok(Err(e)) => tracing::error!(error = %e, "listener task panicked"),
                Err(_) => tracing::warn!("listener did not stop within 10 s"),
                Ok(Ok(Ok(()))) => {}
            }
        }
        self.background.stop().await;
        let engine = Arc::clone(&self.state.engine);
        tokio::task::spawn_blocking(move || engine.sync_all())
            .await?
            .map_err(|e| anyhow::anyhow!("final fsync failed: {}", e.message))?;
        tracing::info!("herald stopped; all data flushed");
        Ok(())
    }

    /// Puts the NATS listener into lame-duck mode (§1.15) and returns when its clients are closed. Other listeners
    /// keep serving; call [`RunningServer::shutdown`] afterwards.
    pub async fn nats_lame_duck(&self) {
        if let Some(n) = &self.nats {
            n.lame_duck().await;
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.state.engine
    }
}

/// Serves until `shutdown` completes, then shuts down gracefully.
pub async fn run(v: Validated, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let server = start(v).await?;
    shutdown.await;
    server.shutdown().await
}
