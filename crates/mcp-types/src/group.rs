//! Groups ("virtual servers"): one MCP endpoint over several upstreams, with merged
//! catalogs. What a POST/PUT to `/admin/groups` carries and what the store keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::definition::ToolFilter;
use crate::secret::{HANDLE_PREFIX, REDACTED, Secret};
use crate::time::Timestamp;
use crate::validate::ValidationErrors;

/// Default [`GroupDefinition::separator`].
pub const DEFAULT_SEPARATOR: &str = "__";

/// When a member's tool and prompt names get the member's name in front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrefixMode {
    /// Always: `{member}{separator}{name}`. Names never change when members come and go.
    Always,
    /// Only names that more than one member has.
    #[default]
    OnCollision,
    /// Never; a name more than one member has is left out of the catalog and reported.
    Never,
}

impl PrefixMode {
    /// The name used in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnCollision => "on-collision",
            Self::Never => "never",
        }
    }
}

/// What the group does while a member is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// The member is left out of the catalog; calls to its tools answer a clear error.
    #[default]
    Open,
    /// The whole group is unavailable.
    Closed,
}

impl FailMode {
    /// The name used in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }
}

/// A change to how one member's tool looks in the group. Keyed by `{member}.{tool}` in
/// [`GroupDefinition::overrides`] (member names have no `.`, so the first one splits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolOverride {
    /// The tool's name in the group (no prefix is added to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A new description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A new title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Left out of the group's catalog, and refused if called.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// A group: a name served at `/{name}/mcp` and `/{name}/sse`, over member upstreams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupDefinition {
    /// The group's name; groups and upstreams share one namespace.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Member upstreams by name (a name that does not exist yet is simply absent).
    #[serde(default)]
    pub members: Vec<String>,
    /// Upstreams with any of these tags are members too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_tags: Vec<String>,
    /// When member names go in front of tool and prompt names.
    #[serde(default)]
    pub prefix: PrefixMode,
    /// Between the member's name and the tool's.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Keep merged names within `^[A-Za-z0-9_-]{1,64}$` (what several LLM APIs accept),
    /// shortening deterministically when needed.
    #[serde(default)]
    pub strict_names: bool,
    /// Per-tool changes, by `{member}.{tool}`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::object::map_values"
    )]
    pub overrides: BTreeMap<String, ToolOverride>,
    /// A filter over the group's tool names (after prefixes and overrides).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::object::option"
    )]
    pub tool_filter: Option<ToolFilter>,
    /// Bearer tokens accepted on the group's endpoints (besides the global ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_tokens: Vec<Secret>,
    /// Require a token even when none is configured for the group.
    #[serde(default)]
    pub require_auth: bool,
    /// Client addresses (IPs or CIDRs) allowed on the group's endpoints.
    #[serde(default, rename = "allowedIPs", skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// What happens while a member is down.
    #[serde(default)]
    pub fail_mode: FailMode,
    /// Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Set by the store at every write (see the store's versions); the `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_owned()
}

