//! The gRPC listener: HTTP/2 served straight on `h2::server`, in front of [`super::service`].
//!
//! tonic's transport put hyper, hyper_util and a stack of tower layers (error recovery, `grpc-timeout`, connection
//! info, boxed services, a trace span) between the socket and the service; on this project's 2-core machine that
//! cost more server CPU per KV Set than the engine's own work (docs/benchmarks.md). This listener does only what
//! gRPC needs from the transport: each HTTP/2 stream becomes an `http::Request<tonic::body::Body>` for the service
//! (the fast path, then tonic's router), the request's `grpc-timeout` bounds the service's answer as tonic's
//! `GrpcTimeout` layer did, and the answer is written back frame by frame under HTTP/2 flow control.
//!
//! A client that resets a stream drops its handler: the service future while it runs (a long poll), or the
//! response body while it streams (a `Subscribe`), which is how a cancelled server-streaming call stops here.

use bytes::Bytes;
use futures::future::poll_fn;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue};
use http_body::{Body as _, Frame};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::body::Body;
use tower_service::Service;

/// HTTP/2 settings. The windows are larger than HTTP/2's 64 KiB default because batches of events often are: a
/// whole request then arrives without WINDOW_UPDATE round trips. The largest DATA frame a client may send is 1 MiB
/// instead of 16 KiB, so a 256-record `WriteEvents` (260 KiB) arrives as one frame: one read, one flow-control
/// release and one buffer instead of seventeen (stream appends +15–20 %, docs/benchmarks.md). It adds nothing to
/// what a client can make the server hold, which the windows bound (2 MiB per stream, 16 MiB per connection). The
/// header list size, send buffer and stream limits are the ones tonic's transport (hyper's defaults, with no
/// concurrency limit) used.
fn builder() -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.initial_window_size(2 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(400 << 10)
        .max_local_error_reset_streams(None);
    b
}

/// How long to wait before accepting again after the listener failed (e.g. out of file descriptors), so a
/// persistent failure does not spin a core.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves gRPC on `listener` until `shutdown` is cancelled, then closes every connection gracefully (GOAWAY) and
/// returns when their streams have finished.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    in_task: InConnectionTask,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Finished connection tasks are reaped as they end, so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(tcp, service.clone(), in_task, shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "gRPC listener: accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Decides, from a request's path, whether its stream runs inside the connection's own task (see [`connection`]).
pub type InConnectionTask = fn(&str) -> bool;

