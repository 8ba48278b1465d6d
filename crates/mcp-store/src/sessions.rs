//! The session registry: what any replica needs to continue a client session that another
//! replica started, and which replicas are alive.
//!
//! The registry keeps, per session id, the replica that owns it and its state (a JSON
//! document the proxy writes and reads; opaque here), with a sliding time to live: an entry
//! nobody refreshes disappears after its TTL. Replicas announce themselves with a
//! heartbeat (their id, the address other replicas reach them at) that expires unless
//! renewed, so a replica killed without a goodbye is noticed within one heartbeat TTL.
//!
//! [`RedisStore`](crate::RedisStore) implements it in the Redis it stores definitions in
//! (see [`crate::redis`] for the keys); [`MemorySessions`] keeps it in this process
//! (one replica, tests).

use std::time::Duration;

use crate::Result;

/// One session's entry in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The replica that owns the session (created it, or took it over).
    pub owner: String,
    /// The session's state, as the proxy wrote it.
    pub state: String,
}

/// Where replicas share client sessions and their heartbeats. Every write is one atomic
/// step; none is needed per forwarded message.
#[async_trait::async_trait]
pub trait SessionRegistry: Send + Sync + std::fmt::Debug + 'static {
    /// Writes session `id` (created, or replaced whole): owned by `owner`, with `state`,
    /// gone after `ttl` unless refreshed.
    async fn put_session(&self, id: &str, owner: &str, state: &str, ttl: Duration) -> Result<()>;

    /// The entry of session `id`, if it is registered (and not expired).
    async fn session(&self, id: &str) -> Result<Option<SessionEntry>>;

    /// Restarts the time to live of session `id` at `ttl`; `false` when it is gone.
    async fn touch_session(&self, id: &str, ttl: Duration) -> Result<bool>;

    /// How long session `id` has left before it expires, `None` when it is gone.
    async fn session_ttl(&self, id: &str) -> Result<Option<Duration>>;

    /// Removes session `id` (nothing when it is gone already).
    async fn delete_session(&self, id: &str) -> Result<()>;

    /// Makes `owner` the owner of session `id` if it is still owned by `from`, in one
    /// atomic step, writing `state` with it when given and restarting its TTL at `ttl`.
    /// Whether this call took it: `false` when the entry is gone or someone else took it
    /// first.
    async fn take_over(
        &self,
        id: &str,
        from: &str,
        owner: &str,
        state: Option<&str>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Replica `replica` is alive and reachable at `address`, for `ttl` from now.
    async fn heartbeat(&self, replica: &str, address: &str, ttl: Duration) -> Result<()>;

    /// The address of replica `replica` if its heartbeat is current, `None` when it is
    /// gone (stopped, or dead for longer than its heartbeat TTL).
    async fn replica(&self, replica: &str) -> Result<Option<String>>;

    /// Removes the heartbeat of `replica` (a clean shutdown: its sessions may be taken
    /// over at once).
    async fn retire(&self, replica: &str) -> Result<()>;
}

mod memory;

pub use memory::MemorySessions;
