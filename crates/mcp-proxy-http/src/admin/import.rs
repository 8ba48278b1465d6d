//! `POST /admin/mcps:import`: the `{"mcpServers": {name: {command, args, env} | {url,
//! headers, type}}}` document of most MCP clients (VS Code's `{"servers": {…}}` too), one
//! definition per entry, with a report of what became of each.
//!
//! The mapping ([`map_entry`]) is public so that `proxyd` reads the same format from
//! `servers_dir`.

use std::collections::BTreeMap;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mcp_types::{CommandSpec, DefinitionSource, FieldError, McpDefinition, Secret, TransportKind};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use crate::app::App;
use crate::body::{self, Body, json_response};
use crate::error::{Error, ErrorKind};

/// Keys of an entry the proxy uses; any other key is reported as ignored.
const KNOWN: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "type",
    "transport",
    "disabled",
    "description",
];

/// What became of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new definition was registered (or would be, in a dry run).
    Created,
    /// An existing definition was changed (or would be).
    Updated,
    /// The proxy already holds exactly this.
    Unchanged,
    /// Nothing was done; `code` and `reason` say why.
    Skipped,
}

/// Why an entry was skipped: `code` in its result. The refusals it shares with the rest
/// of the Admin API carry the same string as [`ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipCode {
    /// `invalid`: a field is wrong (`errors` says which).
    Invalid,
    /// `ambiguous_transport`: the url does not say which transport (`choices`).
    AmbiguousTransport,
    /// `disabled`: the entry is disabled in the file.
    Disabled,
    /// The name is taken.
    AlreadyExists,
    /// The upstream is declared in proxyd's configuration.
    DeclaredInConfig,
    /// `max_connections` upstreams exist.
    MaxConnectionsReached,
    /// The store failed.
    StoreUnavailable,
}

impl SkipCode {
    /// Every code, in the order of `docs/admin-api.md`.
    pub const ALL: &'static [Self] = &[
        Self::Invalid,
        Self::AmbiguousTransport,
        Self::Disabled,
        Self::DeclaredInConfig,
        Self::MaxConnectionsReached,
        Self::AlreadyExists,
        Self::StoreUnavailable,
    ];

    /// The code as it travels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::AmbiguousTransport => "ambiguous_transport",
            Self::Disabled => "disabled",
            Self::AlreadyExists => ErrorKind::AlreadyExists.as_str(),
            Self::DeclaredInConfig => ErrorKind::DeclaredInConfig.as_str(),
            Self::MaxConnectionsReached => ErrorKind::MaxConnectionsReached.as_str(),
            Self::StoreUnavailable => ErrorKind::StoreUnavailable.as_str(),
        }
    }
}

impl Serialize for SkipCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why an entry was not mapped to a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Why.
    pub code: SkipCode,
    /// A sentence saying what to change.
    pub reason: String,
    /// Failing fields, for `invalid`.
    pub errors: Vec<FieldError>,
    /// The transports to choose from, for `ambiguous_transport`.
    pub choices: Vec<&'static str>,
}

impl Skip {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code: SkipCode::Invalid,
            reason: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.to_owned(),
                message,
            }],
            choices: Vec::new(),
        }
    }
}

/// A mapped entry: the definition and remarks on what was not carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The definition (source `api`; the caller sets another when it declares).
    pub definition: McpDefinition,
    /// Ignored keys, placeholders passed literally.
    pub notes: Vec<String>,
}

