//! SSE streams of a streamable HTTP session: the answer stream of a POST (read by the
//! request's own task, see [`AnswerStream`]) and the GET stream (read by one task that
//! hands each message to the inbox). Both are resumed with `Last-Event-ID` when they
//! break (bounded attempts, honouring the server's `retry:`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::StatusCode;
use http::header::ACCEPT;
use mcp_types::jsonrpc::{Payload, codes};
use mcp_types::{Message, RequestId};

use super::{Inner, LAST_EVENT_ID_HEADER};
use crate::net;

type Events = BoxStream<'static, Result<eventsource_stream::Event, String>>;

/// The events of one answer: the stream a POST was answered with, or the GET stream.
/// [`AnswerStream::next`] yields its messages in order and resumes it when it breaks.
pub struct AnswerStream {
    inner: Arc<Inner>,
    events: Option<Events>,
    /// The request whose response ends the stream (`None`: the GET stream, or the answer
    /// to a notification).
    request_id: Option<RequestId>,
    is_get: bool,
    queue: VecDeque<Message>,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    failures: u32,
    got_events: bool,
    /// Why the last connection ended, until it is resumed.
    lost_why: Option<String>,
    done: bool,
}

impl fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerStream")
            .field("upstream", &self.inner.target.name)
            .field("request_id", &self.request_id)
            .field("last_event_id", &self.last_event_id)
            .finish_non_exhaustive()
    }
}

impl AnswerStream {
    pub(super) fn new(
        inner: Arc<Inner>,
        response: reqwest::Response,
        request_id: Option<RequestId>,
        is_get: bool,
    ) -> Self {
        let events = net::events(response, inner.limits.max_message_bytes);
        Self {
            inner,
            events: Some(events),
            request_id,
            is_get,
            queue: VecDeque::new(),
            last_event_id: None,
            retry: None,
            failures: 0,
            got_events: false,
            lost_why: None,
            done: false,
        }
    }

    /// The next message, in the order the server sent them. After the response to the
    /// awaited request, `None`. A POST stream that breaks and cannot be resumed yields an
    /// error response for its request first, so the caller never waits for a timeout;
    /// `None` also when the transport closes.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(msg) = self.queue.pop_front() {
                if let (Message::Response(r), Some(id)) = (&msg, &self.request_id)
                    && &r.id == id
                {
                    self.done = true;
                    self.queue.clear();
                }
                return Some(msg);
            }
            if self.done {
                return None;
            }
            let Some(events) = self.events.as_mut() else {
                if let Some(end) = self.resume().await {
                    return end;
                }
                continue;
            };
            let next = tokio::select! {
                () = self.inner.cancel.cancelled() => {
                    self.done = true;
                    return None;
                }
                next = events.next() => next,
            };
            match next {
                Some(Ok(event)) => self.on_event(event),
                Some(Err(err)) => self.lost(format!("the stream broke: {err}")),
                None => self.lost("the server ended the stream".into()),
            }
        }
    }

    fn on_event(&mut self, event: eventsource_stream::Event) {
        self.got_events = true;
        if !event.id.is_empty() {
            self.last_event_id = Some(event.id.clone());
        }
        if let Some(retry) = event.retry {
            self.retry = Some(retry);
        }
        // Priming events carry an id and no data; other event types are not ours.
        if event.data.trim().is_empty() || !(event.event.is_empty() || event.event == "message") {
            return;
        }
        match Payload::from_slice(event.data.as_bytes()) {
            Ok(p) => self.queue.extend(p.into_messages()),
            Err(err) => {
                tracing::warn!(upstream = %self.inner.target.name, error = %err, "sse event is not JSON-RPC; skipped");
            }
        }
    }

    /// The current connection ended; the next call to [`AnswerStream::resume`] decides.
    fn lost(&mut self, why: String) {
        self.events = None;
        if self.got_events {
            self.failures = 0;
        }
        self.got_events = false;
        tracing::debug!(upstream = %self.inner.target.name, reason = %why, last_event_id = ?self.last_event_id, "sse stream broke");
        self.queue.clear();
        self.lost_why = Some(why);
    }

    /// Opens the stream again after `Last-Event-ID`. `Some(end)` when it is over for good
    /// (the caller returns `end`); `None` when a new connection is in place.
    async fn resume(&mut self) -> Option<Option<Message>> {
        let why = self
            .lost_why
            .take()
            .unwrap_or_else(|| "the stream ended".into());
        if self.last_event_id.is_none() && !self.is_get {
            return Some(self.give_up(&format!("{why}, with no event id to resume from")));
        }
        loop {
            self.failures += 1;
            if self.failures > self.inner.limits.max_resume_attempts {
                let why = format!("{why}; resuming failed {} times", self.failures - 1);
                return Some(self.give_up(&why));
            }
            let wait = self
                .retry
                .unwrap_or(self.inner.limits.resume_delay)
                .min(self.inner.limits.max_resume_delay);
            tracing::debug!(upstream = %self.inner.target.name, reason = %why, last_event_id = ?self.last_event_id, ?wait, "resuming sse stream");
            tokio::select! {
                () = self.inner.cancel.cancelled() => {
                    self.done = true;
                    return Some(None);
                }
                () = tokio::time::sleep(wait) => {}
            }
            match get(&self.inner, self.last_event_id.as_deref()).await {
                Get::Stream(r) => {
                    self.events = Some(net::events(r, self.inner.limits.max_message_bytes));
                    return None;
                }
                Get::Retry(err) => {
                    tracing::debug!(upstream = %self.inner.target.name, error = %err, "resume attempt failed");
                }
                Get::Stop(err) => return Some(self.give_up(&format!("{why}; {err}"))),
            }
        }
    }

    /// The stream is lost for good: the request it was answering fails now.
    fn give_up(&mut self, why: &str) -> Option<Message> {
        self.done = true;
        // Told as if the server had answered, so it reaches the client as it is: the
        // reason (URLs, statuses, transport errors) stays in the log, under a reference.
        let reference = format!("{:08x}", rand::random::<u32>());
        tracing::warn!(upstream = %self.inner.target.name, reference = %reference, reason = %why, "sse stream lost");
        let id = self.request_id.clone()?;
        let error = mcp_types::ErrorObject {
            code: codes::CONNECTION_CLOSED,
            message: format!(
                "{}: response stream lost and not resumed (ref {reference})",
                self.inner.target
            ),
            data: Some(mcp_types::jsonrpc::to_raw(
                &serde_json::json!({ "ref": reference }),
            )),
        };
        Some(Message::Response(mcp_types::Response {
            id,
            outcome: mcp_types::Outcome::Error(error),
            extra: mcp_types::jsonrpc::Extra::new(),
        }))
    }
}

