//! Input-required translation for a 2025 client in front of a 2026-07-28 upstream.
//!
//! A modern upstream asks for input by answering `tools/call`, `prompts/get` or
//! `resources/read` with `resultType: "input_required"`: `inputRequests` (a map from a
//! key to an `elicitation/create`, `sampling/createMessage` or `roots/list` request)
//! and/or an opaque `requestState`. A 2025 client cannot read that result, but it takes
//! server→client requests. So the session asks the client each input request as a real
//! request (under an id of its own, on the stream of the client's request), waits for
//! the answers, and sends the original request again, under a new upstream id, with
//! `inputResponses` (the answers by key) and the `requestState` echoed as it came. The
//! client sees one ordinary answer.
//!
//! Bounds and refusals:
//! - at most [`MAX_ROUNDS`] retries; an upstream still asking after that fails the call;
//! - the answers of a round are awaited at most the definition's `timeout` (the same
//!   deadline a forwarded request has); the client is told to cancel what it did not
//!   answer;
//! - an input request the client did not declare the capability for is never asked: the
//!   call fails with `-32021` and `data.requiredCapabilities` (the upstream broke the
//!   revision's rule; nobody behind the proxy could answer it);
//! - a client that answers an input request with an error fails the call with that error
//!   (the revision has no way to hand an error back in `inputResponses`);
//! - the client cancelling its request, or the session ending, stops the rounds: what
//!   was asked is withdrawn and no retry goes upstream.

use std::sync::Arc;
use std::time::Duration;

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::{methods, modern};
use mcp_types::params::Members;
use mcp_types::{ErrorObject, Message, Notification, Outcome, Request, RequestId, Response};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::ClientSession;
use crate::session::upstream_session::UpstreamSession;

/// Most retries of one client request with `inputResponses` (rounds of questions).
pub(super) const MAX_ROUNDS: usize = 8;

/// The methods that may answer `input_required`.
const ASKING: &[&str] = &[
    methods::TOOLS_CALL,
    methods::PROMPTS_GET,
    methods::RESOURCES_READ,
];

/// A modern upstream's `input_required` answer.
#[derive(Debug)]
pub(super) struct InputRequired {
    /// `inputRequests`, in key order: (key, method, params).
    requests: Vec<(String, String, Option<Box<RawValue>>)>,
    /// `requestState`, echoed on the retry.
    state: Option<Box<RawValue>>,
}

/// What a round of questions came to.
#[derive(Debug)]
pub(super) enum Gathered {
    /// Send the request again with these params.
    Retry(Box<RawValue>),
    /// No answer is due: the client cancelled its request, or the session ended.
    Gone,
    /// The call fails with this error.
    Failed(ErrorObject),
}

impl ClientSession {
    /// Whether the client's request `method` may be retried with answers when its
    /// upstream asks for input: a 2025 client's request to a modern upstream.
    pub(super) fn translates_input(&self, link: &UpstreamSession, method: &str) -> bool {
        !self.stateless && ASKING.contains(&method) && link.client().is_modern()
    }

    /// The `input_required` answer in `response`, if it is one.
    pub(super) fn input_required(response: &Response) -> Option<InputRequired> {
        let Outcome::Result(raw) = &response.outcome else {
            return None;
        };
        if !raw.get().contains("input_required") {
            return None;
        }
        let members = Members::parse(raw).ok()?;
        if members.string("resultType").ok().flatten().as_deref() != Some("input_required") {
            return None;
        }
        let mut requests = Vec::new();
        if let Some(asked) = members.get("inputRequests") {
            let asked = Members::parse(asked).ok()?;
            for (key, request) in asked.iter() {
                let request = Members::parse(request).ok();
                let method = request
                    .as_ref()
                    .and_then(|r| r.string("method").ok().flatten())
                    .unwrap_or_default();
                let params = request.and_then(|r| r.get("params").map(ToOwned::to_owned));
                requests.push((key.to_owned(), method, params));
            }
        }
        Some(InputRequired {
            requests,
            state: members.get("requestState").map(ToOwned::to_owned),
        })
    }

