//! A request as the era of the link it goes on expects it, and the answer as the client's
//! era expects it.
//!
//! - To a 2025 upstream, a 2026-07-28 client's `_meta` keys of the revision mean nothing:
//!   they are removed (`progressToken` and others stay).
//! - To a modern upstream, a 2026-07-28 client's request goes as it is: its own `_meta`
//!   (version, capabilities, identity, log level) speaks for it.
//! - To a modern upstream, a 2025 client's request carries `_meta` built from its
//!   `initialize` (identity, capabilities) and its `logging/setLevel`. Sampling,
//!   elicitation and roots are declared as the client declared them: the upstream asks
//!   for them with `input_required` results, which the session turns into requests to
//!   the client (`input`). The 2025 `tasks` capability is left out (the revision's tasks
//!   are an extension of another shape). `logging/setLevel` and `resources/(un)subscribe`
//!   never reach such an upstream (the revision removed them): the level travels in
//!   `_meta`, the subscriptions in the link's listen.

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::{methods, modern};
use mcp_types::{Message, Outcome, Request, Response};
use serde_json::{Map, Value};

use super::ClientSession;
use crate::session::upstream_session::UpstreamSession;

/// What becomes of a request on its way to a link.
pub(super) enum Shaped {
    /// Send this.
    Send(Request),
    /// Answered without the upstream.
    Answered(Message),
}

impl ClientSession {
    /// `req` as the era of `link` expects it.
    pub(super) async fn for_link(&self, link: &UpstreamSession, mut req: Request) -> Shaped {
        if !link.client().is_modern() {
            if self.stateless {
                req.params = req.params.map(|p| strip_modern_meta(&p).unwrap_or(p));
            }
            return Shaped::Send(req);
        }
        if self.stateless {
            return Shaped::Send(req);
        }
        let ok = || Shaped::Answered(Message::result(req.id.clone(), &serde_json::json!({})));
        match req.method.as_str() {
            methods::LOGGING_SET_LEVEL => {
                self.state().log_level = req.params.clone();
                return ok();
            }
            methods::RESOURCES_SUBSCRIBE | methods::RESOURCES_UNSUBSCRIBE => {
                // The link's listen has the URI now (or no longer): once the upstream
                // acknowledged it, updates flow.
                link.listening().await;
                return ok();
            }
            _ => {}
        }
        let (declared, level) = {
            let state = self.state();
            let level = state.log_level.as_deref().and_then(|p| {
                mcp_types::params::Members::parse(p)
                    .ok()?
                    .string("level")
                    .ok()?
            });
            (state.declared.clone(), level)
        };
        let Some(declared) = declared else {
            return Shaped::Send(req);
        };
        let mut meta = Map::new();
        meta.insert(
            modern::META_VERSION.into(),
            Value::from(modern::PROTOCOL_VERSION),
        );
        meta.insert(
            modern::META_CAPABILITIES.into(),
            translated_capabilities(&declared.capabilities),
        );
        meta.insert(
            modern::META_CLIENT.into(),
            serde_json::to_value(&declared.client_info).unwrap_or(Value::Null),
        );
        if let Some(level) = level {
            meta.insert(modern::META_LOG_LEVEL.into(), Value::from(level));
        }
        match add_meta(req.params.as_deref(), meta) {
            Ok(params) => {
                req.params = Some(params);
                Shaped::Send(req)
            }
            Err(why) => Shaped::Answered(Message::error(req.id, codes::INVALID_PARAMS, why)),
        }
    }

