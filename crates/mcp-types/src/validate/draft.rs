//! Reading a definition (or a group) leniently, so that wrong types, unknown fields,
//! missing fields and invalid values are all reported together rather than the first one
//! alone.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{FieldError, ValidationErrors};
use crate::definition::McpDefinition;
use crate::group::GroupDefinition;

/// Every field of `McpDefinition`, as JSON names it.
pub(crate) const FIELDS: &[&str] = &[
    "name",
    "description",
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "timeout",
    "authTokens",
    "requireAuth",
    "allowedIPs",
    "passthroughHeaders",
    "autoReconnect",
    "maxReconnects",
    "reconnectDelay",
    "healthCheckEnabled",
    "healthCheckInterval",
    "toolFilter",
    "logEnabled",
    "sessionMode",
    "maxSessions",
    "tags",
    "source",
    "createdAt",
    "updatedAt",
    "version",
];

/// Every field of `GroupDefinition`, as JSON names it.
pub(crate) const GROUP_FIELDS: &[&str] = &[
    "name",
    "description",
    "members",
    "memberTags",
    "prefix",
    "separator",
    "strictNames",
    "overrides",
    "toolFilter",
    "authTokens",
    "requireAuth",
    "allowedIPs",
    "failMode",
    "createdAt",
    "updatedAt",
    "version",
];

/// What [`Lenient`] reads: a JSON object of known fields, some required.
pub trait Readable: DeserializeOwned + Sized {
    /// What it is, for messages: `a definition`.
    const WHAT: &'static str;
    /// Every field, as JSON names it.
    const FIELDS: &'static [&'static str];
    /// Required fields, and the stand-in used while the others are checked.
    const REQUIRED: &'static [(&'static str, &'static str)];
    /// The value used when nothing can be read.
    fn stand_in() -> Self;
    /// Every invalid value, skipping the checks that depend on fields that could not be
    /// read (`unreadable`, top-level names).
    fn invalid_fields(&self, unreadable: &[String]) -> ValidationErrors;
}

impl Readable for McpDefinition {
    const WHAT: &'static str = "a definition";
    const FIELDS: &'static [&'static str] = FIELDS;
    const REQUIRED: &'static [(&'static str, &'static str)] =
        &[("name", ""), ("transport", "stdio")];

    fn stand_in() -> Self {
        McpDefinition::new("", crate::TransportKind::Stdio)
    }

    fn invalid_fields(&self, unreadable: &[String]) -> ValidationErrors {
        McpDefinition::check(self, unreadable.iter().any(|u| u == "transport"))
    }
}

impl Readable for GroupDefinition {
    const WHAT: &'static str = "a group";
    const FIELDS: &'static [&'static str] = GROUP_FIELDS;
    const REQUIRED: &'static [(&'static str, &'static str)] = &[("name", "")];

    fn stand_in() -> Self {
        GroupDefinition::new("")
    }

    fn invalid_fields(&self, _unreadable: &[String]) -> ValidationErrors {
        self.validate().err().unwrap_or_default()
    }
}

/// A definition read from JSON leniently: see [`Lenient`].
pub type Draft = Lenient<McpDefinition>;

/// A group read from JSON leniently: see [`Lenient`].
pub type GroupDraft = Lenient<GroupDefinition>;

/// A value read from JSON leniently: what could be read, plus the problems of the fields
/// that could not.
///
/// ```
/// use mcp_types::validate::{Draft, GroupDraft};
///
/// let draft = Draft::from_slice(br#"{"name":"bad one","transport":"bogus"}"#).unwrap();
/// let errors = draft.finish(|_, _| {}).unwrap_err();
/// assert!(errors.has("name") && errors.has("transport"));
///
/// let group = GroupDraft::from_slice(br#"{"name":"g","prefix":"sometimes","members":7}"#);
/// let errors = group.unwrap().finish(|_, _| {}).unwrap_err();
/// assert!(errors.has("prefix") && errors.has("members"));
/// ```
#[derive(Debug)]
pub struct Lenient<T> {
    definition: T,
    errors: ValidationErrors,
    /// Top-level fields that could not be read (their values are stand-ins or defaults).
    unreadable: Vec<String>,
}

