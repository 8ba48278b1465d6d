//! The merged catalog of a group: its members' tools, prompts, resources and resource
//! templates under names clients accept, with the way back to the member for each.
//!
//! Deterministic: members in the order of their names, each member's items in the
//! order it listed them. Names:
//! - a prefix `{member}{separator}` by the group's `prefix` mode (`always`; only for
//!   names more than one member has, `on-collision`; `never`);
//! - characters outside the specification's rule (`^[A-Za-z0-9_.-]{1,128}$`, or with
//!   `strictNames` `^[A-Za-z0-9_-]{1,64}$`) become `_`;
//! - a name that is still too long, or that changed on the way, keeps its first part and
//!   ends with `_` and 8 hex digits of a digest of `{member}/{original}`: the same input
//!   always gives the same name;
//! - an override's `name` replaces all of that; a name two items would share is never
//!   served to either (the collision is reported), so no tool shadows another.
//!
//! Resource URIs stay as the member gave them unless two members list the same one; then
//! both become `{member}+{uri}` (reversible: the group keeps the way back).

use std::collections::{BTreeMap, HashMap};

use mcp_types::{GroupDefinition, PrefixMode};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::discovery::Catalog;

/// One member as the merge sees it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    /// The member's name.
    pub name: &'a str,
    /// Its catalog (already filtered by its own tool filter).
    pub catalog: &'a Catalog,
}

/// One merged tool or prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Merged {
    /// Its name in the group.
    pub name: String,
    /// The member it comes from.
    pub member: String,
    /// Its name at the member.
    pub original: String,
    /// The item as the group's clients see it (name replaced, overrides applied).
    #[serde(skip)]
    pub value: Value,
}

/// A name two or more items would have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Collision {
    /// `tool` or `prompt`.
    pub kind: &'static str,
    /// The name they share.
    pub name: String,
    /// `{member}.{original}` of each.
    pub origins: Vec<String>,
}

/// The merged catalog of a group.
#[derive(Debug, Clone, Default)]
pub struct MergedCatalog {
    /// Tools, in order.
    pub tools: Vec<Merged>,
    /// Prompts, in order.
    pub prompts: Vec<Merged>,
    /// Resources as the group's clients see them.
    pub resources: Vec<Value>,
    /// Resource templates as the group's clients see them.
    pub resource_templates: Vec<Value>,
    /// Names left out because two items would share them.
    pub collisions: Vec<Collision>,
    /// Override keys that name no tool of a member.
    pub unknown_overrides: Vec<String>,
    tools_by_name: HashMap<String, usize>,
    prompts_by_name: HashMap<String, usize>,
    /// Rewritten URI → (member, the member's URI).
    rewritten_uris: HashMap<String, (String, String)>,
    /// The member of each URI kept as it was.
    uri_owner: HashMap<String, String>,
    /// Template → member (as given by the member).
    template_owner: Vec<(String, String)>,
    /// What each list shows, digested once (see [`MergedCatalog::fingerprints`]).
    prints: [u64; 3],
}

impl MergedCatalog {
    /// The tool named `name` in the group.
    pub fn tool(&self, name: &str) -> Option<&Merged> {
        self.tools_by_name.get(name).map(|&i| &self.tools[i])
    }

    /// The prompt named `name` in the group.
    pub fn prompt(&self, name: &str) -> Option<&Merged> {
        self.prompts_by_name.get(name).map(|&i| &self.prompts[i])
    }

    /// The member serving `uri`, and the URI to ask it for: a listed resource (kept or
    /// rewritten), a `{member}+` URI, or a URI that matches exactly one member's
    /// templates.
    pub fn resource(&self, uri: &str, members: &[&str]) -> Option<(String, String)> {
        if let Some(found) = self.rewritten_uris.get(uri) {
            return Some(found.clone());
        }
        if let Some(member) = self.uri_owner.get(uri) {
            return Some((member.clone(), uri.to_owned()));
        }
        if let Some((member, rest)) = uri.split_once('+')
            && members.contains(&member)
        {
            return Some((member.to_owned(), rest.to_owned()));
        }
        let mut matching = self
            .template_owner
            .iter()
            .filter(|(t, _)| template_matches(t, uri))
            .map(|(_, m)| m);
        match (matching.next(), matching.next()) {
            (Some(m), None) => Some((m.clone(), uri.to_owned())),
            _ => None,
        }
    }

    /// The URI a client sees for `uri` of `member` (for `resources/updated`).
    pub fn client_uri(&self, member: &str, uri: &str) -> String {
        let rewritten = format!("{member}+{uri}");
        if self.rewritten_uris.contains_key(&rewritten) {
            rewritten
        } else {
            uri.to_owned()
        }
    }

