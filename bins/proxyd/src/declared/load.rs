//! Reading the declarations: `[[servers]]` of the configuration and the files of
//! `servers_dir`, into validated definitions marked `source: config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcp_types::{DefinitionSource, McpDefinition};
use serde_json::{Map, Value};

use super::expand::expand_value;
use crate::config::ProxydConfig;

/// Files of `servers_dir` read at most (the rest is an error, not silently dropped).
pub(crate) const MAX_FILES: usize = 1000;
/// Largest definition file read.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One declared server and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Declaration {
    /// `proxyd.toml servers[0]`, `servers_dir/time.toml`, …
    pub(crate) origin: String,
    /// The validated definition, `source: config`.
    pub(crate) definition: McpDefinition,
}

/// Every declared server.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredSet {
    /// Whether the configuration declares servers at all (`servers` is set, even to `[]`,
    /// or `servers_dir` is). A replica that declares nothing leaves `source: config`
    /// definitions alone.
    pub(crate) managed: bool,
    /// The declarations, sorted by name.
    pub(crate) servers: Vec<Declaration>,
}

impl DeclaredSet {
    /// `name (origin), …` for logs.
    pub(crate) fn summary(&self) -> String {
        self.servers
            .iter()
            .map(|d| format!("{} ({})", d.definition.name, d.origin))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads, expands and validates every declaration of `cfg`; `env` looks variables up.
/// Every problem is reported at once; nothing is returned when there is one.
pub(crate) fn load(
    cfg: &ProxydConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<DeclaredSet> {
    let mut problems = Vec::new();
    let mut raw: Vec<(String, Value)> = Vec::new();
    for (i, entry) in cfg.servers.iter().flatten().enumerate() {
        raw.push((format!("servers[{i}]"), entry.clone()));
    }
    if let Some(dir) = &cfg.servers_dir {
        match dir_files(dir) {
            Ok(files) => {
                for path in files {
                    match read_file(&path) {
                        Ok(entries) => raw.extend(entries),
                        Err(why) => problems.push(format!("{}: {why}", path.display())),
                    }
                }
            }
            Err(why) => problems.push(format!("servers_dir {}: {why}", dir.display())),
        }
    }
    let mut by_name: BTreeMap<String, Declaration> = BTreeMap::new();
    for (origin, mut value) in raw {
        let mut found = Vec::new();
        expand_value(&mut value, "", env, &mut found);
        if !found.is_empty() {
            problems.extend(found.into_iter().map(|p| format!("{origin}: {p}")));
            continue;
        }
        let def = match definition(value) {
            Ok(def) => def,
            Err(why) => {
                problems.push(format!("{origin}: {why}"));
                continue;
            }
        };
        if let Err(e) = mcp_proxy_core::validate_definition(&def, &cfg.stdio_allowed_commands) {
            for f in e.0 {
                problems.push(format!("{origin}: {}: {}", f.field, f.message));
            }
            continue;
        }
        if let Some(first) = by_name.get(&def.name) {
            problems.push(format!(
                "{origin}: server {:?} is already declared by {}",
                def.name, first.origin
            ));
            continue;
        }
        by_name.insert(
            def.name.clone(),
            Declaration {
                origin,
                definition: def,
            },
        );
    }
    if !problems.is_empty() {
        anyhow::bail!("invalid declared servers:\n  - {}", problems.join("\n  - "));
    }
    Ok(DeclaredSet {
        managed: cfg.servers.is_some() || cfg.servers_dir.is_some(),
        servers: by_name.into_values().collect(),
    })
}

/// The definition files of `dir`, sorted: `*.json` and `*.toml`, hidden files skipped.
pub(crate) fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot list: {e}"))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let wanted = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "toml")
        );
        if wanted && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.len() > MAX_FILES {
        return Err(format!(
            "{} definition files, more than the {MAX_FILES} read",
            files.len()
        ));
    }
    Ok(files)
}

/// The raw entries of one file, each with its origin. A file holds one definition (its
/// name defaults to the file's stem), a list (`servers = [...]`, a JSON array), or an
/// `mcpServers` document.
fn read_file(path: &Path) -> Result<Vec<(String, Value)>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!("{size} bytes, more than the {MAX_FILE_BYTES} read"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let shown = path.display().to_string();
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        let t: toml::Value = toml::from_str(&text).map_err(|e| format!("invalid toml: {e}"))?;
        serde_json::to_value(t).map_err(|e| format!("invalid toml: {e}"))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("invalid json: {e}"))?
    };
    let at = |suffix: &str| format!("{shown} {suffix}");
    let list = |items: &[Value]| {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| (at(&format!("servers[{i}]")), v.clone()))
            .collect()
    };
    Ok(match value {
        Value::Array(items) => list(&items),
        Value::Object(obj) => match obj.get("servers") {
            Some(Value::Array(items)) if obj.len() == 1 => list(items),
            _ if obj.contains_key("mcpServers") || obj.contains_key("servers") => {
                mcp_servers(&Value::Object(obj), &shown)?
            }
            _ => {
                let mut obj = obj;
                if !obj.contains_key("name")
                    && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                {
                    obj.insert("name".into(), stem.into());
                }
                vec![(shown, Value::Object(obj))]
            }
        },
        _ => return Err("expected a definition, a list of them, or an mcpServers object".into()),
    })
}

