//! Who gets which event next: the in-memory delivery state of every open event (compat/ensync.md §7.3–§7.6).
//!
//! Pure state, no I/O and no clock of its own (callers pass `now`), so every transition is unit-tested here. The
//! service (`embedded`) persists what must survive a restart (acks, discards, deferrals) before it calls in.
//!
//! - Each open event belongs to the queue of (recipient, name) and is `Pending`, `InFlight` (to one client, until a
//!   deadline) or `Deferred` (until an instant).
//! - A queue's subscriptions are competing consumers: each dispatch goes to the next eligible one, round-robin.
//!   Eligible = not paused and fewer than `window` events in flight to it.
//! - In-flight events belong to the client, not to the sink: a sink superseded by a newer one for the same pair
//!   keeps them (the SDK opens duplicate streams mid-processing, §8 G5); a subscription that ends releases them.
//! - Lowest block first among pending events.

use super::api::{EpochMs, EventSink, PublicKey, SinkId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// (recipient, event name): one queue.
pub(crate) type QueueKey = (PublicKey, Arc<str>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Pending,
    InFlight { owner: Arc<str>, deadline: EpochMs },
    Deferred { until: EpochMs },
}

#[derive(Clone, Debug)]
pub(crate) struct Open {
    pub idem: Arc<str>,
    pub recipient: PublicKey,
    pub name: Arc<str>,
    pub state: State,
    /// Deliveries so far (redeliveries included).
    pub attempts: u32,
}

#[derive(Default)]
struct Queue {
    pending: BTreeSet<u64>,
    /// Client ids subscribed to this queue, in subscription order; `rr` is where the next search starts.
    subs: Vec<Arc<str>>,
    rr: usize,
}

struct Sub {
    sink: Arc<dyn EventSink>,
    sink_id: SinkId,
    window: usize,
    in_flight: BTreeSet<u64>,
}

/// A recipient's open events by state (see [`Dispatch::recipient_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecipientCounts {
    pub pending: usize,
    pub in_flight: usize,
    pub deferred: usize,
}

/// One event to hand to a sink. If the sink refuses it, call [`Dispatch::undeliverable`].
pub(crate) struct Delivery {
    pub sink: Arc<dyn EventSink>,
    pub sink_id: SinkId,
    pub block: u64,
    pub client_id: Arc<str>,
    pub name: Arc<str>,
}

pub(crate) struct Dispatch {
    ack_timeout_ms: i64,
    open: BTreeMap<u64, Open>,
    queues: HashMap<QueueKey, Queue>,
    /// (client id, name) → subscription.
    subs: HashMap<(Arc<str>, Arc<str>), Sub>,
    /// client id → identity and the names it subscribed to or paused.
    clients: HashMap<Arc<str>, ClientState>,
    /// In-flight deadlines and deferral ends, in time order.
    timers: BTreeSet<(EpochMs, u64)>,
    /// Deferred events per recipient, kept up to date so that a snapshot need not walk every open event.
    deferred: HashMap<PublicKey, usize>,
    next_sink: SinkId,
    pub delivered_total: u64,
}

struct ClientState {
    identity: PublicKey,
    names: HashSet<Arc<str>>,
    paused: HashSet<Arc<str>>,
}

impl Dispatch {
    pub fn new(ack_timeout_ms: i64) -> Self {
        Dispatch {
            ack_timeout_ms,
            open: BTreeMap::new(),
            queues: HashMap::new(),
            subs: HashMap::new(),
            clients: HashMap::new(),
            timers: BTreeSet::new(),
            deferred: HashMap::new(),
            next_sink: 1,
            delivered_total: 0,
        }
    }

    pub fn get(&self, block: u64) -> Option<&Open> {
        self.open.get(&block)
    }

