//! Input-required translation: a 2026-07-28 client in front of a 2025 upstream.
//!
//! A 2025 upstream asks for input with a server→client request (`elicitation/create`,
//! `sampling/createMessage`, `roots/list`) while it serves a `tools/call`, `prompts/get`
//! or `resources/read`. A 2026-07-28 client takes no such requests: it expects an
//! `input_required` result and retries the original request with `inputResponses`. So
//! the proxy answers the client with the upstream's requests as `inputRequests` (keyed by
//! the ids it gave them), keeps the upstream call waiting here, and gives the client a
//! sealed `requestState` naming it. The retry opens the state, finds the call, hands the
//! answers to the upstream as the responses to its requests and goes on serving the call:
//! its result, or the next round of questions.
//!
//! The state is sealed with ChaCha20-Poly1305 under a key of `session_keys` (or a key
//! made at start): it names the waiting call, the principal it was issued to (a digest of
//! the endpoint and the bearer token), a digest of the original request and an expiry, so
//! it cannot be forged, changed, replayed by someone else or on another request. A call
//! is taken once: the same state presented again finds nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use mcp_types::Request;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::modern::Call;
use super::seal::{Keys, hex};
use crate::config::StateKey;

/// What every state this proxy issues starts with; a state without it is not ours.
pub(crate) const STATE_PREFIX: &str = "mcpp1.";
/// Associated data of every sealed state.
const AAD: &[u8] = b"mcp-proxy request state 1";
/// The request parameters that are not part of what the state is bound to.
const UNBOUND_PARAMS: &[&str] = &["_meta", "inputResponses", "requestState"];

/// Why a presented `requestState` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not sealed by a key of ours, or changed since.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Issued to another principal (endpoint and token).
    OtherPrincipal,
    /// Issued for another request (method or arguments differ).
    OtherRequest,
    /// Nothing waits under it any more (answered, expired, or on another replica).
    Gone,
}

impl Refusal {
    /// The machine-readable code in the error's `data.code`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Invalid => "request_state_invalid",
            Self::Expired => "request_state_expired",
            Self::OtherPrincipal => "request_state_foreign",
            Self::OtherRequest => "request_state_other_request",
            Self::Gone => "request_state_gone",
        }
    }

    /// What the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Invalid => {
                "requestState failed verification: it was not issued by this proxy or it was changed"
            }
            Self::Expired => "requestState has expired: send the request again without it",
            Self::OtherPrincipal => "requestState was issued to another client",
            Self::OtherRequest => {
                "requestState belongs to another request: the method or its arguments differ"
            }
            Self::Gone => {
                "the call this requestState belongs to is no longer waiting (already answered, \
                 expired, or held by another replica): send the request again without it"
            }
        }
    }
}

/// What a sealed state says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The waiting call.
    w: String,
    /// Principal digest, hex.
    p: String,
    /// Request digest, hex.
    d: String,
    /// Expiry, milliseconds since the Unix epoch.
    e: u64,
    /// The replica the call waits on, when replicas share sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

/// What a state is bound to: who asked, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    principal: String,
    request: String,
}

impl Binding {
    /// The binding of a request to endpoint `name`, presented with `headers`.
    pub(crate) fn of(name: &str, headers: &HeaderMap, req: &Request) -> Self {
        let token = crate::security::bearer_token(headers).unwrap_or("");
        let mut p = Sha256::new();
        p.update(b"principal\0");
        p.update(name.as_bytes());
        p.update(b"\0");
        p.update(token.as_bytes());
        let mut d = Sha256::new();
        d.update(b"request\0");
        d.update(req.method.as_bytes());
        d.update(b"\0");
        let params = req
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Map<String, Value>>(p.get()).ok())
            .unwrap_or_default();
        let bound: Map<String, Value> = params
            .into_iter()
            .filter(|(k, _)| !UNBOUND_PARAMS.contains(&k.as_str()))
            .collect();
        canonical(&Value::Object(bound), &mut d);
        Self {
            principal: hex(&p.finalize()),
            request: hex(&d.finalize()),
        }
    }
}

