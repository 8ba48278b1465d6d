//! Forwarding a client's request as is: the caller learns the upstream id first (to
//! translate a later `notifications/cancelled`), the request keeps its unknown members,
//! and a cancelled forward can be withdrawn.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_types::mcp::methods;
use mcp_types::{Message, Request, RequestId, Response};

use super::{HOUSEKEEPING_TIMEOUT, McpClient, PendingGuard};
use crate::Result;
use crate::error::Error;
use crate::transport::{CloseReason, closed};

impl McpClient {
    /// Allocates a fresh request id of this connection, for [`McpClient::forward`].
    pub fn next_request_id(&self) -> RequestId {
        RequestId::number(self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends `request` (whose id must come from [`McpClient::next_request_id`]) and waits
    /// for its response, up to `timeout`. `method`, `params` and unknown top-level members
    /// go out unchanged. On expiry the upstream gets `notifications/cancelled`.
    ///
    /// Dropping the returned future forgets the request: a late response is discarded.
    pub async fn forward(&self, request: Request, timeout: Duration) -> Result<Response> {
        let id = request.id.clone();
        let method = request.method.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut state = self.state();
            if let Some(reason) = &state.closed {
                return Err(closed(self.target(), reason.clone()));
            }
            state.pending.insert(id.clone(), tx);
        }
        let _pending = PendingGuard {
            shared: &self.shared,
            id: &id,
        };
        let exchange = async {
            self.shared
                .transport
                .send(Message::Request(request))
                .await?;
            match rx.await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(reason)) => Err(closed(self.target(), reason)),
                Err(_) => Err(closed(self.target(), CloseReason::local())),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => {
                if method != methods::INITIALIZE && !self.is_closed() {
                    let reason = format!("timed out after {}", crate::error::fmt_duration(timeout));
                    let _ = self.cancel_request(&id, &reason).await;
                }
                Err(Error::Timeout {
                    target: self.target().clone(),
                    what: method,
                    after: timeout,
                })
            }
        }
    }

    /// Tells the upstream to stop working on request `id` (`notifications/cancelled`) and
    /// forgets it, so a late response is discarded. Bounded by a short deadline.
    pub async fn cancel_request(&self, id: &RequestId, reason: &str) -> Result<()> {
        self.state().pending.remove(id);
        let params = serde_json::json!({ "requestId": id, "reason": reason });
        let cancel = Message::notification(methods::CANCELLED, Some(&params));
        match tokio::time::timeout(HOUSEKEEPING_TIMEOUT, self.shared.transport.send(cancel)).await {
            Ok(sent) => sent,
            Err(_) => Err(Error::Timeout {
                target: self.target().clone(),
                what: methods::CANCELLED.to_owned(),
                after: HOUSEKEEPING_TIMEOUT,
            }),
        }
    }

    /// Sends an arbitrary message (a notification or a response) as is.
    pub async fn send_raw(&self, msg: Message) -> Result<()> {
        self.shared.transport.send(msg).await
    }
}
