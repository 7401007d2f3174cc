//! A connection's outbound side: a bounded buffer that the router and the connection's own reader append frames
//! to, and a writer task that drains it to the socket in large batches.
//!
//! Appending never blocks and never waits for the socket, so a publisher is never stalled by a slow subscriber
//! (§1.12). When a frame would push the connection's unwritten bytes (buffered plus the batch being written) above
//! `max_pending`, the frame is dropped, everything buffered is discarded and the connection is closed without an
//! `-ERR`, as the reference does with a slow consumer. A write that does not finish within `write_deadline` is
//! treated the same way.
//!
//! Frames leave in the order they were appended (one buffer, written by one party at a time), which gives each
//! connection the FIFO outbound stream §1.11 requires.
//!
//! Who writes: a reader that routes a client's operations opens a [`FlushScope`] for the batch it is handling;
//! frames appended to an idle connection during the scope are written straight to that connection's socket when
//! the scope ends, by the reader itself, without waking another task (as nats-server flushes from its read loop).
//! That saves a task wake-up per hop, which is most of a request/reply round trip. Whatever cannot be written at
//! once (the socket is full), and frames appended outside a scope, go to the connection's writer task.

use super::codec;
use bytes::{Buf, Bytes, BytesMut};
use herald_engine::pubsub::{Delivery, Published, Subscriber};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why a connection's output ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Closed on purpose (after an `-ERR`, at EOF, at shutdown): what was buffered is still written.
    Graceful,
    /// Cut off: too much unwritten output, or a write past its deadline. Buffered output is discarded.
    SlowConsumer,
}

struct State {
    buf: BytesMut,
    /// Bytes of the batch the writer task is writing now; they count as pending until written.
    writing: usize,
    /// The writer task owns the socket's write side right now (nobody else may write).
    writer_busy: bool,
    /// Registered in the current thread's flush scope.
    queued: bool,
    closed: Option<Closed>,
}

pub struct Outbound {
    id: u64,
    /// Whether the client negotiated headers (CONNECT `headers: true`): HMSG, or MSG with headers stripped.
    headers: AtomicBool,
    max_pending: usize,
    /// Messages (MSG / HMSG frames) taken for this client, for the dashboard.
    out_msgs: AtomicU64,
    state: Mutex<State>,
    wake: Notify,
    sock: Arc<TcpStream>,
    me: Weak<Outbound>,
    /// Cancelled when the connection is over; the reader stops reading.
    pub done: CancellationToken,
}

thread_local! {
    /// Connections that got frames during the current thread's flush scope, or `None` outside a scope.
    static SCOPE: RefCell<Option<Vec<Arc<Outbound>>>> = const { RefCell::new(None) };
}

/// While alive, frames appended on this thread to idle connections are collected; [`FlushScope::flush`] (or drop)
/// writes them out. Hold it only across synchronous work: flush before any `.await`.
pub struct FlushScope(());

impl FlushScope {
    pub fn enter() -> FlushScope {
        SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            if s.is_none() {
                *s = Some(Vec::new());
            }
        });
        FlushScope(())
    }

    /// Writes what the scope collected. The scope stays open.
    pub fn flush(&self) {
        let pending = SCOPE.with(|s| s.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default());
        for out in pending {
            out.flush_direct();
        }
    }
}

impl Drop for FlushScope {
    fn drop(&mut self) {
        self.flush();
        SCOPE.with(|s| *s.borrow_mut() = None);
    }
}

impl Outbound {
    pub fn new(id: u64, max_pending: usize, sock: Arc<TcpStream>) -> Arc<Self> {
        Arc::new_cyclic(|me| Outbound {
            id,
            headers: AtomicBool::new(false),
            max_pending,
            out_msgs: AtomicU64::new(0),
            state: Mutex::new(State {
                buf: BytesMut::new(),
                writing: 0,
                writer_busy: false,
                queued: false,
                closed: None,
            }),
            wake: Notify::new(),
            sock,
            me: me.clone(),
            done: CancellationToken::new(),
        })
    }

    /// Messages taken for this client so far.
    pub fn out_msgs(&self) -> u64 {
        self.out_msgs.load(Ordering::Relaxed)
    }

    pub fn set_headers(&self, on: bool) {
        self.headers.store(on, Ordering::Relaxed);
    }

