//! The FlowMesh live feed (compat/flowmesh.md §5.8, D18): dashboard events `{"type","topic","payload"}` fanned out
//! to the `/ws` connections of the admin listener.
//!
//! Delivery is best effort and never slows a request down. Each event is serialized once; publishing takes a read
//! lock over the connections and `try_send`s the shared frame into each interested connection's own bounded buffer
//! ([`CLIENT_BUFFER`] frames). A connection whose buffer is full is not waited for: it is dropped from the hub and
//! told to close, so a socket that stopped reading costs at most that many frames. Publishers ask
//! [`Feed::wants`] first and skip building (or fetching) a payload that nobody would receive.
//!
//! `stream.stats` and `queue.stats` are coalesced per topic (at most one per [`STATS_WINDOW`], the newest value sent
//! at the end of the window, see [`throttle`]): under load every write would otherwise produce a frame, and a
//! dashboard that cannot render them all would be dropped as slow. `replay.session` is coalesced the same way per
//! session over [`REPLAY_WINDOW`] (a running replay changes its progress with every batch); `kv.update` is sent
//! one per change.
//!
//! The helpers that decide *when* to publish (after which gRPC or HTTP mutation) are in [`crate::observe`].
//!
//! Herald adds one event of its own, `herald.overview` (relay topics, NATS connections, event recipients; the
//! dashboard's overview, once a second). It is **opt-in**: only a connection that subscribed to the topic
//! `herald.overview` receives it, so FlowMesh clients, which get every event while they have no topics, never see
//! a type the contract does not list.

mod throttle;
pub mod ws;

use axum::extract::ws::Utf8Bytes;
use herald_engine::QueueStats;
use herald_types::ResourcePath;
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use throttle::{Offer, Throttle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames waiting for one connection before it counts as too slow and is dropped (FlowMesh's client buffer).
pub const CLIENT_BUFFER: usize = 256;
/// At most one `stream.stats` / `queue.stats` event per topic in this window (the contract's example rate limit).
pub const STATS_WINDOW: Duration = Duration::from_millis(100);
/// At most one `replay.session` event per session in this window ("a few times per second", §5.8).
pub const REPLAY_WINDOW: Duration = Duration::from_millis(250);
/// Topics one connection may hold; further subscriptions are ignored, so a client cannot grow the hub's memory
/// without bound.
pub const MAX_TOPICS: usize = 4096;

/// The four event types of §5.8.
pub mod kind {
    pub const STREAM_STATS: &str = "stream.stats";
    pub const QUEUE_STATS: &str = "queue.stats";
    pub const REPLAY_SESSION: &str = "replay.session";
    pub const KV_UPDATE: &str = "kv.update";
    /// Herald's own, opt-in (module docs); its topic is the same string.
    pub const HERALD_OVERVIEW: &str = "herald.overview";
}

/// What happened to a KV key (`kv.update` payloads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvAction {
    Set,
    Delete,
}

impl KvAction {
    fn as_str(self) -> &'static str {
        match self {
            KvAction::Set => "set",
            KvAction::Delete => "delete",
        }
    }
}

/// The topic of a resource event: `<type>.<tenant>/<namespace>/<name>` (no resource type in the path, §5.8).
pub fn resource_topic(kind: &str, path: &ResourcePath) -> String {
    format!("{kind}.{}/{}/{}", path.tenant, path.namespace, path.name)
}

/// The topic of a replay session's events.
pub fn session_topic(session_id: &str) -> String {
    format!("{}.{session_id}", kind::REPLAY_SESSION)
}

/// The hub. Cheap to clone; every clone is the same hub.
#[derive(Clone, Default)]
pub struct Feed(Arc<Hub>);

#[derive(Default)]
struct Hub {
    clients: RwLock<HashMap<u64, Client>>,
    /// Number of connected clients, readable without the lock: the publishers' "is anybody there?" test.
    connected: AtomicUsize,
    next_id: AtomicU64,
    throttle: Throttle,
}

struct Client {
    /// Empty: every event. Otherwise exactly these topics (exact match, no wildcards).
    topics: HashSet<String>,
    tx: mpsc::Sender<Utf8Bytes>,
    dropped: CancellationToken,
}

/// One connection's place in the hub; leaving the hub is dropping it.
pub struct Membership {
    feed: Feed,
    id: u64,
    /// The frames to write, one JSON object each.
    pub frames: mpsc::Receiver<Utf8Bytes>,
    /// Cancelled when the hub gave up on this connection (its buffer was full).
    pub dropped: CancellationToken,
}