/// The `(name, entry)` pairs of a document: its `mcpServers` object, or `servers`.
pub fn document_entries(doc: &Value) -> Result<Vec<(String, Value)>, String> {
    let shape = "expected {\"mcpServers\": {name: {command, args, env} | {url, headers, type}}}";
    let Some(obj) = doc.as_object() else {
        return Err(format!("the document is not a JSON object; {shape}"));
    };
    let servers = match (obj.get("mcpServers"), obj.get("servers")) {
        (Some(s), None) | (None, Some(s)) => s,
        (Some(_), Some(_)) => {
            return Err("the document has both mcpServers and servers; keep one".into());
        }
        (None, None) => return Err(format!("the document has no mcpServers object; {shape}")),
    };
    let Some(servers) = servers.as_object() else {
        return Err(format!("mcpServers is not an object; {shape}"));
    };
    Ok(servers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// Maps one entry to a definition named `name`. The transport is `stdio` with `command`;
/// with `url` it is `type` (`sse`, `http`/`streamable-http`), else the URL's last path
/// segment (`…/sse` or `…/mcp`); any other URL is ambiguous and asked for.
pub fn map_entry(name: &str, entry: &Value) -> Result<Mapped, Skip> {
    let Some(obj) = entry.as_object() else {
        return Err(Skip::invalid(name, "the entry is not an object"));
    };
    if let Err(reason) = mcp_types::name::check(name) {
        return Err(Skip::invalid(
            "name",
            format!(
                "{name:?} {reason}; rename the entry (for example to {:?})",
                suggest_name(name)
            ),
        ));
    }
    if obj.get("disabled").and_then(Value::as_bool) == Some(true) {
        return Err(Skip {
            code: SkipCode::Disabled,
            reason: "the entry is disabled in the file".into(),
            errors: Vec::new(),
            choices: Vec::new(),
        });
    }
    let mut notes = Vec::new();
    let ignored: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !ignored.is_empty() {
        notes.push(format!(
            "ignored {} (not used by the proxy)",
            ignored.join(", ")
        ));
    }
    let text = |key: &str| -> Result<Option<String>, Skip> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Skip::invalid(key, "must be a string")),
        }
    };
    let url = text("url")?;
    let kind_text = match text("type")? {
        Some(t) => Some(t),
        None => text("transport")?,
    };
    let command = match obj.get("command") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(CommandSpec::Program(s.clone())),
        Some(Value::Array(a)) => Some(CommandSpec::Argv(
            a.iter()
                .map(scalar)
                .collect::<Option<_>>()
                .ok_or_else(|| Skip::invalid("command", "must be a string or a list of strings"))?,
        )),
        Some(_) => {
            return Err(Skip::invalid(
                "command",
                "must be a string or a list of strings",
            ));
        }
    };
    let transport = match (kind_text.as_deref(), &command, &url) {
        (Some(t), _, _) => parse_kind(t)?,
        (None, Some(_), _) => TransportKind::Stdio,
        (None, None, Some(u)) => infer_from_url(u)?,
        (None, None, None) => {
            return Err(Skip::invalid(
                "command",
                "the entry needs a command (a stdio server) or a url (an http server)",
            ));
        }
    };
    let mut def = McpDefinition::new(name, transport);
    def.command = command;
    def.url = url;
    def.cwd = text("cwd")?;
    def.description = text("description")?;
    def.args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(scalar)
            .collect::<Option<_>>()
            .ok_or_else(|| Skip::invalid("args", "must be a list of strings"))?,
        Some(_) => return Err(Skip::invalid("args", "must be a list of strings")),
    };
    def.env = secret_map(obj, "env")?;
    def.headers = secret_map(obj, "headers")?;
    for (key, map) in [("env", &def.env), ("headers", &def.headers)] {
        for (k, v) in map {
            if v.expose().contains("${") {
                notes.push(format!(
                    "{key}.{k} holds a ${{…}} placeholder, passed on literally: the proxy does \
                     not expand a client's variables (proxyctl import --expand-env does)"
                ));
            }
        }
    }
    Ok(Mapped {
        definition: def,
        notes,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn secret_map(obj: &Map<String, Value>, key: &str) -> Result<BTreeMap<String, Secret>, Skip> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                scalar(v)
                    .map(|v| (k.clone(), Secret::new(v)))
                    .ok_or_else(|| Skip::invalid(&format!("{key}.{k}"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(Skip::invalid(key, "must be an object of strings")),
    }
}

fn parse_kind(t: &str) -> Result<TransportKind, Skip> {
    Ok(match t.to_ascii_lowercase().as_str() {
        "stdio" => TransportKind::Stdio,
        "sse" => TransportKind::Sse,
        "http" | "streamable-http" | "streamablehttp" | "streamable_http" => {
            TransportKind::StreamableHttp
        }
        _ => {
            return Err(Skip::invalid(
                "type",
                format!("{t:?} is not one of stdio, sse, http (streamable-http)"),
            ));
        }
    })
}

fn infer_from_url(u: &str) -> Result<TransportKind, Skip> {
    let last = url::Url::parse(u)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.rfind(|x| !x.is_empty()).map(str::to_owned))
        })
        .unwrap_or_default();
    match last.as_str() {
        "sse" => Ok(TransportKind::Sse),
        "mcp" => Ok(TransportKind::StreamableHttp),
        _ => Err(Skip {
            code: SkipCode::AmbiguousTransport,
            reason: format!(
                "the url {u:?} does not say whether the server speaks sse or streamable http: \
                 add \"type\": \"sse\" or \"type\": \"http\" to the entry"
            ),
            errors: Vec::new(),
            choices: vec!["sse", "streamable-http"],
        }),
    }
}

