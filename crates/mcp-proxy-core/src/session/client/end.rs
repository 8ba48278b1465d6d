//! Ending a client session: by the client, or because its upstream side is gone.

use std::sync::Arc;

use mcp_types::Message;
use mcp_types::jsonrpc::codes;
use tracing::debug;

use super::{ClientSession, Phase};
use crate::session::Outbound;

impl ClientSession {
    /// The client is done (DELETE, or its legacy SSE stream is gone): the upstream is told
    /// to stop what it was doing for it, and the session ends.
    pub async fn close(self: &Arc<Self>) {
        self.terminate(None).await;
    }

    /// Ends the session. With a `reason` (the upstream died, was removed, …) every request
    /// in flight first gets a JSON-RPC error saying it; without one (the client left) the
    /// upstream gets `notifications/cancelled` for them.
    pub(crate) async fn terminate(self: &Arc<Self>, reason: Option<String>) {
        let (inflight, out, link, subscriptions) = {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                return;
            }
            state.phase = Phase::Ended;
            state.server_requests.clear();
            (
                std::mem::take(&mut state.inflight),
                state.out.take(),
                state.link.take(),
                std::mem::take(&mut state.subscriptions),
            )
        };
        debug!(session = %self.id, upstream = %self.upstream.name(), reason = reason.as_deref().unwrap_or("closed by the client"), "client session ended");
        for entry in inflight.values() {
            entry.token.cancel();
        }
        if let (Some(reason), Some(out)) = (&reason, &out) {
            for id in inflight.keys() {
                let error = Message::error(id.clone(), codes::CONNECTION_CLOSED, reason.clone());
                let _ = out
                    .send(Outbound {
                        message: error,
                        related: Some(id.clone()),
                    })
                    .await;
            }
        }
        drop(out);
        if let Some(link) = link {
            for entry in inflight.values() {
                if let Some(t) = &entry.progress {
                    link.forget_progress(t);
                }
            }
            let unsubscribe: Vec<String> = subscriptions
                .into_iter()
                .filter(|uri| link.is_shared() && link.unsubscribe(uri))
                .collect();
            let me = self.clone();
            self.spawn_owned(async move {
                if link.is_alive() {
                    for uri in unsubscribe {
                        let params = mcp_types::jsonrpc::to_raw(&serde_json::json!({ "uri": uri }));
                        let _ = link
                            .client()
                            .request_with_timeout(
                                crate::session::rewrite::UNSUBSCRIBE,
                                Some(params),
                                crate::session::SEND_TIMEOUT,
                            )
                            .await;
                    }
                    for entry in inflight.into_values() {
                        let reason = "the client session ended";
                        let _ = link
                            .client()
                            .cancel_request(&entry.upstream_id, reason)
                            .await;
                    }
                }
                link.detach(&me);
            });
        }
        self.cancel.cancel();
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}
