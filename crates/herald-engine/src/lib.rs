//! Herald's engine: all state and all semantics.
//!
//! Front-ends call the service traits in [`api`] — [`Streams`], [`Queues`], [`Kv`], [`Resources`] — the schema
//! registry [`Schemas`], [`replay::Replays`] and [`relay::api::Relay`], and never touch a store. Subject pub/sub,
//! which stores nothing, is the in-memory [`pubsub::Router`]. This crate ships the embedded backend, which needs
//! nothing installed:
//! - append-only data (stream records, relay topic history) in `herald-log` segments under `<data>/streams/` and
//!   `<data>/relay/`;
//! - keyed, mutable state (resources, schemas, consumer offsets, KV entries, queue jobs and counters, replay
//!   sessions, relay users, topics and tokens) in one fjall database under `<data>/state/`, changed only through
//!   atomic write batches.
//!
//! Time comes from an injected [`Clock`]; the fsync policy ([`FsyncPolicy`]) decides when a write is acknowledged.

pub mod api;
mod codec;
pub mod durability;
pub mod events;
mod kv;
pub mod pubsub;
mod queues;
pub mod relay;
pub mod replay;
mod resources;
pub mod schemas;
mod store;
mod streams;
mod timefmt;

pub use api::*;
pub use durability::FsyncPolicy;
pub use events::EventsOptions;
pub use queues::MAX_LONG_POLL;
pub use relay::RelayOptions;
pub use schemas::{Schema, Schemas};

use herald_types::{Clock, HeraldError, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often in-flight jobs are checked for an expired visibility timeout (the contract requires ≤ 1 s).
const EXPIRY_SCAN: Duration = Duration::from_millis(200);
/// How often expired KV entries are reclaimed (visibility of expiry does not depend on this).
const KV_REAP: Duration = Duration::from_secs(1);
const RETENTION_SCAN: Duration = Duration::from_secs(30);
/// How often addressed-event timers (ack deadlines, deferrals) and session expiry are checked.
const EVENTS_TICK: Duration = Duration::from_millis(50);

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// Create missing streams, queues and KV stores on first write (D21; off by default).
    pub auto_create: bool,
    /// Stream log segment size.
    pub segment_max_bytes: u64,
    /// A FlowMesh-format `resources.json` applied at start-up.
    pub provisioning_file: Option<PathBuf>,
    /// Relay topics: retention cap and hot tier.
    pub relay: RelayOptions,
    /// Addressed events: identities, ack timeout, limits.
    pub events: EventsOptions,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::default(),
            auto_create: false,
            segment_max_bytes: 128 << 20,
            provisioning_file: None,
            relay: RelayOptions::default(),
            events: EventsOptions::default(),
        }
    }
}

/// The engine: the service handles front-ends use, plus the embedded backend's maintenance tasks.
pub struct Engine {
    pub resources: Arc<dyn Resources>,
    pub streams: Arc<dyn Streams>,
    pub queues: Arc<dyn Queues>,
    pub kv: Arc<dyn Kv>,
    /// The schema registry; writes to a stream or queue with an attached schema are validated against it.
    pub schemas: Arc<dyn Schemas>,
    /// Subject pub/sub (in memory; nothing is stored).
    pub pubsub: Arc<pubsub::Router>,
    /// Relay topics, users and tokens (Pulsar Relay). Its live fan-out uses a router of its own, not `pubsub`.
    pub relay: Arc<dyn relay::api::Relay>,
    /// Addressed events (EnSync): sessions, per-recipient delivery, ack / defer / discard / replay.
    pub events: Arc<dyn events::api::Events>,
    /// FlowMesh replay sessions; their tasks stop with [`Background::stop`].
    pub replays: Arc<dyn replay::Replays>,
    backend: Arc<Embedded>,
}

struct Embedded {
    store: store::SharedStore,
    streams: Arc<streams::EmbeddedStreams>,
    queues: Arc<queues::EmbeddedQueues>,
    kv: Arc<kv::EmbeddedKv>,
    relay: Arc<relay::EmbeddedRelay>,
    events: Arc<events::EmbeddedEvents>,
    replays: Arc<replay::EmbeddedReplays>,
    fsync: FsyncPolicy,
    /// Told about the changes the maintenance tasks make ([`Engine::set_change_listener`]).
    changes: parking_lot::RwLock<Option<ChangeListener>>,
}

