//! The [`Store`] trait and its change feed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mcp_types::{GroupDefinition, McpDefinition, McpStatus, Timestamp};
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
    /// The definition of this name was deleted, by the write of this version (`None` from
    /// a writer that predates versions).
    Deleted {
        /// The definition's name.
        name: String,
        /// The version of the deletion.
        version: Option<u64>,
    },
    /// A group was created or updated (the stored form, secrets included).
    GroupPut(GroupDefinition),
    /// The group of this name was deleted, by the write of this version.
    GroupDeleted {
        /// The group's name.
        name: String,
        /// The version of the deletion.
        version: Option<u64>,
    },
    /// The feed may have missed events (a slow consumer lagged, or the Redis subscription
    /// was re-established): call [`Store::list`] and [`Store::list_groups`] and reconcile.
    Resync,
}

/// Where MCP definitions, their status and groups live.
///
/// Every write publishes to [`watch`](Store::watch), including to the writing store's own
/// feeds, so consumers must treat [`StoreEvent::Put`] and [`StoreEvent::GroupPut`]
/// idempotently.
///
/// Groups and upstream definitions share one namespace (both are served at `/{name}/…`):
/// creating either under a name the other holds fails with
/// [`Error::NameTaken`](crate::Error::NameTaken), atomically with the check.
///
/// Timestamps set by the store have millisecond precision, as they are serialized, so a
/// definition returned by a write equals the one read back later.
///
/// # Versions
///
/// Every write (create, update, delete, of a definition or a group) gets a version greater
/// than that of every earlier write to the store, whatever the name: the microseconds since the epoch on the store's
/// clock, or one more than the last version when that is greater (so versions go on
/// growing after the clock steps back, or after the store lost its counter). Created and
/// updated definitions and groups carry theirs in `version`; [`StoreEvent::Deleted`] and
/// [`StoreEvent::GroupDeleted`] carry the deletion's. Consumers of the change feed compare versions to apply only what is newer
/// than what they hold.
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
    /// [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a definition has the name;
    /// [`Error::NameTaken`](crate::Error::NameTaken) if a group has it.
    async fn create(&self, def: McpDefinition) -> Result<McpDefinition>;

    /// Replaces an existing definition, keeping its stored `createdAt` and setting
    /// `updatedAt` = now; returns the stored form.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if no definition of that name exists.
    async fn update(&self, def: McpDefinition) -> Result<McpDefinition> {
        self.update_if(def, None).await
    }

    /// [`update`](Store::update), only if the stored definition is at version `expected`
    /// (when given): the check and the write are one atomic step.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if no definition of that name exists;
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) if it is at another version.
    async fn update_if(&self, def: McpDefinition, expected: Option<u64>) -> Result<McpDefinition>;

    /// Deletes a definition and its status.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) if no definition of that name exists.
    async fn delete(&self, name: &str) -> Result<()> {
        self.delete_if(name, None).await.map(drop)
    }

    /// [`delete`](Store::delete), only if the stored definition is at version `expected`
    /// (when given), atomically; returns the version of the deletion.
    ///
    /// # Errors
    /// As [`update_if`](Store::update_if).
    async fn delete_if(&self, name: &str, expected: Option<u64>) -> Result<u64>;

    /// The version of the latest write (0 before the first). Reading it before
    /// [`list`](Store::list) tells which versions the listing reflects.
    async fn version(&self) -> Result<u64>;

    /// The group of this name, if stored.
    async fn get_group(&self, name: &str) -> Result<Option<GroupDefinition>>;

    /// Every stored group, sorted by name (an entry that cannot be decoded is skipped with
    /// a warning, as in [`list`](Store::list)).
    async fn list_groups(&self) -> Result<Vec<GroupDefinition>>;

    /// Stores a new group with `createdAt` = `updatedAt` = now and returns the stored form.
    ///
    /// # Errors
    /// [`Error::GroupAlreadyExists`](crate::Error::GroupAlreadyExists) if a group has the
    /// name; [`Error::NameTaken`](crate::Error::NameTaken) if a definition has it.
    async fn create_group(&self, group: GroupDefinition) -> Result<GroupDefinition>;

    /// Replaces an existing group, keeping its `createdAt`; returns the stored form.
    ///
    /// # Errors
    /// [`Error::GroupNotFound`](crate::Error::GroupNotFound) if no group of that name
    /// exists.
    async fn update_group(&self, group: GroupDefinition) -> Result<GroupDefinition> {
        self.update_group_if(group, None).await
    }

    /// [`update_group`](Store::update_group), only if the stored group is at version
    /// `expected` (when given), atomically.
    ///
    /// # Errors
    /// [`Error::GroupNotFound`](crate::Error::GroupNotFound);
    /// [`Error::VersionMismatch`](crate::Error::VersionMismatch) if it is at another version.
    async fn update_group_if(
        &self,
        group: GroupDefinition,
        expected: Option<u64>,
    ) -> Result<GroupDefinition>;

    /// Deletes a group.
    ///
    /// # Errors
    /// [`Error::GroupNotFound`](crate::Error::GroupNotFound) if no group of that name
    /// exists.
    async fn delete_group(&self, name: &str) -> Result<()> {
        self.delete_group_if(name, None).await.map(drop)
    }

    /// [`delete_group`](Store::delete_group), only if the stored group is at version
    /// `expected` (when given), atomically; returns the version of the deletion.
    ///
    /// # Errors
    /// As [`update_group_if`](Store::update_group_if).
    async fn delete_group_if(&self, name: &str, expected: Option<u64>) -> Result<u64>;

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

/// The version of a write following one at `last`: now in microseconds since the epoch,
/// or `last + 1` when that is greater.
pub(crate) fn next_version(last: u64) -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX);
    now.max(last.saturating_add(1))
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

    #[test]
    fn versions_grow_even_when_the_clock_does_not() {
        let a = next_version(0);
        assert!(
            a > 1_600_000_000_000_000,
            "microseconds since the epoch: {a}"
        );
        assert_eq!(next_version(u64::MAX - 1), u64::MAX);
        assert_eq!(next_version(a + 1_000_000_000), a + 1_000_000_001);
    }

    #[tokio::test]
    async fn a_lagging_feed_yields_resync() {
        let (tx, rx) = broadcast::channel(2);
        let mut feed = broadcast_feed(rx);
        for name in ["a", "b", "c", "d"] {
            tx.send(StoreEvent::Deleted {
                name: name.into(),
                version: None,
            })
            .unwrap();
        }
        assert!(matches!(feed.next().await, Some(StoreEvent::Resync)));
        assert!(matches!(feed.next().await, Some(StoreEvent::Deleted { name, .. }) if name == "c"));
    }
}
