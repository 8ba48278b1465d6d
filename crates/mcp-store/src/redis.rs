//! The Redis back-end (fred), shared by every `proxyd` replica pointed at one Redis.
//!
//! # Key layout
//!
//! With the default prefix `mcp_proxy:`:
//!
//! | key | type | content |
//! |---|---|---|
//! | `{prefix}mcps:{name}` | string | the definition as JSON, **secrets included** (the store needs them to connect) |
//! | `{prefix}status:{name}` | string | the last saved [`McpStatus`] as JSON |
//! | `{prefix}index` | set | the names of the stored definitions |
//! | `{prefix}groups:{name}` | string | the group as JSON, **secrets included** |
//! | `{prefix}group_index` | set | the names of the stored groups |
//! | `{prefix}version` | string | the version of the latest write, definitions and groups alike (see [`Store`](crate::Store#versions)) |
//! | `{prefix}session:{id}` | hash, TTL | a client session of the [`SessionRegistry`](crate::SessionRegistry): `owner` (replica id), `state` (JSON written by the proxy); the TTL slides with use |
//! | `{prefix}replica:{id}` | string, TTL | a replica's heartbeat: the address other replicas reach it at |
//! | `{prefix}events` | pub/sub channel | `{"op":"put","name":"fs"}` or `{"op":"deleted","name":"fs","version":N}`; `group_put` / `group_deleted` for groups |
//!
//! Protect the Redis instance accordingly (password, network). Events carry no value: on
//! `put` (`group_put`) each receiver fetches the current value and emits
//! [`StoreEvent::Put`] ([`StoreEvent::GroupPut`]), nothing if it was deleted meanwhile (the
//! deletion's event follows).
//!
//! # Consistency
//!
//! Create, update and delete each run as one Lua script, so the value, the index, the
//! version counter and the event change together: create writes only a name not taken by
//! a definition or a group (they share one namespace, across replicas too),
//! update is a compare-and-set on the value read (retried a few times under contention)
//! that keeps the stored `createdAt`, delete also removes the status. A conditional update
//! or delete checks the version of the value read, and the compare-and-set makes that
//! check atomic with the write. The scripts touch several keys, so Redis Cluster is not
//! supported (a single server, or a replicated server behind one address, is).
//!
//! # Failures
//!
//! Every command is bounded by [`RedisConfig::command_timeout`] and fails at once while the
//! connection is down, so callers get [`Error::Unavailable`]
//! quickly rather than hanging; a write that timed out may still have been applied. The
//! client reconnects by itself (100 ms back-off doubling to 2 s, forever); after the event
//! subscription is re-established every watcher gets [`StoreEvent::Resync`], since
//! changes made meanwhile were not seen.
//!
//! [`RedisStore::connect`] fails when Redis cannot be reached; [`RedisStore::open`] returns
//! a store anyway that keeps connecting in the background (commands fail fast meanwhile,
//! saying why) and asks its watchers to resync once it is connected, so a process can
//! start while Redis is down.
//!
//! [`McpStatus`]: mcp_types::McpStatus

mod config;
mod conn;
mod keys;
mod record;
mod scripts;
mod sessions;
mod watcher;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fred::prelude::{Client, ClientLike};
use mcp_types::{GroupDefinition, McpDefinition, McpStatus};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use self::config::redacted_url;
pub use self::config::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, RedisConfig,
};
use self::conn::Conn;
use self::keys::Keys;
use self::watcher::Watcher;
use crate::store::{EVENT_CAPACITY, broadcast_feed};
use crate::{Error, Kind, Result, Store, StoreEvent, WatchStream};

/// First pause between two connection attempts of [`RedisStore::open`], doubled per
/// failure up to [`OPEN_RETRY_MAX`].
const OPEN_RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two connection attempts of [`RedisStore::open`].
const OPEN_RETRY_MAX: Duration = Duration::from_secs(2);

