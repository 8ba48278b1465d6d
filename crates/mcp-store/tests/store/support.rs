//! Helpers shared by the store tests.

use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config};
use futures_util::StreamExt;
use mcp_store::{RedisConfig, RedisStore, StoreEvent, WatchStream};
use mcp_test_support::redis::RedisServer;
use mcp_types::{GroupDefinition, McpDefinition, TransportKind};

/// How long a change may take to show up on a feed.
pub(crate) const FEED_DEADLINE: Duration = Duration::from_secs(5);

/// A Redis store config for this server and prefix, with default timeouts.
pub(crate) fn redis_config(server: &RedisServer, prefix: &str) -> RedisConfig {
    RedisConfig {
        prefix: prefix.to_owned(),
        ..RedisConfig::new(server.url())
    }
}

/// A connected Redis store on this server, under this prefix.
pub(crate) async fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(redis_config(server, prefix))
        .await
        .expect("connect redis store")
}

/// A plain client for reading and planting raw keys.
pub(crate) async fn raw_client(server: &RedisServer) -> Client {
    let config = Config::from_url(&server.url()).expect("redis url");
    let client = Builder::from_config(config).build().expect("raw client");
    client.init().await.expect("raw client connects");
    client
}

/// An HTTP definition with a description, so updates have something to change.
pub(crate) fn http_def(name: &str, description: &str) -> McpDefinition {
    let mut def = McpDefinition::http(
        name,
        TransportKind::StreamableHttp,
        format!("https://{name}.example/mcp"),
    );
    def.description = Some(description.to_owned());
    def
}

/// The next `Put`/`Deleted` on the feed (skipping `Resync`), or a panic after
/// [`FEED_DEADLINE`].
pub(crate) async fn next_change(feed: &mut WatchStream) -> StoreEvent {
    let deadline = tokio::time::Instant::now() + FEED_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Some(StoreEvent::Resync)) => continue,
            Ok(Some(event)) => return event,
            Ok(None) => panic!("watch feed ended"),
            Err(_) => panic!("no change on the watch feed within {FEED_DEADLINE:?}"),
        }
    }
}

/// Asserts the next change is a `Put` of `name` and returns the definition.
pub(crate) async fn expect_put(feed: &mut WatchStream, name: &str) -> McpDefinition {
    match next_change(feed).await {
        StoreEvent::Put(def) if def.name == name => def,
        other => panic!("expected Put({name:?}), got {other:?}"),
    }
}

/// Asserts the next change is the deletion of `name` and returns its version.
pub(crate) async fn expect_deleted(feed: &mut WatchStream, name: &str) -> Option<u64> {
    match next_change(feed).await {
        StoreEvent::Deleted { name: n, version } if n == name => version,
        other => panic!("expected Deleted({name:?}), got {other:?}"),
    }
}

/// A group over two members, with a description so updates have something to change.
pub(crate) fn group(name: &str, description: &str) -> GroupDefinition {
    let mut g = GroupDefinition::new(name);
    g.description = Some(description.to_owned());
    g.members = vec!["alpha".into(), "beta".into()];
    g
}

/// Asserts the next change is a `GroupPut` of `name` and returns the group.
pub(crate) async fn expect_group_put(feed: &mut WatchStream, name: &str) -> GroupDefinition {
    match next_change(feed).await {
        StoreEvent::GroupPut(g) if g.name == name => g,
        other => panic!("expected GroupPut({name:?}), got {other:?}"),
    }
}

/// Asserts the next change is the deletion of group `name` and returns its version.
pub(crate) async fn expect_group_deleted(feed: &mut WatchStream, name: &str) -> Option<u64> {
    match next_change(feed).await {
        StoreEvent::GroupDeleted { name: n, version } if n == name => version,
        other => panic!("expected GroupDeleted({name:?}), got {other:?}"),
    }
}

/// A `redis-server` of its own and two stores on it under one prefix: two replicas.
pub(crate) async fn two_replicas(prefix: &str) -> (RedisServer, RedisStore, RedisStore) {
    let server = RedisServer::start().await;
    let a = redis_store(&server, prefix).await;
    let b = redis_store(&server, prefix).await;
    (server, a, b)
}

/// What a store write answers with: a definition or a group, with its version.
pub(crate) trait Versioned: std::fmt::Debug {
    fn version(&self) -> Option<u64>;
}

impl Versioned for McpDefinition {
    fn version(&self) -> Option<u64> {
        self.version
    }
}

impl Versioned for GroupDefinition {
    fn version(&self) -> Option<u64> {
        self.version
    }
}

/// The version of a successful write; a panic when it failed or carries none.
pub(crate) fn version(written: mcp_store::Result<impl Versioned>) -> u64 {
    let written = written.expect("the write succeeds");
    written
        .version()
        .unwrap_or_else(|| panic!("a written value has a version: {written:?}"))
}

/// Asserts a write was refused for a version mismatch.
pub(crate) fn assert_version_mismatch(result: mcp_store::Result<impl std::fmt::Debug>) {
    match result {
        Err(err) if err.is_version_mismatch() => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}

/// Asserts a call failed because the name is not there.
pub(crate) fn assert_not_found(result: mcp_store::Result<impl std::fmt::Debug>) {
    match result {
        Err(err) if err.is_not_found() => {}
        other => panic!("expected not found, got {other:?}"),
    }
}
