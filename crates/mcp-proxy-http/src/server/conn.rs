//! One client connection.
//!
//! 1. **First byte**: nothing served until the client sends something, within
//!    `first_byte_timeout` (before that hyper would wait forever to learn the HTTP version).
//!    The bytes that came are peeked, not read: when they tell the HTTP version, hyper is
//!    started for that version and reads the whole request head at once (see `Builders`).
//! 2. **hyper** serves HTTP/1 or HTTP/2 with a watchdog beside it. The watchdog knows
//!    whether a request is in flight (from the service, until its response body is done)
//!    and whether bytes arrived since the last one ended (from reads). No request in
//!    flight and nothing arrived: `idle_timeout` (keep-alive), then a graceful close. Bytes
//!    arrived but no request yet (headers trickling): `header_read_timeout` from the first
//!    of them, then the connection is dropped. HTTP/2 pings arrive while idle, so on an
//!    HTTP/2 connection (known from its first request) only the idle deadline applies.
//! 3. **Lingering close**: an HTTP/1 answer ≥ 400 to a request with a body may leave part
//!    of that body unread, and closing a socket with unread data resets the connection,
//!    which can destroy the answer before the client reads it. Such a connection, when it
//!    ends, is shut down for writing and read to the end (at most `linger_max_bytes`,
//!    within `linger_timeout`) before it is closed; it keeps its slot meanwhile.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{Request, StatusCode, Version};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mcp_proxy_core::metrics::ConnectionClose;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use super::admission::Slot;
use crate::body::Body;
use crate::config::ListenerLimits;

/// Serves one admitted connection until it ends.
pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;
    let metrics = shared.app.metrics().clone();
    let mut probe = [0u8; H2_PREFACE.len()];
    let first = tokio::select! {
        () = shared.stop.cancelled() => return,
        first = tokio::time::timeout(limits.first_byte_timeout, stream.peek(&mut probe)) => first,
    };
    let seen = match first {
        Ok(Ok(n)) if n > 0 => n,
        // Closed (or failed) before sending anything.
        Ok(_) => return,
        Err(_) => {
            metrics
                .connections()
                .closed(ConnectionClose::FirstByteTimeout);
            debug!(%peer, "connection closed: nothing received within first_byte_timeout");
            return;
        }
    };
    let builder = match sniff(&probe[..seen]) {
        Some(Version::HTTP_2) => &shared.builders.http2,
        Some(_) => &shared.builders.http1,
        None => &shared.builders.sniffing,
    };
    let activity = Arc::new(Activity::default());
    let io = TrackedIo {
        stream: Some(stream),
        slot: Some(slot),
        activity: activity.clone(),
        shared: shared.clone(),
    };
    let app = shared.app.clone();
    let on_request = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let activity = on_request.clone();
        async move {
            let in_flight = activity.begin(req.version());
            let version = req.version();
            let has_body = !req.body().is_end_stream();
            // Boxed: hyper keeps room for this future for the life of the connection,
            // and the handler's future is about 9 KiB; boxed, it is held only while the
            // handler runs (an open SSE stream no longer keeps it).
            let mut resp = Box::pin(app.handle(req, peer)).await;
            let status = resp.status();
            if version < Version::HTTP_2 {
                if has_body && (status.is_client_error() || status.is_server_error()) {
                    activity.linger.store(true, Ordering::Release);
                }
                if matches!(
                    status,
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
                ) {
                    // The body was not read whole: this connection cannot carry another
                    // request.
                    resp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
            }
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            deadline = activity.deadline(limits), if !closing => match deadline {
                Deadline::Idle => {
                    metrics.connections().closed(ConnectionClose::IdleTimeout);
                    debug!(%peer, "closing an idle connection (idle_timeout)");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                Deadline::Headers => {
                    metrics.connections().closed(ConnectionClose::HeaderTimeout);
                    debug!(%peer, "connection closed: request headers incomplete after header_read_timeout");
                    activity.linger.store(false, Ordering::Release);
                    break;
                }
            },
            () = shared.stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = shared.force.cancelled() => break,
        }
    }
}

/// What an HTTP/2 connection with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The HTTP version of a connection from its first bytes (peeked, not consumed): HTTP/2
/// when they are its whole preface, HTTP/1 as soon as they differ from it, `None` while
/// they are only a beginning of it.
fn sniff(seen: &[u8]) -> Option<Version> {
    if !H2_PREFACE.starts_with(seen) {
        Some(Version::HTTP_11)
    } else if seen.len() == H2_PREFACE.len() {
        Some(Version::HTTP_2)
    } else {
        None
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// No request for `idle_timeout`.
    Idle,
    /// Request headers incomplete for `header_read_timeout`.
    Headers,
}

/// What the watchdog knows about a connection.
#[derive(Debug, Default)]
struct Activity {
    /// Requests whose response is not done.
    in_flight: AtomicUsize,
    /// Bytes arrived while no request was in flight: the next request's headers started.
    armed: AtomicBool,
    /// The connection speaks HTTP/2.
    http2: AtomicBool,
    /// The connection must linger when it closes (see the module doc).
    linger: AtomicBool,
    /// Woken on every change of the above that matters to the deadlines.
    changed: Notify,
}

impl Activity {
    /// A read returned bytes.
    fn on_read(&self) {
        if !self.armed.load(Ordering::Acquire)
            && self.in_flight.load(Ordering::Acquire) == 0
            && !self.http2.load(Ordering::Acquire)
        {
            self.armed.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// A request arrived; in flight until the returned guard is dropped.
    fn begin(self: &Arc<Self>, version: Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Release);
        } else {
            // A new HTTP/1 request: the previous body was read whole.
            self.linger.store(false, Ordering::Release);
        }
        self.armed.store(false, Ordering::Release);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    /// Completes when a deadline passes (see the module doc).
    async fn deadline(&self, limits: &ListenerLimits) -> Deadline {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let (after, which) = if self.armed.load(Ordering::Acquire) {
                (limits.header_read_timeout, Deadline::Headers)
            } else {
                (limits.idle_timeout, Deadline::Idle)
            };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(after) => return which,
            }
        }
    }
}