impl Membership {
    pub fn subscribe<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        if let Some(c) = self.feed.0.clients.write().get_mut(&self.id) {
            for t in topics {
                if c.topics.len() >= MAX_TOPICS {
                    break;
                }
                if !c.topics.contains(t) {
                    c.topics.insert(t.to_owned());
                }
            }
        }
    }

    pub fn unsubscribe<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        if let Some(c) = self.feed.0.clients.write().get_mut(&self.id) {
            for t in topics {
                c.topics.remove(t);
            }
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.feed.remove(self.id);
    }
}

/// The wire form of an event.
#[derive(Serialize)]
struct Event<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    topic: &'a str,
    payload: P,
}

impl Feed {
    pub fn new() -> Feed {
        Feed::default()
    }

    /// Registers a connection that receives every event until it subscribes to topics.
    pub fn join(&self) -> Membership {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::channel(CLIENT_BUFFER);
        let dropped = CancellationToken::new();
        let client = Client { topics: HashSet::new(), tx, dropped: dropped.clone() };
        self.0.clients.write().insert(id, client);
        self.0.connected.fetch_add(1, Ordering::SeqCst);
        Membership { feed: self.clone(), id, frames, dropped }
    }

    fn remove(&self, id: u64) {
        if let Some(c) = self.0.clients.write().remove(&id) {
            self.0.connected.fetch_sub(1, Ordering::SeqCst);
            c.dropped.cancel();
        }
    }

    /// Number of connected clients.
    pub fn connections(&self) -> usize {
        self.0.connected.load(Ordering::SeqCst)
    }

    /// Whether any connection would receive an event on `topic`. One atomic load when nobody is connected.
    pub fn wants(&self, topic: &str) -> bool {
        if self.connections() == 0 {
            return false;
        }
        self.0.clients.read().values().any(|c| c.topics.is_empty() || c.topics.contains(topic))
    }

    /// `stream.stats`: `{"latest_offset": n}`, coalesced per stream. An offset older than one already sent is
    /// dropped (concurrent writers may finish out of order).
    pub fn stream_stats(&self, path: &ResourcePath, latest_offset: i64) {
        if self.connections() == 0 {
            return; // Nobody to tell: not even the topic string is built.
        }
        let topic = resource_topic(kind::STREAM_STATS, path);
        if !self.wants(&topic) {
            return;
        }
        #[derive(Serialize)]
        struct Payload {
            latest_offset: i64,
        }
        let frame = encode(kind::STREAM_STATS, &topic, Payload { latest_offset });
        self.throttled(topic, latest_offset, frame, STATS_WINDOW);
    }

    /// `queue.stats`: the QueueStats object (§5.1), coalesced per queue (the newest stats win).
    pub fn queue_stats(&self, path: &ResourcePath, stats: &QueueStats) {
        if self.connections() == 0 {
            return; // Nobody to tell: not even the topic string is built.
        }
        let topic = resource_topic(kind::QUEUE_STATS, path);
        if !self.wants(&topic) {
            return;
        }
        let frame = encode(kind::QUEUE_STATS, &topic, QueueStatsJson::from(stats));
        self.throttled(topic, 0, frame, STATS_WINDOW);
    }

    /// `replay.session`: `payload` builds the session's HTTP form (or `{"id","status":"deleted"}`) and is called
    /// only when a connection would receive the event. Coalesced per session over [`REPLAY_WINDOW`]: a running
    /// replay stores its progress after every batch, and a dashboard needs a few updates a second, not hundreds. The
    /// newest state always arrives (at the end of the window), so a `completed` or `error` status is never lost.
    /// `order` is the session's `updated_at` (a deletion passes `i64::MAX`): a snapshot older than one already sent
    /// (a get-one racing the replay task) is dropped rather than shown after it.
    pub fn replay_session(&self, session_id: &str, order: i64, payload: impl FnOnce() -> serde_json::Value) {
        if self.connections() == 0 {
            return;
        }
        let topic = session_topic(session_id);
        if !self.wants(&topic) {
            return;
        }
        let frame = encode(kind::REPLAY_SESSION, &topic, payload());
        self.throttled(topic, order, frame, REPLAY_WINDOW);
    }

