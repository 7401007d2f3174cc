//! The NATS client-protocol listener (compat/nats-fluxlib.md §1): real NATS clients (nats-py, async-nats, fluxmq)
//! work against Herald unchanged.
//!
//! - [`codec`]: the sans-IO parser of client operations and the writers of server frames.
//! - [`info`]: the INFO greeting and the CONNECT options.
//! - [`outbound`]: a connection's bounded outbound buffer and its batching writer; slow consumers are cut off.
//! - `conn`: one connection, its handshake, and its operations handled strictly in order.
//! - [`registry`]: the live connections (peer, CONNECT name, subscriptions, counters), shared with the admin API.
//!
//! Routing is the engine's [`herald_engine::pubsub::Router`], shared with every other subject-based front-end.
//! Credentials are Herald's principals: a CONNECT `auth_token` is a Herald bearer token, `user`/`pass` a configured
//! user, each with optional publish/subscribe subject permissions.

pub mod codec;
mod conn;
pub mod info;
pub mod outbound;
pub mod registry;

use crate::auth::Authenticator;
use crate::config::NatsLimits;
use herald_engine::pubsub::Router;
use outbound::{Closed, Outbound};
use registry::Registry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every connection of the listener shares.
pub(crate) struct Shared {
    router: Arc<Router>,
    auth: Authenticator,
    limits: NatsLimits,
    server_id: String,
    addr: SocketAddr,
    next_client_id: AtomicU64,
    connections: AtomicUsize,
    /// Live connections: lame-duck mode repeats their INFO, the admin API shows them.
    registry: Arc<Registry>,
    /// Server shutdown: every connection closes.
    shutdown: CancellationToken,
    /// Lame-duck mode: stop accepting.
    lame_duck: CancellationToken,
}

impl Shared {
    fn info(&self, client_id: u64, client_ip: IpAddr, ldm: bool) -> info::Info {
        info::Info {
            server_id: self.server_id.clone(),
            server_name: self.limits.server_name.clone(),
            version: info::NATS_VERSION,
            proto: 1,
            go: "herald",
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            headers: true,
            max_payload: self.limits.max_payload,
            client_id,
            client_ip: client_ip.to_string(),
            auth_required: self.auth.is_enabled(),
            ldm,
            herald_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The running listener. Dropping it does not stop it; [`NatsListener::shutdown`] (via the server's shutdown
/// token) does.
#[derive(Clone)]
pub struct NatsListener {
    shared: Arc<Shared>,
}

impl NatsListener {
    /// Serves connections accepted on `listener` until `shutdown` is cancelled, recording them in `registry`.
    pub fn start(
        listener: TcpListener,
        router: Arc<Router>,
        auth: Authenticator,
        limits: NatsLimits,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(NatsListener, tokio::task::JoinHandle<anyhow::Result<()>>)> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            router,
            auth,
            limits,
            server_id: info::new_server_id(),
            addr,
            next_client_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            registry,
            shutdown,
            lame_duck: CancellationToken::new(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok((NatsListener { shared }, task))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Lame-duck mode (§1.15): stop accepting, tell every client with an INFO carrying `"ldm":true`, wait the
    /// grace period, then close the clients spread over the rest of the lame-duck duration. Returns when all are
    /// closed.
    pub async fn lame_duck(&self) {
        let s = &self.shared;
        s.lame_duck.cancel();
        let clients: Vec<(u64, Arc<Outbound>, IpAddr)> =
            s.registry.entries().into_iter().map(|e| (e.id, Arc::clone(&e.out), e.peer.ip())).collect();
        tracing::info!(clients = clients.len(), "NATS listener entering lame-duck mode");
        for (id, out, ip) in &clients {
            out.push_bytes(&s.info(*id, *ip, true).line());
        }
        let grace = s.limits.lame_duck_grace_period;
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = s.shutdown.cancelled() => return,
        }
        let spread = s.limits.lame_duck_duration.saturating_sub(grace);
        let step = if clients.is_empty() { Duration::ZERO } else { spread / clients.len() as u32 };
        for (_, out, _) in clients {
            out.close(Closed::Graceful);
            out.done.cancel();
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = s.shutdown.cancelled() => return,
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = shared.lame_duck.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(conn::serve(Arc::clone(&shared), stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "NATS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    // Connections see the shutdown token themselves; give them a moment to flush and close.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shared.shutdown.is_cancelled()
        && shared.connections.load(std::sync::atomic::Ordering::Acquire) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