    /// Asks the client what `asked` wants (while serving its request `related`), and
    /// builds the retry of `original` from the answers. `wait` bounds the wait for the
    /// answers; `token` is the client request's (cancelled: no answer is due).
    pub(super) async fn gather_inputs(
        self: &Arc<Self>,
        upstream: &str,
        asked: InputRequired,
        original: &Request,
        related: &RequestId,
        token: &CancellationToken,
        wait: Duration,
    ) -> Gathered {
        // Nothing is asked unless everything can be.
        for (key, method, params) in &asked.requests {
            if let Some(error) = self.refusal(upstream, key, method, params.as_deref()) {
                return Gathered::Failed(error);
            }
        }
        let mut pending = Vec::with_capacity(asked.requests.len());
        for (key, method, params) in asked.requests {
            let (tx, rx) = oneshot::channel();
            let id = {
                let mut state = self.state();
                state.next_server_id += 1;
                let id = RequestId::String(format!("mcp-proxy-{}", state.next_server_id));
                state.asked.insert(id.clone(), tx);
                id
            };
            let request = Request {
                id: id.clone(),
                method: method.clone(),
                params,
                extra: Extra::new(),
            };
            self.emit(Message::Request(request), Some(related.clone()));
            pending.push((key, method, id, rx));
        }
        let answers = async {
            let mut answers = Map::new();
            for (key, method, id, rx) in &mut pending {
                let answer = rx.await;
                // Answered (or the session ended): no longer waited for.
                *id = RequestId::Null;
                match answer {
                    Ok(Outcome::Result(raw)) => {
                        let value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                        answers.insert(key.clone(), value);
                    }
                    Ok(Outcome::Error(e)) => {
                        let message = format!(
                            "upstream {upstream:?} asked for input {key:?} ({method}), and the client answered with an error: {}",
                            e.message
                        );
                        return Err(ErrorObject {
                            code: e.code,
                            message,
                            data: e.data,
                        });
                    }
                    // Dropped: the session ended.
                    Err(_) => return Err(ErrorObject::new(codes::INTERNAL_ERROR, "")),
                }
            }
            Ok(answers)
        };
        let outcome = tokio::select! {
            biased;
            () = token.cancelled() => None,
            r = tokio::time::timeout(wait, answers) => Some(r),
        };
        let unanswered: Vec<RequestId> = pending
            .iter()
            .filter(|(_, _, id, _)| *id != RequestId::Null)
            .map(|(_, _, id, _)| id.clone())
            .collect();
        let withdraw = |reason: &str| {
            for id in &unanswered {
                self.withdraw(id, reason);
            }
        };
        match outcome {
            None => {
                withdraw("the request was cancelled");
                Gathered::Gone
            }
            Some(Err(_)) => {
                withdraw("the proxy stopped waiting for the answer");
                let waited = mcp_types::duration::format(wait);
                Gathered::Failed(ErrorObject::new(
                    codes::REQUEST_TIMEOUT,
                    format!(
                        "upstream {upstream:?} asked for input, and the client did not answer within {waited}"
                    ),
                ))
            }
            Some(Ok(Err(_))) if self.is_ended() => Gathered::Gone,
            Some(Ok(Err(error))) => {
                withdraw("another input request failed");
                Gathered::Failed(error)
            }
            Some(Ok(Ok(answers))) => match retry_params(original, &answers, asked.state) {
                Ok(params) => Gathered::Retry(params),
                Err(why) => Gathered::Failed(ErrorObject::new(codes::INVALID_PARAMS, why)),
            },
        }
    }