/// One client connection: the handshake, then its streams. This task keeps polling the connection (it drives all of
/// its I/O) until the client closes it, or, after shutdown, until its last stream has finished.
///
/// Streams whose path `in_task` accepts (short unary calls whose handlers never block the thread) run inside this
/// task; the others get a task of their own, so their work can run on another core. A call served here costs no
/// task spawn and no wake-up between tasks: the connection reads every frame available before handing out new
/// streams, so the request is usually complete when its stream is accepted and the handler finishes in its first
/// poll; the answers finished in one round go out in the connection's next write. It also keeps the KV writers of
/// one connection from queueing on the store's write lock against each other from two cores (KV Set +15 % with 5
/// connections × 10 calls, +3 % with 50 × 1; Get +2 % and −5 %: docs/benchmarks.md). A handler that waits (a long-poll
/// `Reserve`, an `fsync = always` commit) only parks its own future: the connection and its other streams go on.
async fn connection<S>(tcp: TcpStream, service: S, in_task: InConnectionTask, shutdown: CancellationToken)
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    // Small request/response exchanges must not wait for Nagle's algorithm (≈40 ms with delayed ACKs).
    let _ = tcp.set_nodelay(true);
    // One wait on the token for the connection's whole life: a fresh `cancelled()` per accepted stream would
    // register and unregister a waiter on the token, which every connection shares, twice per call.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let mut conn: Connection<TcpStream, Bytes> = tokio::select! {
        handshake = builder().handshake(tcp) => match handshake {
            Ok(conn) => conn,
            // Not an HTTP/2 client (or it went away): nothing to answer on a connection that speaks no HTTP/2.
            Err(e) => {
                tracing::debug!(error = %e, "gRPC listener: HTTP/2 handshake failed");
                return;
            }
        },
        _ = &mut cancelled => return,
    };
    let mut here = FuturesUnordered::new();
    let mut closing = false;
    loop {
        let event = poll_fn(|cx| {
            if !closing && cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Shutdown);
            }
            // The streams served here first: the answers they finish are queued in h2, and the connection's poll
            // below writes them out together.
            while let Poll::Ready(Some(_)) = here.poll_next_unpin(cx) {}
            conn.poll_accept(cx).map(|next| match next {
                Some(Ok((request, respond))) => Event::Stream(request, respond),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "gRPC listener: connection ended with an error");
                    Event::Closed
                }
                None => Event::Closed,
            })
        })
        .await;
        match event {
            Event::Stream(request, respond) => {
                if in_task(request.uri().path()) {
                    // A handler that panics ends its own stream (reset by h2 when dropped), as it would in a task
                    // of its own, not the connection and its other streams.
                    here.push(AssertUnwindSafe(stream(request, respond, service.clone())).catch_unwind().map(drop));
                } else {
                    tokio::spawn(stream(request, respond, service.clone()));
                }
            }
            // The client is gone (or the connection broke, or it closed after a GOAWAY once its streams ended):
            // the streams served here, if any are left, have nobody to answer.
            Event::Closed => return,
            Event::Shutdown => {
                // GOAWAY: the client opens no new streams here; the open ones run to their end (long-lived
                // handlers end on the same token) while the connection goes on being driven.
                closing = true;
                conn.graceful_shutdown();
            }
        }
    }
}

/// What woke a connection's task.
// An event lives on the stack for one turn of the loop; boxing the request would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Event {
    Stream(http::Request<RecvStream>, SendResponse<Bytes>),
    Closed,
    Shutdown,
}

/// One stream: the request to the service, and its answer back to the client.
async fn stream<S>(request: http::Request<RecvStream>, mut respond: SendResponse<Bytes>, mut service: S)
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    let (parts, recv) = request.into_parts();
    let deadline = grpc_timeout(&parts.headers);
    let request = http::Request::from_parts(parts, Body::new(RequestBody { recv, data_done: false }));
    let Ok(()) = poll_fn(|cx| service.poll_ready(cx)).await;
    let answer = service.call(request);
    let answer = async move {
        match deadline {
            // What tonic's `GrpcTimeout` layer answered, through `RecoverError` and `Status::from_error`.
            Some(d) => tokio::time::timeout(d, answer)
                .await
                .unwrap_or_else(|_| Ok(Status::cancelled("Timeout expired").into_http())),
            None => answer.await,
        }
    };
    let Some(Ok(response)) = until_reset(|cx| respond.poll_reset(cx), answer).await else {
        // The client reset the stream: the handler has been dropped, nobody is waiting for its answer.
        return;
    };
    write_response(respond, response).await;
}

