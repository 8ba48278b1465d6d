//! One MCP client session, whatever carries it.

mod legacy_sse;
mod stdio;
mod streamable;

use std::sync::Arc;
use std::time::Duration;

use crate::client::{ExtraHeaders, Target};
use crate::jsonrpc::Outcome;

pub(crate) use stdio::StdioLink;

/// What every session is opened with.
#[derive(Debug)]
pub(crate) struct SessionOpts {
    /// The protocol version asked for in `initialize`.
    pub(crate) protocol_version: String,
    pub(crate) headers: ExtraHeaders,
    /// The deadline of each request.
    pub(crate) timeout: Duration,
    /// The deadline of opening a session.
    pub(crate) open_timeout: Duration,
    /// The largest message or event accepted from the server.
    pub(crate) max_message_bytes: usize,
    pub(crate) allow_remote: bool,
}

/// A response, and how large the message carrying it was.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) outcome: Outcome,
    pub(crate) bytes: usize,
}

/// One open session.
#[derive(Debug)]
pub(crate) enum Session {
    Streamable(streamable::Streamable),
    LegacySse(legacy_sse::LegacySse),
    Stdio(stdio::StdioSession),
}

impl Session {
    /// Opens a streamable HTTP session: `initialize` (id `init_id`), then
    /// `notifications/initialized`.
    pub(crate) async fn streamable(
        target: Target,
        opts: Arc<SessionOpts>,
        init_id: u64,
    ) -> anyhow::Result<Self> {
        let timeout = opts.open_timeout;
        let open = streamable::Streamable::open(target, opts, init_id);
        Ok(Self::Streamable(
            bounded(timeout, "opening the session", open).await?,
        ))
    }

    /// Opens a legacy HTTP+SSE session: the `GET` stream, its `endpoint` event, then the
    /// handshake over `POST`s.
    pub(crate) async fn legacy_sse(
        target: Target,
        opts: Arc<SessionOpts>,
        init_id: u64,
    ) -> anyhow::Result<Self> {
        let timeout = opts.open_timeout;
        let open = legacy_sse::LegacySse::open(target, opts, init_id);
        Ok(Self::LegacySse(
            bounded(timeout, "opening the session", open).await?,
        ))
    }

    /// A session on an already initialized stdio link.
    pub(crate) fn stdio(link: Arc<StdioLink>) -> Self {
        Self::Stdio(stdio::StdioSession::new(link))
    }

    /// Sends request `id` (its full JSON in `body`) and waits for its response.
    pub(crate) async fn call(&mut self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        match self {
            Self::Streamable(s) => s.call(id, body).await,
            Self::LegacySse(s) => s.call(id, body).await,
            Self::Stdio(s) => s.call(id, body).await,
        }
    }

    /// The protocol version the server chose.
    pub(crate) fn negotiated_version(&self) -> &str {
        match self {
            Self::Streamable(s) => s.negotiated(),
            Self::LegacySse(s) => s.negotiated(),
            Self::Stdio(s) => s.negotiated(),
        }
    }

    /// Whether the session can take no more requests (its stream or process is gone).
    pub(crate) fn is_dead(&self) -> bool {
        match self {
            Self::Streamable(s) => s.is_dead(),
            Self::LegacySse(s) => s.is_dead(),
            Self::Stdio(s) => s.is_dead(),
        }
    }

    /// Drops the connection used for requests, keeping the session (and, for legacy
    /// SSE, its stream): an idle session then costs the server only what the session
    /// itself holds.
    pub(crate) fn release_connection(&mut self) {
        match self {
            Self::Streamable(s) => s.release_connection(),
            Self::LegacySse(s) => s.release_connection(),
            Self::Stdio(_) => {}
        }
    }

    /// Ends the session (`DELETE` for streamable HTTP, closing the stream for legacy SSE).
    pub(crate) async fn close(self) -> anyhow::Result<()> {
        match self {
            Self::Streamable(s) => s.close().await,
            Self::LegacySse(_) | Self::Stdio(_) => Ok(()),
        }
    }
}

/// `fut`, or an error naming `what` once `timeout` has passed.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| {
        anyhow::anyhow!(
            "{what} timed out after {}",
            humantime::format_duration(timeout)
        )
    })?
}
