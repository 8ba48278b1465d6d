//! Reading a definition leniently, so that wrong types, unknown fields, missing fields and
//! invalid values are all reported together rather than the first one alone.

use serde_json::{Map, Value};

use super::{FieldError, ValidationErrors};
use crate::definition::McpDefinition;

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

/// Required fields, and the stand-in used while the others are checked.
const REQUIRED: &[(&str, &str)] = &[("name", ""), ("transport", "stdio")];

/// A definition read from JSON leniently: what could be read, plus the problems of the
/// fields that could not.
///
/// ```
/// use mcp_types::validate::Draft;
///
/// let draft = Draft::from_slice(br#"{"name":"bad one","transport":"bogus"}"#).unwrap();
/// let errors = draft.finish(|_, _| {}).unwrap_err();
/// assert!(errors.has("name") && errors.has("transport"));
/// ```
#[derive(Debug)]
pub struct Draft {
    definition: McpDefinition,
    errors: ValidationErrors,
    /// Top-level fields that could not be read (their values are stand-ins or defaults).
    unreadable: Vec<String>,
}

impl Draft {
    /// Reads JSON text. Fails only when the text is not JSON at all; anything else is
    /// reported by [`Draft::finish`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        // The strict read is the usual case, and the only one that sees duplicate keys,
        // which a `Value` would silently collapse.
        let strict = match serde_path_to_error::deserialize::<_, McpDefinition>(
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
            let mut draft = Self::readable(McpDefinition::new("", crate::TransportKind::Stdio));
            draft.errors.push("", "a definition must be a JSON object");
            draft.unreadable = FIELDS.iter().map(|f| (*f).to_owned()).collect();
            return draft;
        };
        let mut errors = ValidationErrors::default();
        let mut unreadable = Vec::new();
        map.retain(|key, _| {
            let known = FIELDS.contains(&key.as_str());
            if !known {
                errors.push(key.clone(), format!("unknown field `{key}`"));
            }
            known
        });
        for (field, stand_in) in REQUIRED {
            if !map.contains_key(*field) {
                errors.push(*field, "is required");
                unreadable.push((*field).to_owned());
                map.insert((*field).to_owned(), Value::from(*stand_in));
            }
        }
        // Each round either reads the whole definition or takes one field out of it.
        let definition = loop {
            let de = Value::Object(map.clone());
            match serde_path_to_error::deserialize::<_, McpDefinition>(de) {
                Ok(definition) => break definition,
                Err(e) => {
                    let path = e.path().to_string();
                    let top = top_level(&path);
                    let message = without_position(&e.into_inner().to_string());
                    errors.push(if path == "." { String::new() } else { path }, message);
                    if !take_out(&mut map, &top) {
                        // Not attributable to one field: nothing more can be read.
                        break McpDefinition::new("", crate::TransportKind::Stdio);
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

    fn readable(definition: McpDefinition) -> Self {
        Self {
            definition,
            errors: ValidationErrors::default(),
            unreadable: Vec::new(),
        }
    }

    /// The definition as read; fields that could not be read hold stand-ins or defaults.
    pub fn definition(&self) -> &McpDefinition {
        &self.definition
    }

    /// The definition as read, to complete before [`Draft::finish`] (restoring kept
    /// secrets, clearing server-set fields).
    pub fn definition_mut(&mut self) -> &mut McpDefinition {
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
    /// definition, or every problem found: the reading errors first, then the invalid
    /// values of the fields that could be read.
    pub fn finish(
        self,
        extra: impl FnOnce(&McpDefinition, &mut ValidationErrors),
    ) -> Result<McpDefinition, ValidationErrors> {
        let Self {
            definition,
            mut errors,
            unreadable,
        } = self;
        let mut found = definition.check(unreadable.iter().any(|u| u == "transport"));
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
fn take_out(map: &mut Map<String, Value>, field: &str) -> bool {
    if map.remove(field).is_none() {
        return false;
    }
    if let Some((_, stand_in)) = REQUIRED.iter().find(|(f, _)| *f == field) {
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