/// Runs `work` unless the client resets the stream first (`poll_reset`, the stream's reset state from either half),
/// in which case `work` is dropped and `None` returned. `work` is polled first and the reset state only while it is
/// pending: each look at that state takes the connection's lock, which the connection task holds whenever it reads
/// or writes, and a unary handler or answer is usually ready at once.
async fn until_reset<F: Future, E>(
    mut poll_reset: impl FnMut(&mut Context<'_>) -> Poll<Result<Reason, E>>,
    work: F,
) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    poll_fn(|cx| match work.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending if poll_reset(cx).is_ready() => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// Writes the head, then every frame of the body; stops (dropping the body) as soon as the client resets the
/// stream or the stream fails.
async fn write_response(mut respond: SendResponse<Bytes>, response: http::Response<Body>) {
    let (parts, mut body) = response.into_parts();
    let ended = body.is_end_stream();
    let Ok(mut send) = respond.send_response(http::Response::from_parts(parts, ()), ended) else { return };
    if ended {
        return;
    }
    let mut at_once = SEND_AT_ONCE;
    loop {
        let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let Some(frame) = until_reset(|cx| send.poll_reset(cx), next).await else { return };
        match frame {
            None => {
                // A body that ends without trailers ends the stream with an empty data frame.
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(status)) => {
                // As hyper does when a response body fails: the client sees the stream reset, not a clean end.
                tracing::debug!(error = %status, "gRPC listener: response body failed");
                send.send_reset(Reason::INTERNAL_ERROR);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    if send_data(&mut send, data, end, &mut at_once).await.is_err() || end {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = send.send_trailers(trailers);
                    }
                    return;
                }
            },
        }
    }
}

/// The stream was reset or failed: stop writing.
struct Gone;

/// The first bytes of a response that are handed to h2 at once: h2 holds them until the peer's window lets them out
/// (asking for the capacity itself), so a unary answer costs no reserve-and-wait round through the connection's
/// lock. Past this budget every piece waits for granted capacity, so a long stream never outruns a slow reader and
/// what h2 holds per stream stays small.
const SEND_AT_ONCE: usize = 16 << 10;

/// Sends `data` as the peer's flow-control window allows: within the stream's `at_once` budget it is queued at
/// once; otherwise capacity is reserved, and the data is split into pieces no larger than what has been granted.
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes, end: bool, at_once: &mut usize) -> Result<(), Gone> {
    if data.is_empty() {
        return if end { send.send_data(data, true).map_err(|_| Gone) } else { Ok(()) };
    }
    if data.len() <= *at_once {
        *at_once -= data.len();
        return send.send_data(data, end).map_err(|_| Gone);
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = poll_fn(|cx| {
            if send.poll_reset(cx).is_ready() {
                return Poll::Ready(None);
            }
            send.poll_capacity(cx)
        })
        .await;
        match granted {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => {
                let piece = data.split_to(n.min(data.len()));
                send.send_data(piece, end && data.is_empty()).map_err(|_| Gone)?;
            }
            None | Some(Err(_)) => return Err(Gone),
        }
    }
    Ok(())
}

/// A request body over the stream's receive half: its data frames, then its trailers. Capacity is released as data
/// is handed on, so the client's window refills at the pace the service reads.
struct RequestBody {
    recv: RecvStream,
    data_done: bool,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Fails only once the stream is gone, which the next poll reports.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        Poll::Ready(ready!(self.recv.poll_trailers(cx)).transpose().map(|t| t.map(Frame::trailers)))
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// The request's `grpc-timeout`, parsed as the gRPC spec (and tonic) does: at most 8 digits and a unit
/// (`H`, `M`, `S`, `m`, `u`, `n`). A malformed value is ignored, as tonic ignored it (tonic also let a leading `+`
/// through Rust's integer parser; the spec's grammar has digits only).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");
    let value = headers.get(GRPC_TIMEOUT).map(HeaderValue::as_bytes)?;
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_str(v).unwrap());
        grpc_timeout(&h)
    }

    #[test]
    fn grpc_timeout_units_and_limits() {
        assert_eq!(parse("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parse("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse("7S"), Some(Duration::from_secs(7)));
        assert_eq!(parse("500m"), Some(Duration::from_millis(500)));
        assert_eq!(parse("12u"), Some(Duration::from_micros(12)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(parse("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        // Nine digits, no digits, a sign, an unknown unit: not the spec's grammar, so no deadline.
        assert_eq!(parse("123456789m"), None);
        assert_eq!(parse("m"), None);
        assert_eq!(parse("+5m"), None);
        assert_eq!(parse("5x"), None);
        assert_eq!(parse(""), None);
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }
}
