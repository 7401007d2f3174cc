//! The live NATS connections, for lame-duck mode and the dashboard (`/api/herald/overview`): each connection's
//! id, peer address, CONNECT `name`, subscriptions and message counters.
//!
//! The registry's map is touched only when a connection opens or closes, and a connection's subscription map only
//! on SUB, UNSUB and close (by that connection's own reader, so the lock is never contended on the message path).
//! The counters are atomics written by one party each: `in_msgs` by the reader, `out_msgs` by the outbound buffer.

use super::outbound::Outbound;
use bytes::Bytes;
use herald_engine::pubsub::Subscription;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every live connection of the server's NATS listener (empty when the listener is off).
#[derive(Default)]
pub struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnEntry>>>,
}

/// One connection as others see it.
pub struct ConnEntry {
    pub id: u64,
    pub peer: SocketAddr,
    pub out: Arc<Outbound>,
    /// CONNECT's `name`; empty until CONNECT, or when the client gives none.
    name: Mutex<String>,
    /// By sid. Subscriptions removed by their delivery limit stay until the connection sweeps them, so readers skip
    /// those marked removed.
    pub(super) subs: Mutex<HashMap<Bytes, Arc<Subscription>>>,
    /// Messages the client published (PUB and HPUB).
    in_msgs: AtomicU64,
}

impl ConnEntry {
    pub fn new(id: u64, peer: SocketAddr, out: Arc<Outbound>) -> Arc<Self> {
        Arc::new(ConnEntry {
            id,
            peer,
            out,
            name: Mutex::new(String::new()),
            subs: Mutex::new(HashMap::new()),
            in_msgs: AtomicU64::new(0),
        })
    }

    pub fn set_name(&self, name: &str) {
        name.clone_into(&mut self.name.lock());
    }

    /// One message published by the client.
    pub fn count_in(&self) {
        self.in_msgs.fetch_add(1, Ordering::Relaxed);
    }
}

/// One subscription in a [`ConnSnapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubSnapshot {
    pub subject: String,
    pub queue: Option<String>,
}

/// A connection at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSnapshot {
    pub id: u64,
    pub addr: SocketAddr,
    pub name: String,
    /// Live subscriptions, sorted by subject, then queue group.
    pub subscriptions: Vec<SubSnapshot>,
    pub in_msgs: u64,
    /// Messages delivered to the client (MSG and HMSG frames queued for it).
    pub out_msgs: u64,
}

impl Registry {
    pub fn insert(&self, entry: Arc<ConnEntry>) {
        self.conns.lock().insert(entry.id, entry);
    }

    pub fn remove(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    /// The live connections, by id.
    pub fn entries(&self) -> Vec<Arc<ConnEntry>> {
        self.conns.lock().values().cloned().collect()
    }

    /// Every connection, by id. The registry lock is held only to copy the entries out; each connection's
    /// subscription lock only while its subscriptions are copied.
    pub fn snapshot(&self) -> Vec<ConnSnapshot> {
        self.entries()
            .iter()
            .map(|e| {
                let mut subscriptions: Vec<SubSnapshot> = e
                    .subs
                    .lock()
                    .values()
                    .filter(|s| !s.is_removed())
                    .map(|s| SubSnapshot {
                        subject: String::from_utf8_lossy(&s.subject).into_owned(),
                        queue: s.queue.as_ref().map(|q| String::from_utf8_lossy(q).into_owned()),
                    })
                    .collect();
                subscriptions.sort_by(|a, b| (&a.subject, &a.queue).cmp(&(&b.subject, &b.queue)));
                ConnSnapshot {
                    id: e.id,
                    addr: e.peer,
                    name: e.name.lock().clone(),
                    subscriptions,
                    in_msgs: e.in_msgs.load(Ordering::Relaxed),
                    out_msgs: e.out.out_msgs(),
                }
            })
            .collect()
    }
}
