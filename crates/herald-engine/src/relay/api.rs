//! The relay service: what the Pulsar Relay front-end (HTTP, `/ws`, long-poll) needs from the engine
//! (compat/pulsar-relay.md). Users, topics, topic history, refresh tokens, the access-token deny-list and
//! idempotency records; live fan-out through a subject router of the relay's own.
//!
//! Everything here survives a restart except live subscriptions. Wire concerns (JSON shapes, JWT signing, password
//! hashing, HTTP statuses) stay in the front-end: the engine stores opaque strings and bytes and enforces the
//! state transitions (atomic topic creation, single-use refresh-token rotation with chain revocation, idempotency
//! claims).

use async_trait::async_trait;
use bytes::Bytes;
use herald_types::Result;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::pubsub::Router;

/// Microseconds since the Unix epoch (UTC). Relay timestamps are shown with microsecond precision.
pub type Micros = i64;

// ---------------------------------------------------------------- users

/// A relay user (contract §1.1). `user_id` is a UUID v4 string with hyphens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayUser {
    pub user_id: String,
    pub username: String,
    pub email: Option<String>,
    /// PHC string (Argon2id); `None` for users without a local password.
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub created_at: Micros,
    /// Drawn from `admin`, `read`, `write`, in the order given (the front-end validates the values).
    pub permissions: Vec<String>,
}

/// A new user. The engine assigns `user_id` and `created_at`.
#[derive(Clone, Debug)]
pub struct NewRelayUser {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub permissions: Vec<String>,
}

/// Changes to a user; `None` leaves a field as it is. `email: Some(None)` clears the email.
#[derive(Clone, Debug, Default)]
pub struct RelayUserPatch {
    pub email: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

// ---------------------------------------------------------------- topics

/// A topic record (contract §1.3): identified by (owner user_id, bare name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayTopic {
    /// UUID v4 with hyphens.
    pub topic_id: String,
    pub topic_name: String,
    pub owner_id: String,
    pub created_at: Micros,
    pub description: Option<String>,
}

/// What a topic's history holds, as the dashboard shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayTopicStats {
    /// Retained messages: what a history read can return (at most `max_messages_per_topic`).
    pub messages: u64,
    /// When the newest message was published; `None` if the topic has none.
    pub last_message_at: Option<Micros>,
}

// ---------------------------------------------------------------- messages

/// A message id in Valkey stream-id form `<ms>-<seq>` (contract §4.5): strictly increasing within a topic, compared
/// as the pair (ms, seq). Herald's ids have `seq` = the message's position in the topic's log, and `ms` never goes
/// backwards within a topic, so both halves grow together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for RelayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses `<ms>-<seq>` or a bare `<ms>` (meaning `<ms>-0`, as Valkey reads an incomplete id); both parts are ASCII
/// decimal `u64`s. Anything else is an error, which the front-end reports as an invalid cursor.
impl FromStr for RelayId {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let digits = |p: &str| -> std::result::Result<u64, ()> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            p.parse().map_err(|_| ())
        };
        match s.split_once('-') {
            Some((ms, seq)) => Ok(RelayId { ms: digits(ms)?, seq: digits(seq)? }),
            None => Ok(RelayId { ms: digits(s)?, seq: 0 }),
        }
    }
}

/// A message to publish. `payload` is the JSON object text and `metadata` the JSON object text (or `None`), both
/// opaque to the engine and returned byte for byte.
#[derive(Clone, Debug)]
pub struct RelayMessageIn {
    pub payload: Bytes,
    pub metadata: Option<Bytes>,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayMessage {
    pub id: RelayId,
    /// Taken when the publish was handled; never goes backwards within a topic.
    pub timestamp: Micros,
    pub payload: Bytes,
    pub metadata: Option<Bytes>,
}

/// Which way a history page runs (contract §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryOrder {
    /// Newest first; with a cursor, strictly older than it.
    Desc,
    /// Oldest first; with a cursor, strictly newer than it.
    Asc,
}

