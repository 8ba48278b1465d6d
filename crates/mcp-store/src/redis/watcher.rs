//! The change feed of the Redis back-end: one task per store reads the `{prefix}events`
//! channel on a dedicated subscriber connection and fans events out to every
//! [`watch`](crate::Store::watch) stream.

use std::time::Duration;

use fred::prelude::{Client, ClientLike, EventInterface, Options, PubsubInterface};
use fred::types::Message;
use mcp_types::{GroupDefinition, McpDefinition};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::conn::Conn;
use super::keys::{Event, Op};
use crate::{Error, Kind, Result, StoreEvent};

/// Pause between attempts to re-subscribe while the connection is up but SUBSCRIBE fails.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// Everything the watcher task needs.
#[derive(Debug)]
pub(crate) struct Watcher {
    pub(crate) subscriber: Client,
    pub(crate) conn: Conn,
    pub(crate) channel: String,
    pub(crate) timeout: Duration,
    pub(crate) events: broadcast::Sender<StoreEvent>,
}

impl Watcher {
    /// Subscribes once (so that events are seen as soon as `connect` returns), then spawns
    /// the task that forwards events and re-subscribes after every reconnect.
    ///
    /// Call after the subscriber client is connected.
    pub(crate) async fn spawn(self) -> Result<JoinHandle<()>> {
        // Both receivers exist before SUBSCRIBE, so no message and no reconnect is missed.
        let messages = self.subscriber.message_rx();
        let reconnects = self.subscriber.reconnect_rx();
        self.subscribe().await?;
        Ok(tokio::spawn(self.run(messages, reconnects)))
    }

    async fn run(
        self,
        mut messages: broadcast::Receiver<Message>,
        mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    ) {
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Ok(message) => self.on_message(&message).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "redis event subscription lagged, asking for a resync");
                        self.send(StoreEvent::Resync);
                    }
                    Err(RecvError::Closed) => break,
                },
                reconnect = reconnects.recv() => match reconnect {
                    Ok(_) | Err(RecvError::Lagged(_)) => self.on_reconnect().await,
                    Err(RecvError::Closed) => break,
                },
            }
        }
        tracing::debug!(channel = %self.channel, "redis event watcher stopped");
    }

    /// The subscription is gone with the old connection: subscribe again, then tell
    /// consumers that they may have missed changes.
    async fn on_reconnect(&self) {
        loop {
            match self.subscribe().await {
                Ok(()) => {
                    tracing::info!(channel = %self.channel, "redis event subscription re-established");
                    self.send(StoreEvent::Resync);
                    return;
                }
                // The next reconnect event brings us back here.
                Err(err) if !self.subscriber.is_connected() => {
                    tracing::warn!(channel = %self.channel, error = %err, "redis re-subscribe failed, waiting for reconnect");
                    return;
                }
                Err(err) => {
                    tracing::warn!(channel = %self.channel, error = %err, "redis re-subscribe failed, retrying");
                    tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                }
            }
        }
    }

    async fn subscribe(&self) -> Result<()> {
        let options = Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(self.timeout),
            ..Options::default()
        };
        let with = self.subscriber.with_options(&options);
        let outcome =
            tokio::time::timeout(self.timeout, with.subscribe(self.channel.as_str())).await;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Error::Unavailable {
                backend: "redis",
                message: format!("subscribe {:?}: {}", self.channel, err.details()),
            }),
            Err(_) => Err(Error::Unavailable {
                backend: "redis",
                message: format!(
                    "subscribe {:?}: timed out after {:?}",
                    self.channel, self.timeout
                ),
            }),
        }
    }

    async fn on_message(&self, message: &Message) {
        if *message.channel != *self.channel {
            return;
        }
        let Some(event) = message.value.as_str().and_then(|text| Event::decode(&text)) else {
            tracing::warn!(channel = %self.channel, "ignoring undecodable redis event");
            return;
        };
        match event.op {
            Op::Deleted => self.send(StoreEvent::Deleted {
                name: event.name,
                version: event.version,
            }),
            Op::GroupDeleted => self.send(StoreEvent::GroupDeleted {
                name: event.name,
                version: event.version,
            }),
            Op::Put => {
                let fetched = self.conn.get::<McpDefinition>(&event.name).await;
                self.send_put(
                    Kind::Definition,
                    &event.name,
                    fetched.map(|d| d.map(StoreEvent::Put)),
                );
            }
            Op::GroupPut => {
                let fetched = self.conn.get::<GroupDefinition>(&event.name).await;
                self.send_put(
                    Kind::Group,
                    &event.name,
                    fetched.map(|g| g.map(StoreEvent::GroupPut)),
                );
            }
        }
    }

    /// Sends the put of what was fetched after a `put` event.
    fn send_put(&self, kind: Kind, name: &str, fetched: Result<Option<StoreEvent>>) {
        match fetched {
            Ok(Some(event)) => self.send(event),
            // Deleted since: its own event follows (or came first).
            Ok(None) => {}
            Err(err) if err.is_retryable() => {
                tracing::warn!(%kind, %name, error = %err, "fetching a changed value failed, asking for a resync");
                self.send(StoreEvent::Resync);
            }
            Err(err) => {
                tracing::warn!(%kind, %name, error = %err, "ignoring a change to an unreadable value");
            }
        }
    }

    fn send(&self, event: StoreEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}
