//! Validation of definitions: every failing field is reported at once.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::definition::{McpDefinition, TransportKind};

mod draft;

pub use draft::{Draft, GroupDraft, Lenient, Readable};

/// One failing field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field path, e.g. `url` or `headers.X-Key`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Every failing field of a definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// Adds a failing field.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// `Ok` when nothing failed.
    pub(crate) fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Whether a field of this name failed.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid definition: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// Headers the proxy manages itself, or that must never be set by configuration.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Whether `name` is a valid HTTP header name (RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses an allow-list entry: an IP address or a CIDR network.
pub fn parse_ip_net(entry: &str) -> Result<ipnet::IpNet, String> {
    let t = entry.trim();
    if let Ok(net) = t.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    t.parse::<IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR network"))
}

const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl McpDefinition {
    /// Checks every field; returns all failures together. To read JSON and report wrong
    /// types along with invalid values, use [`Draft`].
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let errs = self.check(false);
        if errs.0.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// Every failure; the checks that depend on the transport are skipped when it could
    /// not be read.
    pub(crate) fn check(&self, skip_transport: bool) -> ValidationErrors {
        let mut errs = ValidationErrors::default();
        if let Err(reason) = crate::name::check(&self.name) {
            errs.push("name", format!("{:?} {reason}", self.name));
        }
        if let Some(d) = &self.description
            && d.chars().count() > 1024
        {
            errs.push("description", "must be at most 1024 characters");
        }
        if !skip_transport {
            self.validate_transport(&mut errs);
        }
        self.validate_headers(&mut errs);
        self.check_placeholders(&mut errs);
        check_duration(
            &mut errs,
            "timeout",
            self.timeout,
            Duration::from_millis(10),
        );
        check_duration(
            &mut errs,
            "reconnectDelay",
            self.reconnect_delay,
            Duration::from_millis(10),
        );
        // Checked even when health checks are off: they can be turned on by a later PUT
        // that leaves the interval alone.
        check_duration(
            &mut errs,
            "healthCheckInterval",
            self.health_check_interval,
            Duration::from_secs(1),
        );
        for (i, t) in self.auth_tokens.iter().enumerate() {
            let t = t.expose();
            if t.is_empty()
                || t.len() > 4096
                || t.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                errs.push(
                    format!("authTokens[{i}]"),
                    "must be 1 to 4096 characters without spaces or control characters",
                );
            }
        }
        for (i, ip) in self.allowed_ips.iter().enumerate() {
            if let Err(e) = parse_ip_net(ip) {
                errs.push(format!("allowedIPs[{i}]"), e);
            }
        }
        for (i, h) in self.passthrough_headers.iter().enumerate() {
            let lower = h.to_ascii_lowercase();
            if !is_header_name(h) {
                errs.push(
                    format!("passthroughHeaders[{i}]"),
                    format!("{h:?} is not a header name"),
                );
            } else if lower == "authorization"
                || lower == "cookie"
                || FORBIDDEN_HEADERS.contains(&lower.as_str())
            {
                errs.push(
                    format!("passthroughHeaders[{i}]"),
                    format!("{h:?} cannot be passed through (the proxy consumes or manages it)"),
                );
            }
        }
        if let Some(f) = &self.tool_filter {
            for (i, t) in f.list.iter().enumerate() {
                if t.trim().is_empty() {
                    errs.push(format!("toolFilter.list[{i}]"), "must not be empty");
                }
            }
        }
        if let Some(n) = self.max_sessions
            && !(1..=100_000).contains(&n)
        {
            errs.push("maxSessions", "must be between 1 and 100000");
        }
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty() || t.chars().count() > 64 {
                errs.push(format!("tags[{i}]"), "must be 1 to 64 characters");
            }
        }
        errs
    }

    fn validate_transport(&self, errs: &mut ValidationErrors) {
        match self.transport {
            TransportKind::Stdio => {
                match self.command.as_ref().and_then(|c| c.program()) {
                    None => errs.push("command", "is required for the stdio transport"),
                    Some(p) if p.trim().is_empty() => errs.push("command", "must not be empty"),
                    Some(p) if p.contains('\0') => errs.push("command", "must not contain NUL"),
                    Some(_) => {}
                }
                if self.url.is_some() {
                    errs.push("url", "must not be set for the stdio transport");
                }
                if !self.headers.is_empty() {
                    errs.push("headers", "apply only to HTTP transports");
                }
                for (k, v) in &self.env {
                    if k.is_empty() || k.contains(['=', '\0']) {
                        errs.push(
                            format!("env.{k}"),
                            "names must be non-empty, without '=' or NUL",
                        );
                    }
                    if v.expose().contains('\0') {
                        errs.push(format!("env.{k}"), "values must not contain NUL");
                    }
                }
                if self.args.iter().any(|a| a.contains('\0')) {
                    errs.push("args", "must not contain NUL");
                }
            }
            TransportKind::Sse | TransportKind::StreamableHttp => {
                match self.url.as_deref() {
                    None => errs.push(
                        "url",
                        format!("is required for the {} transport", self.transport.as_str()),
                    ),
                    Some(u) => match url::Url::parse(u) {
                        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
                            errs.push("url", "must use http or https")
                        }
                        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => {
                            errs.push("url", "must name a host")
                        }
                        Ok(_) => {}
                        Err(e) => errs.push("url", format!("{u:?} is not a URL: {e}")),
                    },
                }
                if self.command.is_some() {
                    errs.push("command", "must not be set for an HTTP transport");
                }
                if !self.args.is_empty() {
                    errs.push("args", "apply only to the stdio transport");
                }
                if !self.env.is_empty() {
                    errs.push("env", "applies only to the stdio transport");
                }
                if self.cwd.is_some() {
                    errs.push("cwd", "applies only to the stdio transport");
                }
            }
        }
    }

    fn validate_headers(&self, errs: &mut ValidationErrors) {
        for (k, v) in &self.headers {
            let field = format!("headers.{k}");
            if !is_header_name(k) {
                errs.push(field, "is not a valid header name");
                continue;
            }
            if FORBIDDEN_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                errs.push(
                    field,
                    "is managed by the proxy or hop-by-hop and cannot be set",
                );
                continue;
            }
            if v.expose()
                .bytes()
                .any(|b| b == b'\r' || b == b'\n' || b == 0)
            {
                errs.push(field, "value must not contain CR, LF or NUL");
                continue;
            }
            // Header names are case-insensitive: two spellings would be one header with
            // two values, and "***" could not say which one it keeps.
            if let Some(other) = self
                .headers
                .keys()
                .find(|o| *o < k && o.eq_ignore_ascii_case(k))
            {
                errs.push(
                    field,
                    format!(
                        "names the same header as {other:?} (header names are case-insensitive)"
                    ),
                );
            }
        }
    }
}

