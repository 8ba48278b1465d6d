//! The [`Store`] trait and its change feed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mcp_types::{McpDefinition, McpStatus, Timestamp};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::Result;

/// A change feed: see [`Store::watch`].
pub type WatchStream = BoxStream<'static, StoreEvent>;

/// One change seen on a [`Store::watch`] feed.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are rare and consumers match on the definition by value"
)]
pub enum StoreEvent {
    /// A definition was created or updated (the stored form, secrets included).
    Put(McpDefinition),
    /// The definition of this name was deleted.
    Deleted(String),
    /// The feed may have missed events (a slow consumer lagged, or the Redis subscription
    /// was re-established): call [`Store::list`] and reconcile.
    Resync,
}

/// Where MCP definitions and their status live.
///
/// Every write publishes to [`watch`](Store::watch), including to the writing store's own
/// feeds, so consumers must treat [`StoreEvent::Put`] idempotently.
///
/// Timestamps set by the store have millisecond precision, as they are serialized, so a
/// definition returned by a write equals the one read back later.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The definition of this name, if stored.
    async fn get(&self, name: &str) -> Result<Option<McpDefinition>>;

    /// Every stored definition, sorted by name.
    ///
    /// An entry that cannot be decoded is skipped with a warning rather than failing the
    /// whole listing (one bad value must not hide the others); [`get`](Store::get) reports
    /// it as [`Error::Corrupt`](crate::Error::Corrupt).
    async fn list(&self) -> Result<Vec<McpDefinition>>;

    /// Stores a new definition with `createdAt` = `updatedAt` = now and returns the stored
    /// form. Any status left over under this name is cleared.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if the name is taken.
    async fn create(&self, def: McpDefinition) -> Result<McpDefinition>;

    /// Replaces an existing definition, keeping its stored `createdAt` and setting
    /// `updatedAt` = now; returns the stored form.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if no definition of that name exists.
    async fn update(&self, def: McpDefinition) -> Result<McpDefinition>;

    /// Deletes a definition and its status.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if no definition of that name exists.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Stores the status of an upstream (replacing the previous one). Status writes are not
    /// published on the change feed.
    async fn save_status(&self, name: &str, status: &McpStatus) -> Result<()>;

    /// The last saved status of an upstream, if any.
    async fn load_status(&self, name: &str) -> Result<Option<McpStatus>>;

    /// A new feed of changes, from now on. Each call gets its own stream; a consumer that
    /// falls behind gets [`StoreEvent::Resync`] instead of silently missing events.
    fn watch(&self) -> WatchStream;

    /// Readiness probe: `Ok` when the back-end answers.
    async fn ping(&self) -> Result<()>;

    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

/// Capacity of the per-store event broadcast.
pub(crate) const EVENT_CAPACITY: usize = 1024;

/// A feed over a broadcast receiver, turning a lag into [`StoreEvent::Resync`].
pub(crate) fn broadcast_feed(rx: broadcast::Receiver<StoreEvent>) -> WatchStream {
    BroadcastStream::new(rx)
        .map(|item| match item {
            Ok(event) => event,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::warn!(missed, "store watcher lagged, asking for a resync");
                StoreEvent::Resync
            }
        })
        .boxed()
}

/// The current time, truncated to the millisecond precision timestamps are stored with.
pub(crate) fn now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let millis = u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX);
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_survives_a_serde_round_trip() {
        let t = now();
        let text = serde_json::to_string(&t).unwrap();
        let back: Timestamp = serde_json::from_str(&text).unwrap();
        assert_eq!(back, t);
    }

    #[tokio::test]
    async fn a_lagging_feed_yields_resync() {
        let (tx, rx) = broadcast::channel(2);
        let mut feed = broadcast_feed(rx);
        for name in ["a", "b", "c", "d"] {
            tx.send(StoreEvent::Deleted(name.into())).unwrap();
        }
        assert!(matches!(feed.next().await, Some(StoreEvent::Resync)));
        assert!(matches!(feed.next().await, Some(StoreEvent::Deleted(n)) if n == "c"));
    }
}