    /// The group name of `member`'s prompt `original`, if it is served.
    pub fn prompt_name_of(&self, member: &str, original: &str) -> Option<&str> {
        self.prompts
            .iter()
            .find(|p| p.member == member && p.original == original)
            .map(|p| p.name.as_str())
    }

    /// A digest of what each list shows clients: `[tools, prompts, resources]` — a
    /// change means `notifications/*/list_changed` for the group's sessions.
    pub fn fingerprints(&self) -> [u64; 3] {
        self.prints
    }

    fn digest(&self) -> [u64; 3] {
        let digest = |values: &mut dyn Iterator<Item = &Value>| {
            let mut h = Sha256::new();
            for v in values {
                h.update(v.to_string().as_bytes());
                h.update([0]);
            }
            let out = h.finalize();
            u64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
        };
        [
            digest(&mut self.tools.iter().map(|t| &t.value)),
            digest(&mut self.prompts.iter().map(|p| &p.value)),
            digest(&mut self.resources.iter().chain(self.resource_templates.iter())),
        ]
    }
}

/// Merges `members` (any order) under `group`'s rules.
pub fn merge(group: &GroupDefinition, members: &[Member<'_>]) -> MergedCatalog {
    let mut members: Vec<&Member<'_>> = members.iter().collect();
    members.sort_by_key(|m| m.name);
    let mut out = MergedCatalog::default();

    // Tools.
    let mut tools: Vec<Candidate> = Vec::new();
    let mut used_overrides: Vec<String> = Vec::new();
    for m in &members {
        for tool in &m.catalog.tools {
            let key = format!("{}.{}", m.name, tool.name);
            let value = serde_json::to_value(tool).unwrap_or(Value::Null);
            let over = group.overrides.get(&key);
            if over.is_some() {
                used_overrides.push(key);
            }
            if over.is_some_and(|o| o.hidden) {
                continue;
            }
            tools.push(Candidate {
                member: m.name.to_owned(),
                original: tool.name.clone(),
                value,
                fixed: over.and_then(|o| o.name.clone()),
                description: over.and_then(|o| o.description.clone()),
                title: over.and_then(|o| o.title.clone()),
            });
        }
    }
    out.unknown_overrides = group
        .overrides
        .keys()
        .filter(|k| !used_overrides.contains(k))
        .cloned()
        .collect();
    let (tools, collisions) = name_all(group, tools, "tool");
    out.collisions.extend(collisions);
    out.tools = tools
        .into_iter()
        .filter(|t| group.permits_tool(&t.name))
        .collect();

    // Prompts.
    let prompts: Vec<Candidate> = members
        .iter()
        .flat_map(|m| {
            m.catalog.prompts.iter().filter_map(|p| {
                Some(Candidate {
                    member: m.name.to_owned(),
                    original: p.get("name")?.as_str()?.to_owned(),
                    value: p.clone(),
                    fixed: None,
                    description: None,
                    title: None,
                })
            })
        })
        .collect();
    let (prompts, collisions) = name_all(group, prompts, "prompt");
    out.collisions.extend(collisions);
    out.prompts = prompts;
    out.tools_by_name = index(&out.tools);
    out.prompts_by_name = index(&out.prompts);

    // Resources: kept, unless two members list the same URI.
    let mut owners: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &members {
        for r in &m.catalog.resources {
            if let Some(uri) = r.get("uri").and_then(Value::as_str) {
                owners.entry(uri.to_owned()).or_default().push(m.name);
            }
        }
    }
    for m in &members {
        for r in &m.catalog.resources {
            let Some(uri) = r.get("uri").and_then(Value::as_str) else {
                continue;
            };
            let mut r = r.clone();
            if owners.get(uri).is_some_and(|o| o.len() > 1) {
                let rewritten = format!("{}+{uri}", m.name);
                r["uri"] = Value::String(rewritten.clone());
                out.rewritten_uris
                    .insert(rewritten, (m.name.to_owned(), uri.to_owned()));
            } else {
                out.uri_owner.insert(uri.to_owned(), m.name.to_owned());
            }
            out.resources.push(r);
        }
        for t in &m.catalog.resource_templates {
            if let Some(template) = t.get("uriTemplate").and_then(Value::as_str) {
                out.template_owner
                    .push((template.to_owned(), m.name.to_owned()));
            }
            out.resource_templates.push(t.clone());
        }
    }
    out.prints = out.digest();
    out
}

struct Candidate {
    member: String,
    original: String,
    value: Value,
    fixed: Option<String>,
    description: Option<String>,
    title: Option<String>,
}

fn index(items: &[Merged]) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect()
}

