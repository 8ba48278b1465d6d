//! One request on a connection: registered in the correlation table, written by its own
//! task, answered through the table or — when the upstream answers the POST inline — read
//! from that answer by the same task.

use std::sync::Arc;
use std::time::Duration;

use mcp_types::mcp::methods;
use mcp_types::{Message, Request, RequestId, Response};
use tokio::sync::oneshot;

use super::router::{Answer, Forward, Relation};
use super::{McpClient, Sink};
use crate::Result;
use crate::error::Error;
use crate::transport::{CloseReason, Sent};

/// A request registered on a connection and not yet answered. Made by
/// [`McpClient::begin`], sent and awaited by [`Call::run`]. Dropping it forgets the
/// request: a late answer is discarded.
#[derive(Debug)]
pub struct Call {
    client: McpClient,
    id: RequestId,
    client_id: Option<RequestId>,
    request: Option<Request>,
    answer: Option<oneshot::Receiver<Answer>>,
    /// Answered without asking the upstream (a method its revision does not have).
    local: Option<Response>,
    done: bool,
}

impl McpClient {
    /// Registers `request` under a fresh id of this connection.
    ///
    /// With a `sink` it is a client's request being forwarded: its id and any
    /// `_meta.progressToken` are the client's; they are replaced by values unique on
    /// this connection (of the same JSON type) and restored on the way back, and what
    /// the upstream sends while serving it goes to `sink`. Without one it is the
    /// proxy's own request and its id is ignored.
    ///
    /// Fails when the connection is closed, or when a progress token cannot be read
    /// unambiguously (the request is refused rather than forwarded half-understood).
    pub fn begin(&self, request: Request, sink: Option<Arc<dyn Sink>>) -> Result<Call> {
        self.begin_as(request, sink, true)
    }

    /// [`McpClient::begin`]; `in_order: false` keeps a forwarded request out of the
    /// connection-wide order that claims messages the transport cannot place.
    pub(super) fn begin_as(
        &self,
        mut request: Request,
        sink: Option<Arc<dyn Sink>>,
        in_order: bool,
    ) -> Result<Call> {
        // A modern upstream: `_meta` filled in, removed methods answered here.
        if let Some(answer) = self.prepare_modern(&mut request)? {
            return Ok(Call {
                client: self.clone(),
                id: request.id.clone(),
                client_id: sink.is_some().then(|| request.id.clone()),
                request: Some(request),
                answer: None,
                local: Some(answer),
                done: true,
            });
        }
        let id = self.next_request_id();
        let client_id = std::mem::replace(&mut request.id, id.clone());
        let forward = match sink {
            None => None,
            Some(sink) => {
                let progress = self.rewrite_progress_token(&mut request)?;
                Some(Forward {
                    client_id: client_id.clone(),
                    sink,
                    progress,
                    in_order,
                })
            }
        };
        let is_forward = forward.is_some();
        let answer = self
            .shared
            .router
            .register(id.clone(), forward)
            .map_err(|reason| self.closed_error(reason))?;
        Ok(Call {
            client: self.clone(),
            id,
            client_id: is_forward.then_some(client_id),
            request: Some(request),
            answer: Some(answer),
            local: None,
            done: false,
        })
    }

    /// Replaces the client's `_meta.progressToken` with one unique on this connection;
    /// returns (ours, theirs).
    fn rewrite_progress_token(
        &self,
        request: &mut Request,
    ) -> Result<Option<(RequestId, RequestId)>> {
        let refuse = |e: mcp_types::params::Ambiguous| Error::BadRequest {
            target: self.target().clone(),
            message: e.to_string(),
        };
        let Some(original) =
            mcp_types::params::meta_progress_token(request.params.as_deref()).map_err(refuse)?
        else {
            return Ok(None);
        };
        let n = self.shared.router.next_token();
        let ours = match original {
            RequestId::Number(_) => RequestId::number(i64::try_from(n).unwrap_or(i64::MAX)),
            _ => RequestId::String(format!("mcp-proxy-{n}")),
        };
        if let Some(params) = &request.params {
            request.params =
                Some(mcp_types::params::set_meta_progress_token(params, &ours).map_err(refuse)?);
        }
        Ok(Some((ours, original)))
    }
}

impl Call {
    /// The id the upstream knows this request by (for `notifications/cancelled`).
    pub fn upstream_id(&self) -> &RequestId {
        &self.id
    }

    /// Sends the request and waits for its response, up to `timeout`; a forwarded
    /// request's response carries the client's id again. On expiry the upstream gets
    /// `notifications/cancelled` (except for `initialize`, which must not be cancelled).
    ///
    /// A JSON-RPC error from the upstream is a successful [`Response`]; `Err` means the
    /// request did not complete (timeout, connection lost).
    pub async fn run(mut self, timeout: Duration) -> Result<Response> {
        let request = self.request.take().expect("a call runs once");
        if let Some(mut answer) = self.local.take() {
            answer.id = request.id;
            return Ok(answer);
        }
        let method = request.method.clone();
        let result = match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(upstream = %self.client.target().name, id = %self.id, %method, "request timed out");
                if method != methods::INITIALIZE && !self.client.is_closed() {
                    let reason = format!("timed out after {}", crate::error::fmt_duration(timeout));
                    let _ = self.client.cancel_request(&self.id, &reason).await;
                }
                Err(Error::Timeout {
                    target: self.client.target().clone(),
                    what: method,
                    after: timeout,
                })
            }
        };
        self.finish();
        let mut response = result?;
        if let Some(client_id) = self.client_id.take() {
            response.id = client_id;
        }
        Ok(response)
    }

    async fn exchange(&mut self, request: Request) -> Result<Response> {
        let mut answer = self.answer.take().expect("a call is answered once");
        let router = self.client.shared.router.clone();
        let sent = self
            .client
            .shared
            .transport
            .exchange(Message::Request(request))
            .await;
        let sent = match sent {
            Ok(sent) => sent,
            // Found closed while writing: the request never left.
            Err(Error::Closed { target, reason }) => {
                return Err(Error::NotDelivered { target, reason });
            }
            Err(e) => return Err(e),
        };
        match sent {
            Sent::Accepted => self.wait(answer).await,
            Sent::Messages(messages) => {
                let mut mine = None;
                for msg in messages {
                    match msg {
                        Message::Response(r) if r.id == self.id => mine = Some(r),
                        other => router.route(other, Relation::Request(&self.id)),
                    }
                }
                match mine {
                    Some(response) => Ok(response),
                    None => self.wait(answer).await,
                }
            }
            Sent::Stream(mut stream) => loop {
                tokio::select! {
                    biased;
                    // Closed meanwhile, or answered on another stream.
                    settled = &mut answer => return self.settled(settled),
                    next = stream.next() => match next {
                        Some(Message::Response(r)) if r.id == self.id => return Ok(r),
                        Some(other) => router.route(other, Relation::Request(&self.id)),
                        None => return self.wait(answer).await,
                    },
                }
            },
        }
    }

    async fn wait(&self, answer: oneshot::Receiver<Answer>) -> Result<Response> {
        self.settled(answer.await)
    }

    fn settled(
        &self,
        settled: std::result::Result<Answer, oneshot::error::RecvError>,
    ) -> Result<Response> {
        match settled {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(reason)) => Err(self.client.closed_error(reason)),
            Err(_) => Err(self.client.closed_error(CloseReason::local())),
        }
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.client.shared.router.forget(&self.id);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish();
    }
}
