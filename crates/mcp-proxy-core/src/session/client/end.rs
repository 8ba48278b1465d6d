//! Ending a client session: by the client, or because its upstream side is gone.

use std::sync::Arc;

use mcp_types::mcp::methods;
use mcp_types::{Message, RequestId};
use tracing::debug;

use super::{ClientSession, Ended, Phase};
use crate::session::Outbound;

impl ClientSession {
    /// The client is done (DELETE, or its legacy SSE stream is gone): the upstream is told
    /// to stop what it was doing for it, and the session ends.
    pub fn close(self: &Arc<Self>) {
        self.end(Ended::Client);
    }

    /// Ends the session. When the session ends for another reason than the client
    /// leaving (the upstream died, was removed, …) every request in flight first gets a
    /// JSON-RPC error saying why; otherwise no answer is due. Either way the upstream gets
    /// `notifications/cancelled` for them (in the background). Never waits.
    pub(crate) fn end(self: &Arc<Self>, ended: Ended) {
        let reason = ended.error();
        let keep = self.replica.keeps_upstream(&ended);
        let (inflight, outlet, links, subscriptions, asked) = {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                return;
            }
            state.phase = Phase::Ended;
            let asked: Vec<(String, RequestId)> = state
                .server_requests
                .drain()
                .map(|(_, target)| target)
                .collect();
            (
                std::mem::take(&mut state.inflight),
                state.outlet.take(),
                std::mem::take(&mut state.links),
                std::mem::take(&mut state.subscriptions),
                asked,
            )
        };
        let why = reason
            .as_ref()
            .map_or("closed by the client", |e| e.message.as_str());
        debug!(session = %self.id, endpoint = %self.serves.name(), reason = why, "client session ended");
        self.hub.metrics().client_session_ended(ended.metric());
        // The errors go out before the requests' own tasks are cancelled: a cancelled
        // task answers nothing and its HTTP stream may end at once, so the error must
        // already be on it.
        if let (Some(reason), Some(outlet)) = (&reason, &outlet) {
            for id in inflight.keys() {
                let error = Message::Response(mcp_types::Response {
                    id: id.clone(),
                    outcome: mcp_types::Outcome::Error(reason.clone()),
                    extra: mcp_types::jsonrpc::Extra::new(),
                });
                outlet.send(Outbound {
                    message: error,
                    related: Some(id.clone()),
                });
            }
        }
        for entry in inflight.values() {
            entry.token.cancel();
        }
        let mut cancels: Vec<(String, RequestId)> =
            inflight.into_values().filter_map(|e| e.upstream).collect();
        for (member, link) in links {
            let unsubscribe: Vec<String> = subscriptions
                .iter()
                .filter(|(m, uri)| *m == member && link.is_shared() && link.unsubscribe(uri))
                .map(|(_, uri)| uri.clone())
                .collect();
            let mine: Vec<RequestId> = cancels
                .iter()
                .filter(|(m, _)| *m == member)
                .map(|(_, id)| id.clone())
                .collect();
            cancels.retain(|(m, _)| *m != member);
            // What the upstream asked this client and got no answer to: answered (after
            // the cancellations, so it stops first), so it does not wait for a client
            // that is gone.
            let unanswered: Vec<RequestId> = asked
                .iter()
                .filter(|(m, _)| *m == member)
                .map(|(_, id)| id.clone())
                .collect();
            let me = self.clone();
            self.hub.spawn_cleanup(async move {
                if link.is_alive() {
                    for uri in unsubscribe {
                        let params = mcp_types::jsonrpc::to_raw(&serde_json::json!({ "uri": uri }));
                        let _ = link
                            .client()
                            .request_with_timeout(
                                methods::RESOURCES_UNSUBSCRIBE,
                                Some(params),
                                crate::session::SEND_TIMEOUT,
                            )
                            .await;
                    }
                    for id in mine {
                        let _ = link
                            .client()
                            .cancel_request(&id, "the client session ended")
                            .await;
                    }
                    for id in unanswered {
                        link.forget_server_request(&id);
                        let error = mcp_types::ErrorObject::new(
                            mcp_types::jsonrpc::codes::INTERNAL_ERROR,
                            "the client session ended before answering",
                        );
                        let send = link.client().respond(id, mcp_types::Outcome::Error(error));
                        let _ = tokio::time::timeout(crate::session::SEND_TIMEOUT, send).await;
                    }
                }
                if keep {
                    link.release(&me);
                } else {
                    link.detach(&me);
                }
            });
        }
        self.cancel.cancel();
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(outlet) = outlet {
            outlet.ended();
        }
    }
}
