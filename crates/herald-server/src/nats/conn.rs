//! One NATS client connection: the handshake, then each operation handled in order (§1.2, §1.5, §1.11).
//!
//! The reader parses and handles operations one by one, synchronously: a PUB is routed into every target's
//! outbound buffer before the next operation is read. So by the time the PONG answering a PING is queued, every
//! message the client published before that PING is already queued everywhere — the barrier clients' `flush()`
//! relies on — with no extra bookkeeping.

use super::Shared;
use super::codec::{ClientOp, Parser};
use super::info::{Connect, Options};
use super::outbound::{Closed, FlushScope, Outbound};
use super::registry::ConnEntry;
use crate::auth::Principal;
use bytes::{Bytes, BytesMut};
use herald_engine::pubsub::{Published, Subscriber};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpStream;

/// How a connection ends, when an operation ends it.
enum End {
    /// Write `-ERR '<text>'`, then close.
    Err(String),
    /// Close without a word (the reference's silent closes, §1.16).
    Silent,
}

fn err(text: impl Into<String>) -> End {
    End::Err(text.into())
}

struct Conn {
    id: u64,
    shared: Arc<Shared>,
    out: Arc<Outbound>,
    opts: Options,
    /// CONNECT accepted (or, without authentication, not needed yet).
    connected: bool,
    /// The PONG answering the first PING after CONNECT has been queued: server PINGs may start (§1.2 step 5).
    handshake_done: bool,
    principal: Option<Principal>,
    /// This connection in the listener's registry: its subscriptions (by sid), name and counters live there.
    entry: Arc<ConnEntry>,
    /// Unanswered server PINGs.
    pings_out: u32,
    /// The client sent something since the last keepalive tick.
    active: bool,
    /// The last publish reached a subscriber whose backlog is near its limit.
    congested: bool,
}

/// Read buffer bounds: see `read_loop`.
const MIN_READ: usize = 512;
const MAX_READ: usize = 64 * 1024;

/// The most a publisher is slowed down per read of its socket for congested subscribers: the bound current
/// reference releases use (§1.12).
const MAX_THROTTLE_PER_READ: std::time::Duration = std::time::Duration::from_millis(10);

/// Serves one accepted connection until it ends, then removes everything it subscribed.
pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let sock = Arc::new(stream);
    let out = Outbound::new(id, shared.limits.max_pending, Arc::clone(&sock));
    out.push_bytes(&shared.info(id, peer.ip(), false).line());
    let writer = tokio::spawn(Arc::clone(&out).write_loop(shared.limits.write_deadline));

    let admitted = shared.connections.fetch_add(1, Ordering::AcqRel) < shared.limits.max_connections;
    if admitted {
        let entry = ConnEntry::new(id, peer, Arc::clone(&out));
        shared.registry.insert(Arc::clone(&entry));
        let mut conn = Conn {
            id,
            shared: Arc::clone(&shared),
            out: Arc::clone(&out),
            opts: Options::default(),
            connected: false,
            handshake_done: false,
            principal: None,
            entry: Arc::clone(&entry),
            pings_out: 0,
            active: false,
            congested: false,
        };
        conn.read_loop(&sock).await;
        let subs = std::mem::take(&mut *entry.subs.lock());
        for sub in subs.values() {
            shared.router.unsubscribe(sub);
        }
        shared.registry.remove(id);
    } else {
        out.push_err("maximum connections exceeded");
    }
    out.close(Closed::Graceful);
    // Let a final -ERR reach the client; a peer that does not read is cut off by the write deadline anyway.
    let _ = tokio::time::timeout(shared.limits.write_deadline, writer).await;
    shared.connections.fetch_sub(1, Ordering::AcqRel);
}

/// What handling the buffered operations came to.
enum Step {
    /// Everything complete was handled; read more.
    NeedInput,
    /// A subscriber is congested: pause a moment, then go on.
    Throttle,
    /// The connection ends.
    End,
}

