//! Applying the declarations to the store: the difference only, and never to a definition
//! registered through the Admin API.

use std::collections::BTreeSet;

use mcp_proxy_core::Manager;
use mcp_store::Store;
use mcp_types::DefinitionSource;
use tracing::{info, warn};

use super::DeclaredSet;

/// What one application changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) added: Vec<String>,
    pub(crate) changed: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) unchanged: usize,
    /// Declared names taken by an Admin-API registration (left alone).
    pub(crate) conflicts: Vec<String>,
    /// Names whose write failed, with why; retried later.
    pub(crate) failed: Vec<(String, String)>,
}

impl Applied {
    /// Whether a later attempt is needed.
    pub(crate) fn needs_retry(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// Makes the store's `source: config` definitions equal to `set`: registers the new ones
/// ([`Manager::register`]: `max_connections` holds for them as for any other),
/// updates the changed ones, deletes the ones no longer declared. A declared name that an
/// Admin-API registration holds is left alone and reported. Fails only when the store
/// cannot be listed; single writes that fail are reported in [`Applied::failed`].
pub(crate) async fn reconcile(
    store: &dyn Store,
    manager: &Manager,
    set: &DeclaredSet,
) -> Result<Applied, mcp_store::Error> {
    let stored = store.list().await?;
    let mut out = Applied::default();
    for decl in &set.servers {
        let def = &decl.definition;
        let name = def.name.clone();
        match stored.iter().find(|s| s.name == def.name) {
            None => match manager.register(def.clone()).await {
                Ok(_) => out.added.push(name),
                Err(e) => out.failed.push((name, e.to_string())),
            },
            Some(s) if s.source == DefinitionSource::Api => {
                warn!(
                    mcp = %name,
                    origin = %decl.origin,
                    "declared server not applied: an mcp of that name was registered through \
                     the admin api; delete it (proxyctl rm {name}) or rename the declaration"
                );
                out.conflicts.push(name);
            }
            Some(s) if s.same_config(def) => out.unchanged += 1,
            Some(_) => match store.update(def.clone()).await {
                Ok(s) => {
                    manager.apply_put(s);
                    out.changed.push(name);
                }
                Err(e) => out.failed.push((name, e.to_string())),
            },
        }
    }
    let declared: BTreeSet<&str> = set
        .servers
        .iter()
        .map(|d| d.definition.name.as_str())
        .collect();
    for s in stored
        .iter()
        .filter(|s| s.source == DefinitionSource::Config && !declared.contains(s.name.as_str()))
    {
        let deleted = match store.delete_if(&s.name, None).await {
            Ok(version) => Ok(Some(version)),
            // Gone already: its deletion's event is on the feed.
            Err(mcp_store::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        match deleted {
            Ok(version) => {
                manager.apply_delete(&s.name, version);
                out.removed.push(s.name.clone());
            }
            Err(e) => out.failed.push((s.name.clone(), e.to_string())),
        }
    }
    for (name, why) in &out.failed {
        warn!(mcp = %name, error = %why, "declared server not applied; retrying later");
    }
    info!(
        added = ?out.added,
        changed = ?out.changed,
        removed = ?out.removed,
        unchanged = out.unchanged,
        conflicts = ?out.conflicts,
        failed = out.failed.len(),
        "declared servers applied"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mcp_proxy_core::{ManagerConfig, TransportConnector};
    use mcp_store::MemoryStore;
    use mcp_types::McpDefinition;

    use super::*;
    use crate::declared::load::Declaration;

    fn declared(defs: &[McpDefinition]) -> DeclaredSet {
        DeclaredSet {
            managed: true,
            servers: defs
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    d.source = DefinitionSource::Config;
                    Declaration {
                        origin: "test".into(),
                        definition: d,
                    }
                })
                .collect(),
        }
    }

    /// A definition that never connects, with a timeout of `timeout_s` seconds.
    fn def(name: &str, timeout_s: u64) -> McpDefinition {
        let mut d = mcp_test_support::definitions::unreachable(name);
        d.timeout = std::time::Duration::from_secs(timeout_s);
        d
    }

    #[tokio::test]
    async fn only_the_difference_is_applied_and_api_definitions_are_left_alone() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let manager = Manager::new(
            store.clone(),
            Arc::new(TransportConnector::default()),
            ManagerConfig {
                max_connections: 3,
                ..ManagerConfig::default()
            },
        );
        store.create(def("api-one", 1)).await.unwrap();
        let r = reconcile(&*store, &manager, &declared(&[def("a", 1), def("b", 1)]))
            .await
            .unwrap();
        assert_eq!(r.added, ["a", "b"]);
        let r = reconcile(
            &*store,
            &manager,
            &declared(&[def("a", 1), def("b", 2), def("api-one", 3)]),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.unchanged, r.changed.as_slice()),
            (1, ["b".to_owned()].as_slice())
        );
        assert_eq!(r.conflicts, ["api-one"]);
        let api = store.get("api-one").await.unwrap().unwrap();
        assert_eq!(api.timeout, std::time::Duration::from_secs(1), "untouched");
        let r = reconcile(&*store, &manager, &declared(&[def("b", 2)]))
            .await
            .unwrap();
        assert_eq!(r.removed, ["a"]);
        let names: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["api-one", "b"]);
        let r = reconcile(
            &*store,
            &manager,
            &declared(&[def("b", 2), def("c", 1), def("d", 1)]),
        )
        .await
        .unwrap();
        assert_eq!(r.added, ["c"]);
        assert_eq!(r.failed.len(), 1, "max_connections is respected: {r:?}");
        assert!(
            r.failed[0].1.contains("max_connections (3) reached"),
            "{r:?}"
        );
        manager.shutdown(std::time::Duration::from_secs(1)).await;
    }
}