    /// `kv.update`: `{"action": "set"|"delete", "key": k}`.
    pub fn kv_update(&self, path: &ResourcePath, action: KvAction, key: &str) {
        if self.connections() == 0 {
            return; // Nobody to tell: not even the topic string is built.
        }
        let topic = resource_topic(kind::KV_UPDATE, path);
        if !self.wants(&topic) {
            return;
        }
        #[derive(Serialize)]
        struct Payload<'a> {
            action: &'a str,
            key: &'a str,
        }
        let frame = encode(kind::KV_UPDATE, &topic, Payload { action: action.as_str(), key });
        self.deliver(&topic, frame);
    }

    /// Whether any connection subscribed to the opt-in `herald.overview` topic.
    pub fn wants_overview(&self) -> bool {
        self.connections() > 0 && self.0.clients.read().values().any(|c| c.topics.contains(kind::HERALD_OVERVIEW))
    }

    /// `herald.overview` to the connections that subscribed to it (and to no one else).
    pub fn herald_overview(&self, payload: &impl Serialize) {
        if !self.wants_overview() {
            return;
        }
        let frame = encode(kind::HERALD_OVERVIEW, kind::HERALD_OVERVIEW, payload);
        self.deliver_to(kind::HERALD_OVERVIEW, frame, false);
    }

    /// Sends now if the topic's window allows it, otherwise leaves the frame for the end of the window (a newer
    /// frame replaces it meanwhile).
    fn throttled(&self, topic: String, order: i64, frame: Utf8Bytes, window: Duration) {
        match self.0.throttle.offer(&topic, order, frame, window) {
            Offer::SendNow(frame) => self.deliver(&topic, frame),
            Offer::FlushAt(at) => {
                let feed = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    if let Some(frame) = feed.0.throttle.flush(&topic) {
                        feed.deliver(&topic, frame);
                    }
                });
            }
            Offer::Held => {}
        }
    }

    /// Hands `frame` to every interested connection without waiting; connections whose buffer is full are dropped.
    fn deliver(&self, topic: &str, frame: Utf8Bytes) {
        self.deliver_to(topic, frame, true);
    }

    /// `to_everyone`: whether connections with no topics receive it (FlowMesh's events) or not (opt-in events).
    fn deliver_to(&self, topic: &str, frame: Utf8Bytes, to_everyone: bool) {
        let mut gone = Vec::new();
        {
            let clients = self.0.clients.read();
            for (id, c) in clients.iter() {
                if !((to_everyone && c.topics.is_empty()) || c.topics.contains(topic)) {
                    continue;
                }
                if c.tx.try_send(frame.clone()).is_err() {
                    gone.push(*id);
                }
            }
        }
        for id in gone {
            tracing::debug!(client = id, "/ws client dropped: its buffer of {CLIENT_BUFFER} events is full");
            self.remove(id);
        }
    }
}

/// QueueStats with the wire's key names, in the contract's order.
#[derive(Serialize)]
pub struct QueueStatsJson {
    pub total_jobs: i64,
    pub pending_jobs: i64,
    pub in_flight_jobs: i64,
    pub completed_jobs: i64,
    pub failed_jobs: i64,
    pub oldest_job_age_seconds: i64,
}

impl From<&QueueStats> for QueueStatsJson {
    fn from(s: &QueueStats) -> Self {
        QueueStatsJson {
            total_jobs: s.total_jobs,
            pending_jobs: s.pending_jobs,
            in_flight_jobs: s.in_flight_jobs,
            completed_jobs: s.completed_jobs,
            failed_jobs: s.failed_jobs,
            oldest_job_age_seconds: s.oldest_job_age_seconds,
        }
    }
}