/// Reads what the socket has (at least one byte, or 0 at EOF).
async fn read_some(sock: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    loop {
        sock.readable().await?;
        match sock.try_read_buf(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

impl Conn {
    async fn read_loop(&mut self, sock: &TcpStream) {
        let limits = self.shared.limits.clone();
        let mut parser = Parser::new(limits.max_control_line, limits.max_payload);
        // The read buffer adapts: it starts small (most connections are idle most of the time, and memory per idle
        // connection matters with thousands of devices), doubles while reads fill it, and shrinks back when idle.
        let mut buf = BytesMut::new();
        let mut read_size = MIN_READ;
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + limits.ping_interval, limits.ping_interval);
        let auth_timeout = tokio::time::sleep(limits.auth_timeout);
        tokio::pin!(auth_timeout);
        let auth_required = self.shared.auth.is_enabled();
        loop {
            let mut throttled = std::time::Duration::ZERO;
            loop {
                // The scope ends (and writes what the batch produced for idle connections) before any await.
                let step = {
                    let _scope = FlushScope::enter();
                    self.handle_buffered(&mut parser, &mut buf)
                };
                match step {
                    Step::NeedInput => break,
                    Step::End => return,
                    Step::Throttle if throttled < MAX_THROTTLE_PER_READ => {
                        // Give a subscriber that is merely behind a moment to catch up before routing more to it.
                        let pause = std::time::Duration::from_millis(1);
                        tokio::time::sleep(pause).await;
                        throttled += pause;
                    }
                    Step::Throttle => {}
                }
            }
            if self.out.closed().is_some() {
                return;
            }
            if buf.is_empty() && buf.capacity() > 4 * read_size {
                buf = BytesMut::new();
            }
            buf.reserve(parser.wants(buf.len()).clamp(read_size, 4 << 20));
            let spare = buf.capacity() - buf.len();
            tokio::select! {
                _ = self.out.done.cancelled() => return,
                _ = self.shared.shutdown.cancelled() => return,
                read = read_some(sock, &mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        self.active = true;
                        if n >= spare {
                            read_size = (read_size * 2).min(MAX_READ);
                        } else if n < read_size / 4 {
                            read_size = (read_size / 2).max(MIN_READ);
                        }
                    }
                },
                _ = keepalive.tick() => {
                    if let Err(End::Err(text)) = self.keepalive() {
                        self.out.push_err(&text);
                        return;
                    }
                }
                _ = &mut auth_timeout, if auth_required && !self.connected => {
                    self.out.push_err("Authentication Timeout");
                    return;
                }
            }
        }
    }

    /// Handles every complete operation in `buf`, in order.
    fn handle_buffered(&mut self, parser: &mut Parser, buf: &mut BytesMut) -> Step {
        loop {
            let op = match parser.parse(buf) {
                Ok(Some(op)) => op,
                Ok(None) => return Step::NeedInput,
                Err(e) => {
                    tracing::debug!(client = self.id, error = ?e, "protocol error");
                    if let Some(text) = e.err_text() {
                        self.out.push_err(text);
                    }
                    return Step::End;
                }
            };
            if let Err(end) = self.handle(op) {
                if let End::Err(text) = end {
                    self.out.push_err(&text);
                }
                return Step::End;
            }
            if std::mem::take(&mut self.congested) {
                return Step::Throttle;
            }
        }
    }

    /// Every `ping_interval`: PING a client that has been silent, and give up on one that leaves `ping_max`
    /// PINGs unanswered (§1.13).
    fn keepalive(&mut self) -> Result<(), End> {
        if !self.handshake_done {
            return Ok(());
        }
        if std::mem::take(&mut self.active) {
            return Ok(());
        }
        if self.pings_out + 1 > self.shared.limits.ping_max {
            return Err(err("Stale Connection"));
        }
        self.pings_out += 1;
        self.out.push_bytes(b"PING\r\n");
        Ok(())
    }

    fn ok(&self) {
        if self.opts.verbose {
            self.out.push_bytes(b"+OK\r\n");
        }
    }

    fn handle(&mut self, op: ClientOp) -> Result<(), End> {
        tracing::trace!(client = self.id, ?op, "nats op");
        if !self.connected && self.shared.auth.is_enabled() && !matches!(op, ClientOp::Connect(_)) {
            return Err(err("Authorization Violation"));
        }
        match op {
            ClientOp::Connect(json) => self.connect(&json),
            ClientOp::Pub { subject, reply, header_len, body, hpub } => {
                self.publish(&subject, reply.as_deref(), header_len, &body, hpub)
            }
            ClientOp::Sub { subject, queue, sid } => {
                self.subscribe(subject, queue, sid);
                Ok(())
            }
            ClientOp::Unsub { sid, max } => {
                self.unsubscribe(&sid, max);
                self.ok();
                Ok(())
            }
            ClientOp::Ping => {
                self.out.push_bytes(b"PONG\r\n");
                if self.connected {
                    self.handshake_done = true;
                }
                Ok(())
            }
            ClientOp::Pong => {
                self.pings_out = 0;
                Ok(())
            }
            ClientOp::Ignored => Ok(()),
        }
    }

    /// §1.4, in the reference's order: JSON, credentials, protocol, no_responders without headers.
    fn connect(&mut self, json: &[u8]) -> Result<(), End> {
        let c: Connect = serde_json::from_slice(json).map_err(|_| End::Silent)?;
        let principal = self
            .shared
            .auth
            .authenticate_nats(c.auth_token.as_deref(), c.user.as_deref(), c.pass.as_deref())
            .ok_or_else(|| err("Authorization Violation"))?;
        if !matches!(c.protocol, None | Some(0) | Some(1)) {
            return Err(err("invalid client protocol"));
        }
        let opts = c.options();
        if opts.no_responders && !opts.headers {
            return Err(err("no responders requires headers support"));
        }
        self.opts = opts;
        self.out.set_headers(opts.headers);
        self.principal = self.shared.auth.is_enabled().then_some(principal);
        self.connected = true;
        self.entry.set_name(c.name.as_deref().unwrap_or(""));
        tracing::debug!(
            client = self.id,
            name = c.name.as_deref().unwrap_or(""),
            lang = c.lang.as_deref().unwrap_or(""),
            "nats client connected"
        );
        self.ok();
        Ok(())
    }

    fn publish(
        &mut self,
        subject: &Bytes,
        reply: Option<&[u8]>,
        header_len: usize,
        body: &Bytes,
        hpub: bool,
    ) -> Result<(), End> {
        self.entry.count_in();
        if hpub && !self.opts.headers {
            return Err(End::Silent);
        }
        if self.opts.pedantic && !herald_subject::is_valid_publish_subject(subject) {
            // The reference reports it and still routes the message.
            self.out.push_err("Invalid Publish Subject");
        }
        if let Some(p) = &self.principal
            && !p.may_publish(subject)
        {
            self.out
                .push_err(&format!("Permissions Violation for Publish to \"{}\"", String::from_utf8_lossy(subject)));
            return Ok(());
        }
        self.ok();
        let msg = Published { subject, reply, header_len, body };
        let routed = self.shared.router.publish(self.id, self.opts.echo, &msg);
        self.congested |= routed.congested;
        if routed.delivered == 0
            && let Some(reply) = reply
            && self.opts.headers
            && self.opts.no_responders
        {
            self.no_responders(subject, reply);
        }
        Ok(())
    }

    /// A request that reached nobody: a 503 status message to the requester's own subscription on the reply
    /// subject, in the 2.12 form with `Nats-Subject` (§1.10). Nothing if the requester does not listen there.
    fn no_responders(&self, subject: &[u8], reply: &[u8]) {
        let found = self
            .entry
            .subs
            .lock()
            .values()
            .find(|s| s.queue.is_none() && !s.is_removed() && herald_subject::matches(&s.subject, reply))
            .cloned();
        let Some(sub) = found else {
            return;
        };
        let mut block = BytesMut::with_capacity(40 + subject.len());
        block.extend_from_slice(b"NATS/1.0 503\r\nNats-Subject: ");
        block.extend_from_slice(subject);
        block.extend_from_slice(b"\r\n\r\n");
        let body = block.freeze();
        let status = Published { subject: reply, reply: None, header_len: body.len(), body: &body };
        self.shared.router.deliver_to(&sub, &status);
    }

    fn subscribe(&mut self, subject: Bytes, queue: Option<Bytes>, sid: Bytes) {
        if !herald_subject::is_valid_subscribe_subject(&subject) {
            self.out.push_err("Invalid Subject");
            return;
        }
        if let Some(p) = &self.principal
            && !p.may_subscribe(&subject)
        {
            let subject = String::from_utf8_lossy(&subject);
            self.out.push_err(&match &queue {
                None => format!("Permissions Violation for Subscription to \"{subject}\""),
                Some(q) => format!(
                    "Permissions Violation for Subscription to \"{subject}\" using queue \"{}\"",
                    String::from_utf8_lossy(q)
                ),
            });
            return;
        }
        {
            // Only this connection's reader changes the map; the lock is there for the admin API's snapshots.
            let mut subs = self.entry.subs.lock();
            if subs.get(&sid).is_some_and(|s| !s.is_removed()) {
                drop(subs);
                // The reference keeps the original subscription and ignores the new SUB.
                self.ok();
                return;
            }
            // Subscriptions removed by a delivery limit (old-style request inboxes) leave entries behind; sweep
            // them whenever the map doubles, so a long-lived connection making many requests stays small.
            if subs.len() >= 64 && subs.len().is_power_of_two() {
                subs.retain(|_, s| !s.is_removed());
            }
            let max = self.shared.limits.max_subscriptions;
            if max > 0 && subs.len() >= max {
                subs.retain(|_, s| !s.is_removed());
                if subs.len() >= max {
                    drop(subs);
                    self.out.push_err("maximum subscriptions exceeded");
                    return;
                }
            }
        }
        let sink: Arc<dyn Subscriber> = Arc::clone(&self.out) as Arc<dyn Subscriber>;
        let sub = self.shared.router.subscribe(sink, subject, queue, sid.clone());
        self.entry.subs.lock().insert(sid, sub);
        self.ok();
    }

    /// §1.5 UNSUB: unknown sids are ignored; a limit counts deliveries already made.
    fn unsubscribe(&mut self, sid: &Bytes, max: Option<u64>) {
        let Some(sub) = self.entry.subs.lock().get(sid).cloned() else { return };
        let keep = match max {
            Some(max) => self.shared.router.limit(&sub, max),
            None => {
                self.shared.router.unsubscribe(&sub);
                false
            }
        };
        if !keep {
            self.entry.subs.lock().remove(sid);
        }
    }
}
