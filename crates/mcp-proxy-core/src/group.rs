//! Groups ("virtual servers"): one MCP endpoint over several upstreams. The merged
//! catalog lives in [`catalog`]; a client session on a group opens one link per member,
//! when it first needs it (see `session`).

pub mod catalog;

use std::sync::{Arc, Mutex, RwLock};

use mcp_types::{ConnectionState, FailMode, GroupDefinition};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use catalog::{Collision, Member, Merged, MergedCatalog, merge};

use crate::Upstream;
use crate::discovery::Catalog;
use crate::manager::Manager;

/// The name of the built-in group of every upstream (`/mcp`).
pub const BUILT_IN: &str = "mcp";

/// A group as it runs: its definition and its current merged catalog.
///
/// A change of definition that keeps the auth fields is applied in place
/// ([`Group::reconfigure`]): the group's client sessions live on and are told what their
/// lists now show. A change of `authTokens`, `requireAuth` or `allowedIPs` replaces the
/// group instead, and its sessions end (nobody keeps a session opened under the old
/// rules).
#[derive(Debug)]
pub struct Group {
    name: String,
    current: RwLock<Arc<Current>>,
    catalog: RwLock<Arc<MergedCatalog>>,
    /// Held while a catalog is computed and stored, so that an older definition's catalog
    /// never replaces a newer one's.
    rebuilding: Mutex<()>,
    /// What each list showed the group's sessions last time (tools, prompts, resources).
    fingerprints: Mutex<[u64; 3]>,
    cancel: CancellationToken,
    /// Every upstream is a member (the built-in group of `/mcp`).
    everything: bool,
}

/// The definition in force, and what layers above derived from it.
#[derive(Debug)]
struct Current {
    def: Arc<GroupDefinition>,
    derived: crate::derived::Derived,
}

impl Current {
    fn new(def: GroupDefinition) -> Arc<Self> {
        Arc::new(Self {
            def: Arc::new(def),
            derived: crate::derived::Derived::default(),
        })
    }
}

/// One member as `/admin/groups/{name}` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The upstream's name.
    pub name: String,
    /// Whether an upstream of that name exists.
    pub present: bool,
    /// Its connection state, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ConnectionState>,
}

/// What `/admin/groups/{name}` shows besides the definition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Whether clients can use it now (`failMode: closed` and a member down: no).
    pub available: bool,
    /// The members, by name.
    pub members: Vec<MemberStatus>,
    /// Tools in the merged catalog.
    pub tools: usize,
    /// Prompts in the merged catalog.
    pub prompts: usize,
    /// Resources in the merged catalog.
    pub resources: usize,
    /// Names more than one item would have had (left out of the catalog).
    pub collisions: Vec<Collision>,
    /// Override keys that name no tool of a member.
    pub unknown_overrides: Vec<String>,
}

impl Group {
    pub(crate) fn new(def: GroupDefinition, parent: &CancellationToken) -> Self {
        Self {
            name: def.name.clone(),
            current: RwLock::new(Current::new(def)),
            catalog: RwLock::new(Arc::new(MergedCatalog::default())),
            rebuilding: Mutex::new(()),
            fingerprints: Mutex::new([0; 3]),
            cancel: parent.child_token(),
            everything: false,
        }
    }