    /// The lowest open block, if any: everything below it is closed.
    pub fn first_open(&self) -> Option<u64> {
        self.open.keys().next().copied()
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn in_flight_count(&self) -> usize {
        self.subs.values().map(|s| s.in_flight.len()).sum()
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Adds an open event (a publish, or recovery). `until` makes it deferred.
    pub fn add(
        &mut self,
        block: u64,
        idem: Arc<str>,
        recipient: PublicKey,
        name: Arc<str>,
        until: Option<EpochMs>,
    ) -> Option<QueueKey> {
        let key = (recipient, Arc::clone(&name));
        let state = match until {
            Some(until) => {
                self.timers.insert((until, block));
                *self.deferred.entry(recipient).or_default() += 1;
                State::Deferred { until }
            }
            None => {
                self.queues.entry(key.clone()).or_default().pending.insert(block);
                State::Pending
            }
        };
        self.open.insert(block, Open { idem, recipient, name, state, attempts: 0 });
        until.is_none().then_some(key)
    }

    fn client(&mut self, client_id: &Arc<str>, identity: PublicKey) -> &mut ClientState {
        self.clients.entry(Arc::clone(client_id)).or_insert_with(|| ClientState {
            identity,
            names: HashSet::new(),
            paused: HashSet::new(),
        })
    }

    /// Makes `sink` the pair's delivery channel. Returns its id and the sink it superseded, which the caller
    /// closes.
    pub fn subscribe(
        &mut self,
        client_id: &Arc<str>,
        identity: PublicKey,
        name: &Arc<str>,
        sink: Arc<dyn EventSink>,
        window: usize,
    ) -> (SinkId, Option<Arc<dyn EventSink>>) {
        let sink_id = self.next_sink;
        self.next_sink += 1;
        self.client(client_id, identity).names.insert(Arc::clone(name));
        let pair = (Arc::clone(client_id), Arc::clone(name));
        if let Some(sub) = self.subs.get_mut(&pair) {
            let old = std::mem::replace(&mut sub.sink, sink);
            sub.sink_id = sink_id;
            return (sink_id, Some(old));
        }
        self.subs.insert(pair, Sub { sink, sink_id, window: window.max(1), in_flight: BTreeSet::new() });
        self.queues.entry((identity, Arc::clone(name))).or_default().subs.push(Arc::clone(client_id));
        (sink_id, None)
    }

    /// Ends the pair's subscription if `sink_id` is still its sink (or always, with `None`). Returns the sink (to
    /// close) and whether anything changed; its in-flight events are pending again.
    pub fn unsubscribe(
        &mut self,
        client_id: &Arc<str>,
        name: &Arc<str>,
        sink_id: Option<SinkId>,
    ) -> Option<Arc<dyn EventSink>> {
        let pair = (Arc::clone(client_id), Arc::clone(name));
        let sub = self.subs.get(&pair)?;
        if sink_id.is_some_and(|id| id != sub.sink_id) {
            return None;
        }
        let sub = self.subs.remove(&pair).expect("present");
        let identity = self.clients.get(client_id).map(|c| c.identity);
        if let Some(c) = self.clients.get_mut(client_id) {
            c.names.remove(name);
        }
        if let Some(identity) = identity
            && let Some(q) = self.queues.get_mut(&(identity, Arc::clone(name)))
        {
            q.subs.retain(|c| c != client_id);
        }
        for block in sub.in_flight {
            self.release(block);
        }
        Some(sub.sink)
    }

    /// Ends every subscription and pause flag of a client. Returns the sinks to close and the queues whose events
    /// it released (to pump).
    pub fn end_client(&mut self, client_id: &Arc<str>) -> (Vec<Arc<dyn EventSink>>, Vec<QueueKey>) {
        let Some(c) = self.clients.get(client_id) else { return (Vec::new(), Vec::new()) };
        let identity = c.identity;
        let names: Vec<Arc<str>> = c.names.iter().cloned().collect();
        let sinks = names.iter().filter_map(|n| self.unsubscribe(client_id, n, None)).collect();
        self.clients.remove(client_id);
        (sinks, names.into_iter().map(|n| (identity, n)).collect())
    }

    pub fn has_sinks(&self, client_id: &str) -> bool {
        self.clients.get(client_id).is_some_and(|c| !c.names.is_empty())
    }

    pub fn set_paused(&mut self, client_id: &Arc<str>, identity: PublicKey, name: &Arc<str>, paused: bool) {
        let c = self.client(client_id, identity);
        if paused {
            c.paused.insert(Arc::clone(name));
        } else {
            c.paused.remove(name);
        }
    }

    pub fn clear_pause(&mut self, client_id: &str, name: &str) {
        if let Some(c) = self.clients.get_mut(client_id) {
            c.paused.remove(name);
        }
    }

    /// An in-flight event goes back to pending (its subscription ended, its deadline passed, its sink refused it).
    fn release(&mut self, block: u64) {
        let Some(open) = self.open.get_mut(&block) else { return };
        let State::InFlight { owner, deadline } = std::mem::replace(&mut open.state, State::Pending) else {
            return;
        };
        self.timers.remove(&(deadline, block));
        if let Some(sub) = self.subs.get_mut(&(owner, Arc::clone(&open.name))) {
            sub.in_flight.remove(&block);
        }
        self.queues.entry((open.recipient, Arc::clone(&open.name))).or_default().pending.insert(block);
    }

    /// The sink refused the event (its connection is gone): pending again, for someone else.
    pub fn undeliverable(&mut self, block: u64) -> Option<QueueKey> {
        self.release(block);
        self.open.get(&block).map(|o| (o.recipient, Arc::clone(&o.name)))
    }

    /// Takes the event out of whatever state it was in (before closing it or deferring it). Returns its queue.
    fn detach_state(&mut self, block: u64) -> Option<QueueKey> {
        let open = self.open.get_mut(&block)?;
        let key = (open.recipient, Arc::clone(&open.name));
        match std::mem::replace(&mut open.state, State::Pending) {
            State::Pending => {
                if let Some(q) = self.queues.get_mut(&key) {
                    q.pending.remove(&block);
                }
            }
            State::InFlight { owner, deadline } => {
                self.timers.remove(&(deadline, block));
                if let Some(sub) = self.subs.get_mut(&(owner, Arc::clone(&key.1))) {
                    sub.in_flight.remove(&block);
                }
            }
            State::Deferred { until } => {
                self.timers.remove(&(until, block));
                self.undefer(&key.0);
            }
        }
        Some(key)
    }

    /// One deferred event of `recipient` left the deferred state.
    fn undefer(&mut self, recipient: &PublicKey) {
        if let Some(n) = self.deferred.get_mut(recipient) {
            *n -= 1;
            if *n == 0 {
                self.deferred.remove(recipient);
            }
        }
    }

    /// Open events per recipient that has any: pending, in flight and deferred. Walks the queues, the
    /// subscriptions and the deferred counters, never the open events themselves, so it is cheap enough to take
    /// under the service's lock.
    pub fn recipient_counts(&self) -> HashMap<PublicKey, RecipientCounts> {
        let mut out: HashMap<PublicKey, RecipientCounts> = HashMap::new();
        for ((recipient, _), q) in &self.queues {
            if !q.pending.is_empty() {
                out.entry(*recipient).or_default().pending += q.pending.len();
            }
        }
        for ((client, _), sub) in &self.subs {
            if !sub.in_flight.is_empty()
                && let Some(c) = self.clients.get(client)
            {
                out.entry(c.identity).or_default().in_flight += sub.in_flight.len();
            }
        }
        for (recipient, n) in &self.deferred {
            out.entry(*recipient).or_default().deferred += n;
        }
        out
    }

    /// Acked or discarded: the event leaves. Returns its queue (a window slot may have opened).
    pub fn close(&mut self, block: u64) -> Option<QueueKey> {
        let key = self.detach_state(block)?;
        self.open.remove(&block);
        Some(key)
    }

    /// Deferred until `until`: not delivered before then.
    pub fn defer(&mut self, block: u64, until: EpochMs) -> Option<QueueKey> {
        let key = self.detach_state(block)?;
        self.timers.insert((until, block));
        *self.deferred.entry(key.0).or_default() += 1;
        if let Some(o) = self.open.get_mut(&block) {
            o.state = State::Deferred { until };
        }
        Some(key)
    }

    /// Timers due at `now`: expired deadlines release their events, ended deferrals make theirs pending. Returns
    /// the queues to pump.
    pub fn due(&mut self, now: EpochMs) -> Vec<QueueKey> {
        let mut touched = Vec::new();
        while let Some(&(at, block)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(open) = self.open.get(&block) else { continue };
            match &open.state {
                State::InFlight { deadline, .. } if *deadline == at => {
                    self.timers.insert((at, block)); // release() removes it
                    self.release(block);
                }
                State::Deferred { until } if *until == at => {
                    let key = (open.recipient, Arc::clone(&open.name));
                    if let Some(o) = self.open.get_mut(&block) {
                        o.state = State::Pending;
                    }
                    self.undefer(&key.0);
                    self.queues.entry(key).or_default().pending.insert(block);
                }
                _ => continue,
            }
            if let Some(o) = self.open.get(&block) {
                touched.push((o.recipient, Arc::clone(&o.name)));
            }
        }
        touched.sort();
        touched.dedup();
        touched
    }

    /// Hands pending events of `key` to eligible subscriptions: lowest block first, round-robin among
    /// subscriptions, at most `window` in flight each.
    pub fn pump(&mut self, key: &QueueKey, now: EpochMs, out: &mut Vec<Delivery>) {
        let Some(q) = self.queues.get_mut(key) else { return };
        let n = q.subs.len();
        while !q.pending.is_empty() && n > 0 {
            // The next eligible subscription, starting at the round-robin cursor.
            let mut chosen = None;
            for i in 0..n {
                let idx = (q.rr + i) % n;
                let client = &q.subs[idx];
                let paused = self.clients.get(client).is_some_and(|c| c.paused.contains(&key.1));
                let sub = self.subs.get(&(Arc::clone(client), Arc::clone(&key.1)));
                if !paused && sub.is_some_and(|s| s.in_flight.len() < s.window) {
                    chosen = Some(idx);
                    break;
                }
            }
            let Some(idx) = chosen else { break };
            q.rr = (idx + 1) % n;
            let block = q.pending.pop_first().expect("not empty");
            let client = Arc::clone(&q.subs[idx]);
            let sub = self.subs.get_mut(&(Arc::clone(&client), Arc::clone(&key.1))).expect("eligible");
            sub.in_flight.insert(block);
            let deadline = now.saturating_add(self.ack_timeout_ms);
            self.timers.insert((deadline, block));
            if let Some(o) = self.open.get_mut(&block) {
                o.state = State::InFlight { owner: Arc::clone(&client), deadline };
                o.attempts += 1;
            }
            self.delivered_total += 1;
            out.push(Delivery {
                sink: Arc::clone(&sub.sink),
                sink_id: sub.sink_id,
                block,
                client_id: client,
                name: Arc::clone(&key.1),
            });
        }
        if q.pending.is_empty() && q.subs.is_empty() {
            self.queues.remove(key);
        }
    }

    /// Queues a client subscribes to (to pump after a resume or a subscribe).
    pub fn queue_of(&self, client_id: &str, name: &Arc<str>) -> Option<QueueKey> {
        self.clients.get(client_id).map(|c| (c.identity, Arc::clone(name)))
    }

    /// Whether `client_id` has paused `name`.
    #[cfg(test)]
    pub fn paused(&self, client_id: &str, name: &str) -> bool {
        self.clients.get(client_id).is_some_and(|c| c.paused.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<u64>>,
        closed: Mutex<bool>,
    }
    impl EventSink for Recorder {
        fn deliver(&self, e: Arc<super::super::api::StoredEvent>) -> bool {
            self.got.lock().push(e.block);
            true
        }
        fn close(&self) {
            *self.closed.lock() = true;
        }
    }

    const PK: PublicKey = [7; 32];

    fn name() -> Arc<str> {
        Arc::from("orders")
    }

    fn blocks(out: &[Delivery]) -> Vec<(u64, String)> {
        out.iter().map(|d| (d.block, d.client_id.to_string())).collect()
    }

    fn setup(n_events: u64) -> Dispatch {
        let mut d = Dispatch::new(1000);
        for b in 1..=n_events {
            d.add(b, Arc::from(format!("id{b}")), PK, name(), None);
        }
        d
    }

    #[test]
    fn lowest_block_first_one_in_flight_per_subscription() {
        let mut d = setup(3);
        let c: Arc<str> = Arc::from("c1");
        d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 1);
        let mut out = Vec::new();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(1, "c1".into())]);
        out.clear();
        d.pump(&(PK, name()), 0, &mut out);
        assert!(out.is_empty(), "window of 1");
        d.close(1);
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(2, "c1".into())]);
    }

    #[test]
    fn competing_consumers_round_robin_and_pause() {
        let mut d = setup(4);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        d.subscribe(&a, PK, &name(), Arc::new(Recorder::default()), 1);
        d.subscribe(&b, PK, &name(), Arc::new(Recorder::default()), 1);
        let mut out = Vec::new();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(1, "a".into()), (2, "b".into())]);
        d.set_paused(&a, PK, &name(), true);
        d.close(1);
        d.close(2);
        out.clear();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(3, "b".into())], "a is paused");
        d.set_paused(&a, PK, &name(), false);
        out.clear();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(4, "a".into())]);
    }

    #[test]
    fn deadlines_release_and_deferrals_wait() {
        let mut d = setup(2);
        let c: Arc<str> = Arc::from("c");
        d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 1);
        let mut out = Vec::new();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(d.due(999), Vec::<QueueKey>::new());
        assert_eq!(d.due(1000).len(), 1, "the deadline passed");
        out.clear();
        d.pump(&(PK, name()), 1000, &mut out);
        assert_eq!(blocks(&out), [(1, "c".into())], "redelivered first: lowest block");
        assert_eq!(d.get(1).unwrap().attempts, 2);
        d.defer(1, 5000);
        out.clear();
        d.pump(&(PK, name()), 1000, &mut out);
        assert_eq!(blocks(&out), [(2, "c".into())]);
        d.close(2);
        out.clear();
        d.pump(&(PK, name()), 1000, &mut out);
        assert!(out.is_empty(), "1 is deferred");
        assert_eq!(d.due(4999).len(), 0);
        assert_eq!(d.due(5000).len(), 1);
        d.pump(&(PK, name()), 5000, &mut out);
        assert_eq!(blocks(&out), [(1, "c".into())]);
    }

    #[test]
    fn superseded_sinks_keep_in_flight_and_unsubscribe_releases() {
        let mut d = setup(2);
        let c: Arc<str> = Arc::from("c");
        let (first, _) = d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 1);
        let mut out = Vec::new();
        d.pump(&(PK, name()), 0, &mut out);
        let (second, old) = d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 1);
        assert!(old.is_some());
        assert!(matches!(d.get(1).unwrap().state, State::InFlight { .. }), "kept in flight");
        assert!(d.unsubscribe(&c, &name(), Some(first)).is_none(), "a stale sink detaches nothing");
        assert!(d.unsubscribe(&c, &name(), Some(second)).is_some());
        assert_eq!(d.get(1).unwrap().state, State::Pending);
        let other: Arc<str> = Arc::from("o");
        d.subscribe(&other, PK, &name(), Arc::new(Recorder::default()), 1);
        out.clear();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(blocks(&out), [(1, "o".into())]);
    }

    #[test]
    fn recipient_counts_follow_every_transition() {
        const OTHER: PublicKey = [9; 32];
        let mut d = setup(4);
        d.add(5, Arc::from("id5"), OTHER, name(), Some(100));
        let counts = |d: &Dispatch, pk: PublicKey| d.recipient_counts().get(&pk).copied().unwrap_or_default();
        let rc = |pending, in_flight, deferred| RecipientCounts { pending, in_flight, deferred };
        assert_eq!(counts(&d, PK), rc(4, 0, 0));
        assert_eq!(counts(&d, OTHER), rc(0, 0, 1));
        let c: Arc<str> = Arc::from("c");
        d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 2);
        let mut out = Vec::new();
        d.pump(&(PK, name()), 0, &mut out);
        assert_eq!(counts(&d, PK), rc(2, 2, 0));
        d.defer(1, 50);
        assert_eq!(counts(&d, PK), rc(2, 1, 1));
        d.close(2);
        assert_eq!(counts(&d, PK), rc(2, 0, 1));
        d.due(100);
        assert_eq!(counts(&d, PK), rc(3, 0, 0), "the deferral ended");
        assert_eq!(counts(&d, OTHER), rc(1, 0, 0));
        d.defer(3, 1000);
        d.close(3);
        assert_eq!(counts(&d, PK), rc(2, 0, 0), "closing a deferred event uncounts it");
        assert!(d.deferred.is_empty(), "no empty counters are left behind");
        d.end_client(&c);
        assert_eq!(counts(&d, PK), rc(2, 0, 0));
    }

    #[test]
    fn end_client_drops_subscriptions_and_pauses() {
        let mut d = setup(1);
        let c: Arc<str> = Arc::from("c");
        d.set_paused(&c, PK, &name(), true);
        d.subscribe(&c, PK, &name(), Arc::new(Recorder::default()), 1);
        assert!(d.paused("c", "orders"));
        assert_eq!(d.end_client(&c).0.len(), 1);
        assert!(!d.paused("c", "orders"));
        assert!(!d.has_sinks("c"));
    }
}
