//! Client connection metrics: connections open, and connections the listener closed or
//! refused, by reason.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Why the listener closed or refused a client connection.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ConnectionClose {
    /// Nothing arrived within `first_byte_timeout`.
    FirstByteTimeout,
    /// Request headers did not arrive whole within `header_read_timeout`.
    HeaderTimeout,
    /// No request in flight for `idle_timeout`.
    IdleTimeout,
    /// `max_connections` was reached and no slot freed within `connection_wait`.
    LimitReached,
    /// The process had no file descriptor left: accepted and closed at once.
    OutOfFileDescriptors,
}

impl ConnectionClose {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstByteTimeout => "first_byte_timeout",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::LimitReached => "limit_reached",
            Self::OutOfFileDescriptors => "out_of_file_descriptors",
        }
    }
}

impl EncodeLabelValue for ConnectionClose {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    reason: ConnectionClose,
}

/// The client connection series of the registry.
#[derive(Debug)]
pub struct ConnectionMetrics {
    open: Gauge,
    closed: Family<CloseLabels, Counter>,
}

impl ConnectionMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let open = Gauge::default();
        let closed = Family::<CloseLabels, Counter>::default();
        registry.register(
            "client_connections",
            "Client connections being served (admitted under max_connections)",
            open.clone(),
        );
        registry.register(
            "client_connections_closed",
            "Client connections the proxy closed or refused, by reason (first_byte_timeout, \
             header_timeout, idle_timeout, limit_reached, out_of_file_descriptors)",
            closed.clone(),
        );
        Self { open, closed }
    }

    /// A connection was admitted.
    pub fn opened(&self) {
        self.open.inc();
    }

    /// An admitted connection ended.
    pub fn ended(&self) {
        self.open.dec();
    }

    /// The proxy closed or refused a connection for `reason`.
    pub fn closed(&self, reason: ConnectionClose) {
        self.closed.get_or_create(&CloseLabels { reason }).inc();
    }
}