/// Marker key: the entry is an `mcpServers` entry, mapped after expansion.
const MCP_SERVERS_ENTRY: &str = "\u{0}mcpServersEntry";

/// An `mcpServers` document's entries, marked for [`definition`].
fn mcp_servers(doc: &Value, shown: &str) -> Result<Vec<(String, Value)>, String> {
    let entries = mcp_proxy_http::import::document_entries(doc)?;
    Ok(entries
        .into_iter()
        .map(|(name, entry)| {
            let wrapped =
                serde_json::json!({ MCP_SERVERS_ENTRY: { "name": name, "entry": entry } });
            (format!("{shown} mcpServers.{name}"), wrapped)
        })
        .collect())
}

/// A definition from a declared entry (keys in snake_case or camelCase), or from a marked
/// `mcpServers` entry.
fn definition(value: Value) -> Result<McpDefinition, String> {
    let Value::Object(obj) = value else {
        return Err("a declared server must be a table (an object)".into());
    };
    let mut def = if let Some(wrapped) = obj.get(MCP_SERVERS_ENTRY) {
        let name = wrapped["name"].as_str().unwrap_or_default();
        mcp_proxy_http::import::map_entry(name, &wrapped["entry"])
            .map_err(|skip| skip.reason)?
            .definition
    } else {
        let obj = camel_case_keys(obj)?;
        serde_path_to_error::deserialize::<_, McpDefinition>(Value::Object(obj)).map_err(|e| {
            let path = e.path().to_string();
            let mut inner = e.into_inner().to_string();
            // The list of every field is long; the field reference is in the docs.
            if let Some(at) = inner.find(", expected one of") {
                inner.truncate(at);
                inner.push_str(" (the fields are those of an MCPDefinition)");
            }
            if path == "." {
                inner
            } else {
                format!("{path}: {inner}")
            }
        })?
    };
    def.source = DefinitionSource::Config;
    def.created_at = None;
    def.updated_at = None;
    Ok(def)
}

/// Top-level keys in snake_case become the definition's camelCase (`health_check_interval`
/// → `healthCheckInterval`, `allowed_ips` → `allowedIPs`); `env` and `headers` keys are
/// left alone.
fn camel_case_keys(obj: Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in obj {
        let key = camel_case(&k);
        if let Some(first) = written.get(&key) {
            return Err(format!("{first} and {k} name the same field"));
        }
        written.insert(key.clone(), k);
        out.insert(key, v);
    }
    Ok(out)
}

