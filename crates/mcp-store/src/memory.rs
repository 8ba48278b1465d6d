//! The in-memory back-end (the default): maps behind a lock and a broadcast change feed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mcp_types::{GroupDefinition, McpDefinition, McpStatus};
use tokio::sync::broadcast;

use crate::store::{EVENT_CAPACITY, StoreEvent, WatchStream, broadcast_feed, next_version, now};
use crate::{Error, Kind, Result, Store};

/// Definitions, status and groups kept in this process only; lost on exit.
///
/// The lock is never held across an `.await`; events are sent while the write lock is held
/// so every feed sees writes in the order they were applied.
#[derive(Debug)]
pub struct MemoryStore {
    state: RwLock<State>,
    events: broadcast::Sender<StoreEvent>,
}

#[derive(Debug, Default)]
struct State {
    defs: BTreeMap<String, McpDefinition>,
    status: HashMap<String, McpStatus>,
    groups: BTreeMap<String, GroupDefinition>,
    /// The version of the latest write.
    version: u64,
}

impl State {
    fn next_version(&mut self) -> u64 {
        self.version = next_version(self.version);
        self.version
    }
}

/// Refuses a conditional write to a definition or group at another version.
fn check_version(kind: Kind, name: &str, stored: Option<u64>, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(expected) if stored != Some(expected) => Err(Error::VersionMismatch {
            kind,
            name: name.to_owned(),
            expected,
            current: stored,
        }),
        _ => Ok(()),
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            state: RwLock::new(State::default()),
            events,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-updated: every write is one insert
        // or remove, so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, event: StoreEvent) {
        // No receiver is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, name: &str) -> Result<Option<McpDefinition>> {
        Ok(self.read().defs.get(name).cloned())
    }

    async fn list(&self) -> Result<Vec<McpDefinition>> {
        // BTreeMap iterates in name order.
        Ok(self.read().defs.values().cloned().collect())
    }

    async fn create(&self, mut def: McpDefinition) -> Result<McpDefinition> {
        let mut state = self.write();
        if state.defs.contains_key(&def.name) {
            return Err(Error::AlreadyExists(def.name));
        }
        if state.groups.contains_key(&def.name) {
            return Err(Kind::Definition.name_taken(def.name));
        }
        let t = now();
        def.created_at = Some(t);
        def.updated_at = Some(t);
        def.version = Some(state.next_version());
        state.status.remove(&def.name);
        state.defs.insert(def.name.clone(), def.clone());
        self.publish(StoreEvent::Put(def.clone()));
        Ok(def)
    }

    async fn update_if(
        &self,
        mut def: McpDefinition,
        expected: Option<u64>,
    ) -> Result<McpDefinition> {
        let mut state = self.write();
        let Some(stored) = state.defs.get(&def.name) else {
            return Err(Error::NotFound(def.name));
        };
        check_version(Kind::Definition, &def.name, stored.version, expected)?;
        def.created_at = stored.created_at;
        def.updated_at = Some(now());
        def.version = Some(state.next_version());
        state.defs.insert(def.name.clone(), def.clone());
        self.publish(StoreEvent::Put(def.clone()));
        Ok(def)
    }

    async fn delete_if(&self, name: &str, expected: Option<u64>) -> Result<u64> {
        let mut state = self.write();
        let Some(stored) = state.defs.get(name) else {
            return Err(Error::NotFound(name.to_owned()));
        };
        check_version(Kind::Definition, name, stored.version, expected)?;
        state.defs.remove(name);
        state.status.remove(name);
        let version = state.next_version();
        self.publish(StoreEvent::Deleted {
            name: name.to_owned(),
            version: Some(version),
        });
        Ok(version)
    }

    async fn version(&self) -> Result<u64> {
        Ok(self.read().version)
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupDefinition>> {
        Ok(self.read().groups.get(name).cloned())
    }

    async fn list_groups(&self) -> Result<Vec<GroupDefinition>> {
        Ok(self.read().groups.values().cloned().collect())
    }

    async fn create_group(&self, mut group: GroupDefinition) -> Result<GroupDefinition> {
        let mut state = self.write();
        if state.groups.contains_key(&group.name) {
            return Err(Error::GroupAlreadyExists(group.name));
        }
        if state.defs.contains_key(&group.name) {
            return Err(Kind::Group.name_taken(group.name));
        }
        let t = now();
        group.created_at = Some(t);
        group.updated_at = Some(t);
        group.version = Some(state.next_version());
        state.groups.insert(group.name.clone(), group.clone());
        self.publish(StoreEvent::GroupPut(group.clone()));
        Ok(group)
    }

    async fn update_group_if(
        &self,
        mut group: GroupDefinition,
        expected: Option<u64>,
    ) -> Result<GroupDefinition> {
        let mut state = self.write();
        let Some(stored) = state.groups.get(&group.name) else {
            return Err(Error::GroupNotFound(group.name));
        };
        check_version(Kind::Group, &group.name, stored.version, expected)?;
        group.created_at = stored.created_at;
        group.updated_at = Some(now());
        group.version = Some(state.next_version());
        state.groups.insert(group.name.clone(), group.clone());
        self.publish(StoreEvent::GroupPut(group.clone()));
        Ok(group)
    }

    async fn delete_group_if(&self, name: &str, expected: Option<u64>) -> Result<u64> {
        let mut state = self.write();
        let Some(stored) = state.groups.get(name) else {
            return Err(Error::GroupNotFound(name.to_owned()));
        };
        check_version(Kind::Group, name, stored.version, expected)?;
        state.groups.remove(name);
        let version = state.next_version();
        self.publish(StoreEvent::GroupDeleted {
            name: name.to_owned(),
            version: Some(version),
        });
        Ok(version)
    }

    async fn save_status(&self, name: &str, status: &McpStatus) -> Result<()> {
        self.write().status.insert(name.to_owned(), status.clone());
        Ok(())
    }

    async fn load_status(&self, name: &str) -> Result<Option<McpStatus>> {
        Ok(self.read().status.get(name).cloned())
    }

    fn watch(&self) -> WatchStream {
        broadcast_feed(self.events.subscribe())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