/// Definitions, status and groups kept in Redis, with a change feed over Redis pub/sub.
///
/// Dropping the store stops its tasks and closes its two connections.
#[derive(Debug)]
pub struct RedisStore {
    events: broadcast::Sender<StoreEvent>,
    /// Set once both connections are up and the event channel is subscribed.
    connected: Arc<OnceLock<Connected>>,
    /// Why there is no connection yet (for the errors of the commands meanwhile).
    pending: Arc<Mutex<String>>,
    /// The background connection attempts of [`RedisStore::open`].
    connecting: Option<JoinHandle<()>>,
}

/// The two connections and the watcher task.
#[derive(Debug)]
struct Connected {
    conn: Conn,
    subscriber: Client,
    watcher: JoinHandle<()>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.watcher.abort();
        quit(self.conn.client().clone());
        quit(self.subscriber.clone());
    }
}

impl RedisStore {
    /// Connects (a command connection and a subscriber connection) and subscribes to the
    /// event channel.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or zero timeouts; [`Error::Unavailable`] when Redis
    /// cannot be reached within `connect_timeout` (no background retry then: call again, or
    /// use [`RedisStore::open`]).
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let connected = attempt(&config, &events).await?;
        Ok(Self {
            events,
            connected: Arc::new(OnceLock::from(connected)),
            pending: Arc::default(),
            connecting: None,
        })
    }

    /// Connects like [`RedisStore::connect`], but when Redis cannot be reached the store
    /// is returned anyway and keeps trying in the background (100 ms back-off doubling to
    /// 2 s, forever). Until it is connected every command fails at once with
    /// [`Error::Unavailable`] saying why; once it is, every watcher gets
    /// [`StoreEvent::Resync`].
    ///
    /// # Errors
    /// [`Error::Config`] only: a bad URL or zero timeouts.
    pub async fn open(config: RedisConfig) -> Result<Self> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let why = match attempt(&config, &events).await {
            Ok(connected) => {
                return Ok(Self {
                    events,
                    connected: Arc::new(OnceLock::from(connected)),
                    pending: Arc::default(),
                    connecting: None,
                });
            }
            Err(err @ Error::Config(_)) => return Err(err),
            Err(err) => err,
        };
        tracing::warn!(
            url = %redacted_url(&config.url),
            error = %why,
            "redis store unreachable; retrying in the background"
        );
        let connected = Arc::new(OnceLock::new());
        let pending = Arc::new(Mutex::new(reason(&why)));
        let connecting = tokio::spawn(keep_connecting(
            config,
            events.clone(),
            connected.clone(),
            pending.clone(),
        ));
        Ok(Self {
            events,
            connected,
            pending,
            connecting: Some(connecting),
        })
    }

    /// The command connection, or why there is none yet.
    fn conn(&self) -> Result<&Conn> {
        match self.connected.get() {
            Some(connected) => Ok(&connected.conn),
            None => Err(Error::Unavailable {
                backend: "redis",
                message: format!(
                    "not connected yet: {}",
                    self.pending.lock().unwrap_or_else(|p| p.into_inner())
                ),
            }),
        }
    }
}