/// Refuses `{extra}` path segments that could climb out of the upstream's path: `.` and
/// `..` (also percent-encoded, in any case), backslashes, and encoded slashes, which a
/// server may decode into new segments. Empty segments are refused too.
pub fn check_path_suffix(suffix: &str) -> std::result::Result<(), String> {
    for segment in suffix.split('/') {
        let decoded: Vec<u8> = percent_decode(segment.as_bytes());
        let bad = decoded.is_empty()
            || decoded == b"."
            || decoded == b".."
            || decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
            || segment.contains('\\');
        if bad {
            return Err(format!(
                "path segment {segment:?} is not allowed in {{extra}}: no dot segments, backslashes or encoded slashes"
            ));
        }
    }
    Ok(())
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Environment variables that change which program runs or what it loads (the dynamic
/// linker, interpreters' module paths and start-up hooks, the shell). With
/// `stdio_allowed_commands` set, a definition may not set them: the list would be
/// meaningless if `PATH` or `LD_PRELOAD` could point elsewhere. Not a sandbox: an allowed
/// program still runs with the proxy's user rights.
pub const ENV_THAT_CHANGES_WHAT_RUNS: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYLIB",
    "RUBYOPT",
    "BASH_ENV",
    "ENV",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "GCONV_PATH",
];

/// Checks a stdio definition against `stdio_allowed_commands` (`allowed`; empty allows
/// anything): the program must be one of them exactly, a program with a `/` must be an
/// absolute path (a relative one depends on `cwd`), and no env key from
/// [`ENV_THAT_CHANGES_WHAT_RUNS`] (nor one starting `LD_` or `DYLD_`) may be set. The
/// proxy checks at registration and again right before each spawn.
pub fn check_stdio_allowed(def: &McpDefinition, allowed: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if allowed.is_empty() || def.transport != crate::TransportKind::Stdio {
        return errors;
    }
    if let Some((program, _)) = def.argv() {
        if !allowed.iter().any(|a| a == program) {
            errors.push(FieldError {
                field: "command".into(),
                message: format!("{program:?} is not in stdio_allowed_commands"),
            });
        } else if program.contains('/') && !program.starts_with('/') {
            errors.push(FieldError {
                field: "command".into(),
                message: format!(
                    "{program:?} is a relative path, which depends on cwd: name an absolute path in stdio_allowed_commands"
                ),
            });
        }
    }
    for key in def.env.keys() {
        let upper = key.to_ascii_uppercase();
        if ENV_THAT_CHANGES_WHAT_RUNS.contains(&upper.as_str())
            || upper.starts_with("LD_")
            || upper.starts_with("DYLD_")
        {
            errors.push(FieldError {
                field: format!("env.{key}"),
                message: format!(
                    "{key} changes what runs, so it cannot be set while stdio_allowed_commands is set"
                ),
            });
        }
    }
    errors
}

fn check_duration(errs: &mut ValidationErrors, field: &str, d: Duration, min: Duration) {
    if d < min || d > MAX_TIMEOUT {
        errs.push(
            field,
            format!(
                "must be between {} and {}",
                crate::duration::format(min),
                crate::duration::format(MAX_TIMEOUT)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> McpDefinition {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_good_definition_passes() {
        parse(r#"{"name":"fs","transport":"stdio","command":"npx","args":["-y","x"]}"#)
            .validate()
            .unwrap();
        parse(r#"{"name":"web","transport":"streamable-http","url":"https://h.example/mcp","headers":{"X-Key":"v"},"allowedIPs":["10.0.0.0/8","127.0.0.1"]}"#)
            .validate()
            .unwrap();
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let d = parse(
            r#"{"name":"-bad","transport":"sse","url":"ftp://x","command":"x","timeout":"0s",
                "headers":{"Host":"a","X-Ok":"line\r\nbreak","bad name":"v"},
                "allowedIPs":["300.1.1.1","10.0.0.0/33"],"passthroughHeaders":["Authorization"],
                "maxSessions":0,"env":{"A":"b"}}"#,
        );
        let errs = d.validate().unwrap_err();
        for field in [
            "name",
            "url",
            "command",
            "timeout",
            "headers.Host",
            "headers.X-Ok",
            "headers.bad name",
            "allowedIPs[0]",
            "allowedIPs[1]",
            "passthroughHeaders[0]",
            "maxSessions",
            "env",
        ] {
            assert!(errs.has(field), "{field} missing from {errs}");
        }
    }

    #[test]
    fn a_zero_health_interval_is_refused_even_with_checks_off() {
        let errs = parse(
            r#"{"name":"a","transport":"stdio","command":"x","healthCheckEnabled":false,"healthCheckInterval":"0s"}"#,
        )
        .validate()
        .unwrap_err();
        assert!(errs.has("healthCheckInterval"), "{errs}");
    }

    #[test]
    fn stdio_needs_a_command_and_http_needs_a_url() {
        let errs = parse(r#"{"name":"a","transport":"stdio","url":"http://x"}"#)
            .validate()
            .unwrap_err();
        assert!(errs.has("command") && errs.has("url"), "{errs}");
        let errs = parse(r#"{"name":"a","transport":"streamable-http"}"#)
            .validate()
            .unwrap_err();
        assert!(errs.has("url"), "{errs}");
    }
    #[test]
    fn path_suffixes_cannot_climb_out() {
        for bad in [
            "..", "a/../b", "%2e%2e", "%2E%2e/x", ".", "a/./b", "a\\b", "a%5cb", "a%2fb", "a//b",
            "%00",
        ] {
            assert!(check_path_suffix(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b", "v1/tenant-7", "a%20b", "..a", "a.."] {
            assert!(check_path_suffix(good).is_ok(), "{good}");
        }
    }
}
