//! Forwarding client requests upstream, and delivering what the upstream sends to the
//! client (server→client requests, notifications), with ids and tokens rewritten.

use std::sync::Arc;

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::methods;
use mcp_types::{Message, Notification, Outcome, Request, RequestId};
use serde_json::Value;

use super::{ClientSession, Inflight};
use crate::session::link::Link;
use crate::session::{Outbound, rewrite};

impl ClientSession {
    pub(in crate::session) fn forward(self: &Arc<Self>, mut req: Request) {
        let def = self.upstream.definition();
        if req.method == methods::TOOLS_CALL
            && def.tool_filter.is_some()
            && let Some(tool) = rewrite::param_name(req.params.as_deref())
            && !def.permits_tool(&tool)
        {
            let msg = format!("tool {tool:?} is blocked by the proxy's tool filter");
            let error = Message::error(req.id.clone(), codes::INVALID_PARAMS, msg);
            return self.spawn_emit(error, Some(req.id));
        }
        let client_id = req.id.clone();
        let token = self.cancel.child_token();
        let mut subscribed: Option<String> = None;
        let link = {
            let mut state = self.state();
            let Some(link) = state.link.clone() else {
                return;
            };
            if state.inflight.contains_key(&client_id) {
                drop(state);
                let msg = format!("request id {client_id} is already in use");
                let error = Message::error(client_id.clone(), codes::INVALID_REQUEST, msg);
                return self.spawn_emit(error, Some(client_id));
            }
            let original_token = rewrite::request_progress_token(req.params.as_deref());
            let progress = match (original_token, &req.params) {
                (Some(original), Some(params)) => {
                    let t = link.register_progress(self, original, client_id.clone());
                    req.params = Some(rewrite::set_request_progress_token(params, &t));
                    Some(t)
                }
                _ => None,
            };
            // Subscriptions on a shared connection are reference-counted: only the first
            // subscriber subscribes upstream and only the last one unsubscribes.
            let uri = if matches!(
                req.method.as_str(),
                rewrite::SUBSCRIBE | rewrite::UNSUBSCRIBE
            ) {
                rewrite::param_uri(req.params.as_deref())
            } else {
                None
            };
            subscribed.clone_from(&uri);
            let answered_here = match (req.method.as_str(), uri) {
                (rewrite::SUBSCRIBE, Some(uri)) => {
                    let fresh = state.subscriptions.insert(uri.clone());
                    fresh && !link.subscribe(&uri)
                }
                (rewrite::UNSUBSCRIBE, Some(uri)) => {
                    state.subscriptions.remove(&uri) && !link.unsubscribe(&uri)
                }
                _ => false,
            };
            if answered_here {
                drop(state);
                if let Some(t) = &progress {
                    link.forget_progress(t);
                }
                let ok = Message::result(client_id.clone(), &serde_json::json!({}));
                return self.spawn_emit(ok, Some(client_id));
            }
            state.next_seq += 1;
            let upstream_id = link.client().next_request_id();
            let entry = Inflight {
                upstream_id: upstream_id.clone(),
                seq: state.next_seq,
                token: token.clone(),
                progress,
            };
            state.inflight.insert(client_id.clone(), entry);
            req.id = upstream_id;
            link
        };
        let me = self.clone();
        // One span per client request: upstream, session, method and both ids; the
        // transport's work for it happens inside.
        let span = tracing::info_span!(
            "mcp_request",
            upstream = %self.upstream.name(),
            session = %self.id,
            method = %req.method,
            id = %client_id,
            upstream_id = %req.id,
        );
        let task = async move {
            let started = std::time::Instant::now();
            let method = req.method.clone();
            let timeout = me.upstream.definition().timeout;
            // Counted on the upstream until the answer is handed over, so a PUT retires
            // the old upstream only once this has finished.
            let inflight = me.upstream.track_inflight_owned();
            let result = tokio::select! {
                // Cancelled by the client (no answer is due) or the session ended.
                () = token.cancelled() => return,
                r = link.client().forward(req, timeout) => r,
            };
            let failed = !matches!(&result, Ok(r) if matches!(r.outcome, Outcome::Result(_)));
            {
                let mut state = me.state();
                if failed
                    && method == rewrite::SUBSCRIBE
                    && let Some(uri) = &subscribed
                    && state.subscriptions.remove(uri)
                {
                    // The upstream refused: this session does not hold the subscription.
                    link.unsubscribe(uri);
                }
                if !state.inflight.contains_key(&client_id) {
                    return; // the session ended and answered it
                }
            }
            let message = match result {
                Ok(mut response) => {
                    response.id = client_id.clone();
                    if method == methods::TOOLS_LIST
                        && let Outcome::Result(raw) = response.outcome
                    {
                        response.outcome =
                            Outcome::Result(rewrite::filter_tools(me.upstream.definition(), raw));
                    }
                    Message::Response(response)
                }
                Err(e) if e.is_timeout() => {
                    Message::error(client_id.clone(), codes::REQUEST_TIMEOUT, e.to_string())
                }
                Err(e) => {
                    Message::error(client_id.clone(), codes::CONNECTION_CLOSED, e.to_string())
                }
            };
            tracing::debug!(
                elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                failed,
                "answered"
            );
            let outbound = Outbound {
                message,
                related: Some(client_id),
            };
            link.deliver_response(me.clone(), outbound, Some(inflight))
                .await;
        };
        tokio::spawn(tracing::Instrument::instrument(task, span));
    }

