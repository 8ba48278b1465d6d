//! SSE streams of a streamable HTTP session: the answer stream of a POST and the GET
//! stream, both resumed with `Last-Event-ID` when they break (bounded attempts, honouring
//! the server's `retry:`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::StatusCode;
use http::header::ACCEPT;
use mcp_types::jsonrpc::{Payload, codes};
use mcp_types::{Message, RequestId};

use super::{Inner, LAST_EVENT_ID_HEADER};
use crate::net;

/// How one connection of a stream ended.
enum Ended {
    /// The awaited response came: the stream is done.
    Answered,
    /// The transport is closing.
    Cancelled,
    /// The server ended the stream, or the connection broke (with why).
    Lost(Option<String>),
}

/// Cursor of a stream across reconnections.
#[derive(Default)]
struct Cursor {
    last_event_id: Option<String>,
    retry: Option<Duration>,
}

/// Which stream this is.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// The answer stream of a POST; the id of the request it answers, if any.
    Post(Option<RequestId>),
    /// The GET stream for server-initiated messages.
    Get,
}

/// Reads an SSE stream until it is done, resuming it when it breaks. If a POST stream
/// cannot be resumed, its request gets an error response at once instead of waiting for
/// a timeout.
pub(super) async fn run(inner: Arc<Inner>, first: reqwest::Response, origin: Origin) {
    let request_id = match &origin {
        Origin::Post(id) => id.clone(),
        Origin::Get => None,
    };
    let is_get = matches!(origin, Origin::Get);
    let mut cursor = Cursor::default();
    let mut response = first;
    let mut failures = 0u32;
    loop {
        let (ended, got_events) = read(&inner, response, &mut cursor, request_id.as_ref()).await;
        let why = match ended {
            Ended::Answered | Ended::Cancelled => return,
            Ended::Lost(why) => why,
        };
        if got_events {
            failures = 0;
        }
        let why = why.unwrap_or_else(|| "the server ended the stream".to_owned());
        if cursor.last_event_id.is_none() && !is_get {
            return give_up(
                &inner,
                request_id,
                &format!("{why}, with no event id to resume from"),
            )
            .await;
        }
        response = loop {
            failures += 1;
            if failures > inner.limits.max_resume_attempts {
                let why = format!("{why}; resuming failed {} times", failures - 1);
                return give_up(&inner, request_id, &why).await;
            }
            let wait = cursor
                .retry
                .unwrap_or(inner.limits.resume_delay)
                .min(inner.limits.max_resume_delay);
            tracing::debug!(upstream = %inner.target.name, reason = %why, last_event_id = ?cursor.last_event_id, ?wait, "resuming sse stream");
            tokio::select! {
                () = inner.cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match get(&inner, cursor.last_event_id.as_deref()).await {
                Get::Stream(r) => break r,
                Get::Retry(err) => {
                    tracing::debug!(upstream = %inner.target.name, error = %err, "resume attempt failed");
                }
                Get::Stop(err) => {
                    return give_up(&inner, request_id, &format!("{why}; {err}")).await;
                }
            }
        };
    }
}

/// Opens the GET stream for server-initiated messages; a 405 means the server has none.
pub(super) async fn open_get(inner: Arc<Inner>) {
    match get(&inner, None).await {
        Get::Stream(response) => run(inner, response, Origin::Get).await,
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
    let what = format!("GET {}", inner.url);
    let response = match net::send(req, inner.limits.connect_timeout, &inner.target, &what).await {
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
        return Get::Stop(inner.expire(&session).await.to_string());
    }
    if !status.is_success() {
        return Get::Retry(
            net::status_error(response, &inner.target, &what)
                .await
                .to_string(),
        );
    }
    if net::media_type(&response) != "text/event-stream" {
        return Get::Stop(format!("{what} did not answer with an event stream"));
    }
    Get::Stream(response)
}

/// Reads one connection's events. Returns how it ended and whether any event came.
async fn read(
    inner: &Arc<Inner>,
    response: reqwest::Response,
    cursor: &mut Cursor,
    request_id: Option<&RequestId>,
) -> (Ended, bool) {
    let mut events = net::events(response, inner.limits.max_message_bytes);
    let mut got_events = false;
    loop {
        let next = tokio::select! {
            () = inner.cancel.cancelled() => return (Ended::Cancelled, got_events),
            next = events.next() => next,
        };
        let event = match next {
            None => return (Ended::Lost(None), got_events),
            Some(Err(err)) => {
                return (
                    Ended::Lost(Some(format!("the stream broke: {err}"))),
                    got_events,
                );
            }
            Some(Ok(event)) => event,
        };
        got_events = true;
        if !event.id.is_empty() {
            cursor.last_event_id = Some(event.id.clone());
        }
        if let Some(retry) = event.retry {
            cursor.retry = Some(retry);
        }
        // Priming events carry an id and no data; other event types are not ours.
        if event.data.trim().is_empty() || !(event.event.is_empty() || event.event == "message") {
            continue;
        }
        let payload = match Payload::from_slice(event.data.as_bytes()) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(upstream = %inner.target.name, error = %err, "sse event is not JSON-RPC; skipped");
                continue;
            }
        };
        let mut answered = false;
        for msg in payload.into_messages() {
            if let (Message::Response(r), Some(id)) = (&msg, request_id) {
                answered |= &r.id == id;
            }
            inner.deliver(msg).await;
        }
        if answered {
            return (Ended::Answered, got_events);
        }
    }
}

/// A stream is lost for good: the request it was answering fails now.
async fn give_up(inner: &Arc<Inner>, request_id: Option<RequestId>, why: &str) {
    tracing::warn!(upstream = %inner.target.name, reason = %why, "sse stream lost");
    if let Some(id) = request_id {
        let message = format!("{}: response stream lost: {why}", inner.target);
        inner
            .deliver(Message::error(id, codes::CONNECTION_CLOSED, message))
            .await;
    }
}
