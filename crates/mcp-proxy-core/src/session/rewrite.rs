//! The one result a session rewrites itself: the tool filter on `tools/list`. (Ids and
//! progress tokens are rewritten by the connection, `mcp_transport::Call`.)

use mcp_types::McpDefinition;
use mcp_types::jsonrpc::to_raw;
use serde_json::Value;
use serde_json::value::RawValue;

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

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_types::{FilterMode, ToolFilter, TransportKind};

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
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
