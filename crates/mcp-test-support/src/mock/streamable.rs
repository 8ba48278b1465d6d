//! The streamable HTTP side of the mock (`/mcp`).

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{Body, Fault, Shared, answer, full, lock, plain, sse_event, sse_response};

const SESSION: &str = "mcp-session-id";

pub(super) fn handle(state: &Shared, parts: &Parts, msg: Value) -> Response<Body> {
    let session = parts
        .headers
        .get(SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_initialize = msg["method"] == "initialize";
    if !is_initialize {
        match &session {
            None => return plain(StatusCode::BAD_REQUEST, "Mcp-Session-Id header is required"),
            Some(id) if !lock(state).sessions.contains_key(id) => {
                return plain(StatusCode::NOT_FOUND, "session not found");
            }
            Some(_) => {}
        }
    }
    match parts.method {
        Method::POST => post(state, msg, is_initialize),
        Method::GET => get(state, parts),
        Method::DELETE => {
            if let Some(id) = session {
                lock(state).sessions.remove(&id);
            }
            plain(StatusCode::OK, "")
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

fn post(state: &Shared, msg: Value, is_initialize: bool) -> Response<Body> {
    let Some(reply) = answer(&msg) else {
        return plain(StatusCode::ACCEPTED, "");
    };
    let fault = lock(state).fault;
    let mut response = if fault == Fault::JsonResponses {
        Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(full(reply.to_string()))
            .expect("valid response")
    } else {
        let (response, tx) = sse_response();
        let event_id = |n: u64| format!("ev-{n}");
        let mut state = lock(state);
        state.next_id += 1;
        let n = state.next_id;
        let is_call = msg["method"] == "tools/call";
        match fault {
            Fault::NeverAnswer if is_call => state.held.push(tx),
            Fault::CutStreamResumable if is_call => {
                let first = event_id(n);
                let _ = tx.try_send(Ok(Bytes::from(format!(
                    "id: {first}\nretry: 50\ndata: \n\n"
                ))));
                let data = reply.to_string();
                let _ = tx.try_send(Ok(Bytes::from(format!(
                    "event: message\nid: {first}-b\ndata: {}",
                    &data[..data.len() / 2]
                ))));
                cut_later(tx);
                state
                    .replay
                    .insert(first.clone(), (format!("{first}-b"), data));
            }
            Fault::CutStreamNoIds if is_call => {
                let data = reply.to_string();
                let _ = tx.try_send(Ok(Bytes::from(format!(
                    "event: message\ndata: {}",
                    &data[..data.len() / 2]
                ))));
                cut_later(tx);
            }
            _ if is_call && msg["params"]["name"] == "ask" => {
                ask(&mut state, tx, &msg, &reply, n);
            }
            _ => {
                if is_call {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "data": "working on it"}});
                    let _ = tx.try_send(Ok(sse_event(Some(&event_id(n * 10)), &note.to_string())));
                }
                let _ = tx.try_send(Ok(sse_event(
                    Some(&event_id(n * 10 + 1)),
                    &reply.to_string(),
                )));
            }
        }
        response
    };
    if is_initialize {
        let mut state = lock(state);
        state.next_id += 1;
        let id = format!("session-{}", state.next_id);
        state.sessions.insert(id.clone(), ());
        response
            .headers_mut()
            .insert(SESSION, id.parse().expect("visible ascii"));
    }
    response
}

/// No standalone GET stream (405), except to resume a cut stream with `Last-Event-ID`.
fn get(state: &Shared, parts: &Parts) -> Response<Body> {
    let last = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let Some(last) = last else {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "no standalone stream");
    };
    let Some((id, data)) = lock(state).replay.remove(last) else {
        return plain(StatusCode::BAD_REQUEST, "unknown event id");
    };
    let (response, tx) = sse_response();
    let _ = tx.try_send(Ok(sse_event(Some(&id), &data)));
    response
}

/// Breaks the connection once the head and the partial event have gone out.
fn cut_later(tx: tokio::sync::mpsc::Sender<super::Chunk>) {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let _ = tx.send(Err(std::io::Error::other("cut by the mock"))).await;
    });
}

/// `tools/call` of `ask` with `{"message": m, "wait_for": n}`: held until `n` asks are
/// waiting, then every waiting one gets, on its own stream, a log message naming its
/// `m` and then its answer (which servers that relate messages to requests do).
fn ask(
    state: &mut super::State,
    tx: tokio::sync::mpsc::Sender<super::Chunk>,
    msg: &Value,
    reply: &Value,
    n: u64,
) {
    let args = &msg["params"]["arguments"];
    let message = args["message"].as_str().unwrap_or_default().to_owned();
    let wait_for = usize::try_from(args["wait_for"].as_u64().unwrap_or(1)).unwrap_or(1);
    state.asks.push((tx, message, reply.clone(), n));
    if state.asks.len() < wait_for {
        return;
    }
    for (tx, message, reply, n) in state.asks.drain(..) {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "data": format!("asked: {message}")}});
        let _ = tx.try_send(Ok(sse_event(
            Some(&format!("ask-{n}-1")),
            &note.to_string(),
        )));
        let _ = tx.try_send(Ok(sse_event(
            Some(&format!("ask-{n}-2")),
            &reply.to_string(),
        )));
    }
}
