//! Reading what the user hands over: files or standard input, definition files in JSON or
//! TOML, JSON with comments.

use std::io::Read;
use std::path::Path;

use mcp_types::McpDefinition;
use serde_json::{Map, Value};

use crate::exit::{Exit, Failure};

/// The text of `path`, or of standard input for `-`.
pub(crate) fn read_text(path: &Path) -> Result<String, Failure> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(Exit::Invalid, format!("standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| Failure::new(Exit::Invalid, format!("{}: {e}", path.display())))
}

/// The definitions of a file: one, a list (a JSON array, `{"servers": [...]}`, TOML
/// `[[servers]]`), keys in camelCase or snake_case. TOML when the name ends in `.toml`
/// (or, from standard input, when the text is not JSON).
pub(crate) fn definitions(path: &Path) -> Result<Vec<McpDefinition>, Failure> {
    let text = read_text(path)?;
    let shown = path.display().to_string();
    let bad = |m: String| Failure::new(Exit::Invalid, format!("{shown}: {m}"));
    let is_toml = path.extension().is_some_and(|e| e == "toml")
        || (path == Path::new("-") && serde_json::from_str::<Value>(&text).is_err());
    let value: Value = if is_toml {
        let t: toml::Value =
            toml::from_str(&text).map_err(|e| bad(format!("invalid toml: {e}")))?;
        serde_json::to_value(t).map_err(|e| bad(e.to_string()))?
    } else {
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid json: {e}")))?
    };
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut obj)
            if obj.len() == 1 && obj.get("servers").is_some_and(Value::is_array) =>
        {
            match obj.remove("servers") {
                Some(Value::Array(items)) => items,
                _ => unreachable!("checked"),
            }
        }
        other @ Value::Object(_) => vec![other],
        _ => return Err(bad("expected a definition or a list of them".into())),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            problems.push(format!("[{i}]: not an object"));
            continue;
        };
        match serde_json::from_value::<McpDefinition>(Value::Object(camel_case_keys(obj))) {
            Ok(d) => out.push(d),
            Err(e) => problems.push(format!("[{i}]: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(bad(problems.join("; ")))
    }
}

/// snake_case top-level keys become camelCase (`allowed_ips` → `allowedIPs`).
fn camel_case_keys(obj: Map<String, Value>) -> Map<String, Value> {
    obj.into_iter()
        .map(|(k, v)| {
            let key = match k.as_str() {
                "allowed_ips" => "allowedIPs".to_owned(),
                _ if k.contains('_') => k
                    .split('_')
                    .enumerate()
                    .map(|(i, w)| {
                        let mut c = w.chars();
                        match (i, c.next()) {
                            (0, _) | (_, None) => w.to_owned(),
                            (_, Some(f)) => f.to_ascii_uppercase().to_string() + c.as_str(),
                        }
                    })
                    .collect(),
                _ => k,
            };
            (key, v)
        })
        .collect()
}

/// JSON with `//` and `/* */` comments and trailing commas (VS Code's mcp.json), made
/// plain JSON. Strings are left as they are.
pub(crate) fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            (',', _) => {
                // A comma followed only by blanks and a closing bracket is dropped.
                let rest: String = chars.clone().take_while(|n| n.is_whitespace()).collect();
                let next = chars.clone().nth(rest.chars().count());
                if !matches!(next, Some('}' | ']')) {
                    out.push(',');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonc_comments_and_trailing_commas_go() {
        let text = r#"{
  // the servers
  "servers": { "a": { "url": "http://h/x//y", /* inline */ "type": "http", }, },
}"#;
        let v: Value = serde_json::from_str(&strip_jsonc(text)).unwrap();
        assert_eq!(v["servers"]["a"]["url"], "http://h/x//y");
    }

    #[test]
    fn definition_files_take_both_key_cases() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.toml");
        std::fs::write(
            &p,
            "[[servers]]\nname = \"t\"\ntransport = \"stdio\"\ncommand = \"x\"\nmax_reconnects = 2\n",
        )
        .unwrap();
        let defs = definitions(&p).unwrap();
        assert_eq!(defs[0].max_reconnects, 2);
        let p = dir.path().join("s.json");
        std::fs::write(
            &p,
            r#"{"name":"t","transport":"stdio","command":"x","colour":1}"#,
        )
        .unwrap();
        let err = definitions(&p).unwrap_err();
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert_eq!(err.exit, Exit::Invalid);
    }
}
