//! The discovery cache: what an upstream offers, listed (every page) after each connect and
//! refreshed on `list_changed`.

use mcp_transport::McpClient;
use mcp_types::mcp::{Tool, methods};
use serde_json::Value;
use tracing::warn;

/// What one upstream offers. Items are kept as the upstream sent them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Tools (unfiltered; filters apply where tools are shown or called).
    pub tools: Vec<Tool>,
    /// Prompts.
    pub prompts: Vec<Value>,
    /// Resources.
    pub resources: Vec<Value>,
    /// Resource templates.
    pub resource_templates: Vec<Value>,
    /// Whether the lists were fetched at all (false until the first connect).
    pub is_loaded: bool,
    /// Lists that could not be fetched, with the reason.
    pub errors: Vec<String>,
}

impl Catalog {
    /// Whether a tool of this name is listed.
    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }
}

/// Which lists a refresh covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lists {
    All,
    Tools,
    Prompts,
    Resources,
}

impl Lists {
    /// The lists a `list_changed` notification invalidates.
    pub(crate) fn for_notification(method: &str) -> Option<Self> {
        match method {
            methods::TOOLS_LIST_CHANGED => Some(Self::Tools),
            methods::PROMPTS_LIST_CHANGED => Some(Self::Prompts),
            methods::RESOURCES_LIST_CHANGED => Some(Self::Resources),
            _ => None,
        }
    }

    fn covers(self, other: Self) -> bool {
        self == Self::All || self == other
    }
}

/// Fetches the `which` lists the upstream's `capabilities` declare, into `catalog`.
pub(crate) async fn refresh(
    client: &McpClient,
    capabilities: &Value,
    which: Lists,
    catalog: &mut Catalog,
) {
    let has = |cap: &str| capabilities.get(cap).is_some_and(|v| !v.is_null());
    catalog.errors.clear();
    if which.covers(Lists::Tools) && has("tools") {
        match client.list_all(methods::TOOLS_LIST, "tools").await {
            Ok(items) => {
                catalog.tools = items
                    .into_iter()
                    .filter_map(|v| match serde_json::from_value::<Tool>(v) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            warn!(upstream = %client.target(), error = %e, "skipping a malformed tool");
                            None
                        }
                    })
                    .collect();
            }
            Err(e) => catalog.errors.push(format!("tools/list: {e}")),
        }
    }
    if which.covers(Lists::Prompts) && has("prompts") {
        match client.list_all(methods::PROMPTS_LIST, "prompts").await {
            Ok(items) => catalog.prompts = items,
            Err(e) => catalog.errors.push(format!("prompts/list: {e}")),
        }
    }
    if which.covers(Lists::Resources) && has("resources") {
        match client.list_all(methods::RESOURCES_LIST, "resources").await {
            Ok(items) => catalog.resources = items,
            Err(e) => catalog.errors.push(format!("resources/list: {e}")),
        }
        match client
            .list_all(methods::RESOURCE_TEMPLATES_LIST, "resourceTemplates")
            .await
        {
            Ok(items) => catalog.resource_templates = items,
            Err(e) => catalog
                .errors
                .push(format!("resources/templates/list: {e}")),
        }
    }
    catalog.is_loaded = true;
}
