//! Who gets served. At most `max_connections` client connections are served at once; when
//! all slots are taken, up to a quarter as many more wait `connection_wait` for one and are
//! closed if none frees; beyond that a new connection is closed at once. `accept` itself
//! never stops: connections are taken off the queue and then admitted, kept waiting or
//! closed, and a spare file descriptor lets the loop shed a connection even when the process
//! has no descriptor left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use mcp_proxy_core::Metrics;
use mcp_proxy_core::metrics::ConnectionClose;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ListenerLimits;

/// `EMFILE`: the process has no file descriptor left.
const EMFILE: i32 = 24;
/// `ENFILE`: the system has none left.
const ENFILE: i32 = 23;

/// A taken slot: counted in `mcp_proxy_client_connections` until dropped (after the
/// connection closed, lingering included).
#[derive(Debug)]
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connections().opened();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections().ended();
    }
}

/// What [`Admission::admit`] decided.
#[derive(Debug)]
pub(super) enum Ticket {
    /// Serve the connection.
    Admitted(Slot),
    /// Wait for a slot.
    Wait(Waiting),
    /// Close it (counted and, on the first refusal in a row, logged).
    Refused,
}

/// The connection limit.
#[derive(Debug)]
pub(super) struct Admission {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    wait: Duration,
    max: usize,
    metrics: Arc<Metrics>,
    /// Whether the last decision was a refusal (logged once per change).
    refusing: Arc<AtomicBool>,
}

impl Admission {
    pub(super) fn new(limits: &ListenerLimits, metrics: Arc<Metrics>) -> Self {
        let max = limits.max_connections.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            waiting: Arc::default(),
            max_waiting: if limits.connection_wait.is_zero() {
                0
            } else {
                (max / 4).max(1)
            },
            wait: limits.connection_wait,
            max,
            metrics,
            refusing: Arc::default(),
        }
    }

    /// Admits a freshly accepted connection, or says to wait, or to close it.
    pub(super) fn admit(&self) -> Ticket {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            if self.refusing.swap(false, Ordering::AcqRel) {
                info!(max = self.max, "client connections below the limit again");
            }
            return Ticket::Admitted(Slot::new(permit, self.metrics.clone()));
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        if queued >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            refuse(&self.metrics, &self.refusing, self.max, self.wait);
            return Ticket::Refused;
        }
        Ticket::Wait(Waiting {
            slots: self.slots.clone(),
            waiting: self.waiting.clone(),
            wait: self.wait,
            max: self.max,
            metrics: self.metrics.clone(),
            refusing: self.refusing.clone(),
        })
    }
}

fn refuse(metrics: &Metrics, refusing: &AtomicBool, max: usize, wait: Duration) {
    metrics.connections().closed(ConnectionClose::LimitReached);
    if !refusing.swap(true, Ordering::AcqRel) {
        warn!(
            max,
            wait = %mcp_types::duration::format(wait),
            "client connection limit reached: new connections wait for a slot, then are closed"
        );
    }
}

/// A connection waiting for a slot; counted among the waiting until dropped.
#[derive(Debug)]
pub(super) struct Waiting {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    wait: Duration,
    max: usize,
    metrics: Arc<Metrics>,
    refusing: Arc<AtomicBool>,
}

impl Waiting {
    /// A slot, or `None` when none freed within `connection_wait` (counted as refused) or
    /// the server is stopping.
    pub(super) async fn wait(self, stop: &CancellationToken) -> Option<Slot> {
        let acquire = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned());
        tokio::select! {
            () = stop.cancelled() => None,
            acquired = acquire => match acquired {
                Ok(Ok(permit)) => Some(Slot::new(permit, self.metrics.clone())),
                _ => {
                    refuse(&self.metrics, &self.refusing, self.max, self.wait);
                    None
                }
            },
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether an `accept` error means file descriptors ran out.
pub(super) fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Whether an `accept` error concerns only the connection being accepted (it went away
/// before it was taken).
pub(super) fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
    )
}

/// A file descriptor held in reserve (`/dev/null`). When `accept` fails for lack of
/// descriptors, the connection waiting in the kernel's queue would stay there, and the
/// loop would spin on it: the spare is closed, the connection accepted and closed at once
/// (the client sees it closed instead of hanging), and the spare taken again.
#[derive(Debug)]
pub(super) struct Spare {
    file: Option<std::fs::File>,
    /// Whether connections are being shed (logged once per change).
    shedding: bool,
}

impl Spare {
    pub(super) fn new() -> Self {
        Self {
            file: std::fs::File::open("/dev/null").ok(),
            shedding: false,
        }
    }

