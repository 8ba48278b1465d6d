//! `ETag` and `If-Match` on `/admin/mcps/{name}`: the entity tag of a definition is its
//! store version, `"<version>"`, so a client can update or delete exactly the definition
//! it read, and get 412 when someone changed it meanwhile.

use http::HeaderMap;
use http::header::{HeaderValue, IF_MATCH};
use mcp_types::McpDefinition;

use crate::error::Error;

/// The strong entity tag of a definition, when it has a version.
pub(crate) fn etag(def: &McpDefinition) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{}\"", def.version?)).ok()
}

/// Sets `ETag` on a response about `def`.
pub(crate) fn set_etag(headers: &mut HeaderMap, def: &McpDefinition) {
    if let Some(tag) = etag(def) {
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
    /// Reads every `If-Match` header of the request.
    pub(crate) fn parse(headers: &HeaderMap) -> Result<Self, Error> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut seen = false;
        for value in headers.get_all(IF_MATCH) {
            seen = true;
            let text = value.to_str().map_err(|_| invalid())?;
            for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                if item == "*" {
                    any = true;
                } else if let Some(weak) = item.strip_prefix("W/") {
                    quoted(weak).ok_or_else(invalid)?;
                } else {
                    tags.push(quoted(item).ok_or_else(invalid)?.to_owned());
                }
            }
        }
        Ok(match (seen, any) {
            (false, _) => Self::Absent,
            (true, true) => Self::Any,
            (true, false) => Self::Tags(tags),
        })
    }

    /// Checks the precondition against the stored definition; the version a conditional
    /// store write must find (`None`: the write need not be conditional).
    pub(crate) fn check(&self, stored: &McpDefinition) -> Result<Option<u64>, Error> {
        match self {
            Self::Absent | Self::Any => Ok(None),
            Self::Tags(tags) => match stored.version {
                Some(v) if tags.iter().any(|t| *t == v.to_string()) => Ok(Some(v)),
                _ => Err(precondition_failed(&stored.name, stored.version)),
            },
        }
    }
}

/// The 412 for `name`, which is at `current`.
pub(crate) fn precondition_failed(name: &str, current: Option<u64>) -> Error {
    Error::PreconditionFailed {
        name: name.to_owned(),
        etag: current.map(|v| format!("\"{v}\"")),
    }
}

fn quoted(tag: &str) -> Option<&str> {
    tag.strip_prefix('"')?
        .strip_suffix('"')
        .filter(|t| !t.contains('"'))
}

fn invalid() -> Error {
    Error::BadRequest {
        code: "invalid_if_match",
        message: "If-Match must be * or a list of entity tags such as \"1764581234567890\" (the ETag of a GET)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<IfMatch, Error> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_MATCH, v.parse().unwrap());
        }
        IfMatch::parse(&h)
    }

    #[test]
    fn if_match_is_read_as_rfc_9110_writes_it() {
        assert_eq!(parse(&[]).unwrap(), IfMatch::Absent);
        assert_eq!(parse(&["*"]).unwrap(), IfMatch::Any);
        assert_eq!(
            parse(&["\"1\", W/\"2\"", "\"3\""]).unwrap(),
            IfMatch::Tags(vec!["1".into(), "3".into()])
        );
        assert!(parse(&["1"]).is_err(), "unquoted");
        assert!(parse(&["\"1"]).is_err());
    }

    #[test]
    fn only_the_stored_version_matches() {
        let mut def = McpDefinition::stdio("a", "echo", &[]);
        def.version = Some(7);
        assert_eq!(parse(&["\"7\""]).unwrap().check(&def).unwrap(), Some(7));
        assert_eq!(parse(&["*"]).unwrap().check(&def).unwrap(), None);
        assert!(matches!(
            parse(&["\"6\", W/\"7\""]).unwrap().check(&def),
            Err(Error::PreconditionFailed { .. })
        ));
        def.version = None;
        assert!(parse(&["\"7\""]).unwrap().check(&def).is_err());
    }
}