impl<T: Readable> Lenient<T> {
    /// Reads JSON text. Fails only when the text is not JSON at all; anything else is
    /// reported by [`Lenient::finish`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        // The strict read is the usual case, and the only one that sees duplicate keys,
        // which a `Value` would silently collapse.
        let strict = match serde_path_to_error::deserialize::<_, T>(
            &mut serde_json::Deserializer::from_slice(bytes),
        ) {
            Ok(definition) => return Ok(Self::readable(definition)),
            Err(e) => e,
        };
        let value: Value = serde_json::from_slice(bytes)?;
        let mut draft = Self::from_value(value);
        if draft.errors.0.is_empty() {
            let path = strict.path().to_string();
            let message = without_position(&strict.into_inner().to_string());
            let field = if path == "." { String::new() } else { path };
            draft.errors.push(field.clone(), message);
            draft.unreadable.push(top_level(&field));
        }
        Ok(draft)
    }

    /// Reads a JSON value.
    pub fn from_value(value: Value) -> Self {
        let Value::Object(mut map) = value else {
            let mut draft = Self::readable(T::stand_in());
            draft
                .errors
                .push("", format!("{} must be a JSON object", T::WHAT));
            draft.unreadable = T::FIELDS.iter().map(|f| (*f).to_owned()).collect();
            return draft;
        };
        let mut errors = ValidationErrors::default();
        let mut unreadable = Vec::new();
        map.retain(|key, _| {
            let known = T::FIELDS.contains(&key.as_str());
            if !known {
                errors.push(key.clone(), format!("unknown field `{key}`"));
            }
            known
        });
        for (field, stand_in) in T::REQUIRED {
            if !map.contains_key(*field) {
                errors.push(*field, "is required");
                unreadable.push((*field).to_owned());
                map.insert((*field).to_owned(), Value::from(*stand_in));
            }
        }
        // Each round either reads the whole value or takes one field out of it.
        let definition = loop {
            let de = Value::Object(map.clone());
            match serde_path_to_error::deserialize::<_, T>(de) {
                Ok(definition) => break definition,
                Err(e) => {
                    let path = e.path().to_string();
                    let top = top_level(&path);
                    let message = without_position(&e.into_inner().to_string());
                    errors.push(if path == "." { String::new() } else { path }, message);
                    if !take_out::<T>(&mut map, &top) {
                        // Not attributable to one field: nothing more can be read.
                        break T::stand_in();
                    }
                    unreadable.push(top);
                }
            }
        };
        Self {
            definition,
            errors,
            unreadable,
        }
    }

    fn readable(definition: T) -> Self {
        Self {
            definition,
            errors: ValidationErrors::default(),
            unreadable: Vec::new(),
        }
    }

    /// The value as read; fields that could not be read hold stand-ins or defaults.
    pub fn definition(&self) -> &T {
        &self.definition
    }

    /// The value as read, to complete before [`Lenient::finish`] (restoring kept
    /// secrets, clearing server-set fields).
    pub fn definition_mut(&mut self) -> &mut T {
        &mut self.definition
    }

    /// Whether the top-level `field` was read as sent.
    pub fn is_readable(&self, field: &str) -> bool {
        !self.unreadable.iter().any(|u| u == field)
    }

    /// Adds a problem found by the caller.
    pub fn push(&mut self, error: FieldError) {
        self.errors.0.push(error);
    }

    /// Validates what could be read, runs the caller's `extra` checks, and returns the
    /// value, or every problem found: the reading errors first, then the invalid values
    /// of the fields that could be read.
    pub fn finish(
        self,
        extra: impl FnOnce(&T, &mut ValidationErrors),
    ) -> Result<T, ValidationErrors> {
        let Self {
            definition,
            mut errors,
            unreadable,
        } = self;
        let mut found = definition.invalid_fields(&unreadable);
        extra(&definition, &mut found);
        errors.0.extend(
            found
                .0
                .into_iter()
                .filter(|e| !unreadable.iter().any(|u| covers(u, &e.field))),
        );
        if errors.0.is_empty() {
            Ok(definition)
        } else {
            Err(errors)
        }
    }
}

/// Removes `field` from the map (a required one gets its stand-in back); whether it was
/// there to take out.
fn take_out<T: Readable>(map: &mut Map<String, Value>, field: &str) -> bool {
    if map.remove(field).is_none() {
        return false;
    }
    if let Some((_, stand_in)) = T::REQUIRED.iter().find(|(f, _)| *f == field) {
        map.insert(field.to_owned(), Value::from(*stand_in));
    }
    true
}

/// `headers.X-Key` → `headers`, `allowedIPs[0]` → `allowedIPs`.
fn top_level(path: &str) -> String {
    path.split(['.', '[']).next().unwrap_or_default().to_owned()
}

