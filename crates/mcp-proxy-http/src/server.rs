//! The accept loop: serves an already-bound listener until the shutdown signal, then drains
//! connections within `shutdown_timeout` and drops the rest.
//!
//! - [`admission`]: at most `max_connections` client connections at once; a few more wait
//!   up to `connection_wait` for a slot, the rest are closed; a spare file descriptor keeps
//!   `accept` working when the process runs out of them.
//! - [`conn`]: one connection: the first-byte, header and idle deadlines, HTTP/2
//!   keep-alive, and a lingering close after an answer that left a request body unread.

mod admission;
mod conn;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::app::App;
use crate::config::ListenerLimits;
use admission::{Admission, Spare, Ticket};

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    app: App,
    limits: ListenerLimits,
    builders: Builders,
    /// Cancelled at shutdown: connections finish their requests, then close.
    stop: CancellationToken,
    /// Cancelled when the drain deadline passed: connections are dropped.
    force: CancellationToken,
    /// Every connection task and every lingering close.
    tasks: TaskTracker,
}

/// Serves `app` on `listener` until `shutdown` completes.
///
/// After the signal no new connection is accepted; open connections finish their current
/// requests within `shutdown_timeout`, after which they are dropped.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = app.config().listener.clone();
    let metrics = app.metrics().clone();
    let shared = Arc::new(Shared {
        builders: Builders::new(&limits),
        limits,
        app,
        stop: CancellationToken::new(),
        force: CancellationToken::new(),
        tasks: TaskTracker::new(),
    });
    let admission = Admission::new(&shared.limits, metrics.clone());
    let mut spare = Spare::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    spare.recovered();
                    conn
                }
                Err(e) if admission::is_out_of_descriptors(&e) => {
                    spare.shed(&listener, &metrics).await;
                    continue;
                }
                Err(e) if admission::is_transient(&e) => {
                    debug!(error = %e, "accept failed");
                    continue;
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM and friends: back off briefly instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match admission.admit() {
            Ticket::Admitted(slot) => {
                shared
                    .tasks
                    .spawn(conn::serve(shared.clone(), stream, peer, slot));
            }
            Ticket::Wait(waiting) => {
                let shared = shared.clone();
                shared.tasks.clone().spawn(async move {
                    if let Some(slot) = waiting.wait(&shared.stop).await {
                        conn::serve(shared, stream, peer, slot).await;
                    }
                });
            }
            Ticket::Refused => drop(stream),
        }
    }
    drop(listener);
    let deadline = shared.app.config().shutdown_timeout;
    info!(timeout = %mcp_types::duration::format(deadline), "draining connections");
    shared.stop.cancel();
    shared.tasks.close();
    if tokio::time::timeout(deadline, shared.tasks.wait())
        .await
        .is_err()
    {
        warn!("connections still open after the shutdown timeout; closing them");
        shared.force.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), shared.tasks.wait()).await;
    }
    Ok(())
}

/// The connection builders: one for each HTTP version, chosen by [`conn`] from the bytes
/// it peeked, and one that reads the version itself when those bytes do not tell.
///
/// A builder that reads the version first consumes up to 24 bytes and gives them back to
/// hyper alone, so hyper's first read sees only them and its 8 KiB read buffer is grown
/// to 16 KiB for the rest of the head, for the life of the connection (an open SSE stream
/// kept 16 KiB of read buffer that way).
#[derive(Debug)]
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    sniffing: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ListenerLimits) -> Self {
        let sniffing = builder(limits);
        Self {
            http1: sniffing.clone().http1_only(),
            http2: sniffing.clone().http2_only(),
            sniffing,
        }
    }
}

/// HTTP/1 and HTTP/2 (detected per connection). hyper's own HTTP/1 header timer is off: it
/// would also run while a keep-alive connection idles, and [`conn`] keeps the header and
/// idle deadlines apart.
fn builder(limits: &ListenerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None::<Duration>);
    let mut http2 = builder.http2();
    http2.timer(TokioTimer::new());
    if !limits.http2_keepalive_interval.is_zero() {
        http2
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout);
    }
    builder
}
