//! A connection's outbound side: a bounded buffer that the router and the connection's own reader append frames
//! to, and a writer task that drains it to the socket in large batches.
//!
//! Appending never blocks and never waits for the socket, so a publisher is never stalled by a slow subscriber
//! (§1.12). When a frame would push the connection's unwritten bytes (buffered plus the batch being written) above
//! `max_pending`, the frame is dropped, everything buffered is discarded and the connection is closed without an
//! `-ERR`, as the reference does with a slow consumer. A write that does not finish within `write_deadline` is
//! treated the same way.
//!
//! Frames leave in the order they were appended (one buffer, one writer), which gives each connection the FIFO
//! outbound stream §1.11 requires.

use super::codec;
use bytes::{Bytes, BytesMut};
use herald_engine::pubsub::{Delivery, Published, Subscriber};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
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
    /// Bytes of the batch the writer is writing now; they count as pending until written.
    writing: usize,
    closed: Option<Closed>,
}

pub struct Outbound {
    id: u64,
    /// Whether the client negotiated headers (CONNECT `headers: true`): HMSG, or MSG with headers stripped.
    headers: AtomicBool,
    max_pending: usize,
    state: Mutex<State>,
    wake: Notify,
    /// Cancelled when the connection is over; the reader stops reading.
    pub done: CancellationToken,
}

impl Outbound {
    pub fn new(id: u64, max_pending: usize) -> Arc<Self> {
        Arc::new(Outbound {
            id,
            headers: AtomicBool::new(false),
            max_pending,
            state: Mutex::new(State { buf: BytesMut::new(), writing: 0, closed: None }),
            wake: Notify::new(),
            done: CancellationToken::new(),
        })
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
        drop(st);
        if before == 0 {
            // The writer drains the whole buffer each time; it only needs waking when the buffer was empty.
            self.wake.notify_one();
        }
        Some(pending)
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

    /// Bytes appended and not yet written.
    pub fn pending(&self) -> usize {
        let st = self.state.lock();
        st.buf.len() + st.writing
    }

    /// Drains the buffer to `w` until the connection is closed, then shuts the socket's write side down.
    pub async fn write_loop<W: AsyncWrite + Unpin>(self: Arc<Self>, mut w: W, deadline: Duration) {
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
                        if st.closed.is_some() {
                            break 'outer;
                        }
                        break;
                    }
                    std::mem::swap(&mut st.buf, &mut batch);
                    st.writing = batch.len();
                }
                // A slow consumer is cut off at once, even in the middle of a write that is not progressing.
                let wrote = tokio::select! {
                    r = tokio::time::timeout(deadline, w.write_all(&batch)) => r,
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
        let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
        self.done.cancel();
    }
}

impl Subscriber for Outbound {
    fn origin(&self) -> u64 {
        self.id
    }

    fn deliver(&self, sid: &Bytes, msg: &Published<'_>) -> Delivery {
        let with_headers = self.headers.load(Ordering::Relaxed);
        match self.push_measured(|out| {
            codec::put_msg(out, msg.subject, sid, msg.reply, msg.header_len, msg.body, with_headers)
        }) {
            None => Delivery::Refused,
            // Above three quarters of the limit, ask publishers to ease off (the reference's threshold).
            Some(pending) if pending > self.max_pending / 4 * 3 => Delivery::Congested,
            Some(_) => Delivery::Taken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_written_in_order_and_a_graceful_close_flushes_them() {
        let out = Outbound::new(1, 1 << 20);
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(Arc::clone(&out).write_loop(client, Duration::from_secs(5)));
        assert!(out.push_bytes(b"PONG\r\n"));
        assert!(out.push_err("Unknown Protocol Operation"));
        out.close(Closed::Graceful);
        assert!(!out.push_bytes(b"late"));
        writer.await.unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got).await.unwrap();
        assert_eq!(got, b"PONG\r\n-ERR 'Unknown Protocol Operation'\r\n");
        assert!(out.done.is_cancelled());
    }

    #[tokio::test]
    async fn a_subscriber_that_does_not_read_is_cut_off_without_an_err() {
        let out = Outbound::new(1, 1000);
        // A peer that never reads: the duplex pipe holds 64 bytes, so the writer blocks and output piles up.
        let (client, _server) = tokio::io::duplex(64);
        let writer = tokio::spawn(Arc::clone(&out).write_loop(client, Duration::from_secs(30)));
        let body = Bytes::from(vec![b'x'; 100]);
        let msg = Published { subject: b"big", reply: None, header_len: 0, body: &body };
        let mut taken = 0;
        while out.deliver(&Bytes::from_static(b"1"), &msg) != Delivery::Refused {
            taken += 1;
            tokio::task::yield_now().await;
            assert!(taken < 100, "the buffer is bounded");
        }
        assert_eq!(out.closed(), Some(Closed::SlowConsumer));
        writer.await.unwrap();
        assert!(out.done.is_cancelled());
        assert_eq!(out.state.lock().buf.len(), 0, "buffered output is discarded");
    }

    #[tokio::test]
    async fn a_write_past_the_deadline_is_a_slow_consumer() {
        let out = Outbound::new(1, 1 << 20);
        let (client, _server) = tokio::io::duplex(8);
        let writer = tokio::spawn(Arc::clone(&out).write_loop(client, Duration::from_millis(50)));
        assert!(out.push_bytes(&[b'x'; 100]));
        writer.await.unwrap();
        assert_eq!(out.closed(), Some(Closed::SlowConsumer));
    }

    #[test]
    fn headers_are_stripped_for_clients_that_did_not_negotiate_them() {
        let out = Outbound::new(1, 1 << 20);
        let body = Bytes::from_static(b"NATS/1.0\r\n\r\nhi");
        let msg = Published { subject: b"hh", reply: None, header_len: 12, body: &body };
        out.deliver(&Bytes::from_static(b"1"), &msg);
        out.set_headers(true);
        out.deliver(&Bytes::from_static(b"2"), &msg);
        assert_eq!(&out.state.lock().buf[..], &b"MSG hh 1 2\r\nhi\r\nHMSG hh 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"[..]);
    }
}
