//! `ETag` and `If-Match` on `/admin/mcps/{name}` and `/admin/groups/{name}`: the entity
//! tag of a definition or group is its store version, `"<version>"`, so a client can
//! update or delete exactly what it read, and get 412 when someone changed it meanwhile.

use http::HeaderMap;
use http::header::{HeaderValue, IF_MATCH};

use crate::error::Error;

/// What carries a store version: a definition or a group.
pub(crate) trait Versioned {
    /// `mcp` or `group`, for messages.
    const WHAT: &'static str;
    /// Its name.
    fn name(&self) -> &str;
    /// Its store version, if it has one.
    fn version(&self) -> Option<u64>;
}

impl Versioned for mcp_types::McpDefinition {
    const WHAT: &'static str = "mcp";
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> Option<u64> {
        self.version
    }
}

impl Versioned for mcp_types::GroupDefinition {
    const WHAT: &'static str = "group";
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> Option<u64> {
        self.version
    }
}

/// The strong entity tag of a definition or group, when it has a version.
pub(crate) fn etag(value: &impl Versioned) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{}\"", value.version()?)).ok()
}

/// Sets `ETag` on a response about `value`.
pub(crate) fn set_etag(headers: &mut HeaderMap, value: &impl Versioned) {
    if let Some(tag) = etag(value) {
        headers.insert(http::header::ETAG, tag);
    }
}

/// What a request's `If-Match` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    /// No `If-Match`: no precondition.
    Absent,
    /// `*`: the definition must exist.
    Any,
    /// One of these strong tags (weak ones never match, as for every `If-Match`).
    Tags(Vec<String>),
}

impl IfMatch {
    /// Reads every `If-Match` header of the request (RFC 9110: `*` or a list of entity
    /// tags, each `"…"` or `W/"…"`). Whatever is not a strong tag our `ETag` could be
    /// (weak tags, unquoted words, an empty list) matches nothing, so a write under a
    /// precondition it cannot meet is refused with 412 rather than let through.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in headers.get_all(IF_MATCH) {
            seen = true;
            let text = String::from_utf8_lossy(value.as_bytes());
            for item in text.split(',').map(str::trim) {
                if item == "*" {
                    any = true;
                } else if let Some(tag) = item.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    tags.push(tag.to_owned());
                }
            }
        }
        match (seen, any) {
            (false, _) => Self::Absent,
            (true, true) => Self::Any,
            (true, false) => Self::Tags(tags),
        }
    }

    /// Checks the precondition against the stored definition or group; the version a
    /// conditional store write must find (`None`: the write need not be conditional).
    pub(crate) fn check<T: Versioned>(&self, stored: &T) -> Result<Option<u64>, Error> {
        match self {
            Self::Absent | Self::Any => Ok(None),
            Self::Tags(tags) => match stored.version() {
                Some(v) if tags.iter().any(|t| *t == v.to_string()) => Ok(Some(v)),
                _ => Err(precondition_failed(
                    T::WHAT,
                    stored.name(),
                    stored.version(),
                )),
            },
        }
    }
}

/// The 412 for the `what` (`mcp` or `group`) called `name`, which is at `current`.
pub(crate) fn precondition_failed(what: &'static str, name: &str, current: Option<u64>) -> Error {
    Error::PreconditionFailed {
        what,
        name: name.to_owned(),
        etag: current.map(|v| format!("\"{v}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> IfMatch {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_MATCH, v.parse().unwrap());
        }
        IfMatch::parse(&h)
    }

    #[test]
    fn if_match_is_read_as_rfc_9110_writes_it() {
        assert_eq!(parse(&[]), IfMatch::Absent);
        assert_eq!(parse(&["*"]), IfMatch::Any);
        assert_eq!(
            parse(&["\"1\", W/\"2\"", "\"3\""]),
            IfMatch::Tags(vec!["1".into(), "3".into()])
        );
        for nothing in ["1", "", " , ", "W/\"1\""] {
            assert_eq!(parse(&[nothing]), IfMatch::Tags(vec![]), "{nothing:?}");
        }
    }

    #[test]
    fn only_the_stored_version_matches() {
        let mut def = mcp_types::McpDefinition::stdio("a", "echo", &[]);
        def.version = Some(7);
        assert_eq!(parse(&["\"7\""]).check(&def).unwrap(), Some(7));
        assert_eq!(parse(&["*"]).check(&def).unwrap(), None);
        for stale in ["\"6\", W/\"7\"", "7", ""] {
            assert!(
                matches!(
                    parse(&[stale]).check(&def),
                    Err(Error::PreconditionFailed { .. })
                ),
                "{stale:?}"
            );
        }
        def.version = None;
        assert!(parse(&["\"7\""]).check(&def).is_err());
    }
}