/// Names every candidate; a name two would share is given to neither.
fn name_all(
    group: &GroupDefinition,
    candidates: Vec<Candidate>,
    kind: &'static str,
) -> (Vec<Merged>, Vec<Collision>) {
    let strict = group.strict_names;
    // How many members offer each bare name (for `on-collision`).
    let mut bare: HashMap<String, Vec<&str>> = HashMap::new();
    for c in &candidates {
        let members = bare.entry(clean(&c.original, strict)).or_default();
        if !members.contains(&c.member.as_str()) {
            members.push(&c.member);
        }
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|c| {
            if let Some(fixed) = &c.fixed {
                return fixed.clone();
            }
            let prefixed = match group.prefix {
                PrefixMode::Always => true,
                PrefixMode::Never => false,
                PrefixMode::OnCollision => bare
                    .get(&clean(&c.original, strict))
                    .is_some_and(|m| m.len() > 1),
            };
            let wanted = if prefixed {
                format!("{}{}{}", c.member, group.separator, c.original)
            } else {
                c.original.clone()
            };
            fit(&wanted, &c.member, &c.original, strict)
        })
        .collect();
    let mut count: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        count.entry(n.as_str()).or_default().push(i);
    }
    let mut collisions: Vec<Collision> = count
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(name, at)| Collision {
            kind,
            name: (*name).to_owned(),
            origins: at
                .iter()
                .map(|&i| format!("{}.{}", candidates[i].member, candidates[i].original))
                .collect(),
        })
        .collect();
    collisions.sort_by(|a, b| a.name.cmp(&b.name));
    let merged = candidates
        .into_iter()
        .zip(names.iter())
        .filter(|(_, name)| count.get(name.as_str()).is_some_and(|at| at.len() == 1))
        .map(|(c, name)| {
            let mut value = c.value;
            if let Some(obj) = value.as_object_mut() {
                obj.insert("name".into(), Value::String(name.clone()));
                if let Some(d) = c.description {
                    obj.insert("description".into(), Value::String(d));
                }
                if let Some(t) = c.title {
                    obj.insert("title".into(), Value::String(t));
                }
            }
            Merged {
                name: name.clone(),
                member: c.member,
                original: c.original,
                value,
            }
        })
        .collect();
    (merged, collisions)
}

/// `name` with characters outside the rule replaced by `_`.
fn clean(name: &str, strict: bool) -> String {
    name.chars()
        .map(|c| {
            let ok = c.is_ascii_alphanumeric() || c == '_' || c == '-' || (!strict && c == '.');
            if ok { c } else { '_' }
        })
        .collect()
}

/// A name within the rule for `wanted`: as it is when it already fits; otherwise
/// cleaned, cut, and ended with a digest of where it came from.
fn fit(wanted: &str, member: &str, original: &str, strict: bool) -> String {
    if mcp_types::group::tool_name_ok(wanted, strict) {
        return wanted.to_owned();
    }
    let max = if strict { 64 } else { 128 };
    let digest = Sha256::digest(format!("{member}/{original}").as_bytes());
    let suffix = format!(
        "_{:08x}",
        u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
    );
    let cleaned = clean(wanted, strict);
    let keep = max - suffix.len();
    let head: String = cleaned.chars().take(keep).collect();
    format!("{head}{suffix}")
}

