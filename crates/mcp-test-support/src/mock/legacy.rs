//! The legacy HTTP+SSE side of the mock (`GET /sse`, `POST /message?sessionId=`).

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::Value;

use super::{Body, Fault, Shared, answer, lock, plain, sse_event, sse_response};

pub(super) fn open(state: &Shared) -> Response<Body> {
    let (response, tx) = sse_response();
    let mut state = lock(state);
    state.next_id += 1;
    let id = format!("legacy-{}", state.next_id);
    let endpoint = format!("event: endpoint\ndata: /message?sessionId={id}\n\n");
    let _ = tx.try_send(Ok(Bytes::from(endpoint)));
    state.legacy.insert(id, tx);
    response
}

pub(super) fn post(state: &Shared, parts: &Parts, msg: Value) -> Response<Body> {
    let query = parts.uri.query().unwrap_or_default();
    let Some(id) = query.strip_prefix("sessionId=") else {
        return plain(StatusCode::BAD_REQUEST, "sessionId is required");
    };
    let mut state = lock(state);
    let Some(tx) = state.legacy.get(id).cloned() else {
        return plain(StatusCode::NOT_FOUND, "unknown session");
    };
    if let Some(reply) = answer(&msg) {
        if state.fault == Fault::NeverAnswer && msg["method"] == "tools/call" {
            state.held.push(tx);
        } else {
            let _ = tx.try_send(Ok(sse_event(None, &reply.to_string())));
        }
    }
    plain(StatusCode::ACCEPTED, "Accepted")
}