/// A valid name close to `name`: invalid characters become `-`.
fn suggest_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out
        .trim_start_matches(['-', '_'])
        .chars()
        .take(64)
        .collect();
    if out.is_empty() || mcp_types::name::check(&out).is_err() {
        out = format!("mcp-{}", out.trim_start_matches(['-', '_']));
        out.truncate(64);
    }
    out
}

/// What became of one entry, as the answer reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The entry's name.
    pub name: String,
    /// What was done.
    pub action: Action,
    /// The transport it maps to, when it maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportKind>,
    /// Why it was skipped (`invalid`, `ambiguous_transport`, `disabled`,
    /// `declared_in_config`, `max_connections_reached`, `store_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<SkipCode>,
    /// A sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Failing fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Transports to choose from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<&'static str>,
    /// Remarks (ignored keys, literal placeholders).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ImportResult {
    fn skipped(name: &str, skip: Skip, notes: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            action: Action::Skipped,
            transport: None,
            code: Some(skip.code),
            reason: Some(skip.reason),
            errors: skip.errors,
            choices: skip.choices,
            notes,
        }
    }
}

/// The fields an `mcpServers` entry carries replace those of an existing definition; the
/// others (filters, timeouts, auth, tags …) are kept.
fn merge(existing: &McpDefinition, new: &McpDefinition) -> McpDefinition {
    let mut d = existing.clone();
    d.transport = new.transport;
    d.command.clone_from(&new.command);
    d.args.clone_from(&new.args);
    d.env.clone_from(&new.env);
    d.cwd.clone_from(&new.cwd);
    d.url.clone_from(&new.url);
    d.headers.clone_from(&new.headers);
    if new.description.is_some() {
        d.description.clone_from(&new.description);
    }
    d
}

/// `?dryRun=true|false` (every `dryRun` given must say the same); anything else is 400.
fn dry_run(query: Option<&str>) -> Result<bool, Error> {
    let mut found = None;
    for (key, value) in query
        .into_iter()
        .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
    {
        if key != "dryRun" {
            continue;
        }
        let this = match value.as_ref() {
            "true" => true,
            "false" => false,
            other => {
                let message = format!("must be true or false, not {other:?}");
                return Err(Error::Invalid {
                    message: format!("invalid request: dryRun: {message}"),
                    details: serde_json::json!([{ "field": "dryRun", "message": message }]),
                });
            }
        };
        if found.is_some_and(|f| f != this) {
            let message = "is given twice with different values";
            return Err(Error::Invalid {
                message: format!("invalid request: dryRun: {message}"),
                details: serde_json::json!([{ "field": "dryRun", "message": message }]),
            });
        }
        found = Some(this);
    }
    Ok(found.unwrap_or(false))
}

/// `POST /admin/mcps:import[?dryRun=true]`.
pub(crate) async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let dry_run = dry_run(req.uri().query())?;
    let (parts, incoming) = req.into_parts();
    body::require_json(&parts.headers, body::Untyped::Json)?;
    let bytes = body::read_limited(&parts.headers, incoming, app.config().max_body_bytes).await?;
    let doc: Value = body::parse_json(&bytes)?;
    let entries = document_entries(&doc).map_err(|message| Error::Invalid {
        message,
        details: serde_json::json!([{ "field": "mcpServers", "message": "required" }]),
    })?;
    let mut results = Vec::with_capacity(entries.len());
    for (name, entry) in &entries {
        results.push(import_one(app, name, entry, dry_run).await);
    }
    let count = |a: Action| results.iter().filter(|r| r.action == a).count();
    let body = serde_json::json!({
        "dryRun": dry_run,
        "created": count(Action::Created),
        "updated": count(Action::Updated),
        "unchanged": count(Action::Unchanged),
        "skipped": count(Action::Skipped),
        "results": results,
    });
    info!(
        entries = entries.len(),
        created = count(Action::Created),
        updated = count(Action::Updated),
        skipped = count(Action::Skipped),
        dry_run,
        "mcpServers imported"
    );
    Ok(json_response(StatusCode::OK, &body))
}

