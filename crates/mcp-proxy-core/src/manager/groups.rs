//! The manager's groups: applied like definitions (hot add, replace, remove), and the
//! change signal groups follow to keep their merged catalogs current.

use std::sync::Arc;

use mcp_types::GroupDefinition;
use tracing::info;

use super::Manager;
use crate::group::Group;

impl Manager {
    /// Adds the group, or replaces it when its definition changed. Idempotent.
    pub fn apply_group_put(&self, def: GroupDefinition) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let name = def.name.clone();
        let old = {
            let mut groups = self.inner.groups.write().unwrap_or_else(|p| p.into_inner());
            if groups
                .get(&name)
                .is_some_and(|g| g.definition().same_config(&def))
            {
                return;
            }
            let group = Arc::new(Group::new(def, &self.inner.cancel));
            group.refresh(self);
            groups.insert(name.clone(), group)
        };
        match old {
            Some(old) => {
                info!(group = %name, "group changed; its sessions start over");
                old.stop();
            }
            None => info!(group = %name, "group added"),
        }
        self.bump();
    }

    /// Removes the group; its client sessions end.
    pub fn apply_group_delete(&self, name: &str) {
        let removed = self
            .inner
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(old) = removed {
            info!(group = %name, "group removed");
            old.stop();
            self.bump();
        }
    }

    /// The group of that name.
    pub fn group(&self, name: &str) -> Option<Arc<Group>> {
        self.inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every group, sorted by name.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// A receiver that sees every change of an upstream's catalog or state, and of the
    /// groups.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn bump(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}