impl Engine {
    /// Opens (or creates) the data directory, runs crash recovery and applies the provisioning file.
    /// Blocking: call it before serving, or from `spawn_blocking`.
    pub fn open(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| HeraldError::storage(&what, e)
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io("creating the data directory"))?;
        let streams_dir = config.data_dir.join("streams");
        std::fs::create_dir_all(&streams_dir).map_err(io("creating the streams directory"))?;
        let store = Arc::new(store::Store::open(&config.data_dir.join("state"), config.fsync)?);
        let registry = Arc::new(resources::Registry::open(Arc::clone(&store), Arc::clone(&clock), config.auto_create)?);
        if let Some(file) = &config.provisioning_file {
            let created = registry.load_provisioning_file(file)?;
            tracing::info!(file = %file.display(), created, "applied provisioning file");
        }
        let schemas =
            Arc::new(schemas::SchemaRegistry::open(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&registry))?);
        let streams = Arc::new(streams::EmbeddedStreams::open(
            Arc::clone(&registry),
            Arc::clone(&schemas),
            Arc::clone(&store),
            Arc::clone(&clock),
            streams_dir,
            config.fsync,
            config.segment_max_bytes,
        )?);
        let queues = Arc::new(queues::EmbeddedQueues::open(
            Arc::clone(&registry),
            Arc::clone(&schemas),
            Arc::clone(&store),
            Arc::clone(&clock),
        )?);
        let kv = Arc::new(kv::EmbeddedKv::open(Arc::clone(&registry), Arc::clone(&store), Arc::clone(&clock))?);
        let replays = Arc::new(replay::EmbeddedReplays::open(
            Arc::clone(&streams) as Arc<dyn Streams>,
            Arc::clone(&store),
            Arc::clone(&clock),
        )?);
        let events = Arc::new(events::EmbeddedEvents::open(
            Arc::clone(&store),
            Arc::clone(&clock),
            config.data_dir.join("events"),
            config.fsync,
            config.segment_max_bytes,
            config.events.clone(),
        )?);
        let relay = Arc::new(relay::EmbeddedRelay::open(
            Arc::clone(&store),
            clock,
            config.data_dir.join("relay"),
            config.fsync,
            config.segment_max_bytes,
            &config.relay,
        )?);
        Ok(Engine {
            resources: Arc::new(resources::RegistryService(registry)),
            streams: streams.clone(),
            queues: queues.clone(),
            kv: kv.clone(),
            schemas,
            pubsub: Arc::new(pubsub::Router::new()),
            relay: relay.clone(),
            events: events.clone(),
            replays: replays.clone(),
            backend: Arc::new(Embedded {
                store,
                streams,
                queues,
                kv,
                relay,
                events,
                replays,
                fsync: config.fsync,
                changes: parking_lot::RwLock::new(None),
            }),
        })
    }

    /// Starts the maintenance tasks: visibility-timeout expiry, KV and relay reaping, stream and relay retention
    /// and, under `fsync = interval`, the periodic fsync. Must be called inside a tokio runtime. Stopping the
    /// returned [`Background`] also stops every replay task.
    pub fn start_background(&self) -> Background {
        let mut handles = Vec::new();
        let b = Arc::clone(&self.backend);
        handles.push(every(EXPIRY_SCAN, move || {
            let b = Arc::clone(&b);
            async move {
                if let Err(e) = b.expire_reservations().await {
                    tracing::error!(error = %e, "visibility-timeout scan failed");
                }
            }
        }));
        let b = Arc::clone(&self.backend);
        handles.push(every(KV_REAP, move || {
            let b = Arc::clone(&b);
            async move {
                // The KV reaper takes the KV write lock (an async lock) per chunk, so it runs here; the relay's
                // reaper may walk many records at once and runs on the blocking pool.
                if let Err(e) = b.reap_kv().await {
                    tracing::error!(error = %e, "KV reaper failed");
                }
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.relay.reap()).await {
                    tracing::error!(error = %e, "relay reaper failed");
                }
            }
        }));
        let b = Arc::clone(&self.backend);
        handles.push(every(RETENTION_SCAN, move || {
            let b = Arc::clone(&b);
            async move {
                let res = tokio::task::spawn_blocking(move || {
                    (b.streams.enforce_retention(), b.relay.enforce_retention(), b.events.enforce_retention())
                })
                .await;
                if let Ok((streams, relay, events)) = res {
                    if let Err(e) = streams {
                        tracing::error!(error = %e, "retention failed");
                    }
                    if let Err(e) = relay {
                        tracing::error!(error = %e, "relay retention failed");
                    }
                    if let Err(e) = events {
                        tracing::error!(error = %e, "events retention failed");
                    }
                }
            }
        }));
        let b = Arc::clone(&self.backend);
        handles.push(every(EVENTS_TICK, move || {
            let b = Arc::clone(&b);
            async move {
                if let Err(e) = b.events.tick() {
                    tracing::error!(error = %e, "addressed-events timers failed");
                }
            }
        }));
        if let FsyncPolicy::Interval(period) = self.backend.fsync {
            let b = Arc::clone(&self.backend);
            handles.push(every(period, move || {
                let b = Arc::clone(&b);
                async move {
                    let res = tokio::task::spawn_blocking(move || b.sync_all()).await;
                    if let Ok(Err(e)) = res {
                        tracing::error!(error = %e, "periodic fsync failed");
                    }
                }
            }));
        }
        Background { handles, replays: Arc::clone(&self.backend.replays) }
    }

    /// Runs one round of the maintenance work now: expire reservations, reap expired keys (KV and relay records),
    /// enforce stream and relay retention. The background tasks do this on their own schedule; tests with a manual
    /// clock call it after moving time.
    pub async fn tick(&self) -> Result<()> {
        self.backend.expire_reservations().await?;
        self.backend.reap_kv().await?;
        self.backend.relay.reap()?;
        self.backend.events.tick()?;
        self.backend.streams.enforce_retention()?;
        self.backend.relay.enforce_retention()?;
        self.backend.events.enforce_retention()
    }

    /// Registers the one listener told about every change the engine makes on its own ([`EngineChange`]),
    /// replacing any previous one.
    pub fn set_change_listener(&self, listener: ChangeListener) {
        *self.backend.changes.write() = Some(listener);
    }

    /// Flushes and fsyncs everything. Called on graceful shutdown, whatever the fsync policy.
    pub fn sync_all(&self) -> Result<()> {
        self.backend.sync_all()
    }
}

