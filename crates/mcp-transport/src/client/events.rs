//! A [`Handler`] that hands what no request claims to a bounded channel, for owners that
//! prefer to receive events (the proxy's primary connections, tests, examples).

use std::sync::{Arc, Mutex};

use mcp_types::{Message, Notification, Request};
use tokio::sync::mpsc;

use super::{Handler, Refused};
use crate::transport::CloseReason;

/// What the upstream sends that is not a response to one of our requests.
#[derive(Debug)]
pub enum ClientEvent {
    /// A server→client request (sampling, elicitation, roots, …); answer it with
    /// [`super::McpClient::respond`]. `ping` is answered by the client itself.
    Request(Request),
    /// A notification (progress, logging, list_changed, …).
    Notification(Notification),
    /// The connection is over; nothing follows. Every pending request has failed.
    Closed(CloseReason),
}

/// The receiving half of an [`super::McpClient`] connected with
/// [`super::McpClient::connect`]. Drain it: it is bounded, and what does not fit is
/// dropped with a warning (the connection's reader never waits for its owner).
pub type ClientEvents = mpsc::Receiver<ClientEvent>;

/// A [`Handler`] that hands what no request claims to a channel of `capacity` events,
/// and its receiving end.
pub fn event_channel(capacity: usize) -> (Arc<dyn Handler>, ClientEvents) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Arc::new(ChannelHandler(Mutex::new(Some(tx)))), rx)
}

#[derive(Debug)]
struct ChannelHandler(Mutex<Option<mpsc::Sender<ClientEvent>>>);

impl ChannelHandler {
    fn sender(&self) -> Option<mpsc::Sender<ClientEvent>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Handler for ChannelHandler {
    fn unrelated(&self, msg: Message) -> Result<(), Refused> {
        let method = msg.method().unwrap_or_default().to_owned();
        let refuse = |why: &str| {
            Err(Refused(format!(
                "{method} is not handled by this client: {why}"
            )))
        };
        let Some(tx) = self.sender() else {
            return refuse("it is gone");
        };
        let event = match msg {
            Message::Request(r) => ClientEvent::Request(r),
            Message::Notification(n) => ClientEvent::Notification(n),
            Message::Response(_) => return Ok(()),
        };
        let is_request = matches!(event, ClientEvent::Request(_));
        match tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%method, "upstream message dropped: the owner is not keeping up");
                if is_request {
                    refuse("it is busy")
                } else {
                    Ok(())
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => refuse("it is gone"),
        }
    }

    fn closed(&self, reason: &CloseReason) {
        // The last event: it must arrive even when the channel is full right now.
        let Some(tx) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let event = ClientEvent::Closed(reason.clone());
        if let Err(mpsc::error::TrySendError::Full(event)) = tx.try_send(event)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = tx.send(event).await;
            });
        }
    }
}