async fn import_one(app: &App, name: &str, entry: &Value, dry_run: bool) -> ImportResult {
    let mapped = match map_entry(name, entry) {
        Ok(m) => m,
        Err(skip) => return ImportResult::skipped(name, skip, Vec::new()),
    };
    let Mapped {
        definition: def,
        notes,
    } = mapped;
    let transport = Some(def.transport);
    let done = |action| ImportResult {
        name: name.to_owned(),
        action,
        transport,
        code: None,
        reason: None,
        errors: Vec::new(),
        choices: Vec::new(),
        notes: notes.clone(),
    };
    let store_skip = |e: &dyn std::fmt::Display| Skip {
        code: SkipCode::StoreUnavailable,
        reason: format!("the store failed: {e}"),
        errors: Vec::new(),
        choices: Vec::new(),
    };
    let store = &app.inner().store;
    let manager = &app.inner().manager;
    let existing = match store.get(name).await {
        Ok(e) => e,
        Err(e) => return ImportResult::skipped(name, store_skip(&e), notes),
    };
    let Some(existing) = existing else {
        if let Err(e) = manager.validate(&def) {
            return ImportResult::skipped(name, invalid_skip(e), notes);
        }
        match store.get_group(name).await {
            Ok(Some(_)) => {
                let skip = Skip {
                    code: SkipCode::AlreadyExists,
                    reason: format!(
                        "a group is named {name:?}: groups and upstreams share one namespace"
                    ),
                    errors: Vec::new(),
                    choices: Vec::new(),
                };
                return ImportResult::skipped(name, skip, notes);
            }
            Ok(None) => {}
            Err(e) => return ImportResult::skipped(name, store_skip(&e), notes),
        }
        let registered = if dry_run {
            manager.check_room().await
        } else {
            manager.register(def).await.map(drop)
        };
        return match registered {
            Ok(()) => done(Action::Created),
            Err(e) => ImportResult::skipped(name, registration_skip(e), notes),
        };
    };
    let merged = merge(&existing, &def);
    if merged.same_config(&existing) {
        return done(Action::Unchanged);
    }
    if existing.source == DefinitionSource::Config {
        let e = mcp_proxy_core::Error::Declared(name.to_owned());
        return ImportResult::skipped(name, registration_skip(e), notes);
    }
    if let Err(e) = manager.validate(&merged) {
        return ImportResult::skipped(name, invalid_skip(e), notes);
    }
    if dry_run {
        return done(Action::Updated);
    }
    match manager.update(merged, None).await {
        Ok(_) => done(Action::Updated),
        Err(e) => ImportResult::skipped(name, registration_skip(e), notes),
    }
}

/// A refused registration or update as the entry's skip.
fn registration_skip(e: mcp_proxy_core::Error) -> Skip {
    use mcp_proxy_core::Error as C;
    let code = match &e {
        C::Invalid(errors) => return invalid_skip(errors.clone()),
        C::TooManyUpstreams(_) => SkipCode::MaxConnectionsReached,
        C::Declared(_) => SkipCode::DeclaredInConfig,
        C::Store(mcp_store::Error::NameTaken { .. }) => SkipCode::AlreadyExists,
        C::Store(mcp_store::Error::AlreadyExists(_)) => {
            return Skip {
                code: SkipCode::AlreadyExists,
                reason: "registered by someone else during the import; import again".into(),
                errors: Vec::new(),
                choices: Vec::new(),
            };
        }
        _ => SkipCode::StoreUnavailable,
    };
    let reason = match &e {
        C::Store(s) if code == SkipCode::StoreUnavailable => format!("the store failed: {s}"),
        _ if code == SkipCode::StoreUnavailable => format!("the proxy failed: {e}"),
        _ => e.to_string(),
    };
    Skip {
        code,
        reason,
        errors: Vec::new(),
        choices: Vec::new(),
    }
}

