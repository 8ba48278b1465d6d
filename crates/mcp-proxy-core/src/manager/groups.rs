//! The manager's groups: applied like definitions (hot add, reconfigure, remove; only
//! changes newer than the last one applied to a name), and the change signal groups follow
//! to keep their merged catalogs current.

use std::sync::Arc;

use mcp_types::{ConnectionState, GroupDefinition};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::table::Table;
use super::{Listing, ListingError, Manager, Tagged};
use crate::group::{BUILT_IN, Group, GroupStatus};

impl Manager {
    fn groups_read(&self) -> std::sync::RwLockReadGuard<'_, Table<Group>> {
        self.inner.groups.read().unwrap_or_else(|p| p.into_inner())
    }

    fn groups_write(&self) -> std::sync::RwLockWriteGuard<'_, Table<Group>> {
        self.inner.groups.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the group, or puts its new definition in force. Idempotent, and like
    /// [`Manager::apply_put`] it ignores a definition no newer than the last change applied
    /// to its name. A change that keeps the auth fields is applied in place: the group's
    /// client sessions live on and get `notifications/*/list_changed` for what changed. A
    /// change of `authTokens`, `requireAuth` or `allowedIPs` replaces the group, ending its
    /// sessions.
    pub fn apply_group_put(&self, def: GroupDefinition) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        let name = def.name.clone();
        if name == BUILT_IN {
            warn!(group = %name, "ignoring a stored group named like the built-in group");
            return;
        }
        let version = def.version;
        let old = {
            let mut groups = self.groups_write();
            if !groups.admits_put(&name, version) {
                debug!(group = %name, version = ?version, "ignoring a group no newer than the last change applied");
                return;
            }
            groups.record(&name, version);
            match groups.running.get(&name).cloned() {
                Some(running) if running.definition().same_config(&def) => return,
                Some(running) if running.reconfigure(def.clone(), self) => {
                    drop(groups);
                    info!(group = %name, "group changed; its sessions carry on");
                    self.bump();
                    return;
                }
                old => {
                    let group = Arc::new(Group::new(def, &self.inner.cancel));
                    group.refresh(self);
                    groups.running.insert(name.clone(), group);
                    old
                }
            }
        };
        match old {
            Some(old) => {
                info!(group = %name, "group's auth changed; its sessions end");
                old.stop();
            }
            None => info!(group = %name, "group added"),
        }
        self.bump();
    }

    /// Removes the group; its client sessions end. A deletion older than the group
    /// applied is ignored (see [`Manager::apply_delete`]).
    pub fn apply_group_delete(&self, name: &str, version: Option<u64>) {
        if name == BUILT_IN {
            return;
        }
        let removed = {
            let mut groups = self.groups_write();
            if !groups.admits_delete(name, version) {
                debug!(group = %name, version = ?version, "ignoring a group deletion older than the group applied");
                return;
            }
            let removed = groups.running.remove(name);
            groups.record(name, version);
            removed
        };
        if let Some(old) = removed {
            info!(group = %name, "group removed");
            old.stop();
            self.bump();
        }
    }

    /// Makes the running groups match a listing taken at store version `listed_at`.
    pub(super) fn resync_groups(&self, listed: Vec<GroupDefinition>, listed_at: u64) {
        let names: Vec<String> = listed.iter().map(|g| g.name.clone()).collect();
        for group in listed {
            self.apply_group_put(group);
        }
        let stale: Vec<String> = self
            .groups_read()
            .running
            .keys()
            .filter(|n| n.as_str() != BUILT_IN && !names.contains(n))
            .cloned()
            .collect();
        for name in stale {
            self.apply_group_delete(&name, Some(listed_at));
        }
    }

    /// The group of that name.
    pub fn group(&self, name: &str) -> Option<Arc<Group>> {
        self.groups_read().running.get(name).cloned()
    }

    /// Every group, sorted by name.
    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self.groups_read().running.values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// What `def` shows in the Admin API: the running group's status when it runs that
    /// definition, else the status it would have (another replica's write not seen yet,
    /// or a group this replica ignored).
    pub fn group_status(&self, def: &GroupDefinition) -> GroupStatus {
        if let Some(running) = self.group(&def.name)
            && running.definition().same_config(def)
        {
            return running.status(self);
        }
        let preview = Group::new(def.clone(), &self.inner.cancel);
        preview.refresh(self);
        let status = preview.status(self);
        preview.stop();
        status
    }

    /// The merged tools of group `name` (`None`: no such group), each as the group's
    /// clients see it plus its origin: `mcpName` (the member) and `originalName` (its name
    /// there). Members that are absent or down, and tools left out by a name collision,
    /// are in `errors`; while a `failMode: closed` group is unavailable it lists no tools.
    pub fn group_tools(&self, name: &str) -> Option<Listing<Value>> {
        let group = self.group(name)?;
        let def = group.definition();
        let members = group.members(self);
        let available = group.is_available(self);
        let mut errors = Vec::new();
        let mut error = |member: &str, text: String| {
            let error = if available {
                text
            } else {
                format!("{text}; group {name:?} is unavailable until it is back (failMode: closed)")
            };
            errors.push(ListingError {
                mcp_name: member.to_owned(),
                error,
            });
        };
        for m in def
            .members
            .iter()
            .filter(|m| !members.iter().any(|u| u.name() == *m))
        {
            error(
                m,
                format!("upstream {m:?} is not registered: the member is absent until it exists"),
            );
        }
        for up in &members {
            let catalog = up.catalog();
            if up.state() != ConnectionState::Connected || !catalog.is_loaded {
                error(up.name(), up.not_connected().to_string());
            }
            for e in &catalog.errors {
                error(up.name(), e.clone());
            }
        }
        let catalog = group.catalog();
        for c in catalog.collisions.iter().filter(|c| c.kind == "tool") {
            for origin in &c.origins {
                let (member, tool) = origin.split_once('.').unwrap_or((origin, ""));
                let others: Vec<&str> = c
                    .origins
                    .iter()
                    .filter(|o| *o != origin)
                    .map(String::as_str)
                    .collect();
                errors.push(ListingError {
                    mcp_name: member.to_owned(),
                    error: format!(
                        "tool {tool:?} is left out: its name in the group, {:?}, is also that of {}",
                        c.name,
                        others.join(", ")
                    ),
                });
            }
        }
        let items = if available {
            catalog
                .tools
                .iter()
                .map(|t| {
                    let mut item = t.value.clone();
                    if let Some(obj) = item.as_object_mut() {
                        obj.insert("originalName".into(), Value::String(t.original.clone()));
                    }
                    Tagged {
                        item,
                        mcp_name: t.member.clone(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Listing { items, errors })
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
