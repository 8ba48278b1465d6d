//! Key names and the change-event messages of the Redis back-end.

use serde::{Deserialize, Serialize};

/// The names of everything the store keeps under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// `{prefix}mcps:{name}`: the definition JSON.
    pub(crate) fn definition(&self, name: &str) -> String {
        format!("{}mcps:{name}", self.prefix)
    }

    /// `{prefix}status:{name}`: the status JSON.
    pub(crate) fn status(&self, name: &str) -> String {
        format!("{}status:{name}", self.prefix)
    }

    /// `{prefix}index`: the set of stored names.
    pub(crate) fn index(&self) -> String {
        format!("{}index", self.prefix)
    }

    /// `{prefix}version`: the version of the latest write.
    pub(crate) fn version(&self) -> String {
        format!("{}version", self.prefix)
    }

    /// `{prefix}events`: the pub/sub channel of change events.
    pub(crate) fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }
}

/// What a change event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    /// Created or updated: fetch the definition.
    Put,
    /// Deleted.
    Deleted,
}

/// A change event on the channel: `{"op":"put","name":"fs"}`, or
/// `{"op":"deleted","name":"fs","version":N}` (the delete script appends the version). It
/// carries no definition (and so no secrets); receivers fetch the current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) op: Op,
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u64>,
}

impl Event {
    pub(crate) fn put(name: &str) -> Self {
        Self {
            op: Op::Put,
            name: name.to_owned(),
            version: None,
        }
    }

    pub(crate) fn deleted(name: &str) -> Self {
        Self {
            op: Op::Deleted,
            name: name.to_owned(),
            version: None,
        }
    }

    pub(crate) fn encode(&self) -> String {
        // A struct of a unit enum and a string always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout() {
        let k = Keys::new("mcp_proxy:");
        assert_eq!(k.definition("fs"), "mcp_proxy:mcps:fs");
        assert_eq!(k.status("fs"), "mcp_proxy:status:fs");
        assert_eq!(k.index(), "mcp_proxy:index");
        assert_eq!(k.channel(), "mcp_proxy:events");
        assert_eq!(k.version(), "mcp_proxy:version");
    }

    #[test]
    fn events_are_small_json() {
        assert_eq!(Event::put("x").encode(), r#"{"op":"put","name":"x"}"#);
        assert_eq!(
            Event::decode(r#"{"op":"deleted","name":"y"}"#),
            Some(Event::deleted("y"))
        );
        assert_eq!(Event::decode("garbage"), None);
        let with_version = Event::decode(r#"{"op":"deleted","name":"y","version":17}"#).unwrap();
        assert_eq!(with_version.version, Some(17));
    }
}
