//! Subject pub/sub: the in-memory router every subject-based front-end shares (NATS clients today; relay topics and
//! gRPC/WebSocket subscribers later). Semantics: compat/nats-fluxlib.md §1.9.
//!
//! - A publish reaches every matching plain subscription once, and exactly one member of each matching queue group
//!   (a random one, so work spreads; a member that cannot take the message is skipped for the next).
//! - Nothing is stored: core delivery is at-most-once, and a subscription sees only what is published after it.
//! - The router never blocks on a subscriber. [`Subscriber::deliver`] only appends to the subscriber's own bounded
//!   outbound buffer; a subscriber that cannot keep up cuts itself off (slow consumer) instead of stalling the
//!   publisher or anyone else.
//! - Routing is synchronous: when `publish` returns, the message is in every target's outbound buffer. That is what
//!   gives NATS its PING/PONG barrier (§1.11) with no extra bookkeeping.
//!
//! Matching is done by `herald-subject`'s trie; its match cache makes a publish to a hot subject one hash lookup.

use bytes::Bytes;
use herald_subject::SubjectTrie;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A message on its way through the router. `body` is the NATS header block (if any) followed by the payload;
/// `header_len` is the length of the header block, 0 when there is none. Headers travel opaque and verbatim.
#[derive(Clone, Copy, Debug)]
pub struct Published<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    pub header_len: usize,
    pub body: &'a Bytes,
}

impl Published<'_> {
    pub fn payload(&self) -> &[u8] {
        &self.body[self.header_len..]
    }
}

/// What a subscriber did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Taken,
    /// Taken, and the subscriber's backlog is getting close to its limit: the publisher should slow down a little
    /// so a reader that is merely behind can catch up instead of being cut off.
    Congested,
    /// Not taken: the subscriber is closed, or was cut off as a slow consumer by this message.
    Refused,
}

/// The receiving end of subscriptions: one per connection or session.
pub trait Subscriber: Send + Sync {
    /// The connection this subscriber belongs to; a publisher that asked for no echo skips its own.
    fn origin(&self) -> u64;
    /// Takes one message for the subscription `sid`, without blocking.
    fn deliver(&self, sid: &Bytes, msg: &Published<'_>) -> Delivery;
}

/// The result of routing one message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Subscriptions that took the message.
    pub delivered: usize,
    /// Some subscriber that took it is congested (see [`Delivery::Congested`]).
    pub congested: bool,
}

/// One subscription: a subject pattern, an optional queue group, and the subscriber's own id for it (`sid`).
pub struct Subscription {
    id: u64,
    pub sid: Bytes,
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    sink: Arc<dyn Subscriber>,
    /// Remove after this many deliveries (0: no limit). Set by NATS `UNSUB <sid> <max>`.
    max: AtomicU64,
    delivered: AtomicU64,
    removed: AtomicBool,
}

impl Subscription {
    /// Messages handed to this subscription so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// True once unsubscribed, by request or because its delivery limit was reached.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("sid", &self.sid)
            .field("subject", &self.subject)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The router. Cheap to share (`Arc`); all methods take `&self`.
pub struct Router {
    trie: Mutex<SubjectTrie<Arc<Subscription>>>,
    next_id: AtomicU64,
}

impl Default for Router {
    fn default() -> Self {
        Router { trie: Mutex::new(SubjectTrie::new(8192)), next_id: AtomicU64::new(1) }
    }
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscription. The caller has validated `subject` (a valid subscribe subject) and `queue`.
    pub fn subscribe(
        &self,
        sink: Arc<dyn Subscriber>,
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    ) -> Arc<Subscription> {
        let sub = Arc::new(Subscription {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            sid,
            subject,
            queue,
            sink,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        });
        self.trie.lock().insert(&sub.subject, sub.queue.as_deref(), sub.id, Arc::clone(&sub));
        sub
    }

    /// Removes a subscription; removing one twice is harmless.
    pub fn unsubscribe(&self, sub: &Subscription) {
        if !sub.removed.swap(true, Ordering::AcqRel) {
            self.trie.lock().remove(&sub.subject, sub.id);
        }
    }