    /// Sheds one connection (see the type's doc).
    pub(super) async fn shed(&mut self, listener: &TcpListener, metrics: &Metrics) {
        if !self.shedding {
            self.shedding = true;
            warn!(
                "out of file descriptors: new client connections are closed at once until \
                 some are free (raise the open-file limit, or lower listener.max_connections)"
            );
        }
        self.file = None;
        if let Some(Ok((stream, _))) = listener.accept().now_or_never() {
            drop(stream);
            metrics
                .connections()
                .closed(ConnectionClose::OutOfFileDescriptors);
        }
        self.file = std::fs::File::open("/dev/null").ok();
        if self.file.is_none() {
            // Nothing to free next time: do not spin while descriptors are short.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An `accept` succeeded.
    pub(super) fn recovered(&mut self) {
        if self.shedding {
            self.shedding = false;
            info!("file descriptors available again: serving new client connections");
        }
        if self.file.is_none() {
            self.file = std::fs::File::open("/dev/null").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, wait: Duration) -> ListenerLimits {
        ListenerLimits {
            max_connections: max,
            connection_wait: wait,
            ..ListenerLimits::default()
        }
    }

    #[tokio::test]
    async fn beyond_the_limit_a_quarter_more_wait_and_the_rest_are_refused() {
        let metrics = Arc::new(Metrics::new());
        let admission = Admission::new(&limits(4, Duration::from_secs(30)), metrics.clone());
        let slots: Vec<_> = (0..4)
            .map(|_| match admission.admit() {
                Ticket::Admitted(s) => s,
                other => panic!("expected a slot, got {other:?}"),
            })
            .collect();
        let Ticket::Wait(waiting) = admission.admit() else {
            panic!("the fifth connection waits")
        };
        assert!(
            matches!(admission.admit(), Ticket::Refused),
            "one waits at most"
        );
        let text = metrics.render();
        assert!(text.contains("mcp_proxy_client_connections 4"), "{text}");
        assert!(
            text.contains(r#"mcp_proxy_client_connections_closed_total{reason="limit_reached"} 1"#),
            "{text}"
        );
        let stop = CancellationToken::new();
        let waiter = tokio::spawn(async move { waiting.wait(&stop).await });
        drop(slots);
        let slot = waiter.await.unwrap();
        assert!(
            slot.is_some(),
            "a freed slot goes to the waiting connection"
        );
        assert!(metrics.render().contains("mcp_proxy_client_connections 1"));
        drop(slot);
        assert!(metrics.render().contains("mcp_proxy_client_connections 0"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_connection_is_refused_when_no_slot_frees_in_time() {
        let metrics = Arc::new(Metrics::new());
        let admission = Admission::new(&limits(1, Duration::from_secs(1)), metrics.clone());
        let _held = admission.admit();
        let Ticket::Wait(waiting) = admission.admit() else {
            panic!("waits")
        };
        assert!(waiting.wait(&CancellationToken::new()).await.is_none());
        assert!(
            metrics
                .render()
                .contains(r#"mcp_proxy_client_connections_closed_total{reason="limit_reached"} 1"#)
        );
        // the waiting place is free again
        assert!(matches!(admission.admit(), Ticket::Wait(_)));
    }

    #[test]
    fn zero_wait_refuses_at_once() {
        let admission = Admission::new(&limits(1, Duration::ZERO), Arc::new(Metrics::new()));
        let _held = admission.admit();
        assert!(matches!(admission.admit(), Ticket::Refused));
    }
}