/// Builds the bytes delivered to live subscribers for one stored message (the front-end's wire frame). Called once
/// per message, whatever the number of subscribers, while the topic's publish lock is held (that is what makes live
/// order equal stored order): it must not block or publish.
pub type FrameEncoder<'a> = &'a (dyn Fn(&str, &RelayMessage) -> Bytes + Sync);

// ---------------------------------------------------------------- refresh tokens

/// A refresh-token record (contract §1.2, Appendix A). Only the hash of the secret is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRecord {
    /// UUID v4 with hyphens.
    pub jti: String,
    pub user_id: String,
    /// sha256(secret), lowercase hex.
    pub secret_hash: String,
    pub parent_jti: Option<String>,
    pub issued_at: Micros,
    pub expires_at: Micros,
    pub last_used_at: Option<Micros>,
    /// `None` while valid; else `rotated`, `logout`, `replay`, `admin` or `expired`.
    pub revoked: Option<String>,
    pub client_hint: Option<String>,
}

/// The outcome of presenting a refresh token for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token is now revoked (`rotated`) and this successor was stored (parent = the presented jti,
    /// same user and client hint, expiry = now + ttl).
    Rotated(RefreshRecord),
    /// Unknown jti or wrong secret: nothing changed.
    Unknown,
    /// The token had already been used or revoked: the whole chain is now revoked (`replay`).
    Replayed,
    /// The token had expired: it is now revoked (`expired`).
    Expired,
}

// ---------------------------------------------------------------- idempotency

/// Which publish endpoint an idempotency key was first used on (contract §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdemEndpoint {
    Single,
    Bulk,
}

/// The result of claiming an idempotency key for (user, key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdemClaim {
    /// First sight (or the previous claim expired): the caller processes the request and then calls
    /// [`Relay::idem_complete`] (or [`Relay::idem_abandon`] if processing failed).
    Claimed,
    /// A response was stored for this key: return it verbatim.
    Done { endpoint: IdemEndpoint, body: Bytes },
    /// Another request holding the key is still being processed. [`Relay::idem_wait`] waits for it.
    InFlight { endpoint: IdemEndpoint },
}

// ---------------------------------------------------------------- the service

#[async_trait]
pub trait Relay: Send + Sync {
    // users
    /// Creates a user; `AlreadyExists` with message `Username '<name>' already exists` if the username is taken.
    async fn create_user(&self, user: NewRelayUser) -> Result<RelayUser>;
    async fn user(&self, user_id: &str) -> Result<Option<RelayUser>>;
    async fn user_by_name(&self, username: &str) -> Result<Option<RelayUser>>;
    async fn users(&self) -> Result<Vec<RelayUser>>;
    /// `NotFound` (`User with ID '<id>' not found`) for an unknown id.
    async fn update_user(&self, user_id: &str, patch: RelayUserPatch) -> Result<RelayUser>;
    /// Removes the user record and its username. Topics, messages and refresh tokens stay (contract §2.3).
    /// `NotFound` (`User with ID '<id>' not found`) for an unknown id.
    async fn delete_user(&self, user_id: &str) -> Result<()>;

    // topics
    /// Creates (owner, name) atomically; `AlreadyExists` with `Topic '<name>' already exists for owner <owner>`.
    async fn create_topic(&self, owner_id: &str, name: &str, description: Option<String>) -> Result<RelayTopic>;
    /// Returns the topic, creating it with `description` if it does not exist (publish's auto-create).
    async fn get_or_create_topic(&self, owner_id: &str, name: &str, description: &str) -> Result<RelayTopic>;
    async fn topic(&self, owner_id: &str, name: &str) -> Result<Option<RelayTopic>>;
    /// The owner's topics, sorted by name. This is also the user's `owned_topics`.
    async fn topics(&self, owner_id: &str) -> Result<Vec<RelayTopic>>;
    async fn topic_count(&self) -> Result<u64>;
    /// Every topic record of every owner, sorted by (owner id, name).
    async fn all_topics(&self) -> Result<Vec<RelayTopic>>;
    /// The topic's retained message count and newest message time, from what its open log already knows (the log
    /// is opened, as a read would, if it has not been used since start-up). Zero and `None` for a topic without
    /// history.
    async fn topic_stats(&self, owner_id: &str, topic: &str) -> Result<RelayTopicStats>;
    /// Sets the description when `Some`; `NotFound` if the topic does not exist.
    async fn update_topic(&self, owner_id: &str, name: &str, description: Option<String>) -> Result<RelayTopic>;
    /// Deletes the topic record; its stored messages stay and reappear if the topic is created again (§1.6).
    async fn delete_topic(&self, owner_id: &str, name: &str) -> Result<bool>;