/// Whether an error about `field` is about the top-level field `top`.
fn covers(top: &str, field: &str) -> bool {
    field
        .strip_prefix(top)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// serde_json's message without its ` at line 1 column 5` suffix.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> ValidationErrors {
        Draft::from_slice(json.as_bytes())
            .unwrap()
            .finish(|_, _| {})
            .unwrap_err()
    }

    #[test]
    fn a_wrong_type_does_not_hide_the_other_fields() {
        let errs = errors(r#"{"name":"bad one","transport":"bogus"}"#);
        assert!(errs.has("name") && errs.has("transport"), "{errs}");
        let errs = errors(
            r#"{"name":"bad one","transport":"sse","timeout":true,"url":"ftp://x",
                "headers":{"X-A":1},"maxSessions":0,"colour":"red","allowedIPs":["nope"]}"#,
        );
        for field in [
            "name",
            "timeout",
            "url",
            "headers.X-A",
            "maxSessions",
            "colour",
            "allowedIPs[0]",
        ] {
            assert!(errs.has(field), "{field} missing from {errs}");
        }
    }

    #[test]
    fn an_unreadable_transport_skips_the_checks_that_depend_on_it() {
        let errs = errors(r#"{"name":"ok","transport":{},"command":"x"}"#);
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(errs.has("transport"), "{errs}");
    }

    #[test]
    fn missing_required_fields_are_named() {
        let errs = errors(r#"{"timeout":"soon"}"#);
        for field in ["name", "transport", "timeout"] {
            assert!(errs.has(field), "{field} missing from {errs}");
        }
        let errs = errors("[1]");
        assert!(errs.has(""), "{errs}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let errs = errors(r#"{"name":"a","name":"b","transport":"stdio","command":"x"}"#);
        assert!(errs.0[0].message.contains("duplicate field"), "{errs}");
    }

    #[test]
    fn a_good_definition_reads_as_the_strict_parser_reads_it() {
        let text = r#"{"name":"fs","transport":"stdio","command":["npx","-y","x"],"timeout":"5s"}"#;
        let def = Draft::from_slice(text.as_bytes())
            .unwrap()
            .finish(|_, _| {})
            .unwrap();
        assert_eq!(def, serde_json::from_str::<McpDefinition>(text).unwrap());
        assert!(Draft::from_slice(b"{\"name\": ").is_err(), "not JSON");
    }

    fn group_errors(json: &str) -> ValidationErrors {
        GroupDraft::from_slice(json.as_bytes())
            .unwrap()
            .finish(|_, _| {})
            .unwrap_err()
    }

    #[test]
    fn a_group_reports_wrong_types_with_every_other_failing_field() {
        let errs = group_errors(
            r#"{"name":"bad one","members":"a","prefix":"sometimes","separator":"::",
                "failMode":true,"overrides":{"nodot":{}},"colour":1,"allowedIPs":["x"]}"#,
        );
        for field in [
            "name",
            "members",
            "prefix",
            "separator",
            "failMode",
            "overrides.nodot",
            "colour",
            "allowedIPs[0]",
        ] {
            assert!(errs.has(field), "{field} missing from {errs}");
        }
        let errs = group_errors(r#"{"members":["a"]}"#);
        assert!(errs.has("name"), "{errs}");
        let errs = group_errors("[]");
        assert_eq!(errs.0[0].message, "a group must be a JSON object");
        let good = GroupDraft::from_slice(br#"{"name":"g","members":["a","b"]}"#)
            .unwrap()
            .finish(|_, _| {})
            .unwrap();
        assert_eq!(good.members, ["a", "b"]);
    }

    #[test]
    fn the_group_field_list_is_complete() {
        let mut g = GroupDefinition::new("g");
        g.description = Some("d".into());
        g.members.push("a".into());
        g.member_tags.push("t".into());
        g.overrides
            .insert("a.t".into(), crate::ToolOverride::default());
        g.tool_filter = Some(crate::ToolFilter {
            mode: crate::FilterMode::Allow,
            list: vec![],
        });
        g.auth_tokens.push("t".into());
        g.allowed_ips.push("127.0.0.1".into());
        g.created_at = Some(crate::Timestamp::now());
        g.updated_at = Some(crate::Timestamp::now());
        g.version = Some(1);
        let Value::Object(map) = serde_json::to_value(&g).unwrap() else {
            panic!("an object")
        };
        let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut fields = GROUP_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
    }

    #[test]
    fn the_field_list_is_complete() {
        let mut def = McpDefinition::stdio("x", "y", &["z"]);
        def.description = Some("d".into());
        def.env.insert("A".into(), "b".into());
        def.cwd = Some("/".into());
        def.url = Some("http://h".into());
        def.headers.insert("X".into(), "v".into());
        def.auth_tokens.push("t".into());
        def.require_auth = true;
        def.allowed_ips.push("127.0.0.1".into());
        def.passthrough_headers.push("X-T".into());
        def.tool_filter = Some(crate::ToolFilter {
            mode: crate::FilterMode::Allow,
            list: vec![],
        });
        def.max_sessions = Some(1);
        def.tags.push("t".into());
        def.source = crate::DefinitionSource::Config;
        def.created_at = Some(crate::Timestamp::now());
        def.updated_at = Some(crate::Timestamp::now());
        def.version = Some(1);
        let Value::Object(map) = serde_json::to_value(&def).unwrap() else {
            panic!("an object")
        };
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        let mut fields = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(sorted_keys, fields);
    }
}
