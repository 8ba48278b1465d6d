//! A group's requests: the lists are answered from the merged catalog (with the proxy's
//! own cursors), `logging/setLevel` goes to every member, and everything else is routed
//! to the member that owns it, with the name or URI the member knows.

use std::sync::Arc;

use mcp_types::jsonrpc::{codes, to_raw};
use mcp_types::mcp::methods;
use mcp_types::params::Members;
use mcp_types::{Message, Request};
use serde_json::Value;

use super::{ClientSession, Reply};
use crate::group::Group;

/// Items per page of a group's lists.
const PAGE: usize = 100;

/// Where a group's request goes.
pub(super) enum Route {
    /// Answered by the proxy (a list, `setLevel`, a refusal).
    Answered(Reply),
    /// To this member, the request rewritten for it.
    Member(String),
}

impl ClientSession {
    pub(super) async fn group_route(
        self: &Arc<Self>,
        group: &Arc<Group>,
        req: &mut Request,
    ) -> Route {
        let id = req.id.clone();
        let refuse = |code: i64, message: String| {
            Route::Answered(Reply::new(Message::error(id.clone(), code, message)))
        };
        let manager = self.hub.manager();
        if !group.is_available(manager) {
            return refuse(
                codes::CONNECTION_CLOSED,
                format!(
                    "group {:?} is unavailable: a member is down (failMode: closed)",
                    group.name()
                ),
            );
        }
        let catalog = group.catalog();
        let [tools, prompts, resources] = catalog.fingerprints();
        let list = |items: Vec<&Value>, key: &str, print: u64| {
            let page = page(req.params.as_deref(), items, key, print);
            Route::Answered(Reply::new(match page {
                Ok(result) => Message::result(id.clone(), &result),
                Err(e) => Message::error(id.clone(), codes::INVALID_PARAMS, e),
            }))
        };
        match req.method.as_str() {
            methods::TOOLS_LIST => list(
                catalog.tools.iter().map(|t| &t.value).collect(),
                "tools",
                tools,
            ),
            methods::PROMPTS_LIST => list(
                catalog.prompts.iter().map(|p| &p.value).collect(),
                "prompts",
                prompts,
            ),
            methods::RESOURCES_LIST => {
                list(catalog.resources.iter().collect(), "resources", resources)
            }
            methods::RESOURCE_TEMPLATES_LIST => list(
                catalog.resource_templates.iter().collect(),
                "resourceTemplates",
                resources,
            ),
            methods::LOGGING_SET_LEVEL => {
                let links: Vec<_> = {
                    let mut state = self.state();
                    state.log_level = req.params.clone();
                    state.links.values().cloned().collect()
                };
                for link in links {
                    let set = link.client().request_with_timeout(
                        methods::LOGGING_SET_LEVEL,
                        req.params.clone(),
                        crate::session::SEND_TIMEOUT,
                    );
                    let _ = set.await;
                }
                Route::Answered(Reply::new(Message::result(id, &serde_json::json!({}))))
            }
            methods::TOOLS_CALL | methods::PROMPTS_GET => {
                let kind = if req.method == methods::TOOLS_CALL {
                    "tool"
                } else {
                    "prompt"
                };
                let name = match mcp_types::params::name(req.params.as_deref()) {
                    Ok(Some(name)) => name,
                    Ok(None) => {
                        return refuse(
                            codes::INVALID_PARAMS,
                            format!("{} needs params.name", req.method),
                        );
                    }
                    Err(e) => return refuse(codes::INVALID_PARAMS, format!("{}: {e}", req.method)),
                };
                let found = if kind == "tool" {
                    catalog.tool(&name)
                } else {
                    catalog.prompt(&name)
                };
                let Some(found) = found else {
                    return refuse(codes::INVALID_PARAMS, unknown(group, manager, kind, &name));
                };
                let member = found.member.clone();
                match rewrite(req, "name", &found.original) {
                    Ok(()) => Route::Member(member),
                    Err(e) => refuse(codes::INVALID_PARAMS, e),
                }
            }
            methods::RESOURCES_READ
            | methods::RESOURCES_SUBSCRIBE
            | methods::RESOURCES_UNSUBSCRIBE => {
                let uri = match mcp_types::params::uri(req.params.as_deref()) {
                    Ok(Some(uri)) => uri,
                    Ok(None) => {
                        return refuse(
                            codes::INVALID_PARAMS,
                            format!("{} needs params.uri", req.method),
                        );
                    }
                    Err(e) => return refuse(codes::INVALID_PARAMS, format!("{}: {e}", req.method)),
                };
                let names: Vec<String> = group
                    .members(manager)
                    .iter()
                    .map(|u| u.name().to_owned())
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let Some((member, theirs)) = catalog.resource(&uri, &names) else {
                    return refuse(
                        codes::INVALID_PARAMS,
                        format!(
                            "no member of group {:?} serves resource {uri:?}",
                            group.name()
                        ),
                    );
                };
                match rewrite(req, "uri", &theirs) {
                    Ok(()) => Route::Member(member),
                    Err(e) => refuse(codes::INVALID_PARAMS, e),
                }
            }
            methods::COMPLETION_COMPLETE => match route_completion(req, &catalog, group, manager) {
                Ok(member) => Route::Member(member),
                Err(e) => refuse(codes::INVALID_PARAMS, e),
            },
            other => refuse(
                codes::METHOD_NOT_FOUND,
                format!(
                    "{other} is not available on the endpoint of group {:?}",
                    group.name()
                ),
            ),
        }
    }
}