impl GroupDefinition {
    /// An empty group named `name` with every default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            members: Vec::new(),
            member_tags: Vec::new(),
            prefix: PrefixMode::default(),
            separator: default_separator(),
            strict_names: false,
            overrides: BTreeMap::new(),
            tool_filter: None,
            auth_tokens: Vec::new(),
            require_auth: false,
            allowed_ips: Vec::new(),
            fail_mode: FailMode::default(),
            created_at: None,
            updated_at: None,
            version: None,
        }
    }

    /// Whether `upstream` (with `tags`) is a member.
    pub fn has_member(&self, upstream: &str, tags: &[String]) -> bool {
        self.members.iter().any(|m| m == upstream)
            || self.member_tags.iter().any(|t| tags.contains(t))
    }

    /// Whether a tool name passes the group's filter.
    pub fn permits_tool(&self, name: &str) -> bool {
        self.tool_filter.as_ref().is_none_or(|f| f.permits(name))
    }

    /// Forgets what the server sets (timestamps, version): a client's values are ignored.
    pub fn clear_server_fields(&mut self) {
        self.created_at = None;
        self.updated_at = None;
        self.version = None;
    }

    /// A copy fit for responses: each of `authTokens` becomes its handle `***:<digest>`
    /// ([`Secret::handle`], scoped by the group's name), as for a definition, so that a
    /// PUT can say which tokens to keep ([`GroupDefinition::restore_secrets`]).
    pub fn redacted(&self) -> Self {
        let mut g = self.clone();
        for t in &mut g.auth_tokens {
            *t = Secret::new(t.handle(&self.name));
        }
        g
    }

    /// Replaces each handle in `authTokens` that names exactly one token of `stored` (the
    /// group being replaced) by that token, wherever it stands in the list. Anything else
    /// is left as it is, and validation refuses a placeholder left.
    pub fn restore_secrets(&mut self, stored: &GroupDefinition) {
        crate::definition::secrets::restore_tokens(
            &mut self.auth_tokens,
            &stored.auth_tokens,
            &stored.name,
        );
    }

    /// Whether two versions of a group would serve the same catalog and rules (what the
    /// server sets aside).
    pub fn same_config(&self, other: &Self) -> bool {
        let strip = |g: &Self| {
            let mut g = g.clone();
            g.clear_server_fields();
            g
        };
        strip(self) == strip(other)
    }

    /// Checks every field; reports every failing one at once.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        if let Err(reason) = crate::name::check(&self.name) {
            errs.push("name", format!("{:?} {reason}", self.name));
        }
        if let Some(d) = &self.description
            && d.chars().count() > 1024
        {
            errs.push("description", "must be at most 1024 characters");
        }
        for (i, m) in self.members.iter().enumerate() {
            if let Err(reason) = crate::name::check(m) {
                errs.push(format!("members[{i}]"), format!("{m:?} {reason}"));
            }
            if self.members[..i].contains(m) {
                errs.push(format!("members[{i}]"), format!("{m:?} is listed twice"));
            }
            if *m == self.name {
                errs.push(format!("members[{i}]"), "a group cannot be its own member");
            }
        }
        for (i, t) in self.member_tags.iter().enumerate() {
            if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
                errs.push(format!("memberTags[{i}]"), "must be 1 to 64 characters");
            }
        }
        let sep_ok = !self.separator.is_empty()
            && self.separator.len() <= 8
            && self
                .separator
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !(self.strict_names && self.separator.contains('.'));
        if !sep_ok {
            errs.push(
                "separator",
                "must be 1 to 8 characters of letters, digits, '_', '-' or '.' ('.' not with strictNames)",
            );
        }
        for (key, o) in &self.overrides {
            let field = format!("overrides.{key}");
            match key.split_once('.') {
                Some((member, tool)) if crate::name::check(member).is_ok() && !tool.is_empty() => {}
                _ => errs.push(&field, "keys are {member}.{tool}"),
            }
            if let Some(name) = &o.name
                && !tool_name_ok(name, self.strict_names)
            {
                errs.push(
                    format!("{field}.name"),
                    if self.strict_names {
                        "must match ^[A-Za-z0-9_-]{1,64}$ (strictNames)"
                    } else {
                        "must match ^[A-Za-z0-9_.-]{1,128}$"
                    },
                );
            }
            if o.description
                .as_ref()
                .is_some_and(|d| d.chars().count() > 4096)
            {
                errs.push(
                    format!("{field}.description"),
                    "must be at most 4096 characters",
                );
            }
            if o.title.as_ref().is_some_and(|t| t.chars().count() > 256) {
                errs.push(format!("{field}.title"), "must be at most 256 characters");
            }
        }
        if let Some(f) = &self.tool_filter {
            for (i, t) in f.list.iter().enumerate() {
                if t.trim().is_empty() {
                    errs.push(format!("toolFilter.list[{i}]"), "must not be empty");
                }
            }
        }
        for (i, t) in self.auth_tokens.iter().enumerate() {
            let field = format!("authTokens[{i}]");
            if t.expose() == REDACTED {
                errs.push(
                    field,
                    format!(
                        "a bare {REDACTED:?} cannot say which stored token to keep: send the \
                         \"{HANDLE_PREFIX}…\" handle a GET shows for it, or a new token"
                    ),
                );
                continue;
            }
            if t.expose().starts_with(HANDLE_PREFIX) {
                errs.push(
                    field,
                    format!(
                        "{:?} names no stored token (or several): send a handle a GET shows, \
                         or a new token",
                        t.expose()
                    ),
                );
                continue;
            }
            let t = t.expose();
            if t.is_empty()
                || t.len() > 4096
                || t.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errs.push(
                    field,
                    "must be 1 to 4096 characters without spaces or control characters",
                );
            }
        }
        for (i, ip) in self.allowed_ips.iter().enumerate() {
            if let Err(e) = crate::validate::parse_ip_net(ip) {
                errs.push(format!("allowedIPs[{i}]"), e);
            }
        }
        errs.into_result()
    }
}

