//! Forwarding one client request upstream and turning the outcome into the client's
//! answer.

use std::sync::Arc;

use mcp_transport::Sink;
use mcp_types::jsonrpc::codes;
use mcp_types::mcp::methods;
use mcp_types::{Message, Outcome, Request};
use tracing::Instrument;

use super::group::Route;
use super::{ClientSession, Inflight, Reply, Serves, input};
use crate::session::{rewrite, told};

impl ClientSession {
    /// Forwards `req` to the member it belongs to (the upstream itself, or a group's
    /// member) and awaits the answer. `None` when no answer is due (the client
    /// cancelled, or the session ended and answered it).
    pub(super) async fn forward(self: &Arc<Self>, mut req: Request) -> Option<Reply> {
        let id = req.id.clone();
        let refuse = |code: i64, message: String| {
            Some(Reply::new(Message::error(id.clone(), code, message)))
        };
        // Where it goes. What the proxy acts on must be read unambiguously, or the
        // request is refused: the upstream must never run something other than what was
        // checked.
        let member = match &self.serves {
            Serves::Upstream(upstream) => {
                let def = upstream.definition();
                if req.method == methods::TOOLS_CALL && def.tool_filter.is_some() {
                    match mcp_types::params::name(req.params.as_deref()) {
                        Ok(Some(tool)) if def.permits_tool(&tool) => {}
                        Ok(Some(tool)) => {
                            let msg =
                                format!("tool {tool:?} is blocked by the proxy's tool filter");
                            return refuse(codes::INVALID_PARAMS, msg);
                        }
                        Ok(None) => {
                            return refuse(
                                codes::INVALID_PARAMS,
                                "tools/call needs params.name".into(),
                            );
                        }
                        Err(e) => return refuse(codes::INVALID_PARAMS, format!("tools/call: {e}")),
                    }
                }
                upstream.name().to_owned()
            }
            Serves::Group(group) => match self.group_route(group, &mut req).await {
                Route::Answered(reply) => return Some(reply),
                Route::Member(member) => member,
            },
        };
        let Some(upstream) = self.hub.manager().upstream(&member) else {
            return refuse(
                codes::CONNECTION_CLOSED,
                format!("upstream {member:?} is not registered"),
            );
        };
        let is_subscription = matches!(
            req.method.as_str(),
            methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE
        );
        let uri = if is_subscription {
            match mcp_types::params::uri(req.params.as_deref()) {
                Ok(uri) => uri,
                Err(e) => return refuse(codes::INVALID_PARAMS, format!("{}: {e}", req.method)),
            }
        } else {
            None
        };
        let token = self.cancel.child_token();
        {
            let mut state = self.state();
            if state.inflight.contains_key(&id) {
                drop(state);
                return refuse(
                    codes::INVALID_REQUEST,
                    format!("request id {id} is already in use by a request in flight"),
                );
            }
            let limit = self.hub.limits().max_inflight;
            if state.inflight.len() >= limit {
                drop(state);
                return refuse(
                    codes::CONNECTION_CLOSED,
                    format!(
                        "too many requests in flight in this session (at most {limit}): wait for some to finish"
                    ),
                );
            }
            state.inflight.insert(
                id.clone(),
                Inflight {
                    upstream: None,
                    token: token.clone(),
                },
            );
        }
        // A group's member whose upstream session died is opened again on next use; a
        // request that met such a link before the proxy saw it die (it never left) goes
        // once more, on the fresh link.
        let method = req.method.clone();
        let mut spare = (self.is_group() && !is_subscription).then(|| req.clone());
        let mut next = Some(req);
        // A 2025 client's request to a modern upstream that may ask for input: the
        // request as the client sent it (retries are built from it), and the rounds so
        // far (see `input`).
        let mut original: Option<Request> = None;
        let mut rounds = 0;
        loop {
            let req = next.take().expect("a request to send");
            let link = match self.link_for(&member).await {
                Ok(link) => link,
                Err(e) => {
                    self.state().inflight.remove(&id);
                    let error = told::open_failed(&member, codes::CONNECTION_CLOSED, &e);
                    return Some(Reply::new(Message::Response(mcp_types::Response {
                        id,
                        outcome: Outcome::Error(error),
                        extra: mcp_types::jsonrpc::Extra::new(),
                    })));
                }
            };
            // Subscriptions on a shared connection are reference-counted: only the first
            // subscriber subscribes upstream and only the last one unsubscribes.
            let answered_here = {
                let mut state = self.state();
                match (method.as_str(), &uri) {
                    (methods::RESOURCES_SUBSCRIBE, Some(uri)) => {
                        let fresh = state.subscriptions.insert((member.clone(), uri.clone()));
                        fresh && !link.subscribe(uri)
                    }
                    (methods::RESOURCES_UNSUBSCRIBE, Some(uri)) => {
                        state.subscriptions.remove(&(member.clone(), uri.clone()))
                            && !link.unsubscribe(uri)
                    }
                    _ => false,
                }
            };
            if answered_here {
                self.state().inflight.remove(&id);
                let ok = Message::result(id, &serde_json::json!({}));
                return Some(Reply::new(ok));
            }
            // A client that sends requests is ready for everything else too.
            link.release_early();
            if original.is_none() && self.translates_input(&link, &method) {
                original = Some(req.clone());
            }
            let req = match self.for_link(&link, req).await {
                super::era::Shaped::Send(req) => req,
                super::era::Shaped::Answered(message) => {
                    self.state().inflight.remove(&id);
                    return Some(Reply::new(message));
                }
            };
            let call = match link
                .client()
                .begin(req, Some(self.clone() as Arc<dyn Sink>))
            {
                Ok(call) => call,
                Err(mcp_transport::Error::Closed { .. }) if spare.is_some() => {
                    link.close();
                    next = spare.take();
                    continue;
                }
                Err(e) => {
                    let mut state = self.state();
                    state.inflight.remove(&id);
                    if method == methods::RESOURCES_SUBSCRIBE
                        && let Some(uri) = &uri
                        && state.subscriptions.remove(&(member.clone(), uri.clone()))
                    {
                        link.unsubscribe(uri);
                    }
                    drop(state);
                    let error = told::request_failed(&member, &e);
                    return Some(Reply::new(Message::Response(mcp_types::Response {
                        id,
                        outcome: Outcome::Error(error),
                        extra: mcp_types::jsonrpc::Extra::new(),
                    })));
                }
            };
            let upstream_id = call.upstream_id().clone();
            if let Some(entry) = self.state().inflight.get_mut(&id) {
                entry.upstream = Some((member.clone(), upstream_id.clone()));
            }
            // Counted on the upstream until the answer is handed over, so a PUT retires
            // the old upstream only once this has finished.
            let inflight = upstream.track_inflight_owned();
            // One span per client request: endpoint, upstream, session, method and both
            // ids; the transport's work for it happens inside.
            let span = tracing::info_span!(
                "mcp_request",
                upstream = %member,
                endpoint = %self.serves.name(),
                session = %self.id,
                method = %method,
                id = %id,
                upstream_id = %upstream_id,
            );
            let exchange = async {
                let started = std::time::Instant::now();
                let result = tokio::select! {
                    biased;
                    r = upstream.exchange(&method, call) => Some(r),
                    // Cancelled by the client (no answer is due) or the session ended.
                    () = token.cancelled() => None,
                };
                tracing::debug!(
                    elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    answered = result.is_some(),
                    "answered"
                );
                result
            };
            let result = exchange.instrument(span).await;
            if matches!(result, Some(Err(mcp_transport::Error::NotDelivered { .. })))
                && spare.is_some()
            {
                link.close();
                next = spare.take();
                continue;
            }
            self.touch();
            // The upstream asks for input: the client is asked, and the request goes
            // again with the answers.
            if let (Some(Ok(response)), Some(original)) = (&result, &original)
                && let Some(asked) = Self::input_required(response)
            {
                let gathered = if rounds == input::MAX_ROUNDS {
                    input::Gathered::Failed(mcp_types::ErrorObject::new(
                        codes::INTERNAL_ERROR,
                        format!(
                            "upstream {member:?} still asked for input after {} rounds",
                            input::MAX_ROUNDS
                        ),
                    ))
                } else {
                    let wait = upstream.definition().timeout;
                    self.gather_inputs(&member, asked, original, &id, &token, wait)
                        .await
                };
                match gathered {
                    input::Gathered::Retry(params) => {
                        rounds += 1;
                        let mut retry = original.clone();
                        retry.params = Some(params);
                        if self.is_group() {
                            spare = Some(retry.clone());
                        }
                        next = Some(retry);
                        continue;
                    }
                    input::Gathered::Gone => {
                        self.state().inflight.remove(&id);
                        return None;
                    }
                    input::Gathered::Failed(error) => {
                        self.state().inflight.remove(&id)?;
                        return Some(Reply {
                            message: Message::Response(mcp_types::Response {
                                id,
                                outcome: Outcome::Error(error),
                                extra: mcp_types::jsonrpc::Extra::new(),
                            }),
                            _inflight: Some(inflight),
                        });
                    }
                }
            }
            {
                let mut state = self.state();
                let refused =
                    !matches!(&result, Some(Ok(r)) if matches!(r.outcome, Outcome::Result(_)));
                if refused
                    && method == methods::RESOURCES_SUBSCRIBE
                    && let Some(uri) = &uri
                    && state.subscriptions.remove(&(member.clone(), uri.clone()))
                {
                    // The upstream refused: this session does not hold the subscription.
                    link.unsubscribe(uri);
                }
                // Gone: cancelled (no answer is due), or the session ended and answered it.
                state.inflight.remove(&id)?;
            }
            let message = match result? {
                Ok(response) => {
                    let mut response = self.for_client(&link, response);
                    if method == methods::TOOLS_LIST
                        && let Outcome::Result(raw) = response.outcome
                    {
                        response.outcome =
                            Outcome::Result(rewrite::filter_tools(upstream.definition(), raw));
                    }
                    Message::Response(response)
                }
                Err(e) => Message::Response(mcp_types::Response {
                    id,
                    outcome: Outcome::Error(told::request_failed(&member, &e)),
                    extra: mcp_types::jsonrpc::Extra::new(),
                }),
            };
            return Some(Reply {
                message,
                _inflight: Some(inflight),
            });
        }
    }
}