    /// Why input request `key` cannot be asked of this client, if it cannot.
    fn refusal(
        &self,
        upstream: &str,
        key: &str,
        method: &str,
        params: Option<&RawValue>,
    ) -> Option<ErrorObject> {
        let (needed, path): (&str, &[&str]) = match method {
            methods::ELICITATION_CREATE => {
                let url = params
                    .and_then(|p| Members::parse(p).ok()?.string("mode").ok().flatten())
                    .is_some_and(|m| m == "url");
                if url {
                    ("elicitation", &["elicitation", "url"])
                } else {
                    ("elicitation", &["elicitation"])
                }
            }
            methods::SAMPLING_CREATE_MESSAGE => ("sampling", &["sampling"]),
            methods::ROOTS_LIST => ("roots", &["roots"]),
            other => {
                return Some(ErrorObject::new(
                    codes::INTERNAL_ERROR,
                    format!(
                        "upstream {upstream:?} asked for input {key:?} with {other:?}, which is not an input request"
                    ),
                ));
            }
        };
        let declared = {
            let state = self.state();
            path.iter()
                .try_fold(&state.capabilities, |v, k| v.get(*k))
                .is_some_and(|v| !v.is_null())
        };
        if declared {
            return None;
        }
        let mut required = Value::Object(Map::new());
        let mut at = &mut required;
        for k in path {
            at = at
                .as_object_mut()
                .expect("built of objects")
                .entry((*k).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        let mut error = ErrorObject::new(
            modern::MISSING_CAPABILITY,
            format!(
                "upstream {upstream:?} needs input {key:?} ({method}), and the client did not declare the {} capability",
                path.join(".")
            ),
        );
        error.data = Some(to_raw(
            &serde_json::json!({ "requiredCapabilities": required, "capability": needed }),
        ));
        Some(error)
    }

    /// Withdraws a request the proxy asked the client: it is no longer waited for, and
    /// the client is told to stop.
    fn withdraw(&self, id: &RequestId, reason: &str) {
        self.state().asked.remove(id);
        let n = Notification {
            method: methods::CANCELLED.to_owned(),
            params: Some(to_raw(
                &serde_json::json!({ "requestId": id, "reason": reason }),
            )),
            extra: Extra::new(),
        };
        self.emit(Message::Notification(n), None);
    }
}

/// The retry's params: the original ones with `inputResponses` and (when the upstream
/// sent one) `requestState` as it came; any of the client's own are replaced.
fn retry_params(
    original: &Request,
    answers: &Map<String, Value>,
    state: Option<Box<RawValue>>,
) -> Result<Box<RawValue>, String> {
    let empty = to_raw(&serde_json::json!({}));
    let params = original.params.as_deref().unwrap_or(&empty);
    let members = Members::parse(params).map_err(|e| format!("{}: {e}", original.method))?;
    let with_answers = members.with("inputResponses", &to_raw(answers));
    let members = Members::parse(&with_answers).map_err(|e| e.to_string())?;
    Ok(match state {
        Some(state) => members.with("requestState", &state),
        None => members.without("requestState"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(result: Value) -> Response {
        Response {
            id: RequestId::number(1),
            outcome: Outcome::Result(to_raw(&result)),
            extra: Extra::new(),
        }
    }

    #[test]
    fn input_required_answers_are_read_and_others_are_not() {
        let asked = ClientSession::input_required(&response(serde_json::json!({
            "resultType": "input_required",
            "inputRequests": {
                "b": {"method": "roots/list", "params": {}},
                "a": {"method": "elicitation/create", "params": {"message": "name?"}},
            },
            "requestState": "opaque-1",
        })))
        .unwrap();
        let keys: Vec<&str> = asked.requests.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(asked.requests[1].1, "elicitation/create");
        assert_eq!(asked.state.unwrap().get(), r#""opaque-1""#);

        let state_only = ClientSession::input_required(&response(
            serde_json::json!({"resultType": "input_required", "requestState": "s"}),
        ))
        .unwrap();
        assert!(state_only.requests.is_empty());

        for other in [
            serde_json::json!({"content": [], "resultType": "complete"}),
            serde_json::json!({"content": [{"type": "text", "text": "input_required"}]}),
        ] {
            assert!(ClientSession::input_required(&response(other)).is_none());
        }
    }

    #[test]
    fn retries_carry_the_answers_and_the_state_as_it_came() {
        let original = Request {
            id: RequestId::number(4),
            method: methods::TOOLS_CALL.into(),
            params: Some(to_raw(&serde_json::json!({
                "name": "t", "arguments": {"x": 1}, "_meta": {"progressToken": 9},
                "requestState": "stale",
            }))),
            extra: Extra::new(),
        };
        let mut answers = Map::new();
        answers.insert("a".into(), serde_json::json!({"action": "accept"}));
        let state = RawValue::from_string(r#""s-2""#.into()).unwrap();
        let retry = retry_params(&original, &answers, Some(state)).unwrap();
        let v: Value = serde_json::from_str(retry.get()).unwrap();
        assert_eq!(v["name"], "t");
        assert_eq!(v["arguments"]["x"], 1);
        assert_eq!(v["_meta"]["progressToken"], 9);
        assert_eq!(v["inputResponses"]["a"]["action"], "accept");
        assert_eq!(v["requestState"], "s-2");

        let without = retry_params(&original, &answers, None).unwrap();
        let v: Value = serde_json::from_str(without.get()).unwrap();
        assert!(v.get("requestState").is_none(), "{v}");
    }
}