fn camel_case(key: &str) -> String {
    if key == "allowed_ips" || key == "allowedIps" {
        return "allowedIPs".into();
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(servers: Value) -> ProxydConfig {
        ProxydConfig {
            servers: Some(serde_json::from_value(servers).unwrap()),
            ..ProxydConfig::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn snake_and_camel_case_keys_both_work() {
        let set = load(
            &cfg(serde_json::json!([
                {"name": "a", "transport": "stdio", "command": "x", "health_check_interval": "5s",
                 "allowed_ips": ["127.0.0.1"], "env": {"MY_VAR": "1"}},
                {"name": "b", "transport": "sse", "url": "http://127.0.0.1:1/sse", "maxReconnects": 2},
            ])),
            &no_env,
        )
        .unwrap();
        let a = &set.servers[0].definition;
        assert_eq!(a.health_check_interval, Duration::from_secs(5));
        assert_eq!(a.allowed_ips, ["127.0.0.1"]);
        assert!(a.env.contains_key("MY_VAR"), "env keys are not renamed");
        assert_eq!(a.source, DefinitionSource::Config);
        assert_eq!(set.servers[1].definition.max_reconnects, 2);
        assert!(set.managed);
        assert_eq!(set.servers[0].origin, "servers[0]");
    }

    #[test]
    fn every_problem_is_reported_with_its_origin() {
        let err = load(
            &cfg(serde_json::json!([
                {"name": "a", "transport": "stdio", "command": "x", "colour": "red"},
                {"name": "b", "transport": "stdio", "command": "npx -y pkg"},
                {"name": "c", "transport": "stdio", "command": "x", "env": {"T": "${NOT_SET_ANYWHERE}"}},
                {"name": "d", "transport": "stdio", "command": "x"},
                {"name": "d", "transport": "stdio", "command": "y"},
                {"name": "e", "transport": "stdio", "command": "x", "max_reconnects": 1, "maxReconnects": 2},
            ])),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        for want in [
            "servers[0]: colour: unknown field `colour` (the fields are those of an MCPDefinition)",
            "servers[1]: command: \"npx -y pkg\" is one program name",
            "servers[2]: env.T: environment variable NOT_SET_ANYWHERE is not set",
            "servers[4]: server \"d\" is already declared by servers[3]",
            "servers[5]: max_reconnects and maxReconnects name the same field",
        ] {
            assert!(err.contains(want), "{want:?} missing from:\n{err}");
        }
    }

    #[test]
    fn files_hold_one_definition_a_list_or_an_mcp_servers_document() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w(
            "time.toml",
            "transport = \"stdio\"\ncommand = \"mcp-server-time\"\n",
        );
        w(
            "more.toml",
            "[[servers]]\nname = \"m1\"\ntransport = \"stdio\"\ncommand = \"x\"\n",
        );
        w(
            "list.json",
            r#"[{"name":"j1","transport":"sse","url":"http://127.0.0.1:1/sse"}]"#,
        );
        w(
            "claude.json",
            r#"{"mcpServers":{"c1":{"command":"uvx","args":["x"],"env":{"K":"${KEY}"}},
                              "c2":{"url":"http://127.0.0.1:1/mcp"}}}"#,
        );
        w(".hidden.toml", "not = valid = toml");
        w("notes.txt", "ignored");
        let cfg = ProxydConfig {
            servers_dir: Some(dir.path().to_owned()),
            ..ProxydConfig::default()
        };
        let env = |n: &str| (n == "KEY").then(|| "k-1".to_owned());
        let set = load(&cfg, &env).unwrap();
        let names: Vec<&str> = set
            .servers
            .iter()
            .map(|d| d.definition.name.as_str())
            .collect();
        assert_eq!(names, ["c1", "c2", "j1", "m1", "time"]);
        assert_eq!(set.servers[0].definition.env["K"].expose(), "k-1");
        assert!(set.servers[0].origin.ends_with("claude.json mcpServers.c1"));
        assert!(set.servers[4].origin.ends_with("time.toml"));
        w("broken.json", "{");
        let err = load(&cfg, &env).unwrap_err().to_string();
        assert!(err.contains("broken.json: invalid json"), "{err}");
    }
}
