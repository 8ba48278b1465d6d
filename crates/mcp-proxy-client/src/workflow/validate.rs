//! Validation of one `mcps:` entry: every failing field is reported.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_types::{FieldError, McpName, TransportKind};

use super::{
    CommandConfig, DEFAULT_START_TIMEOUT, DurationConfig, McpEntryConfig, McpSource, McpSpec,
    Template,
};
use crate::error::Error;

/// What to write instead of `env` on a url entry: an HTTP server has no environment of
/// ours, so its secrets travel as headers. The hint reuses the entry's first value.
fn env_on_url_hint(env: &BTreeMap<String, super::ScalarConfig>) -> String {
    let (key, value) = env.iter().next().expect("env is not empty");
    let value = value.clone().into_text();
    let shown = if value.contains("{{") {
        value
    } else {
        format!("{{{{ .env.{key} }}}}")
    };
    format!(
        "env is the environment of a command the proxy spawns, and a url entry spawns \
         nothing; send the value as a header instead, e.g. \
         headers: {{ Authorization: \"Bearer {shown}\" }} (or the header name the server \
         expects, such as X-Api-Key)"
    )
}

/// Validates one entry, pushing every failing field; `None` when any failed.
pub(super) fn entry(
    field: &str,
    e: McpEntryConfig,
    errors: &mut Vec<FieldError>,
) -> Option<McpSpec> {
    let before = errors.len();
    let mut err = |name: &str, message: String| {
        errors.push(FieldError {
            field: format!("{field}.{name}"),
            message,
        });
    };
    let id = McpName::try_new(e.id.clone())
        .map_err(|x| err("id", x.to_string()))
        .ok();
    let transport = match e.transport.as_deref() {
        None if e.command.is_some() => Some(TransportKind::Stdio),
        None => Some(TransportKind::Sse),
        Some("stdio") => Some(TransportKind::Stdio),
        Some("sse") => Some(TransportKind::Sse),
        Some("streamable-http") => Some(TransportKind::StreamableHttp),
        Some(other) => {
            err(
                "transport",
                format!("{other:?} is not one of stdio, sse, streamable-http"),
            );
            None
        }
    };
    if e.command.is_some() && e.url.is_some() {
        err(
            "command",
            "an entry has either command or url, not both".into(),
        );
    }
    if e.command.is_none() && e.url.is_none() {
        err("url", "an entry needs a url or a command".into());
    }
    let argv = match &e.command {
        Some(CommandConfig::Line(line)) => match shell_words::split(line) {
            Ok(words) if words.is_empty() => {
                err("command", "is empty".into());
                None
            }
            Ok(words) => Some(words),
            Err(x) => {
                err("command", format!("cannot split {line:?}: {x}"));
                None
            }
        },
        Some(CommandConfig::Argv(v)) if v.is_empty() || v[0].trim().is_empty() => {
            err("command", "is empty".into());
            None
        }
        Some(CommandConfig::Argv(v)) => Some(v.clone()),
        None => None,
    };
    let url = e
        .url
        .as_deref()
        .and_then(|u| match crate::client::parse_http_url(u) {
            Ok(url) => Some(url),
            Err(Error::InvalidUrl { reason, .. }) => {
                err("url", format!("{u:?} is not an http(s) url: {reason}"));
                None
            }
            Err(x) => {
                err("url", x.to_string());
                None
            }
        });
    match transport {
        Some(TransportKind::Stdio) if e.url.is_some() => {
            err("transport", "stdio needs a command, not a url".into());
        }
        Some(t) if t.is_http() && e.command.is_some() => {
            err(
                "transport",
                format!("{} needs a url, not a command", t.as_str()),
            );
        }
        _ => {}
    }
    if e.url.is_some() && !e.args.is_empty() {
        err("args", "args apply to command entries only".into());
    }
    if e.url.is_some() && !e.env.is_empty() {
        err("env", env_on_url_hint(&e.env));
    }
    if e.command.is_some() && !e.headers.is_empty() {
        err("headers", "headers apply to url entries only".into());
    }
    let mut env = BTreeMap::new();
    for (k, v) in e.env {
        if k.is_empty() || k.contains(['=', '\0']) {
            err(&format!("env.{k}"), "invalid variable name".into());
        }
        match Template::parse(&v.into_text()) {
            Ok(t) => {
                env.insert(k, t);
            }
            Err(m) => err(&format!("env.{k}"), m),
        }
    }
    let mut headers = BTreeMap::new();
    for (k, v) in e.headers {
        if !mcp_types::validate::is_header_name(&k) {
            err(&format!("headers.{k}"), "invalid header name".into());
        }
        match Template::parse(&v.into_text()) {
            Ok(t) if t.has_line_break() => {
                err(&format!("headers.{k}"), "value contains CR or LF".into());
            }
            Ok(t) => {
                headers.insert(k, t);
            }
            Err(m) => err(&format!("headers.{k}"), m),
        }
    }
    let start_timeout = match e.start_timeout {
        None => Some(DEFAULT_START_TIMEOUT),
        Some(DurationConfig::Seconds(s)) => Some(Duration::from_secs(s)),
        Some(DurationConfig::Text(t)) => mcp_types::duration::parse(&t)
            .map_err(|m| err("start_timeout", m))
            .ok(),
    };
    if start_timeout.is_some_and(|d| d.is_zero()) {
        err("start_timeout", "must be positive".into());
    }
    if e.max_sessions == Some(0) {
        err("max_sessions", "must be at least 1".into());
    }
    if errors.len() > before {
        return None;
    }
    let source = match (argv, url, transport) {
        (Some(mut argv), None, _) => {
            let program = argv.remove(0);
            argv.extend(e.args);
            McpSource::Stdio {
                program,
                args: argv,
            }
        }
        (None, Some(url), Some(transport)) => McpSource::Http { url, transport },
        _ => return None,
    };
    Some(McpSpec {
        id: id?,
        source,
        env,
        headers,
        use_proxy: e.use_proxy,
        start_timeout: start_timeout?,
        max_sessions: e.max_sessions,
        field: field.to_owned(),
    })
}