/// Whether `uri` could come from RFC 6570 `template` (each `{…}` expression matches any
/// run of characters without `/`, `{+…}` and `{#…}` any run at all).
fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    let mut t = template;
    loop {
        match t.find('{') {
            None => return rest == t,
            Some(open) => {
                let literal = &t[..open];
                let Some(after) = rest.strip_prefix(literal) else {
                    return false;
                };
                let Some(close) = t[open..].find('}') else {
                    return false;
                };
                let expr = &t[open + 1..open + close];
                let greedy = expr.starts_with('+') || expr.starts_with('#');
                t = &t[open + close + 1..];
                let next_literal = t.split('{').next().unwrap_or("");
                // Find where this expression's value ends: at the next literal.
                let candidates: Vec<usize> = if next_literal.is_empty() {
                    vec![after.len()]
                } else {
                    after.match_indices(next_literal).map(|(i, _)| i).collect()
                };
                let Some(end) = candidates
                    .into_iter()
                    .find(|&i| greedy || !after[..i].contains('/'))
                else {
                    return false;
                };
                if !greedy && after[..end].contains('/') {
                    return false;
                }
                rest = &after[end..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_types::mcp::Tool;
    use mcp_types::{ToolOverride, group::tool_name_ok};

    fn tool(name: &str) -> Tool {
        serde_json::from_value(serde_json::json!({"name": name, "inputSchema": {"type": "object"}}))
            .unwrap()
    }

    fn catalog(tools: &[&str]) -> Catalog {
        Catalog {
            tools: tools.iter().map(|t| tool(t)).collect(),
            is_loaded: true,
            ..Catalog::default()
        }
    }

    fn names(c: &MergedCatalog) -> Vec<&str> {
        c.tools.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn prefix_modes() {
        let (a, b) = (
            catalog(&["search", "a-only"]),
            catalog(&["search", "b-only"]),
        );
        let members = [
            Member {
                name: "b",
                catalog: &b,
            },
            Member {
                name: "a",
                catalog: &a,
            },
        ];
        let mut g = GroupDefinition::new("g");
        g.prefix = PrefixMode::OnCollision;
        let m = merge(&g, &members);
        assert_eq!(names(&m), ["a__search", "a-only", "b__search", "b-only"]);
        assert_eq!(m.tool("b__search").unwrap().original, "search");
        assert_eq!(m.tool("b-only").unwrap().member, "b");
        g.prefix = PrefixMode::Always;
        g.separator = "_".into();
        assert_eq!(
            names(&merge(&g, &members)),
            ["a_search", "a_a-only", "b_search", "b_b-only"]
        );
        g.prefix = PrefixMode::Never;
        let m = merge(&g, &members);
        assert_eq!(
            names(&m),
            ["a-only", "b-only"],
            "a shared name is served to neither"
        );
        assert_eq!(m.collisions.len(), 1);
        assert_eq!(m.collisions[0].origins, ["a.search", "b.search"]);
    }

    #[test]
    fn strict_names_are_clean_short_and_deterministic() {
        let long = "x".repeat(70);
        let c = catalog(&["files.read", &long, "ok_name"]);
        let members = [Member {
            name: "fs",
            catalog: &c,
        }];
        let mut g = GroupDefinition::new("g");
        g.strict_names = true;
        g.prefix = PrefixMode::Always;
        let m = merge(&g, &members);
        for t in &m.tools {
            assert!(tool_name_ok(&t.name, true), "{}", t.name);
        }
        assert_eq!(m.tools[2].name, "fs__ok_name");
        assert!(m.tools[0].name.starts_with("fs__files_read_"));
        assert_eq!(
            names(&merge(&g, &members)),
            names(&m),
            "the same every time"
        );
        assert_eq!(m.tool(&m.tools[1].name).unwrap().original, long);
    }

    #[test]
    fn overrides_rename_describe_and_hide() {
        let c = catalog(&["a", "b", "c"]);
        let members = [Member {
            name: "m",
            catalog: &c,
        }];
        let mut g = GroupDefinition::new("g");
        g.overrides.insert(
            "m.a".into(),
            ToolOverride {
                name: Some("renamed".into()),
                description: Some("new words".into()),
                ..ToolOverride::default()
            },
        );
        g.overrides.insert(
            "m.b".into(),
            ToolOverride {
                hidden: true,
                ..ToolOverride::default()
            },
        );
        g.overrides.insert("m.nope".into(), ToolOverride::default());
        let m = merge(&g, &members);
        assert_eq!(names(&m), ["renamed", "c"]);
        assert_eq!(m.tools[0].value["description"], "new words");
        assert_eq!(m.tools[0].original, "a");
        assert_eq!(m.unknown_overrides, ["m.nope"]);
        // an override that takes a name already served collides instead of shadowing
        g.overrides.get_mut("m.a").unwrap().name = Some("c".into());
        let m = merge(&g, &members);
        assert_eq!(names(&m), Vec::<&str>::new());
        assert_eq!(m.collisions[0].name, "c");
    }

    #[test]
    fn shared_uris_are_rewritten_reversibly_and_templates_route() {
        let mut a = catalog(&[]);
        a.resources = vec![
            serde_json::json!({"uri": "file:///shared"}),
            serde_json::json!({"uri": "file:///a"}),
        ];
        a.resource_templates = vec![serde_json::json!({"uriTemplate": "a://items/{id}"})];
        let mut b = catalog(&[]);
        b.resources = vec![serde_json::json!({"uri": "file:///shared"})];
        let members = [
            Member {
                name: "a",
                catalog: &a,
            },
            Member {
                name: "b",
                catalog: &b,
            },
        ];
        let m = merge(&GroupDefinition::new("g"), &members);
        let uris: Vec<&str> = m
            .resources
            .iter()
            .filter_map(|r| r["uri"].as_str())
            .collect();
        assert_eq!(uris, ["a+file:///shared", "file:///a", "b+file:///shared"]);
        let names = ["a", "b"];
        assert_eq!(
            m.resource("b+file:///shared", &names),
            Some(("b".into(), "file:///shared".into()))
        );
        assert_eq!(
            m.resource("file:///a", &names),
            Some(("a".into(), "file:///a".into()))
        );
        assert_eq!(
            m.resource("a://items/42", &names),
            Some(("a".into(), "a://items/42".into()))
        );
        assert_eq!(m.resource("a://items/4/2", &names), None);
        assert_eq!(m.client_uri("b", "file:///shared"), "b+file:///shared");
        assert_eq!(m.client_uri("a", "file:///a"), "file:///a");
    }
}
