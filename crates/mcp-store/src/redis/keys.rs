//! Key names and the change-event messages of the Redis back-end.

use serde::{Deserialize, Serialize};

use crate::Kind;

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

    /// `{prefix}groups:{name}`: the group JSON.
    pub(crate) fn group(&self, name: &str) -> String {
        format!("{}groups:{name}", self.prefix)
    }

    /// `{prefix}group_index`: the set of stored group names.
    pub(crate) fn group_index(&self) -> String {
        format!("{}group_index", self.prefix)
    }

    /// The key of `name` of this kind.
    pub(crate) fn record(&self, kind: Kind, name: &str) -> String {
        match kind {
            Kind::Definition => self.definition(name),
            Kind::Group => self.group(name),
        }
    }

    /// The index set of this kind.
    pub(crate) fn index_of(&self, kind: Kind) -> String {
        match kind {
            Kind::Definition => self.index(),
            Kind::Group => self.group_index(),
        }
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

    /// `{prefix}session:{id}`: a client session of the registry (a hash: `owner`,
    /// `state`), with a sliding TTL.
    pub(crate) fn session(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    /// `{prefix}replica:{id}`: a replica's heartbeat (its address), with a TTL.
    pub(crate) fn replica(&self, id: &str) -> String {
        format!("{}replica:{id}", self.prefix)
    }

    /// `{prefix}events`: the pub/sub channel of change events.
    pub(crate) fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }
}

/// What a change event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A definition was created or updated: fetch it.
    #[serde(rename = "put")]
    Put,
    /// A definition was deleted.
    #[serde(rename = "deleted")]
    Deleted,
    /// A group was created or updated: fetch it. (Replicas that predate groups cannot
    /// read the op and ignore the event.)
    #[serde(rename = "group_put")]
    GroupPut,
    /// A group was deleted.
    #[serde(rename = "group_deleted")]
    GroupDeleted,
}

/// A change event on the channel: `{"op":"put","name":"fs"}`, or
/// `{"op":"deleted","name":"fs","version":N}` (the delete script appends the version);
/// `group_put` and `group_deleted` for groups. It carries no definition (and so no
/// secrets); receivers fetch the current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) op: Op,
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u64>,
}

impl Event {
    pub(crate) fn put(kind: Kind, name: &str) -> Self {
        Self {
            op: match kind {
                Kind::Definition => Op::Put,
                Kind::Group => Op::GroupPut,
            },
            name: name.to_owned(),
            version: None,
        }
    }

    pub(crate) fn deleted(kind: Kind, name: &str) -> Self {
        Self {
            op: match kind {
                Kind::Definition => Op::Deleted,
                Kind::Group => Op::GroupDeleted,
            },
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
        assert_eq!(k.group("team"), "mcp_proxy:groups:team");
        assert_eq!(k.group_index(), "mcp_proxy:group_index");
    }

    #[test]
    fn events_are_small_json() {
        assert_eq!(
            Event::put(Kind::Definition, "x").encode(),
            r#"{"op":"put","name":"x"}"#
        );
        assert_eq!(
            Event::decode(r#"{"op":"deleted","name":"y"}"#),
            Some(Event::deleted(Kind::Definition, "y"))
        );
        assert_eq!(
            Event::put(Kind::Group, "g").encode(),
            r#"{"op":"group_put","name":"g"}"#
        );
        let deleted = Event::decode(r#"{"op":"group_deleted","name":"g","version":3}"#).unwrap();
        assert_eq!((deleted.op, deleted.version), (Op::GroupDeleted, Some(3)));
        assert_eq!(Event::decode("garbage"), None);
        let with_version = Event::decode(r#"{"op":"deleted","name":"y","version":17}"#).unwrap();
        assert_eq!(with_version.version, Some(17));
    }
}
