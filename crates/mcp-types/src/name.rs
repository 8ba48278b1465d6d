//! Validated upstream names.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Path segments that can never be upstream names.
pub const RESERVED_NAMES: &[&str] = &[
    "admin",
    "healthz",
    "readyz",
    "metrics",
    "mcp",
    ".well-known",
];

/// An upstream name: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`, not reserved.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct McpName(String);

impl McpName {
    /// Checks `name` and wraps it.
    pub fn try_new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(reason) => Err(Error::InvalidName { name, reason }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why `name` is not a valid upstream name, if it is not.
pub fn check(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("must not be empty");
    }
    if bytes.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err("is reserved");
    }
    if !bytes[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or digit");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
    {
        return Err("may contain only letters, digits, '_' and '-'");
    }
    Ok(())
}

impl fmt::Display for McpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for McpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for McpName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for McpName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for McpName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_names() {
        for ok in ["a", "fs", "my-server_2", "0abc", &"x".repeat(64)] {
            assert!(McpName::try_new(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("-x", "start"),
            ("_x", "start"),
            ("a.b", "only"),
            ("a/b", "only"),
            ("héllo", "only"),
            ("admin", "reserved"),
            ("MCP", "reserved"),
            (".well-known", "reserved"),
        ] {
            let err = McpName::try_new(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(McpName::try_new("x".repeat(65)).is_err());
    }
}