/// Whether `name` is a tool name clients accept: the specification's rule
/// (`^[A-Za-z0-9_.-]{1,128}$`), or with `strict` the rule of several LLM APIs
/// (`^[A-Za-z0-9_-]{1,64}$`).
pub fn tool_name_ok(name: &str, strict: bool) -> bool {
    let max = if strict { 64 } else { 128 };
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (!strict && b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_fields_are_refused() {
        let g: GroupDefinition =
            serde_json::from_str(r#"{"name":"all","members":["a","b"]}"#).unwrap();
        assert_eq!(g.prefix, PrefixMode::OnCollision);
        assert_eq!(g.separator, "__");
        assert_eq!(g.fail_mode, FailMode::Open);
        g.validate().unwrap();
        let again: GroupDefinition =
            serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(g, again);
        assert!(serde_json::from_str::<GroupDefinition>(r#"{"name":"x","memebrs":[]}"#).is_err());
    }

    #[test]
    fn every_failing_field_is_reported() {
        let mut g = GroupDefinition::new("bad name");
        g.members = vec!["ok".into(), "ok".into(), "no/slash".into()];
        g.separator = "::".into();
        g.overrides.insert("nodot".into(), ToolOverride::default());
        g.overrides.insert(
            "a.tool".into(),
            ToolOverride {
                name: Some("has space".into()),
                ..ToolOverride::default()
            },
        );
        let errs = g.validate().unwrap_err();
        let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "name",
            "members[1]",
            "members[2]",
            "separator",
            "overrides.nodot",
            "overrides.a.tool.name",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn a_round_trip_of_the_redacted_form_keeps_the_tokens_it_names() {
        let mut stored = GroupDefinition::new("team");
        stored.auth_tokens = vec!["old-token-123".into(), "good-token-456".into()];
        stored.version = Some(9);
        let shown = stored.redacted();
        assert!(shown.auth_tokens.iter().all(Secret::is_placeholder));
        assert_ne!(shown.auth_tokens[0], shown.auth_tokens[1]);
        let mut back = shown.clone();
        back.restore_secrets(&stored);
        assert_eq!(back, stored);
        back.validate().unwrap();
        // keep only the second token, by its handle
        let mut kept = shown.clone();
        kept.auth_tokens = vec![shown.auth_tokens[1].clone(), "***".into(), "***:0".into()];
        kept.restore_secrets(&stored);
        assert_eq!(kept.auth_tokens[0].expose(), "good-token-456");
        let errs = kept.validate().unwrap_err();
        assert!(
            errs.has("authTokens[1]") && errs.has("authTokens[2]"),
            "{errs}"
        );
        assert!(!errs.has("authTokens[0]"), "{errs}");
        // a placeholder in a new group stands for nothing
        assert!(shown.validate().unwrap_err().has("authTokens[0]"));
        // what the server sets is not configuration
        let mut later = stored.clone();
        later.version = Some(10);
        later.updated_at = Some(Timestamp::now());
        assert!(later.same_config(&stored));
    }

    #[test]
    fn tool_name_rules() {
        assert!(tool_name_ok("admin.tools.list", false));
        assert!(!tool_name_ok("admin.tools.list", true));
        assert!(tool_name_ok(&"a".repeat(128), false));
        assert!(!tool_name_ok(&"a".repeat(65), true));
        assert!(!tool_name_ok("", false) && !tool_name_ok("a b", false));
    }
}