/// A request in flight.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
#[derive(Debug)]
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket as hyper sees it: reads are reported to the watchdog, and when hyper lets
/// go of it, a connection that must linger is handed to a lingering task with its slot.
#[derive(Debug)]
struct TrackedIo {
    stream: Option<TcpStream>,
    slot: Option<Slot>,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl TrackedIo {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the stream is there until drop"),
        )
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.stream().poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        poll
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for TrackedIo {
    fn drop(&mut self) {
        let (Some(stream), Some(slot)) = (self.stream.take(), self.slot.take()) else {
            return;
        };
        let limits = &self.shared.limits;
        if !self.activity.linger.load(Ordering::Acquire) || limits.linger_timeout.is_zero() {
            return;
        }
        // Outside a runtime (it is shutting down) the socket just closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let linger = linger(
            stream,
            slot,
            limits.linger_timeout,
            limits.linger_max_bytes,
            self.shared.force.clone(),
        );
        self.shared.tasks.spawn_on(linger, &runtime);
    }
}

/// Shuts the socket down for writing (the answer is followed by FIN), then reads and
/// discards what the client still sends, until it closes, `max_bytes` were read, `within`
/// passed or the server is forced down.
async fn linger(
    mut stream: TcpStream,
    _slot: Slot,
    within: Duration,
    max_bytes: u64,
    force: CancellationToken,
) {
    let _ = stream.shutdown().await;
    let discard = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut seen: u64 = 0;
        while seen < max_bytes {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n as u64,
            }
        }
        seen
    };
    tokio::select! {
        seen = tokio::time::timeout(within, discard) => {
            debug!(discarded = ?seen.ok(), "lingering close done");
        }
        () = force.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ListenerLimits {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ListenerLimits::default()
        }
    }

    async fn expires_within(activity: &Activity, within: Duration) -> Option<Deadline> {
        tokio::time::timeout(within, activity.deadline(&limits()))
            .await
            .ok()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_headers_then_nothing_while_a_request_is_in_flight() {
        let activity = Arc::new(Activity::default());
        assert_eq!(
            expires_within(&activity, Duration::from_secs(61)).await,
            Some(Deadline::Idle)
        );
        activity.on_read();
        assert_eq!(
            expires_within(&activity, Duration::from_secs(11)).await,
            Some(Deadline::Headers),
            "bytes arrived: the header deadline runs"
        );
        let in_flight = activity.begin(Version::HTTP_11);
        assert_eq!(
            expires_within(&activity, Duration::from_secs(3600)).await,
            None,
            "a request in flight (an SSE stream, say) is never cut"
        );
        activity.on_read();
        drop(in_flight);
        assert_eq!(
            expires_within(&activity, Duration::from_secs(59)).await,
            None,
            "reads during the request do not start a header deadline"
        );
        assert_eq!(
            expires_within(&activity, Duration::from_secs(61)).await,
            Some(Deadline::Idle)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http2_reads_while_idle_do_not_start_a_header_deadline() {
        let activity = Arc::new(Activity::default());
        drop(activity.begin(Version::HTTP_2));
        activity.on_read(); // a ping
        assert_eq!(
            expires_within(&activity, Duration::from_secs(59)).await,
            None
        );
        assert_eq!(
            expires_within(&activity, Duration::from_secs(61)).await,
            Some(Deadline::Idle)
        );
    }

    #[test]
    fn the_version_is_known_from_the_first_bytes_or_left_to_hyper() {
        assert_eq!(
            sniff(b"GET /x/sse HTTP/1.1\r\nHost: a\r\n"),
            Some(Version::HTTP_11)
        );
        assert_eq!(sniff(b"POST"), Some(Version::HTTP_11));
        assert_eq!(sniff(b"PROPFIND / HTTP/1.1"), Some(Version::HTTP_11));
        assert_eq!(sniff(H2_PREFACE), Some(Version::HTTP_2));
        assert_eq!(sniff(b"P"), None, "POST or the preface");
        assert_eq!(sniff(b"PRI * HTTP/2"), None);
    }

    #[test]
    fn a_new_http1_request_clears_the_linger_mark() {
        let activity = Arc::new(Activity::default());
        activity.linger.store(true, Ordering::Release);
        drop(activity.begin(Version::HTTP_11));
        assert!(!activity.linger.load(Ordering::Acquire));
    }
}