    /// Ends request `id` (answered by the upstream): the channel to send its response on
    /// and its upstream progress token; `None` when the session ended and answered it.
    pub(in crate::session) fn finish_request(
        &self,
        id: &RequestId,
    ) -> Option<(tokio::sync::mpsc::Sender<Outbound>, Option<RequestId>)> {
        let mut state = self.state();
        let entry = state.inflight.remove(id)?;
        Some((state.out.clone()?, entry.progress))
    }

    /// The most recent client request still in flight (`seq`, id).
    pub(in crate::session) fn latest_inflight(&self) -> Option<(u64, RequestId)> {
        self.state()
            .inflight
            .iter()
            .max_by_key(|(_, e)| e.seq)
            .map(|(id, e)| (e.seq, id.clone()))
    }

    /// The client capability `method` needs and this client did not declare.
    pub(in crate::session) fn lacks_capability_for(&self, method: &str) -> Option<&'static str> {
        let needed = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            "roots/list" => "roots",
            _ => return None,
        };
        let state = self.state();
        state
            .capabilities
            .get(needed)
            .is_none_or(Value::is_null)
            .then_some(needed)
    }

    pub(in crate::session) fn is_subscribed(&self, uri: &str) -> bool {
        self.state().subscriptions.contains(uri)
    }

    pub(in crate::session) fn next_server_request_id(&self) -> RequestId {
        let mut state = self.state();
        state.next_server_id += 1;
        RequestId::String(format!("mcp-proxy-{}", state.next_server_id))
    }

    /// Sends a server→client request to the client under `client_id`.
    pub(in crate::session) async fn deliver_server_request(
        &self,
        link: Arc<Link>,
        mut request: Request,
        client_id: RequestId,
        related: Option<RequestId>,
    ) {
        let upstream_id = std::mem::replace(&mut request.id, client_id.clone());
        self.state().server_requests.insert(client_id, upstream_id);
        drop(link);
        self.emit(Message::Request(request), related).await;
    }

    /// Tells the client the upstream withdrew the request it knows as `client_id`.
    pub(in crate::session) async fn cancel_server_request(
        &self,
        client_id: &RequestId,
        reason: Option<String>,
    ) {
        self.state().server_requests.remove(client_id);
        let mut params = serde_json::json!({ "requestId": client_id });
        if let Some(r) = reason {
            params["reason"] = Value::String(r);
        }
        let n = Notification {
            method: methods::CANCELLED.to_owned(),
            params: Some(to_raw(&params)),
            extra: Extra::new(),
        };
        self.emit(Message::Notification(n), None).await;
    }

    pub(in crate::session) async fn emit_notification(
        &self,
        n: Notification,
        related: Option<RequestId>,
    ) {
        self.emit(Message::Notification(n), related).await;
    }

    pub(in crate::session) async fn emit(&self, message: Message, related: Option<RequestId>) {
        let out = self.state().out.clone();
        if let Some(out) = out {
            let _ = out.send(Outbound { message, related }).await;
        }
    }

    pub(in crate::session) fn spawn_emit(
        self: &Arc<Self>,
        message: Message,
        related: Option<RequestId>,
    ) {
        let me = self.clone();
        self.spawn_owned(async move { me.emit(message, related).await });
    }

    /// Spawns a task that stops when the hub shuts down.
    pub(in crate::session) fn spawn_owned(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.hub.inner.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = fut => {}
            }
        });
    }
}
