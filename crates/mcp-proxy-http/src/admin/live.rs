//! The live half of the Admin API: discovery listings, tool calls, reconnect.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::body::{self, Body, json_response};
use crate::error::Error;

fn listing<T: Serialize>(key: &str, l: mcp_proxy_core::Listing<T>) -> Response<Body> {
    let mut body = serde_json::Map::new();
    body.insert("count".into(), l.items.len().into());
    body.insert(
        key.into(),
        serde_json::to_value(&l.items).unwrap_or_default(),
    );
    body.insert(
        "errors".into(),
        serde_json::to_value(&l.errors).unwrap_or_default(),
    );
    json_response(StatusCode::OK, &body)
}

/// `GET /admin/tools[?group=NAME]`.
pub(crate) fn tools(app: &App, query: Option<&str>) -> Result<Response<Body>, Error> {
    let group = query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "group")
        .map(|(_, v)| v.into_owned());
    match group {
        None => Ok(listing("tools", app.inner().manager.tools())),
        Some(name) if name.is_empty() => Err(Error::Invalid {
            message: "invalid request: group: must name a group".into(),
            details: serde_json::json!([{ "field": "group", "message": "must name a group" }]),
        }),
        Some(name) => app
            .inner()
            .manager
            .group_tools(&name)
            .map(|l| listing("tools", l))
            .ok_or(Error::GroupNotFound(name)),
    }
}

/// `GET /admin/prompts`.
pub(crate) fn prompts(app: &App) -> Response<Body> {
    listing("prompts", app.inner().manager.prompts())
}

/// `GET /admin/resources`.
pub(crate) fn resources(app: &App) -> Response<Body> {
    listing("resources", app.inner().manager.resources())
}

/// `POST /admin/mcps/{name}/reconnect`.
pub(crate) fn reconnect(app: &App, name: &str) -> Result<Response<Body>, Error> {
    app.inner().manager.reconnect(name)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "status": "reconnecting", "mcpName": name }),
    ))
}

/// Body of `POST /admin/tools/call`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CallBody {
    mcp_name: String,
    tool_name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// `POST /admin/tools/call`: the whole `CallToolResult`.
pub(crate) async fn call_tool(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let (parts, incoming) = req.into_parts();
    body::require_json(&parts.headers, body::Untyped::Json)?;
    let bytes = body::read_limited(&parts.headers, incoming, app.config().max_body_bytes).await?;
    let call: CallBody = body::parse_json(&bytes)?;
    if let Some(args) = &call.arguments
        && !args.is_object()
    {
        return Err(Error::Invalid {
            message: "arguments must be a JSON object".into(),
            details: serde_json::json!([{ "field": "arguments", "message": "must be an object" }]),
        });
    }
    let result = app
        .inner()
        .manager
        .call_tool(&call.mcp_name, &call.tool_name, call.arguments)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "result": result }),
    ))
}