    /// Removes the subscription after `max` deliveries in total (counting those already made), or now if it has
    /// had that many already. Returns whether it is still subscribed.
    pub fn limit(&self, sub: &Subscription, max: u64) -> bool {
        sub.max.store(max, Ordering::Release);
        if max == 0 || sub.delivered() >= max {
            self.unsubscribe(sub);
            return false;
        }
        !sub.is_removed()
    }

    /// Subscriptions currently registered.
    pub fn len(&self) -> usize {
        self.trie.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Routes one message. `origin` and `echo` come from the publisher: with `echo == false` its own
    /// subscriptions are skipped (and do not count as deliveries).
    pub fn publish(&self, origin: u64, echo: bool, msg: &Published<'_>) -> Routed {
        let matches = self.trie.lock().matches(msg.subject);
        let mine = |s: &Subscription| !echo && s.sink.origin() == origin;
        let mut routed = Routed::default();
        let mut tally = |d: Delivery| {
            routed.congested |= d == Delivery::Congested;
            let taken = d != Delivery::Refused;
            routed.delivered += usize::from(taken);
            taken
        };
        for s in &matches.plain {
            if !mine(s) {
                tally(self.offer(s, msg));
            }
        }
        for group in &matches.groups {
            let n = group.members.len();
            let start = if n > 1 { fastrand::usize(..n) } else { 0 };
            for i in 0..n {
                let s = &group.members[(start + i) % n];
                if !mine(s) && tally(self.offer(s, msg)) {
                    break;
                }
            }
        }
        routed
    }

    /// Hands `msg` to one particular subscription, outside subject matching (a NATS no-responders status goes to
    /// the requester's own inbox subscription this way). The subscription's delivery limit applies.
    pub fn deliver_to(&self, sub: &Subscription, msg: &Published<'_>) -> Delivery {
        self.offer(sub, msg)
    }

    /// Hands `msg` to one subscription, honouring its delivery limit.
    fn offer(&self, s: &Subscription, msg: &Published<'_>) -> Delivery {
        if s.is_removed() {
            return Delivery::Refused;
        }
        let n = s.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        let max = s.max.load(Ordering::Acquire);
        if max > 0 && n > max {
            // Another publisher delivered the last allowed message first.
            return Delivery::Refused;
        }
        let outcome = s.sink.deliver(&s.sid, msg);
        if max > 0 && n == max {
            self.unsubscribe(s);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (sid, subject, payload) of each message received.
    type Received = Vec<(Bytes, Vec<u8>, Vec<u8>)>;

    /// Records what it receives; `accept` false simulates a subscriber that was cut off.
    struct Probe {
        origin: u64,
        accept: AtomicBool,
        got: Mutex<Received>,
    }

    impl Probe {
        fn new(origin: u64) -> Arc<Probe> {
            Arc::new(Probe { origin, accept: AtomicBool::new(true), got: Mutex::new(Vec::new()) })
        }
        fn received(&self) -> Vec<(String, String)> {
            self.got
                .lock()
                .iter()
                .map(|(sid, subj, _)| (String::from_utf8_lossy(sid).into(), String::from_utf8_lossy(subj).into()))
                .collect()
        }
    }

    impl Subscriber for Probe {
        fn origin(&self) -> u64 {
            self.origin
        }
        fn deliver(&self, sid: &Bytes, msg: &Published<'_>) -> Delivery {
            if !self.accept.load(Ordering::Relaxed) {
                return Delivery::Refused;
            }
            self.got.lock().push((sid.clone(), msg.subject.to_vec(), msg.payload().to_vec()));
            Delivery::Taken
        }
    }

    fn publish(r: &Router, origin: u64, echo: bool, subject: &str) -> usize {
        let body = Bytes::from_static(b"x");
        r.publish(origin, echo, &Published { subject: subject.as_bytes(), reply: None, header_len: 0, body: &body })
            .delivered
    }

    fn sub(r: &Router, p: &Arc<Probe>, subject: &str, queue: Option<&str>, sid: &str) -> Arc<Subscription> {
        r.subscribe(
            Arc::clone(p) as Arc<dyn Subscriber>,
            Bytes::copy_from_slice(subject.as_bytes()),
            queue.map(|q| Bytes::copy_from_slice(q.as_bytes())),
            Bytes::copy_from_slice(sid.as_bytes()),
        )
    }

    #[test]
    fn plain_subscriptions_each_get_a_copy_with_the_published_subject() {
        let r = Router::new();
        let a = Probe::new(1);
        sub(&r, &a, "service.s.set_config", None, "1");
        sub(&r, &a, "service.s.set_config", None, "2");
        sub(&r, &a, "service.>", None, "3");
        sub(&r, &a, "other", None, "4");
        assert_eq!(publish(&r, 2, true, "service.s.set_config"), 3);
        let mut got = a.received();
        got.sort();
        assert_eq!(
            got,
            [("1", "service.s.set_config"), ("2", "service.s.set_config"), ("3", "service.s.set_config")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(publish(&r, 2, true, "nobody"), 0);
    }

    #[test]
    fn a_queue_group_gets_each_message_once_and_spreads_it() {
        let r = Router::new();
        let workers: Vec<_> = (0..3).map(|i| Probe::new(10 + i)).collect();
        for (i, w) in workers.iter().enumerate() {
            sub(&r, w, "jobs", Some("workers"), &i.to_string());
        }
        let plain = Probe::new(20);
        sub(&r, &plain, "jobs", None, "p");
        for _ in 0..300 {
            assert_eq!(publish(&r, 99, true, "jobs"), 2);
        }
        let counts: Vec<usize> = workers.iter().map(|w| w.got.lock().len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 300);
        assert!(counts.iter().all(|&c| c > 0), "every member gets work: {counts:?}");
        assert_eq!(plain.got.lock().len(), 300);
    }

    #[test]
    fn a_member_that_cannot_take_the_message_is_skipped_for_another() {
        let r = Router::new();
        let (dead, live) = (Probe::new(1), Probe::new(2));
        dead.accept.store(false, Ordering::Relaxed);
        sub(&r, &dead, "q", Some("g"), "1");
        sub(&r, &live, "q", Some("g"), "1");
        for _ in 0..50 {
            assert_eq!(publish(&r, 3, true, "q"), 1);
        }
        assert_eq!(live.got.lock().len(), 50);
    }

    #[test]
    fn no_echo_skips_the_publishers_own_subscriptions_also_in_groups() {
        let r = Router::new();
        let (me, other) = (Probe::new(1), Probe::new(2));
        sub(&r, &me, "e", None, "1");
        sub(&r, &other, "e", None, "1");
        sub(&r, &me, "e", Some("g"), "2");
        sub(&r, &other, "e", Some("g"), "2");
        for _ in 0..20 {
            assert_eq!(publish(&r, 1, false, "e"), 2);
        }
        assert!(me.got.lock().is_empty());
        assert_eq!(other.got.lock().len(), 40);
        assert_eq!(publish(&r, 1, false, "nothing-else"), 0);
        // With echo on (the default) the publisher's own plain subscription gets a copy.
        assert_eq!(publish(&r, 1, true, "e"), 3);
    }

    #[test]
    fn delivery_limits_count_earlier_deliveries() {
        let r = Router::new();
        let p = Probe::new(1);
        let s = sub(&r, &p, "u", None, "1");
        assert!(r.limit(&s, 2));
        for _ in 0..4 {
            publish(&r, 2, true, "u");
        }
        assert_eq!(p.got.lock().len(), 2);
        assert!(s.is_removed());
        assert_eq!(r.len(), 0);

        let s = sub(&r, &p, "v", None, "2");
        publish(&r, 2, true, "v");
        publish(&r, 2, true, "v");
        assert!(!r.limit(&s, 1), "already past the limit: removed at once");
        assert_eq!(publish(&r, 2, true, "v"), 0);

        let s = sub(&r, &p, "w", None, "3");
        assert!(!r.limit(&s, 0));
        assert_eq!(publish(&r, 2, true, "w"), 0);
        r.unsubscribe(&s); // twice is harmless
    }

    #[test]
    fn a_limit_is_exact_under_concurrent_publishers() {
        let r = Arc::new(Router::new());
        let p = Probe::new(1);
        let s = sub(&r, &p, "race", None, "1");
        r.limit(&s, 1000);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let r = Arc::clone(&r);
                scope.spawn(move || {
                    for _ in 0..500 {
                        publish(&r, 10 + t, true, "race");
                    }
                });
            }
        });
        assert_eq!(p.got.lock().len(), 1000);
        assert!(s.is_removed());
    }
}
