//! Unambiguous reads and rewrites of the few `params` members the proxy routes, filters or
//! rewrites on (`name`, `uri`, `_meta.progressToken`, `requestId`).
//!
//! `params` travel as raw JSON text. When the proxy must look inside, it reads the
//! top-level members with their keys decoded (so `"progress\u0054oken"` is
//! `progressToken`), refuses duplicate keys (an upstream parser might take the other
//! one) and wrong types, and writes back only what it checked. It never forwards an
//! interpretation different from the one it acted on.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::jsonrpc::RequestId;

/// Why a member could not be read unambiguously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous(pub String);

impl fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Ambiguous {}

/// The top-level members of a JSON object, keys decoded, values raw and borrowed.
#[derive(Debug)]
pub struct Members<'a> {
    entries: Vec<(String, &'a RawValue)>,
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate member {key:?}")));
            }
            let value: &'de RawValue = map.next_value()?;
            entries.push((key, value));
        }
        Ok(entries)
    }
}

struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MembersVisitor).map(Entries)
    }
}

impl<'a> Members<'a> {
    /// Reads the members of `raw`, which must be an object without duplicate keys.
    pub fn parse(raw: &'a RawValue) -> Result<Self, Ambiguous> {
        serde_json::from_str::<Entries<'a>>(raw.get())
            .map(|e| Self { entries: e.0 })
            .map_err(|e| Ambiguous(format!("params: {e}")))
    }

    /// Every member, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.entries
            .iter()
            .find_map(|(k, v)| (k == key).then_some(*v))
    }

    /// `key` as a string: absent is `None`, another type is an error.
    pub fn string(&self, key: &str) -> Result<Option<String>, Ambiguous> {
        let Some(raw) = self.get(key) else {
            return Ok(None);
        };
        serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| Ambiguous(format!("params.{key} must be a string")))
    }

    /// The object again, with `key` set to `value` (replaced in place, or appended).
    pub fn with(&self, key: &str, value: &RawValue) -> Box<RawValue> {
        let mut out = String::with_capacity(
            self.entries
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + value.get().len()
                + key.len()
                + 8,
        );
        out.push('{');
        let mut replaced = false;
        for (k, v) in &self.entries {
            if out.len() > 1 {
                out.push(',');
            }
            push_key(&mut out, k);
            if k == key {
                out.push_str(value.get());
                replaced = true;
            } else {
                out.push_str(v.get());
            }
        }
        if !replaced {
            if out.len() > 1 {
                out.push(',');
            }
            push_key(&mut out, key);
            out.push_str(value.get());
        }
        out.push('}');
        RawValue::from_string(out).expect("members of valid JSON make valid JSON")
    }
}

impl Members<'_> {
    /// The object again, without `key`.
    pub fn without(&self, key: &str) -> Box<RawValue> {
        let mut out = String::from("{");
        for (k, v) in self.entries.iter().filter(|(k, _)| k != key) {
            if out.len() > 1 {
                out.push(',');
            }
            push_key(&mut out, k);
            out.push_str(v.get());
        }
        out.push('}');
        RawValue::from_string(out).expect("members of valid JSON make valid JSON")
    }
}

fn push_key(out: &mut String, key: &str) {
    out.push_str(&serde_json::to_string(key).expect("a string serializes"));
    out.push(':');
}

/// Whether `raw` could hold a member named `key` (spelled plainly or with `\u` escapes):
/// a cheap pre-check before [`Members::parse`]. `false` is certain.
pub fn may_contain_key(raw: &RawValue, key: &str) -> bool {
    let text = raw.get();
    text.contains(key) || text.contains("\\u")
}

/// `params.name` (of `tools/call`, `prompts/get`): must be one string.
pub fn name(params: Option<&RawValue>) -> Result<Option<String>, Ambiguous> {
    match params {
        None => Ok(None),
        Some(p) => Members::parse(p)?.string("name"),
    }
}

/// `params.uri` (of `resources/*`, `notifications/resources/updated`): must be one string.
pub fn uri(params: Option<&RawValue>) -> Result<Option<String>, Ambiguous> {
    match params {
        None => Ok(None),
        Some(p) => Members::parse(p)?.string("uri"),
    }
}

/// `params.requestId` of a `notifications/cancelled`.
pub fn request_id(params: Option<&RawValue>) -> Result<Option<RequestId>, Ambiguous> {
    let Some(p) = params else {
        return Ok(None);
    };
    match Members::parse(p)?.get("requestId") {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<RequestId>(raw.get())
            .map(Some)
            .map_err(|e| Ambiguous(format!("params.requestId: {e}"))),
    }
}

/// `params.reason` of a `notifications/cancelled`, when it is a string.
pub fn reason(params: Option<&RawValue>) -> Option<String> {
    Members::parse(params?).ok()?.string("reason").ok()?
}