    // messages
    /// Stores `messages` in order in (owner, topic) and, in the same per-topic order, hands each one's frame (built
    /// by `encode`) to the live subscribers of [`Relay::subject`]. Returns the stored messages' ids and timestamps.
    /// Under `fsync = always` returns once they are on disk. The topic record is not checked or created here.
    async fn publish(
        &self,
        owner_id: &str,
        topic: &str,
        messages: Vec<RelayMessageIn>,
        encode: FrameEncoder<'_>,
    ) -> Result<Vec<RelayMessage>>;
    /// A history page (contract §2.6): at most `limit` retained messages in `order`, strictly beyond `cursor`.
    async fn history(
        &self,
        owner_id: &str,
        topic: &str,
        order: HistoryOrder,
        cursor: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>>;
    /// The retained messages strictly after `after` (from the oldest retained when `None`), oldest first, at most
    /// `limit` (long-poll catch-up, contract §2.7).
    async fn read_after(
        &self,
        owner_id: &str,
        topic: &str,
        after: Option<RelayId>,
        limit: usize,
    ) -> Result<Vec<RelayMessage>>;

    /// The router live subscribers (WebSocket sessions, poll waiters) subscribe to.
    fn router(&self) -> &Arc<Router>;
    /// The router subject of (owner, topic): `<owner_id>.<topic>`.
    fn subject(&self, owner_id: &str, topic: &str) -> String {
        format!("{owner_id}.{topic}")
    }

    // refresh tokens
    /// Stores a new refresh token. `jti` and `secret_hash` are made by the caller.
    async fn put_refresh(&self, record: RefreshRecord) -> Result<()>;
    async fn refresh(&self, jti: &str) -> Result<Option<RefreshRecord>>;
    /// Atomically rotates the token `jti` if `secret_hash` matches and it is neither revoked nor expired at `now`
    /// (compare-and-set: of two concurrent rotations at most one succeeds, the other revokes the chain).
    async fn rotate_refresh(
        &self,
        jti: &str,
        secret_hash: &str,
        new_jti: String,
        new_secret_hash: String,
        ttl_micros: i64,
    ) -> Result<Rotation>;
    /// Revokes one token (if valid) with `reason`; with `chain`, every token connected to it by `parent_jti`.
    async fn revoke_refresh(&self, jti: &str, reason: &str, chain: bool) -> Result<()>;
    /// The user's refresh tokens that are not revoked and not expired.
    async fn sessions(&self, user_id: &str) -> Result<Vec<RefreshRecord>>;

    // access-token deny-list
    /// Denies the access token `jti` until `until` (its expiry).
    async fn deny_access_token(&self, jti: &str, until: Micros) -> Result<()>;
    async fn is_access_token_denied(&self, jti: &str) -> Result<bool>;

    // idempotency (window: 600 s from the claim, renewed when the response is stored)
    async fn idem_claim(&self, user_id: &str, key: &str, endpoint: IdemEndpoint) -> Result<IdemClaim>;
    /// Stores the response for a claimed key (with a fresh window) and wakes its waiters. A claim that no longer
    /// exists at all (reclaimed after its window ran out) is not recreated.
    async fn idem_complete(&self, user_id: &str, key: &str, body: Bytes) -> Result<()>;
    /// Drops a claim whose processing failed, so a retry is processed normally (a stored response is kept).
    async fn idem_abandon(&self, user_id: &str, key: &str) -> Result<()>;
    /// Waits (up to `timeout`) for an in-flight claim to complete; `None` if it did not or was abandoned.
    async fn idem_wait(&self, user_id: &str, key: &str, timeout: std::time::Duration) -> Result<Option<Bytes>>;
}