/// Feeds `value` to the hasher with object keys sorted, so the digest does not depend on
/// the order a client writes members in.
fn canonical(value: &Value, h: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                h.update(serde_json::to_string(k).unwrap_or_default().as_bytes());
                h.update(b":");
                canonical(&map[k], h);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for v in items {
                canonical(v, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        other => h.update(other.to_string().as_bytes()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The keys states are sealed with: the first seals, all open.
fn state_keys(configured: &[StateKey]) -> Keys {
    Keys::new(configured, "mcp-proxy/request-state", AAD, STATE_PREFIX)
}

/// Upstream calls waiting for a client's retry, by waiting id.
pub(crate) struct Waiting {
    calls: Mutex<HashMap<String, Parked>>,
    keys: Keys,
    wait: Duration,
    /// This replica's id, when replicas share sessions: states name it.
    replica: std::sync::OnceLock<String>,
}

struct Parked {
    call: Call,
    binding: Binding,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("calls", &self.len())
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl Waiting {
    /// `wait`: how long a call waits for its retry (the state's lifetime too).
    pub(crate) fn new(keys: &[StateKey], wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(HashMap::new()),
            keys: state_keys(keys),
            wait,
            replica: std::sync::OnceLock::new(),
        })
    }

    /// States issued from now on name replica `id` (where their calls wait).
    pub(crate) fn set_replica(&self, id: &str) {
        let _ = self.replica.set(id.to_owned());
    }

    /// The other replica a genuine, current `state` names: its call waits there.
    pub(crate) fn elsewhere(&self, state: &str) -> Option<String> {
        let claims: Claims = self.keys.open(state).ok()?;
        let r = claims.r.filter(|r| self.replica.get() != Some(r))?;
        (claims.e >= now_ms()).then_some(r)
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls waiting now.
    pub(crate) fn len(&self) -> usize {
        self.calls().len()
    }

    /// Keeps `call` until its retry (or its expiry: then it is dropped, which ends its
    /// session and cancels the upstream request) and returns the state naming it.
    pub(crate) fn park(self: &Arc<Self>, call: Call, binding: Binding) -> String {
        let id = self.keys.random_id();
        let claims = Claims {
            w: id.clone(),
            p: binding.principal.clone(),
            d: binding.request.clone(),
            e: now_ms().saturating_add(u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX)),
            r: self.replica.get().cloned(),
        };
        let state = self.keys.seal(&claims);
        call.set_parked(true);
        let tasks = call.hub().clone();
        self.calls().insert(id.clone(), Parked { call, binding });
        let me = Arc::downgrade(self);
        let wait = self.wait;
        tasks.spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(me) = me.upgrade() {
                let expired = me.calls().remove(&id);
                if expired.is_some() {
                    tracing::debug!(
                        "a call waiting for input expired; its upstream request is cancelled"
                    );
                }
                drop(expired);
            }
        });
        state
    }

    /// Checks a presented state against the request it came with; the waiting call is
    /// not taken (see [`Waiting::take`]).
    pub(crate) fn check(&self, state: &str, binding: &Binding) -> Result<String, Refusal> {
        let claims: Claims = self.keys.open(state).map_err(|_| Refusal::Invalid)?;
        if claims.e < now_ms() {
            return Err(Refusal::Expired);
        }
        if claims.p != binding.principal {
            return Err(Refusal::OtherPrincipal);
        }
        if claims.d != binding.request {
            return Err(Refusal::OtherRequest);
        }
        Ok(claims.w)
    }

    /// Takes the call waiting under `id` (checked by [`Waiting::check`]).
    pub(crate) fn take(&self, id: &str, binding: &Binding) -> Result<Call, Refusal> {
        let mut calls = self.calls();
        match calls.get(id) {
            Some(p) if &p.binding == binding => {}
            Some(_) => return Err(Refusal::OtherRequest),
            None => return Err(Refusal::Gone),
        }
        let parked = calls.remove(id).ok_or(Refusal::Gone)?;
        drop(calls);
        parked.call.set_parked(false);
        Ok(parked.call)
    }
}

/// Reads `inputResponses`: absent, or an object whose members are objects (the results
/// of the requests asked). Anything else is a protocol error.
pub(crate) fn input_responses(req: &Request) -> Result<Option<Map<String, Value>>, String> {
    let Some(params) = req.params.as_deref() else {
        return Ok(None);
    };
    let Ok(members) = mcp_types::params::Members::parse(params) else {
        return Ok(None);
    };
    let Some(raw) = members.get("inputResponses") else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(map)) => {
            if let Some((k, _)) = map.iter().find(|(_, v)| !v.is_object()) {
                return Err(format!(
                    "inputResponses.{k} must be an object: the result of the request asked under that key"
                ));
            }
            Ok(Some(map))
        }
        _ => Err("inputResponses must be an object mapping each key asked to its result".into()),
    }
}