fn invalid_skip(e: mcp_types::ValidationErrors) -> Skip {
    Skip {
        code: SkipCode::Invalid,
        reason: e.to_string(),
        errors: e.0,
        choices: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `docs/admin-api.md` lists the codes of skipped entries: exactly these.
    #[test]
    fn the_admin_doc_lists_every_skip_code() {
        let doc = include_str!("../../../../docs/admin-api.md");
        let listed = doc
            .split("`skipped` with a `code` (")
            .nth(1)
            .and_then(|rest| rest.split(") and a `reason`").next())
            .expect("docs/admin-api.md lists the codes of skipped entries");
        // One item a code: its first backticked word (`invalid` with … `errors`).
        let named: Vec<&str> = listed
            .split(',')
            .filter_map(|item| item.split('`').nth(1))
            .collect();
        let codes: Vec<&str> = SkipCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(named, codes);
        assert_eq!(
            serde_json::to_value(SkipCode::MaxConnectionsReached).unwrap(),
            "max_connections_reached"
        );
    }

    #[test]
    fn transports_are_inferred_from_command_type_and_url_shape() {
        let kind = |v: Value| map_entry("x", &v).map(|m| m.definition.transport);
        assert_eq!(
            kind(json!({"command": "npx", "args": ["-y", "pkg"]})),
            Ok(TransportKind::Stdio)
        );
        assert_eq!(
            kind(json!({"url": "https://h/v1/sse"})),
            Ok(TransportKind::Sse)
        );
        assert_eq!(
            kind(json!({"url": "https://h/mcp/"})),
            Ok(TransportKind::StreamableHttp)
        );
        assert_eq!(
            kind(json!({"url": "https://h/api", "type": "http"})),
            Ok(TransportKind::StreamableHttp)
        );
        assert_eq!(
            kind(json!({"url": "https://h/mcp", "type": "sse"})),
            Ok(TransportKind::Sse)
        );
        let skip = kind(json!({"url": "https://h/api"})).unwrap_err();
        assert_eq!(skip.code, SkipCode::AmbiguousTransport);
        assert_eq!(skip.choices, ["sse", "streamable-http"]);
        assert!(skip.reason.contains("\"type\": \"sse\""), "{}", skip.reason);
        let skip = kind(json!({"url": "https://h/api", "type": "websocket"})).unwrap_err();
        assert_eq!(skip.code, SkipCode::Invalid);
        assert!(skip.reason.contains("websocket"));
    }

    #[test]
    fn entries_keep_what_they_say_and_report_what_is_ignored() {
        let m = map_entry(
            "fs",
            &json!({"command": "npx", "args": ["-y", 7], "env": {"TOKEN": "${GH_TOKEN}", "N": 1},
                    "autoApprove": ["read"], "cwd": "/srv"}),
        )
        .unwrap();
        let d = &m.definition;
        assert_eq!(d.args, ["-y", "7"]);
        assert_eq!(d.env["N"].expose(), "1");
        assert_eq!(d.cwd.as_deref(), Some("/srv"));
        assert!(m.notes[0].contains("autoApprove"), "{:?}", m.notes);
        assert!(m.notes[1].contains("env.TOKEN"), "{:?}", m.notes);
        let skip = map_entry("my server", &json!({"command": "x"})).unwrap_err();
        assert!(skip.reason.contains("\"my-server\""), "{}", skip.reason);
        let skip = map_entry("x", &json!({"command": "x", "disabled": true})).unwrap_err();
        assert_eq!(skip.code, SkipCode::Disabled);
        let skip = map_entry("x", &json!({"args": ["a"]})).unwrap_err();
        assert!(skip.reason.contains("needs a command"), "{}", skip.reason);
    }

    #[test]
    fn dry_run_is_true_or_false_and_nothing_else() {
        assert!(!dry_run(None).unwrap());
        assert!(!dry_run(Some("other=1")).unwrap());
        assert!(dry_run(Some("dryRun=true")).unwrap());
        assert!(dry_run(Some("dryRun=true&dryRun=true")).unwrap());
        assert!(!dry_run(Some("dryRun=false")).unwrap());
        for bad in [
            "dryRun=null",
            "dryRun",
            "dryRun=1",
            "dryRun=true&dryRun=false",
        ] {
            let Err(Error::Invalid { details, .. }) = dry_run(Some(bad)) else {
                panic!("{bad} accepted")
            };
            assert_eq!(details[0]["field"], "dryRun", "{bad}");
        }
    }

    #[test]
    fn documents_need_an_mcp_servers_object() {
        assert_eq!(
            document_entries(&json!({"mcpServers": {"a": {}}}))
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            document_entries(&json!({"servers": {"a": {}, "b": {}}}))
                .unwrap()
                .len(),
            2
        );
        assert!(document_entries(&json!({"name": "x"})).is_err());
        assert!(document_entries(&json!([])).is_err());
    }

    #[test]
    fn an_update_keeps_the_fields_the_format_cannot_carry() {
        let mut old = McpDefinition::stdio("t", "uvx", &["mcp-server-time"]);
        old.timeout = std::time::Duration::from_secs(5);
        old.tags = vec!["prod".into()];
        let new = McpDefinition::stdio("t", "uvx", &["mcp-server-time", "--local-timezone=UTC"]);
        let m = merge(&old, &new);
        assert_eq!(m.timeout, old.timeout);
        assert_eq!(m.tags, old.tags);
        assert_eq!(m.args, new.args);
        assert!(merge(&old, &old).same_config(&old));
    }
}
