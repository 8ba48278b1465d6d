//! The routing task of a client: responses to their waiters, `ping` answered here, other
//! requests and notifications to the owner; on close, every waiter fails at once.

use std::sync::Arc;

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::methods;
use mcp_types::{Message, Outcome, RequestId, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ClientEvent, HOUSEKEEPING_TIMEOUT, Shared};
use crate::error::Error;
use crate::transport::{CloseKind, CloseReason, Events, TransportEvent};

/// Routes transport events: responses to their waiters, `ping` answered here, other
/// requests and notifications to the owner. On close, fails every waiter at once.
pub(super) async fn route(
    shared: Arc<Shared>,
    mut events: Events,
    out: mpsc::Sender<ClientEvent>,
    cancel: CancellationToken,
) {
    let target = shared.transport.target().clone();
    let reason = loop {
        let event = tokio::select! {
            () = cancel.cancelled() => break CloseReason::local(),
            event = events.recv() => event,
        };
        match event {
            None => {
                break CloseReason::new(CloseKind::StreamLost, "the transport stopped");
            }
            Some(TransportEvent::Closed(reason)) => break reason,
            Some(TransportEvent::Message(Message::Response(response))) => {
                let waiter = shared
                    .state
                    .lock()
                    .expect("client state lock")
                    .pending
                    .remove(&response.id);
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(Ok(response));
                    }
                    None => {
                        tracing::debug!(upstream = %target.name, id = %response.id, "response to no pending request (late or cancelled)");
                    }
                }
            }
            Some(TransportEvent::Message(Message::Request(request))) => {
                if request.method == methods::PING {
                    let pong = Outcome::Result(to_raw(&serde_json::json!({})));
                    if let Some(reason) = reply(&shared, request.id, pong).await {
                        break reason;
                    }
                    continue;
                }
                let (id, method) = (request.id.clone(), request.method.clone());
                match deliver(&out, ClientEvent::Request(request), &cancel).await {
                    Delivery::Done => {}
                    Delivery::Cancelled => break CloseReason::local(),
                    Delivery::NoOwner => {
                        let error = mcp_types::ErrorObject::new(
                            codes::METHOD_NOT_FOUND,
                            format!("{method} is not handled by this client"),
                        );
                        if let Some(reason) = reply(&shared, id, Outcome::Error(error)).await {
                            break reason;
                        }
                    }
                }
            }
            Some(TransportEvent::Message(Message::Notification(n))) => {
                if let Delivery::Cancelled =
                    deliver(&out, ClientEvent::Notification(n), &cancel).await
                {
                    break CloseReason::local();
                }
            }
        }
    };
    let reason = shared.fail_all(reason);
    let _ = deliver(&out, ClientEvent::Closed(reason), &cancel).await;
}

enum Delivery {
    Done,
    NoOwner,
    Cancelled,
}

/// Hands an event to the owner, waiting for room, unless the client is dropped meanwhile.
async fn deliver(
    out: &mpsc::Sender<ClientEvent>,
    event: ClientEvent,
    cancel: &CancellationToken,
) -> Delivery {
    tokio::select! {
        () = cancel.cancelled() => Delivery::Cancelled,
        sent = out.send(event) => match sent {
            Ok(()) => Delivery::Done,
            Err(_) => Delivery::NoOwner,
        },
    }
}

/// Answers a server request; returns the close reason when sending showed the
/// connection is over (the transport's own close event may be stuck behind us).
async fn reply(shared: &Shared, id: RequestId, outcome: Outcome) -> Option<CloseReason> {
    let msg = Message::Response(Response {
        id,
        outcome,
        extra: Extra::new(),
    });
    let send = shared.transport.send(msg);
    match tokio::time::timeout(HOUSEKEEPING_TIMEOUT, send).await {
        Ok(Err(Error::Closed { reason, .. })) => Some(reason),
        Ok(Err(err @ Error::SessionExpired { .. })) => {
            Some(CloseReason::new(CloseKind::SessionExpired, err.to_string()))
        }
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "could not answer a server request");
            None
        }
        Ok(Ok(())) | Err(_) => None,
    }
}