    /// A modern upstream's answer as a 2025 client can read it: an `input_required`
    /// result the session did not translate (to a method that may not ask for input) is
    /// an error saying so.
    pub(super) fn for_client(&self, link: &UpstreamSession, response: Response) -> Response {
        if self.stateless || !link.client().is_modern() {
            return response;
        }
        let Outcome::Result(raw) = &response.outcome else {
            return response;
        };
        if !raw.get().contains("input_required") {
            return response;
        }
        let Ok(members) = mcp_types::params::Members::parse(raw) else {
            return response;
        };
        if members.string("resultType").ok().flatten().as_deref() != Some("input_required") {
            return response;
        }
        let asked: Vec<String> = members
            .get("inputRequests")
            .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok())
            .map(|r| {
                r.values()
                    .filter_map(|v| v.get("method")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let message = format!(
            "upstream {:?} asked for input ({}) in answer to a request that may not ask for any; a {} client cannot give it",
            link.upstream().name(),
            if asked.is_empty() {
                "a retry with its request state".to_owned()
            } else {
                asked.join(", ")
            },
            self.protocol_version().unwrap_or_default(),
        );
        let mut error = mcp_types::ErrorObject::new(codes::INTERNAL_ERROR, message);
        error.data = Some(to_raw(&serde_json::json!({ "inputRequired": true })));
        Response {
            id: response.id,
            outcome: Outcome::Error(error),
            extra: Extra::new(),
        }
    }
}

/// A 2025 client's capabilities as a modern upstream reads them: as declared, without
/// the 2025 `tasks` capability.
fn translated_capabilities(capabilities: &Value) -> Value {
    match capabilities {
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove("tasks");
            Value::Object(map)
        }
        _ => Value::Object(Map::new()),
    }
}

/// `params` with `meta`'s members added to (or replacing those in) its `_meta`.
fn add_meta(
    params: Option<&serde_json::value::RawValue>,
    meta: Map<String, Value>,
) -> Result<Box<serde_json::value::RawValue>, String> {
    let Some(params) = params else {
        return Ok(to_raw(&serde_json::json!({ "_meta": meta })));
    };
    let members = mcp_types::params::Members::parse(params).map_err(|e| e.to_string())?;
    let mut own = match members.get("_meta") {
        None => Map::new(),
        Some(raw) => serde_json::from_str::<Map<String, Value>>(raw.get())
            .map_err(|_| "params._meta must be an object".to_owned())?,
    };
    own.extend(meta);
    Ok(members.with("_meta", &to_raw(&own)))
}

/// `params` without the revision's `_meta` keys; `None` when there is nothing to remove
/// (or nothing readable).
fn strip_modern_meta(
    params: &serde_json::value::RawValue,
) -> Option<Box<serde_json::value::RawValue>> {
    if !params.get().contains("io.modelcontextprotocol/") {
        return None;
    }
    let members = mcp_types::params::Members::parse(params).ok()?;
    let mut meta: Map<String, Value> = serde_json::from_str(members.get("_meta")?.get()).ok()?;
    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    Some(if meta.is_empty() {
        members.without("_meta")
    } else {
        members.with("_meta", &to_raw(&meta))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_meta_keys_are_removed_and_others_kept() {
        let p = to_raw(&serde_json::json!({"name": "t", "_meta": {
            "progressToken": 3, modern::META_VERSION: "2026-07-28", modern::META_CAPABILITIES: {}}}));
        let out: Value = serde_json::from_str(strip_modern_meta(&p).unwrap().get()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"name": "t", "_meta": {"progressToken": 3}})
        );
        let only = to_raw(&serde_json::json!({"_meta": {modern::META_VERSION: "2026-07-28"}}));
        assert_eq!(strip_modern_meta(&only).unwrap().get(), "{}");
        assert!(strip_modern_meta(&to_raw(&serde_json::json!({"a": 1}))).is_none());
    }

    #[test]
    fn a_2025_clients_input_capabilities_reach_a_modern_upstream() {
        let caps = serde_json::json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}, "tasks": {"list": {}}});
        assert_eq!(
            translated_capabilities(&caps),
            serde_json::json!({"sampling": {}, "elicitation": {"form": {}}, "roots": {"listChanged": true}})
        );
        assert_eq!(translated_capabilities(&Value::Null), serde_json::json!({}));
    }

    #[test]
    fn meta_is_added_beside_what_is_there() {
        let p = to_raw(&serde_json::json!({"name": "t", "_meta": {"progressToken": "p"}}));
        let mut meta = Map::new();
        meta.insert(modern::META_VERSION.into(), Value::from("2026-07-28"));
        let out: Value = serde_json::from_str(add_meta(Some(&p), meta).unwrap().get()).unwrap();
        assert_eq!(out["_meta"]["progressToken"], "p");
        assert_eq!(out["_meta"][modern::META_VERSION], "2026-07-28");
        assert!(add_meta(Some(&to_raw(&serde_json::json!({"_meta": []}))), Map::new()).is_err());
    }
}
