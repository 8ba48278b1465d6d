//! The in-memory back-end (the default): a map behind a lock and a broadcast change feed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use mcp_types::{McpDefinition, McpStatus};
use tokio::sync::broadcast;

use crate::store::{EVENT_CAPACITY, StoreEvent, WatchStream, broadcast_feed, now};
use crate::{Error, Result, Store};

/// Definitions and status kept in this process only; lost on exit.
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
        let t = now();
        def.created_at = Some(t);
        def.updated_at = Some(t);
        state.status.remove(&def.name);
        state.defs.insert(def.name.clone(), def.clone());
        self.publish(StoreEvent::Put(def.clone()));
        Ok(def)
    }

    async fn update(&self, mut def: McpDefinition) -> Result<McpDefinition> {
        let mut state = self.write();
        let Some(stored) = state.defs.get_mut(&def.name) else {
            return Err(Error::NotFound(def.name));
        };
        def.created_at = stored.created_at;
        def.updated_at = Some(now());
        *stored = def.clone();
        self.publish(StoreEvent::Put(def.clone()));
        Ok(def)
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let mut state = self.write();
        if state.defs.remove(name).is_none() {
            return Err(Error::NotFound(name.to_owned()));
        }
        state.status.remove(name);
        self.publish(StoreEvent::Deleted(name.to_owned()));
        Ok(())
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
