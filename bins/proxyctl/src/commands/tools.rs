//! `tools` and `call`.

use std::path::Path;

use serde_json::{Map, Value};

use super::Ctx;
use crate::exit::{Exit, Failure};
use crate::input;
use crate::table::{Table, cut};

/// `tools [--server NAME]`.
pub(crate) async fn tools(ctx: &Ctx, server: Option<&str>) -> anyhow::Result<Exit> {
    if let Some(name) = server {
        // A name that is not registered is a clear 404, not an empty table.
        ctx.client.get(name).await?;
    }
    let listing = ctx.client.list_tools().await?;
    let keep = |mcp: &str| server.is_none_or(|s| s == mcp);
    let items: Vec<_> = listing.items.iter().filter(|t| keep(&t.mcp_name)).collect();
    let errors: Vec<_> = listing
        .errors
        .iter()
        .filter(|e| keep(&e.mcp_name))
        .collect();
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "tools": items, "errors": errors }));
    } else {
        let mut t = Table::new(&["SERVER", "TOOL", "DESCRIPTION"]);
        for tool in &items {
            let first = tool
                .description
                .as_deref()
                .and_then(|d| d.lines().find(|l| !l.trim().is_empty()))
                .unwrap_or("");
            t.row(vec![
                tool.mcp_name.clone(),
                tool.name.clone(),
                cut(first.trim(), 80),
            ]);
        }
        if t.is_empty() {
            println!("no tools");
        } else {
            print!("{}", t.render());
        }
        for e in &errors {
            eprintln!("{}: {}", e.mcp_name, e.error);
        }
    }
    Ok(if errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    })
}

/// `call SERVER TOOL [--arg K=V]… [--args JSON]`.
pub(crate) async fn call(
    ctx: &Ctx,
    server: &str,
    tool: &str,
    args: &[String],
    args_json: Option<&str>,
) -> anyhow::Result<Exit> {
    let arguments = match args_json {
        Some(text) => {
            let text = if text == "-" {
                input::read_text(Path::new("-"))?
            } else {
                text.to_owned()
            };
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::new(Exit::Usage, format!("--args: not JSON: {e}")))?;
            if !v.is_object() {
                return Err(Failure::new(Exit::Usage, "--args: must be a JSON object").into());
            }
            Some(v)
        }
        None if args.is_empty() => None,
        None => Some(Value::Object(typed_args(ctx, server, tool, args).await?)),
    };
    let result = ctx.client.call_tool(server, tool, arguments).await?;
    if ctx.json {
        ctx.print_json(&result);
    } else {
        let text = result.text();
        if !text.is_empty() {
            println!("{text}");
        }
        for block in result.content.iter().filter(|c| c["type"] != "text") {
            println!("[{} content]", block["type"].as_str().unwrap_or("unknown"));
        }
        if text.is_empty()
            && let Some(s) = &result.structured_content
        {
            println!("{}", serde_json::to_string_pretty(s)?);
        }
    }
    if result.is_error {
        eprintln!("proxyctl: {server}/{tool} reported an error");
        return Ok(Exit::ToolError);
    }
    Ok(Exit::Ok)
}

/// `--arg K=V` values typed after the tool's input schema: a property whose type is not
/// `string` takes JSON (`3`, `true`, `[1,2]`); a value that is not JSON stays a string.
async fn typed_args(
    ctx: &Ctx,
    server: &str,
    tool: &str,
    args: &[String],
) -> anyhow::Result<Map<String, Value>> {
    let schema = ctx
        .client
        .list_tools()
        .await
        .ok()
        .and_then(|l| {
            l.items
                .into_iter()
                .find(|t| t.mcp_name == server && t.name == tool)
        })
        .map(|t| t.input_schema)
        .unwrap_or(Value::Null);
    let mut out = Map::new();
    for a in args {
        let Some((k, v)) = a.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(
                Failure::new(Exit::Usage, format!("--arg {a:?}: expected KEY=VALUE")).into(),
            );
        };
        let kind = schema["properties"][k]["type"].as_str();
        let value = match kind {
            Some("string") => Value::String(v.to_owned()),
            _ => serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
        };
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}