fn token_of(raw: &RawValue) -> Result<RequestId, Ambiguous> {
    match serde_json::from_str::<RequestId>(raw.get()) {
        Ok(RequestId::Null) | Err(_) => Err(Ambiguous(
            "progressToken must be a string or a number".into(),
        )),
        Ok(t) => Ok(t),
    }
}

/// `params._meta.progressToken` of a request. Without the key (in any spelling) the
/// params are not parsed at all.
pub fn meta_progress_token(params: Option<&RawValue>) -> Result<Option<RequestId>, Ambiguous> {
    let Some(p) = params else {
        return Ok(None);
    };
    if !may_contain_key(p, "progressToken") {
        return Ok(None);
    }
    if !p.get().trim_start().starts_with('{') {
        // Not an object: nothing to route by (the upstream judges such params).
        return Ok(None);
    }
    let members = Members::parse(p)?;
    let Some(meta) = members.get("_meta") else {
        return Ok(None);
    };
    if meta.get().trim_start().starts_with("null") {
        return Ok(None);
    }
    let meta = Members::parse(meta).map_err(|e| Ambiguous(format!("_meta: {e}")))?;
    meta.get("progressToken").map(token_of).transpose()
}

/// `params` with `_meta.progressToken` replaced by `token` (other members kept as they
/// were). Call only after [`meta_progress_token`] found one.
pub fn set_meta_progress_token(
    params: &RawValue,
    token: &RequestId,
) -> Result<Box<RawValue>, Ambiguous> {
    let members = Members::parse(params)?;
    let meta = members
        .get("_meta")
        .ok_or_else(|| Ambiguous("no _meta".into()))?;
    let meta = Members::parse(meta)?;
    let token = crate::jsonrpc::to_raw(token);
    let meta = meta.with("progressToken", &token);
    Ok(members.with("_meta", &meta))
}

/// `params.progressToken` of a `notifications/progress`.
pub fn progress_token(params: Option<&RawValue>) -> Result<Option<RequestId>, Ambiguous> {
    let Some(p) = params else {
        return Ok(None);
    };
    Members::parse(p)?
        .get("progressToken")
        .map(token_of)
        .transpose()
}

/// A `notifications/progress` params with its `progressToken` replaced.
pub fn set_progress_token(
    params: &RawValue,
    token: &RequestId,
) -> Result<Box<RawValue>, Ambiguous> {
    let members = Members::parse(params)?;
    Ok(members.with("progressToken", &crate::jsonrpc::to_raw(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn duplicate_and_mistyped_names_are_refused() {
        assert!(name(Some(&raw(r#"{"name":"echo","name":"blocked"}"#))).is_err());
        assert!(name(Some(&raw(r#"{"name":7}"#))).is_err());
        assert!(name(Some(&raw(r#"[1]"#))).is_err());
        assert_eq!(
            name(Some(&raw(r#"{"n\u0061me":"x","arguments":{}}"#))).unwrap(),
            Some("x".into())
        );
        assert_eq!(name(Some(&raw(r#"{"arguments":{}}"#))).unwrap(), None);
    }

    #[test]
    fn escaped_progress_tokens_are_found_and_rewritten() {
        let p = raw(r#"{"x":1,"_meta":{"progress\u0054oken":"t","k":true}}"#);
        assert_eq!(
            meta_progress_token(Some(&p)).unwrap(),
            Some(RequestId::from("t"))
        );
        let out = set_meta_progress_token(&p, &RequestId::number(9)).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["_meta"]["progressToken"], 9);
        assert_eq!(v["_meta"]["k"], true);
        assert_eq!(v["x"], 1);
        assert_eq!(
            meta_progress_token(Some(&out)).unwrap(),
            Some(RequestId::number(9)),
            "one token, no duplicate left behind"
        );
        let dup = raw(r#"{"_meta":{"progressToken":"a","progressToken":"b"}}"#);
        assert!(meta_progress_token(Some(&dup)).is_err());
        let bad = raw(r#"{"_meta":{"progressToken":{"a":1}}}"#);
        assert!(meta_progress_token(Some(&bad)).is_err());
        assert_eq!(
            meta_progress_token(Some(&raw(r#"{"a":"b"}"#))).unwrap(),
            None
        );
        assert_eq!(
            meta_progress_token(Some(&raw(r#"{"_meta":null}"#))).unwrap(),
            None
        );
    }

    #[test]
    fn with_replaces_in_place_or_appends() {
        let p = raw(r#"{ "a" : 1 , "b":[2] }"#);
        let m = Members::parse(&p).unwrap();
        assert_eq!(m.with("a", &raw("3")).get(), r#"{"a":3,"b":[2]}"#);
        assert_eq!(
            m.with("c", &raw("null")).get(),
            r#"{"a":1,"b":[2],"c":null}"#
        );
    }
}