impl Embedded {
    fn report(&self, change: EngineChange<'_>) {
        if let Some(listener) = self.changes.read().as_ref() {
            listener(change);
        }
    }

    async fn expire_reservations(&self) -> Result<()> {
        for expired in self.queues.expire_reservations().await? {
            self.report(EngineChange::ReservationsExpired {
                queue: &expired.queue,
                dead_lettered: expired.dead_lettered,
            });
        }
        Ok(())
    }

    async fn reap_kv(&self) -> Result<()> {
        for (store, key) in self.kv.reap().await? {
            self.report(EngineChange::KeyExpired { store: &store, key: &key });
        }
        Ok(())
    }

    fn sync_all(&self) -> Result<()> {
        self.streams.sync_all()?;
        self.relay.sync_all()?;
        self.events.sync_all()?;
        self.store.sync_now()
    }
}

/// Runs `tick` every `period` (skipping missed ticks) until aborted.
fn every<F, Fut>(period: Duration, mut tick: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            tick().await;
        }
    })
}

/// The running maintenance tasks.
pub struct Background {
    handles: Vec<JoinHandle<()>>,
    /// Replay tasks are started by requests, not here, but end with the engine's background work.
    replays: Arc<replay::EmbeddedReplays>,
}

impl Background {
    /// Stops the maintenance tasks and every replay task (each between two batches, with its progress stored).
    pub async fn stop(self) {
        self.replays.shutdown().await;
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
    }
}