/// The message of an error, without the `redis unavailable:` its display starts with.
fn reason(err: &Error) -> String {
    match err {
        Error::Unavailable { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// One full connection: both clients, then the subscription and its watcher task.
async fn attempt(
    config: &RedisConfig,
    events: &broadcast::Sender<StoreEvent>,
) -> Result<Connected> {
    let client = config.build_client()?;
    let subscriber = config.build_client()?;
    let url = redacted_url(&config.url);
    init(&client, &url, config).await?;
    if let Err(err) = init(&subscriber, &url, config).await {
        quit(client);
        return Err(err);
    }
    let keys = Keys::new(&config.prefix);
    let conn = Conn::new(client, keys.clone(), config.command_timeout);
    let spawned = Watcher {
        subscriber: subscriber.clone(),
        conn: conn.clone(),
        channel: keys.channel(),
        timeout: config.command_timeout,
        events: events.clone(),
    }
    .spawn()
    .await;
    match spawned {
        Ok(watcher) => {
            tracing::info!(url = %url, prefix = %config.prefix, "redis store connected");
            Ok(Connected {
                conn,
                subscriber,
                watcher,
            })
        }
        Err(err) => {
            quit(conn.client().clone());
            quit(subscriber);
            Err(err)
        }
    }
}

/// The background attempts of [`RedisStore::open`]: until one succeeds, then every
/// watcher is told to resync (it has seen nothing so far).
async fn keep_connecting(
    config: RedisConfig,
    events: broadcast::Sender<StoreEvent>,
    connected: Arc<OnceLock<Connected>>,
    pending: Arc<Mutex<String>>,
) {
    let mut pause = OPEN_RETRY_MIN;
    loop {
        tokio::time::sleep(pause).await;
        match attempt(&config, &events).await {
            Ok(conn) => {
                let _ = connected.set(conn);
                let _ = events.send(StoreEvent::Resync);
                return;
            }
            Err(err) => {
                tracing::debug!(error = %err, "redis store still unreachable");
                *pending.lock().unwrap_or_else(|p| p.into_inner()) = reason(&err);
                pause = (pause * 2).min(OPEN_RETRY_MAX);
            }
        }
    }
}

/// Connects a client, bounded by the connect timeout (plus a little for the handshake).
async fn init(client: &Client, url: &str, config: &RedisConfig) -> Result<()> {
    let deadline = config.connect_timeout + config.command_timeout;
    match tokio::time::timeout(deadline, client.init()).await {
        Ok(Ok(_task)) => Ok(()),
        Ok(Err(err)) => {
            quit(client.clone());
            Err(Error::Unavailable {
                backend: "redis",
                message: format!("connect {url}: {}", err.details()),
            })
        }
        Err(_) => {
            quit(client.clone());
            Err(Error::Unavailable {
                backend: "redis",
                message: format!("connect {url}: timed out after {deadline:?}"),
            })
        }
    }
}

/// Closes a client in the background (bounded), if a runtime is still around.
fn quit(client: Client) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(DEFAULT_COMMAND_TIMEOUT, client.quit()).await;
        });
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(task) = &self.connecting {
            task.abort();
        }
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn get(&self, name: &str) -> Result<Option<McpDefinition>> {
        self.conn()?.get(name).await
    }

    /// Corrupt entries are skipped with a warning (see [`Store::get`] for the error).
    async fn list(&self) -> Result<Vec<McpDefinition>> {
        self.conn()?.list().await
    }

    async fn create(&self, def: McpDefinition) -> Result<McpDefinition> {
        self.conn()?.create(def).await
    }

    async fn update_if(&self, def: McpDefinition, expected: Option<u64>) -> Result<McpDefinition> {
        self.conn()?.update(def, expected).await
    }

    async fn delete_if(&self, name: &str, expected: Option<u64>) -> Result<u64> {
        self.conn()?.delete(Kind::Definition, name, expected).await
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupDefinition>> {
        self.conn()?.get(name).await
    }

    async fn list_groups(&self) -> Result<Vec<GroupDefinition>> {
        self.conn()?.list().await
    }

    async fn create_group(&self, group: GroupDefinition) -> Result<GroupDefinition> {
        self.conn()?.create(group).await
    }

    async fn update_group_if(
        &self,
        group: GroupDefinition,
        expected: Option<u64>,
    ) -> Result<GroupDefinition> {
        self.conn()?.update(group, expected).await
    }

    async fn delete_group_if(&self, name: &str, expected: Option<u64>) -> Result<u64> {
        self.conn()?.delete(Kind::Group, name, expected).await
    }

    async fn version(&self) -> Result<u64> {
        self.conn()?.version().await
    }

    async fn save_status(&self, name: &str, status: &McpStatus) -> Result<()> {
        self.conn()?.save_status(name, status).await
    }

    async fn load_status(&self, name: &str) -> Result<Option<McpStatus>> {
        self.conn()?.load_status(name).await
    }

    fn watch(&self) -> WatchStream {
        broadcast_feed(self.events.subscribe())
    }

    async fn ping(&self) -> Result<()> {
        self.conn()?.ping().await
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
