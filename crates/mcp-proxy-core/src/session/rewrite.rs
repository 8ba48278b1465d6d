//! The few envelope rewrites a session does: `_meta.progressToken` out and back, the
//! tool filter on `tools/list` results, and reading the handful of params it routes by.

use mcp_types::jsonrpc::to_raw;
use mcp_types::{McpDefinition, RequestId};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// `resources/subscribe`.
pub(super) const SUBSCRIBE: &str = "resources/subscribe";
/// `resources/unsubscribe`.
pub(super) const UNSUBSCRIBE: &str = "resources/unsubscribe";

/// Replaces `params._meta.progressToken` with `token`; other members are kept.
pub(super) fn set_request_progress_token(params: &RawValue, token: &RequestId) -> Box<RawValue> {
    let mut value: Value = serde_json::from_str(params.get()).unwrap_or(Value::Null);
    if let Some(meta) = value.get_mut("_meta").and_then(Value::as_object_mut) {
        meta.insert(
            "progressToken".into(),
            serde_json::to_value(token).unwrap_or_default(),
        );
    }
    to_raw(&value)
}

/// `params._meta.progressToken` of a request (only that path is parsed; a params text
/// without the key is not parsed at all).
pub(super) fn request_progress_token(params: Option<&RawValue>) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        token: Option<RequestId>,
    }
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    let params = params?;
    if !params.get().contains("progressToken") {
        return None;
    }
    let p: P = serde_json::from_str(params.get()).ok()?;
    p.meta?.token
}

/// Replaces `params.progressToken` of a `notifications/progress`.
pub(super) fn set_notification_progress_token(
    params: &RawValue,
    token: &RequestId,
) -> Box<RawValue> {
    let mut value: Value = serde_json::from_str(params.get()).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "progressToken".into(),
            serde_json::to_value(token).unwrap_or_default(),
        );
    }
    to_raw(&value)
}

/// `params.progressToken` of a `notifications/progress`.
pub(super) fn notification_progress_token(params: Option<&RawValue>) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "progressToken")]
        token: Option<RequestId>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.token
}

/// `params.requestId` of a `notifications/cancelled`.
pub(super) fn cancelled_request_id(params: Option<&RawValue>) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "requestId")]
        id: Option<RequestId>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.id
}

/// `params.reason` of a `notifications/cancelled`.
pub(super) fn cancelled_reason(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        reason: Option<String>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.reason
}

/// `params.name` (of `tools/call`).
pub(super) fn param_name(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        name: Option<String>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.name
}

/// `params.uri` (of `resources/subscribe`, `notifications/resources/updated`, …).
pub(super) fn param_uri(params: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        uri: Option<String>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    p.uri
}

/// Drops the tools the definition's filter hides from a `tools/list` result. Without a
/// filter (or with an unreadable result) the result is returned untouched.
pub(super) fn filter_tools(def: &McpDefinition, result: Box<RawValue>) -> Box<RawValue> {
    if def.tool_filter.is_none() {
        return result;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else {
        return result;
    };
    if let Some(tools) = value.get_mut("tools").and_then(Value::as_array_mut) {
        tools.retain(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_none_or(|n| def.permits_tool(n))
        });
    }
    to_raw(&value)
}

/// A fresh upstream-side token of the same JSON type as `original`.
pub(super) fn fresh_token(original: &RequestId, n: u64) -> RequestId {
    match original {
        RequestId::Number(_) => RequestId::number(i64::try_from(n).unwrap_or(i64::MAX)),
        _ => RequestId::String(format!("mcp-proxy-{n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_types::{FilterMode, ToolFilter, TransportKind};

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn progress_tokens_are_replaced_keeping_other_meta() {
        let p = raw(r#"{"name":"x","_meta":{"progressToken":"abc","other":1}}"#);
        let out = set_request_progress_token(&p, &RequestId::number(7));
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["_meta"]["progressToken"], 7);
        assert_eq!(v["_meta"]["other"], 1);
        let n = raw(r#"{"progressToken":7,"progress":1}"#);
        let out = set_notification_progress_token(&n, &RequestId::from("abc"));
        assert_eq!(
            notification_progress_token(Some(&out)),
            Some(RequestId::from("abc"))
        );
    }

    #[test]
    fn request_tokens_are_read_from_meta_only() {
        let p = raw(r#"{"name":"x","progressToken":1,"_meta":{"progressToken":"t"}}"#);
        assert_eq!(request_progress_token(Some(&p)), Some(RequestId::from("t")));
        let p = raw(r#"{"name":"x","progressToken":1}"#);
        assert_eq!(request_progress_token(Some(&p)), None);
        assert_eq!(request_progress_token(None), None);
    }

    #[test]
    fn fresh_tokens_keep_the_json_type() {
        assert!(matches!(
            fresh_token(&RequestId::number(1), 5),
            RequestId::Number(_)
        ));
        assert!(matches!(
            fresh_token(&RequestId::from("a"), 5),
            RequestId::String(_)
        ));
    }

    #[test]
    fn the_filter_hides_blocked_tools() {
        let mut def = McpDefinition::new("x", TransportKind::Stdio);
        def.tool_filter = Some(ToolFilter {
            mode: FilterMode::Block,
            list: vec!["secret".into()],
        });
        let out = filter_tools(
            &def,
            raw(r#"{"tools":[{"name":"echo"},{"name":"secret"}],"nextCursor":"c"}"#),
        );
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["nextCursor"], "c");
    }
}
