//! The addressed-events service: what the EnSync front-ends (gRPC `ensync.EnSyncService` and the `/message`
//! WebSocket text protocol) need from the engine (compat/ensync.md §3, §7).
//!
//! An event is one publish to one recipient identity (an Ed25519 public key). It is stored once and delivered to
//! exactly one subscription of its recipient at a time (competing consumers), at least once, until it is acked,
//! discarded or expires. The engine never looks inside payloads: they are opaque strings, encrypted by the clients.
//!
//! Errors carry the texts the contract asks for (`unknown client`, `recipient not found`, `event not found`,
//! `already acknowledged`, ...): front-ends put `HeraldError::message` into `success=false` answers and `-FAIL:`
//! replies unchanged.

use async_trait::async_trait;
use herald_types::Result;
use std::sync::Arc;

/// An identity: the 32 bytes of an Ed25519 public key.
pub type PublicKey = [u8; 32];

/// Milliseconds since the Unix epoch.
pub type EpochMs = i64;

/// Which front-end a session came through. Sessions of the WebSocket transport end with their socket and are never
/// stored; gRPC sessions are stored and survive a restart (§7.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Grpc,
    WebSocket,
}

/// A registered identity: who may connect with which access key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// A label for logs and the dashboard.
    pub name: String,
    /// SHA-256 of the access key. Access keys are never kept in clear.
    pub access_key_sha256: [u8; 32],
    pub public_key: PublicKey,
}

/// A live session (one successful `Connect` / `CONN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// 32 random bytes as 43 URL-safe base64 characters: unguessable, and free of `, ; = { } :` and whitespace.
    pub client_id: String,
    pub identity: PublicKey,
    pub transport: Transport,
}

/// A publish to one recipient, as a front-end received it (the sender is the session's identity).
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub name: String,
    pub recipient: PublicKey,
    /// Opaque; stored and delivered byte for byte.
    pub payload: String,
    /// JSON text or empty; stored and delivered byte for byte.
    pub metadata: String,
    /// `{"byte_size":..,"skeleton":{..}}` from the SDK; stored, never delivered, never validated.
    pub payload_metadata: Option<String>,
}

/// A stored event. Redeliveries and replays carry the same fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// `<block>-<16 random hex digits>`: unique, never reused, `[0-9a-f-]` only.
    pub idem: String,
    /// Position in the events log plus one: at least 1, strictly increasing in publish order.
    pub block: u64,
    pub name: String,
    pub recipient: PublicKey,
    pub sender: PublicKey,
    pub payload: String,
    pub metadata: String,
    pub payload_metadata: Option<String>,
    pub logged_at: EpochMs,
}

impl StoredEvent {
    /// Bytes the size limit counts (§7.10).
    pub fn counted_bytes(&self) -> usize {
        self.payload.len() + self.metadata.len()
    }
}

/// Where a subscription's deliveries go: a gRPC `Subscribe` stream or a WebSocket. Both calls must not block: they
/// hand the event to the connection's own writer.
pub trait EventSink: Send + Sync {
    /// Hands one event to the connection. `false` if the connection is gone (the event goes back to pending).
    fn deliver(&self, event: Arc<StoredEvent>) -> bool;
    /// Ends the channel: the gRPC stream finishes with status OK (superseded, unsubscribed, session expired,
    /// shutdown). A WebSocket ignores it (its session ends with the socket).
    fn close(&self);
}

/// Identifies one attached sink, so that a stream that goes away detaches itself and not its successor.
pub type SinkId = u64;

/// The service. One implementation today (embedded); the trait keeps the front-ends free of storage.
#[async_trait]
pub trait Events: Send + Sync {
    /// Opens a session for an access key (`invalid access key` otherwise).
    async fn connect(&self, access_key: &str, transport: Transport) -> Result<Session>;

    /// Records that the session is alive. `unknown client` if it does not exist (or expired).
    async fn heartbeat(&self, client_id: &str) -> Result<()>;

    /// The session, if it is live.
    async fn session(&self, client_id: &str) -> Result<Session>;

    /// Ends a session now (a WebSocket closed): its subscriptions go, its in-flight events return to pending.
    async fn end_session(&self, client_id: &str);

    /// Stores one event for `event.recipient`, durably, and returns it (with its idem and block).
    async fn publish(&self, client_id: &str, event: NewEvent) -> Result<Arc<StoredEvent>>;

    /// Makes `sink` the delivery channel of (`client_id`, `name`). An older sink of the same pair is closed; events
    /// in flight to the client stay in flight (§3.4).
    async fn subscribe(&self, client_id: &str, name: &str, sink: Arc<dyn EventSink>) -> Result<SinkId>;

    /// The sink went away (stream cancelled, connection dropped): if it is still the pair's current sink, the
    /// subscription ends and its in-flight events return to pending at once.
    async fn detach(&self, client_id: &str, name: &str, sink: SinkId);

    /// Ends every sink of the pair, returns its in-flight events to pending and clears its pause flag.
    async fn unsubscribe(&self, client_id: &str, name: &str) -> Result<()>;

    /// `name` empty means "any name". Any session of the recipient identity may ack (§3.6).
    async fn ack(&self, client_id: &str, idem: &str, name: &str) -> Result<()>;

    /// Returns the epoch ms at which the event becomes pending again.
    async fn defer(&self, client_id: &str, idem: &str, name: &str, delay_ms: i64) -> Result<EpochMs>;

    async fn discard(&self, client_id: &str, idem: &str, name: &str) -> Result<()>;

    /// The stored event, in any state but expired; changes nothing.
    async fn replay(&self, client_id: &str, idem: &str, name: &str) -> Result<Arc<StoredEvent>>;

    async fn pause(&self, client_id: &str, name: &str) -> Result<()>;

    async fn resume(&self, client_id: &str, name: &str) -> Result<()>;

    /// What the dashboard and metrics show.
    async fn stats(&self) -> Result<EventsStats>;

    /// One entry per registered identity, and per other recipient that still has open events (an identity removed
    /// from the configuration), sorted by public key bytes.
    async fn recipients(&self) -> Result<Vec<RecipientSnapshot>>;
}

/// A recipient's delivery state at one instant (taken under the dispatcher's lock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientSnapshot {
    pub recipient: PublicKey,
    /// Open events waiting for a subscription.
    pub pending: u64,
    /// Delivered and not yet acked, discarded or deferred.
    pub in_flight: u64,
    /// Deferred and not yet due.
    pub deferred: u64,
    /// Live sessions connected as this identity.
    pub sessions: u64,
}

/// Counters for observability.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventsStats {
    pub sessions: u64,
    pub subscriptions: u64,
    /// Events not yet acked or discarded (pending, in flight or deferred).
    pub open_events: u64,
    pub in_flight: u64,
    pub published_total: u64,
    pub delivered_total: u64,
    pub acked_total: u64,
}