/// Hands every message of `stream` to the inbox until it is over (the GET stream, or the
/// event-stream answer to a notification or response).
pub(super) async fn drain(mut stream: AnswerStream) {
    while let Some(msg) = stream.next().await {
        stream.inner.inbox.message(msg);
    }
}

/// Opens the GET stream for server-initiated messages; a 405 means the server has none.
pub(super) async fn open_get(inner: Arc<Inner>) {
    match get(&inner, None).await {
        Get::Stream(response) => drain(AnswerStream::new(inner, response, None, true)).await,
        Get::Retry(err) | Get::Stop(err) => {
            tracing::debug!(upstream = %inner.target.name, error = %err, "no GET stream");
        }
    }
}

enum Get {
    Stream(reqwest::Response),
    /// Worth another attempt.
    Retry(String),
    /// Not worth another attempt (405, session expired, closing).
    Stop(String),
}

async fn get(inner: &Arc<Inner>, last_event_id: Option<&str>) -> Get {
    if inner.cancel.is_cancelled() {
        return Get::Stop("the transport is closing".into());
    }
    let (mut req, session) = inner.request(reqwest::Method::GET, true);
    req = req.header(ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header(LAST_EVENT_ID_HEADER, id);
    }
    let what = net::What("GET", &inner.url);
    let response = match net::send(req, inner.limits.connect_timeout, &inner.target, what).await {
        Ok(r) => r,
        Err(err) => return Get::Retry(err.to_string()),
    };
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return Get::Stop(format!("{what} returned 405 (no server stream)"));
    }
    if status == StatusCode::NOT_FOUND
        && let Some(session) = session
    {
        return Get::Stop(inner.expire(&session).to_string());
    }
    if status == StatusCode::BAD_REQUEST
        && let Some(session) = &session
        && inner.session_refused(session).await
    {
        return Get::Stop(inner.expire_with(session, 400).to_string());
    }
    if !status.is_success() {
        return Get::Retry(
            net::status_error(response, &inner.target, &what.to_string())
                .await
                .to_string(),
        );
    }
    if net::media_type(&response) != "text/event-stream" {
        return Get::Stop(format!("{what} did not answer with an event stream"));
    }
    Get::Stream(response)
}