fn encode<P: Serialize>(kind: &str, topic: &str, payload: P) -> Utf8Bytes {
    let text = serde_json::to_string(&Event { kind, topic, payload }).expect("events serialize to JSON");
    Utf8Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_types::ResourceKind;

    fn path(kind: ResourceKind, name: &str) -> ResourcePath {
        ResourcePath::new("t1", "ns1", kind, name).unwrap()
    }

    fn json(frame: &Utf8Bytes) -> serde_json::Value {
        serde_json::from_str(frame.as_str()).unwrap()
    }

    #[tokio::test]
    async fn no_topics_means_everything_and_topics_filter_exactly() {
        let feed = Feed::new();
        let mut all = feed.join();
        let mut some = feed.join();
        some.subscribe(["kv.update.t1/ns1/a"]);
        feed.kv_update(&path(ResourceKind::Kv, "a"), KvAction::Set, "k");
        feed.kv_update(&path(ResourceKind::Kv, "ab"), KvAction::Delete, "k");
        let a = json(&all.frames.recv().await.unwrap());
        assert_eq!(
            a,
            serde_json::json!({"type": "kv.update", "topic": "kv.update.t1/ns1/a", "payload": {"action": "set", "key": "k"}})
        );
        assert_eq!(json(&all.frames.recv().await.unwrap())["payload"]["action"], "delete");
        assert_eq!(json(&some.frames.recv().await.unwrap())["topic"], "kv.update.t1/ns1/a");
        assert!(some.frames.try_recv().is_err(), "a subscribed connection gets only its topics");
        some.unsubscribe(["kv.update.t1/ns1/a"]);
        feed.kv_update(&path(ResourceKind::Kv, "zz"), KvAction::Set, "k");
        assert_eq!(json(&some.frames.recv().await.unwrap())["topic"], "kv.update.t1/ns1/zz");
    }

    #[tokio::test]
    async fn nobody_listening_costs_nothing_and_nobody_interested_is_skipped() {
        let feed = Feed::new();
        assert!(!feed.wants("kv.update.t1/ns1/a"));
        let m = feed.join();
        m.subscribe(["queue.stats.t1/ns1/q"]);
        assert!(feed.wants("queue.stats.t1/ns1/q"));
        assert!(!feed.wants("queue.stats.t1/ns1/other"));
        drop(m);
        assert_eq!(feed.connections(), 0);
    }

    #[tokio::test]
    async fn a_full_buffer_drops_that_connection_only() {
        let feed = Feed::new();
        let slow = feed.join();
        let mut fast = feed.join();
        let kv = path(ResourceKind::Kv, "a");
        for i in 0..CLIENT_BUFFER + 1 {
            feed.kv_update(&kv, KvAction::Set, &i.to_string());
            // The fast one keeps up.
            assert!(fast.frames.recv().await.is_some());
        }
        assert!(slow.dropped.is_cancelled());
        assert!(!fast.dropped.is_cancelled());
        assert_eq!(feed.connections(), 1);
    }

    #[tokio::test]
    async fn stats_are_coalesced_per_topic_and_the_newest_value_arrives() {
        let feed = Feed::new();
        let mut m = feed.join();
        let s = path(ResourceKind::Stream, "s");
        for offset in 0..10 {
            feed.stream_stats(&s, offset);
        }
        // An older offset finishing late is never sent after a newer one.
        feed.stream_stats(&s, 3);
        assert_eq!(json(&m.frames.recv().await.unwrap())["payload"]["latest_offset"], 0);
        let trailing = m.frames.recv().await.unwrap();
        assert_eq!(json(&trailing)["payload"]["latest_offset"], 9);
        tokio::time::sleep(STATS_WINDOW * 3).await;
        assert!(m.frames.try_recv().is_err());
        // Another stream has its own window.
        feed.stream_stats(&path(ResourceKind::Stream, "other"), 0);
        assert_eq!(json(&m.frames.recv().await.unwrap())["topic"], "stream.stats.t1/ns1/other");
    }

    #[tokio::test]
    async fn replay_events_are_coalesced_in_order_and_a_stale_snapshot_is_dropped() {
        let feed = Feed::new();
        let mut m = feed.join();
        let built = std::sync::atomic::AtomicUsize::new(0);
        let session = |status: &str| {
            built.fetch_add(1, Ordering::SeqCst);
            serde_json::json!({"session_id": "s1", "status": status})
        };
        feed.replay_session("s1", 10, || session("active"));
        feed.replay_session("s1", 11, || session("active"));
        feed.replay_session("s1", 12, || session("completed"));
        // A get-one that read the session before the completion.
        feed.replay_session("s1", 11, || session("active"));
        let first = json(&m.frames.recv().await.unwrap());
        assert_eq!(first["topic"], "replay.session.s1");
        assert_eq!(first["payload"]["status"], "active");
        assert_eq!(json(&m.frames.recv().await.unwrap())["payload"]["status"], "completed");
        tokio::time::sleep(REPLAY_WINDOW * 2).await;
        assert!(m.frames.try_recv().is_err(), "the stale snapshot is never sent");
        // Nobody interested: the payload is not even built.
        m.subscribe(["replay.session.other"]);
        let before = built.load(Ordering::SeqCst);
        feed.replay_session("s1", 13, || session("stopped"));
        assert_eq!(built.load(Ordering::SeqCst), before);
    }
}
