//! What the Redis back-end stores under a name: a definition or a group, each with its
//! own keys and events but the same scripts and the same checks.

use mcp_types::{GroupDefinition, McpDefinition, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Kind;

/// A value stored under a name, with server-set timestamps and a version.
pub(crate) trait Record: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Which kind it is.
    const KIND: Kind;

    /// Its name.
    fn name(&self) -> &str;

    /// Sets what the store sets.
    fn set_server_fields(
        &mut self,
        created_at: Option<Timestamp>,
        updated_at: Option<Timestamp>,
        version: Option<u64>,
    );
}

/// The two kinds have the same server-set fields under the same names.
macro_rules! record {
    ($ty:ty, $kind:expr) => {
        impl Record for $ty {
            const KIND: Kind = $kind;

            fn name(&self) -> &str {
                &self.name
            }

            fn set_server_fields(
                &mut self,
                created_at: Option<Timestamp>,
                updated_at: Option<Timestamp>,
                version: Option<u64>,
            ) {
                self.created_at = created_at;
                self.updated_at = updated_at;
                self.version = version;
            }
        }
    };
}

record!(McpDefinition, Kind::Definition);
record!(GroupDefinition, Kind::Group);