/// Reads `requestState`: absent, or a string.
pub(crate) fn request_state(req: &Request) -> Result<Option<String>, String> {
    let Some(params) = req.params.as_deref() else {
        return Ok(None);
    };
    let Ok(members) = mcp_types::params::Members::parse(params) else {
        return Ok(None);
    };
    members
        .string("requestState")
        .map_err(|_| "requestState must be a string".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_types::RequestId;
    use mcp_types::jsonrpc::to_raw;

    fn req(method: &str, params: Value) -> Request {
        Request {
            id: RequestId::Number(1.into()),
            method: method.into(),
            params: Some(to_raw(&params)),
            extra: Default::default(),
        }
    }

    fn binding(token: &str, params: Value) -> Binding {
        let mut headers = HeaderMap::new();
        if !token.is_empty() {
            headers.insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        Binding::of("ev", &headers, &req("tools/call", params))
    }

    #[test]
    fn binding_ignores_meta_state_and_member_order() {
        let a = binding(
            "t",
            serde_json::json!({"name": "x", "arguments": {"a": 1, "b": [1, {"c": 2, "d": 3}]}}),
        );
        let b = binding(
            "t",
            serde_json::json!({
                "arguments": {"b": [1, {"d": 3, "c": 2}], "a": 1},
                "name": "x",
                "_meta": {"k": 1},
                "inputResponses": {"q": {}},
                "requestState": "s"
            }),
        );
        assert_eq!(a, b);
        let other_args = binding("t", serde_json::json!({"name": "x", "arguments": {"a": 2}}));
        assert_ne!(a.request, other_args.request);
        let other_token = binding("u", serde_json::json!({"name": "x", "arguments": {"a": 1}}));
        assert_ne!(a.principal, other_token.principal);
    }

    #[test]
    fn states_open_only_unchanged_under_a_known_key() {
        let one = StateKey {
            id: "one".into(),
            key: [7; 32],
        };
        let two = StateKey {
            id: "two".into(),
            key: [9; 32],
        };
        let keys = state_keys(std::slice::from_ref(&one));
        let claims = Claims {
            w: "abc".into(),
            p: "p".into(),
            d: "d".into(),
            e: 42,
            r: None,
        };
        let state = keys.seal(&claims);
        assert!(state.starts_with("mcpp1.one."));
        assert_eq!(keys.open::<Claims>(&state).unwrap().w, "abc");
        // Rotation: a replica that seals with a new key still opens the old one's states.
        let rotated = state_keys(&[two.clone(), one]);
        assert_eq!(rotated.open::<Claims>(&state).unwrap().w, "abc");
        // A key it does not know, a changed byte, a changed key id: refused.
        assert!(state_keys(&[two]).open::<Claims>(&state).is_err());
        let mut bytes = state.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            keys.open::<Claims>(&String::from_utf8(bytes).unwrap())
                .is_err()
        );
        assert!(
            keys.open::<Claims>(&state.replacen("one", "two", 1))
                .is_err()
        );
        assert!(keys.open::<Claims>(&format!("{state}-TAMPERED")).is_err());
        assert!(keys.open::<Claims>("mcpp1.one.").is_err());
        // Two seals of the same claims differ (fresh nonces).
        assert_ne!(keys.seal(&claims), state);
    }

    #[test]
    fn input_responses_must_be_objects_of_objects() {
        let ok = req(
            "tools/call",
            serde_json::json!({"inputResponses": {"k": {"action": "accept"}}}),
        );
        assert_eq!(input_responses(&ok).unwrap().unwrap().len(), 1);
        let none = req("tools/call", serde_json::json!({"name": "x"}));
        assert!(input_responses(&none).unwrap().is_none());
        for bad in [
            serde_json::json!({"inputResponses": null}),
            serde_json::json!({"inputResponses": [1]}),
            serde_json::json!({"inputResponses": {"k": 12345}}),
        ] {
            assert!(input_responses(&req("tools/call", bad)).is_err());
        }
        let state = req("tools/call", serde_json::json!({"requestState": 5}));
        assert!(request_state(&state).is_err());
    }

    #[test]
    fn a_state_names_the_replica_its_call_waits_on() {
        let keys = [StateKey {
            id: "k".into(),
            key: [3; 32],
        }];
        let w = Waiting::new(&keys, Duration::from_secs(60));
        w.set_replica("r0");
        let state = |r: Option<&str>, e: u64| {
            w.keys.seal(&Claims {
                w: "x".into(),
                p: String::new(),
                d: String::new(),
                e,
                r: r.map(str::to_owned),
            })
        };
        let later = now_ms() + 60_000;
        assert_eq!(
            w.elsewhere(&state(Some("r1"), later)).as_deref(),
            Some("r1")
        );
        assert_eq!(w.elsewhere(&state(Some("r0"), later)), None, "here");
        assert_eq!(w.elsewhere(&state(None, later)), None, "one replica");
        assert_eq!(w.elsewhere(&state(Some("r1"), 1)), None, "expired");
        assert_eq!(w.elsewhere("mcpp1.k.AAAA"), None);
    }
}
