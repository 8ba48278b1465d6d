//! A wrapper for secrets that never prints them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a redacted secret looks like in responses and logs.
pub const REDACTED: &str = "***";

/// How a kept secret's handle starts: `***:` then 12 hex digits (see [`Secret::handle`]).
pub const HANDLE_PREFIX: &str = "***:";

/// A secret string: `Debug` and `Display` print `***`. Serialization writes the real value
/// (storage needs it); responses use the definitions' `redacted()` forms.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself. Call only where the value is needed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A stable name for this value that does not reveal it: `***:` and the first 12 hex
    /// digits of a SHA-256 over a fixed label, `scope` (the definition's name) and the
    /// value. Responses show it in place of a secret in a list, so that a client can say
    /// which stored secrets to keep.
    ///
    /// It is a digest all the same: with it, a guess at a weak token can be confirmed
    /// offline. Use long random tokens.
    pub fn handle(&self, scope: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"mcp-proxy secret handle\0");
        h.update(scope.as_bytes());
        h.update(b"\0");
        h.update(self.0.as_bytes());
        let digest = h.finalize();
        let mut out = String::from(HANDLE_PREFIX);
        for b in &digest[..6] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Whether the value is a placeholder (`***` or a handle) rather than a secret.
    pub fn is_placeholder(&self) -> bool {
        self.0 == REDACTED || self.0.starts_with(HANDLE_PREFIX)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2-very-secret");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"hunter2-very-secret\""
        );
    }

    #[test]
    fn handles_are_stable_short_and_scoped() {
        let s = Secret::new("hunter2-very-secret");
        let h = s.handle("web");
        assert_eq!(h, s.handle("web"));
        assert_eq!(h.len(), HANDLE_PREFIX.len() + 12);
        assert!(!h.contains("hunter2"));
        assert_ne!(
            h,
            s.handle("other"),
            "the same token elsewhere looks different"
        );
        assert_ne!(h, Secret::new("hunter3-very-secret").handle("web"));
        assert!(Secret::new(h).is_placeholder() && Secret::new(REDACTED).is_placeholder());
        assert!(!s.is_placeholder());
    }
}