    /// Appends one frame written by `f`. False if the connection is closed or was just cut off by this frame.
    pub fn push(&self, f: impl FnOnce(&mut BytesMut)) -> bool {
        self.push_measured(f).is_some()
    }

    /// Like [`Outbound::push`], returning the bytes now pending, or `None` if the frame was not taken.
    fn push_measured(&self, f: impl FnOnce(&mut BytesMut)) -> Option<usize> {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return None;
        }
        let before = st.buf.len();
        f(&mut st.buf);
        let pending = st.buf.len() + st.writing;
        if pending > self.max_pending {
            st.buf.truncate(before);
            drop(st);
            self.close(Closed::SlowConsumer);
            return None;
        }
        // A busy writer picks the new frame up after its current write; otherwise someone must be told.
        if !st.writer_busy && !st.queued {
            let scoped = SCOPE.with(|s| match s.borrow_mut().as_mut() {
                Some(list) => {
                    if let Some(me) = self.me.upgrade() {
                        list.push(me);
                    }
                    true
                }
                None => false,
            });
            if scoped {
                st.queued = true;
            } else {
                drop(st);
                self.wake.notify_one();
            }
        }
        Some(pending)
    }

    /// Writes the buffer to the socket now, from the calling thread, if the writer task is idle; whatever the
    /// socket does not take goes to the writer task.
    fn flush_direct(&self) {
        let mut st = self.state.lock();
        st.queued = false;
        if st.writer_busy || st.buf.is_empty() || st.closed == Some(Closed::SlowConsumer) {
            return;
        }
        while !st.buf.is_empty() {
            match self.sock.try_write(&st.buf) {
                Ok(n) => st.buf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let rest = !st.buf.is_empty();
        drop(st);
        if rest {
            self.wake.notify_one();
        }
    }

    /// Appends raw bytes (PONG, +OK, INFO).
    pub fn push_bytes(&self, b: &[u8]) -> bool {
        self.push(|out| out.extend_from_slice(b))
    }

    /// Appends `-ERR '<text>'`.
    pub fn push_err(&self, text: &str) -> bool {
        self.push(|out| codec::put_err(out, text))
    }

    /// Ends the connection. Graceful: the writer writes what is buffered first. The first reason wins.
    pub fn close(&self, how: Closed) {
        let mut st = self.state.lock();
        if st.closed.is_none() {
            st.closed = Some(how);
            if how == Closed::SlowConsumer {
                st.buf = BytesMut::new();
            }
        }
        drop(st);
        self.wake.notify_one();
        if how == Closed::SlowConsumer {
            self.done.cancel();
        }
    }

    pub fn closed(&self) -> Option<Closed> {
        self.state.lock().closed
    }

    /// Writes all of `batch`, waiting for the socket as needed.
    async fn write_all(&self, batch: &[u8]) -> io::Result<()> {
        let mut at = 0;
        while at < batch.len() {
            self.sock.writable().await?;
            match self.sock.try_write(&batch[at..]) {
                Ok(n) => at += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Drains what readers could not write directly, until the connection is closed; then shuts the socket's write
    /// side down.
    pub async fn write_loop(self: Arc<Self>, deadline: Duration) {
        // The buffer and this batch swap roles on every write, so both grow to the connection's burst size; they
        // start empty because most connections are idle.
        let mut batch = BytesMut::new();
        'outer: loop {
            loop {
                {
                    let mut st = self.state.lock();
                    if st.closed == Some(Closed::SlowConsumer) {
                        break 'outer;
                    }
                    if st.buf.is_empty() {
                        st.writer_busy = false;
                        if st.closed.is_some() {
                            break 'outer;
                        }
                        break;
                    }
                    std::mem::swap(&mut st.buf, &mut batch);
                    st.writing = batch.len();
                    st.writer_busy = true;
                }
                // A slow consumer is cut off at once, even in the middle of a write that is not progressing.
                let wrote = tokio::select! {
                    r = tokio::time::timeout(deadline, self.write_all(&batch)) => r,
                    _ = self.done.cancelled() => break 'outer,
                };
                batch.clear();
                // Keep a buffer for the next batch, but give back memory a burst made it grow to.
                if batch.capacity() > 256 * 1024 {
                    batch = BytesMut::new();
                }
                self.state.lock().writing = 0;
                match wrote {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        self.close(Closed::Graceful);
                        break 'outer;
                    }
                    Err(_) => {
                        tracing::debug!(client = self.id, "write deadline exceeded: closing as a slow consumer");
                        self.close(Closed::SlowConsumer);
                        break 'outer;
                    }
                }
            }
            self.wake.notified().await;
        }
        self.state.lock().writer_busy = true;
        // FIN after the last byte, even while other handles to the socket still exist.
        let _ = rustix::net::shutdown(&*self.sock, rustix::net::Shutdown::Write);
        self.done.cancel();
    }
}

impl Subscriber for Outbound {
    fn origin(&self) -> u64 {
        self.id
    }

    fn deliver(&self, sid: &Bytes, msg: &Published<'_>) -> Delivery {
        let with_headers = self.headers.load(Ordering::Relaxed);
        let pending = match self.push_measured(|out| {
            codec::put_msg(out, msg.subject, sid, msg.reply, msg.header_len, msg.body, with_headers)
        }) {
            None => return Delivery::Refused,
            Some(pending) => pending,
        };
        self.out_msgs.fetch_add(1, Ordering::Relaxed);
        match pending {
            // Above three quarters of the limit, ask publishers to ease off (the reference's threshold).
            pending if pending > self.max_pending / 4 * 3 => Delivery::Congested,
            _ => Delivery::Taken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connected loopback pair: the server side wrapped in an Outbound with its writer running, and the client.
    async fn pair(max_pending: usize, deadline: Duration) -> (Arc<Outbound>, tokio::task::JoinHandle<()>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let out = Outbound::new(1, max_pending, Arc::new(server));
        let writer = tokio::spawn(Arc::clone(&out).write_loop(deadline));
        (out, writer, client)
    }

    #[tokio::test]
    async fn frames_are_written_in_order_and_a_graceful_close_flushes_them() {
        let (out, writer, mut client) = pair(1 << 20, Duration::from_secs(5)).await;
        assert!(out.push_bytes(b"PONG\r\n"));
        {
            let scope = FlushScope::enter();
            assert!(out.push_bytes(b"+OK\r\n"));
            scope.flush();
            assert!(out.push_err("Unknown Protocol Operation"));
        }
        out.close(Closed::Graceful);
        assert!(!out.push_bytes(b"late"));
        writer.await.unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"PONG\r\n+OK\r\n-ERR 'Unknown Protocol Operation'\r\n");
        assert!(out.done.is_cancelled());
    }

    #[tokio::test]
    async fn a_subscriber_that_does_not_read_is_cut_off_without_an_err() {
        let (out, writer, _client) = pair(64 * 1024, Duration::from_secs(30)).await;
        // The client never reads: once the socket buffers are full, output piles up until the limit.
        let body = Bytes::from(vec![b'x'; 1000]);
        let msg = Published { subject: b"big", reply: None, header_len: 0, body: &body };
        let mut taken = 0;
        while out.deliver(&Bytes::from_static(b"1"), &msg) != Delivery::Refused {
            taken += 1;
            tokio::task::yield_now().await;
            assert!(taken < 100_000, "the buffer is bounded");
        }
        assert_eq!(out.closed(), Some(Closed::SlowConsumer));
        writer.await.unwrap();
        assert!(out.done.is_cancelled());
        assert_eq!(out.state.lock().buf.len(), 0, "buffered output is discarded");
    }

    #[tokio::test]
    async fn a_write_past_the_deadline_is_a_slow_consumer() {
        let (out, writer, _client) = pair(64 << 20, Duration::from_millis(50)).await;
        // More than the socket buffers hold, appended outside a scope so the writer task writes it.
        assert!(out.push_bytes(&vec![b'x'; 32 << 20]));
        writer.await.unwrap();
        assert_eq!(out.closed(), Some(Closed::SlowConsumer));
    }

    #[tokio::test]
    async fn headers_are_stripped_for_clients_that_did_not_negotiate_them() {
        let (out, _writer, mut client) = pair(1 << 20, Duration::from_secs(5)).await;
        let body = Bytes::from_static(b"NATS/1.0\r\n\r\nhi");
        let msg = Published { subject: b"hh", reply: None, header_len: 12, body: &body };
        out.deliver(&Bytes::from_static(b"1"), &msg);
        out.set_headers(true);
        out.deliver(&Bytes::from_static(b"2"), &msg);
        assert_eq!(out.out_msgs(), 2, "both messages are counted");
        let want = b"MSG hh 1 2\r\nhi\r\nHMSG hh 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got[..], &want[..]);
    }
}