/// Why a name is not in the group's catalog, as clearly as the proxy can say.
fn unknown(group: &Group, manager: &crate::Manager, kind: &str, name: &str) -> String {
    let down: Vec<String> = group
        .members(manager)
        .iter()
        .filter(|u| u.state() != mcp_types::ConnectionState::Connected)
        .map(|u| u.name().to_owned())
        .collect();
    let mut msg = format!("group {:?} has no {kind} {name:?}", group.name());
    if !down.is_empty() {
        msg.push_str(&format!(" (members down now: {})", down.join(", ")));
    }
    msg
}

/// Sets `params.{key}` to `value`, every other member kept.
fn rewrite(req: &mut Request, key: &str, value: &str) -> Result<(), String> {
    let params = req
        .params
        .as_deref()
        .ok_or_else(|| "params are missing".to_owned())?;
    let members = Members::parse(params).map_err(|e| e.to_string())?;
    req.params = Some(members.with(key, &to_raw(&value)));
    Ok(())
}

/// The member a `completion/complete` is for (by its `ref`), the ref rewritten for it.
fn route_completion(
    req: &mut Request,
    catalog: &crate::group::MergedCatalog,
    group: &Group,
    manager: &crate::Manager,
) -> Result<String, String> {
    let params = req
        .params
        .as_deref()
        .ok_or_else(|| "params are missing".to_owned())?;
    let members = Members::parse(params).map_err(|e| e.to_string())?;
    let reference = members
        .get("ref")
        .ok_or_else(|| "params.ref is missing".to_owned())?;
    let fields = Members::parse(reference).map_err(|e| format!("ref: {e}"))?;
    let kind = fields
        .string("type")
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let (member, new_ref) = match kind.as_str() {
        "ref/prompt" => {
            let name = fields
                .string("name")
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let prompt = catalog
                .prompt(&name)
                .ok_or_else(|| unknown(group, manager, "prompt", &name))?;
            (
                prompt.member.clone(),
                fields.with("name", &to_raw(&prompt.original)),
            )
        }
        "ref/resource" => {
            let uri = fields
                .string("uri")
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let names: Vec<String> = group
                .members(manager)
                .iter()
                .map(|u| u.name().to_owned())
                .collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let (member, theirs) = catalog
                .resource(&uri, &names)
                .ok_or_else(|| format!("no member of group {:?} serves {uri:?}", group.name()))?;
            (member, fields.with("uri", &to_raw(&theirs)))
        }
        other => {
            return Err(format!(
                "completion for a ref of type {other:?} cannot be routed"
            ));
        }
    };
    req.params = Some(members.with("ref", &new_ref));
    Ok(member)
}

/// A page of `items` under `key`, after the group's cursor in `params` (cursors name the
/// list's fingerprint: a cursor from before a change is refused, so a client never mixes
/// two versions of a list).
fn page(
    params: Option<&serde_json::value::RawValue>,
    items: Vec<&Value>,
    key: &str,
    print: u64,
) -> Result<Value, String> {
    let cursor = match params {
        Some(p) => Members::parse(p)
            .map_err(|e| e.to_string())?
            .string("cursor")
            .map_err(|e| e.to_string())?,
        None => None,
    };
    let start = match cursor {
        None => 0,
        Some(c) => {
            let (p, offset) = c
                .strip_prefix("g")
                .and_then(|rest| rest.split_once('-'))
                .ok_or_else(|| "invalid cursor".to_owned())?;
            if u64::from_str_radix(p, 16).ok() != Some(print) {
                return Err("the list changed since this cursor: list again from the start".into());
            }
            offset
                .parse::<usize>()
                .map_err(|_| "invalid cursor".to_owned())?
        }
    };
    let end = (start + PAGE).min(items.len());
    let slice: Vec<&Value> = items.get(start..end).unwrap_or_default().to_vec();
    let mut out = serde_json::json!({ key: slice });
    if end < items.len() {
        out["nextCursor"] = Value::String(format!("g{print:x}-{end}"));
    }
    Ok(out)
}