    /// The built-in group of every upstream, served at `/mcp`: names always prefixed, so
    /// they never change as upstreams come and go.
    pub(crate) fn everything(strict_names: bool, parent: &CancellationToken) -> Self {
        let mut def = GroupDefinition::new(BUILT_IN);
        def.description = Some("every upstream of this proxy".into());
        def.prefix = mcp_types::PrefixMode::Always;
        def.strict_names = strict_names;
        Self {
            everything: true,
            ..Self::new(def, parent)
        }
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Data a layer above derives from the definition once (see
    /// [`crate::Upstream::derived`]); derived afresh after [`Group::reconfigure`].
    pub fn derived<T: Send + Sync + 'static>(
        &self,
        build: impl FnOnce(&GroupDefinition) -> T,
    ) -> Arc<T> {
        let current = self.current();
        current.derived.get(|| build(&current.def))
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its definition, as in force now.
    pub fn definition(&self) -> Arc<GroupDefinition> {
        self.current().def.clone()
    }

    /// Whether it is the built-in group of every upstream (`/mcp`), which the Admin API
    /// shows but does not change.
    pub fn is_built_in(&self) -> bool {
        self.everything
    }

    /// Puts `def` in force in place, when it keeps the auth fields (the group's sessions
    /// live on, and the next [`Group::refresh`] tells them what changed); `false` when
    /// the auth fields differ, and the group must be replaced instead.
    pub(crate) fn reconfigure(&self, def: GroupDefinition, manager: &Manager) -> bool {
        let same_auth = {
            let old = self.definition();
            old.auth_tokens == def.auth_tokens
                && old.require_auth == def.require_auth
                && old.allowed_ips == def.allowed_ips
        };
        if !same_auth || def.name != self.name {
            return false;
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Current::new(def);
        self.rebuild(manager);
        true
    }

    /// The merged catalog as of the last change.
    pub fn catalog(&self) -> Arc<MergedCatalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The member upstreams that exist, by name.
    pub fn members(&self, manager: &Manager) -> Vec<Arc<Upstream>> {
        let def = self.definition();
        manager
            .upstreams()
            .into_iter()
            .filter(|u| {
                self.everything
                    || (u.name() != def.name && def.has_member(u.name(), &u.definition().tags))
            })
            .collect()
    }

    /// Whether clients can use the group now: with `failMode: closed`, every named
    /// member must exist and be connected.
    pub fn is_available(&self, manager: &Manager) -> bool {
        let def = self.definition();
        if def.fail_mode == FailMode::Open {
            return true;
        }
        let members = self.members(manager);
        def.members
            .iter()
            .all(|m| members.iter().any(|u| u.name() == m))
            && members
                .iter()
                .all(|u| u.state() == ConnectionState::Connected)
    }

    /// Recomputes the merged catalog from the members that are connected now; returns
    /// which lists changed (tools, prompts, resources) since the group's sessions were
    /// last told.
    pub(crate) fn refresh(&self, manager: &Manager) -> [bool; 3] {
        let now = self.rebuild(manager);
        let mut last = self.fingerprints.lock().unwrap_or_else(|p| p.into_inner());
        let changed = [now[0] != last[0], now[1] != last[1], now[2] != last[2]];
        *last = now;
        changed
    }

    /// Recomputes and stores the merged catalog; returns its fingerprints.
    fn rebuild(&self, manager: &Manager) -> [u64; 3] {
        let _rebuilding = self.rebuilding.lock().unwrap_or_else(|p| p.into_inner());
        let def = self.definition();
        let members = self.members(manager);
        let catalogs: Vec<(String, Catalog)> = members
            .iter()
            .filter(|u| u.state() == ConnectionState::Connected)
            .map(|u| {
                let mut catalog = (*u.catalog()).clone();
                // A member's own tool filter holds inside the group too.
                catalog
                    .tools
                    .retain(|t| u.definition().permits_tool(&t.name));
                (u.name().to_owned(), catalog)
            })
            .collect();
        let views: Vec<Member<'_>> = catalogs
            .iter()
            .map(|(name, catalog)| Member { name, catalog })
            .collect();
        let merged = merge(&def, &views);
        let now = merged.fingerprints();
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(merged);
        now
    }

    /// What the admin API shows about it.
    pub fn status(&self, manager: &Manager) -> GroupStatus {
        let members = self.members(manager);
        let mut names: Vec<String> = self.definition().members.clone();
        for u in &members {
            if !names.iter().any(|n| n == u.name()) {
                names.push(u.name().to_owned());
            }
        }
        names.sort();
        let catalog = self.catalog();
        GroupStatus {
            available: self.is_available(manager),
            members: names
                .into_iter()
                .map(|name| {
                    let up = members.iter().find(|u| u.name() == name);
                    MemberStatus {
                        present: up.is_some(),
                        state: up.map(|u| u.state()),
                        name,
                    }
                })
                .collect(),
            tools: catalog.tools.len(),
            prompts: catalog.prompts.len(),
            resources: catalog.resources.len(),
            collisions: catalog.collisions.clone(),
            unknown_overrides: catalog.unknown_overrides.clone(),
        }
    }

    /// The capabilities a group's clients get at `initialize`: the union of what its
    /// members declared (lists as `listChanged`, since the group tells its clients when
    /// the merged catalog changes).
    pub fn capabilities(&self, manager: &Manager) -> Value {
        let mut out = Map::new();
        for up in self.members(manager) {
            let Some(init) = up.initialize_result() else {
                continue;
            };
            let Some(caps) = init.capabilities.as_object() else {
                continue;
            };
            for (key, value) in caps {
                let entry = out
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(into), Some(from)) = (entry.as_object_mut(), value.as_object()) {
                    for (k, v) in from {
                        if v.as_bool() == Some(true) || !into.contains_key(k) {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        for list in ["tools", "prompts", "resources"] {
            if let Some(obj) = out.get_mut(list).and_then(Value::as_object_mut) {
                obj.insert("listChanged".into(), Value::Bool(true));
            }
        }
        Value::Object(out)
    }

    /// Stops the group (deleted or replaced): its sessions end.
    pub(crate) fn stop(&self) {
        self.cancel.cancel();
    }

    /// Resolves once the group is stopped.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await;
    }

    /// Whether it is stopped.
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
