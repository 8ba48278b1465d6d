//! The order in which a replica applies changes: its own writes are applied at once and
//! come back later on the change feed, interleaved with other replicas' writes. Whatever
//! the interleaving, the newest change wins. These tests deliver the feed's events by hand,
//! late, as a slow feed would.

use std::sync::Arc;

use futures_util::StreamExt;
use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_store::{MemoryStore, Store, StoreEvent};
use mcp_types::{GroupDefinition, McpDefinition, PrefixMode, TransportKind};

/// An HTTP upstream on the discard port that is never retried: nothing runs for it.
fn def(description: &str) -> McpDefinition {
    let mut d = McpDefinition::http(
        "svc",
        TransportKind::StreamableHttp,
        "http://127.0.0.1:9/mcp",
    );
    d.description = Some(description.to_owned());
    d.auto_reconnect = false;
    d
}

fn setup() -> (Arc<MemoryStore>, Manager) {
    let store = Arc::new(MemoryStore::new());
    // Not started: the feed is delivered by the test.
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    (store, manager)
}

fn running(manager: &Manager) -> Option<String> {
    manager
        .upstream("svc")
        .map(|u| u.definition().description.clone().unwrap_or_default())
}

#[tokio::test]
async fn a_late_older_definition_never_replaces_a_newer_one() {
    let (store, manager) = setup();
    let first = store.create(def("first")).await.unwrap();
    let second = store.update(def("second")).await.unwrap();
    // This replica's own write, applied at once...
    manager.apply_put(second.clone());
    let up = manager.upstream("svc").unwrap();
    // ...then the feed's event of the earlier write, late.
    manager.apply_put(first);
    assert_eq!(running(&manager).as_deref(), Some("second"));
    assert!(
        Arc::ptr_eq(&up, &manager.upstream("svc").unwrap()),
        "the connection was not replaced, even for a moment"
    );
    // The feed's event of the write applied already changes nothing either.
    manager.apply_put(second);
    assert!(Arc::ptr_eq(&up, &manager.upstream("svc").unwrap()));
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_deleted_definition_never_comes_back_from_a_stale_put() {
    let (store, manager) = setup();
    let mut feed = store.watch();
    let created = store.create(def("first")).await.unwrap();
    manager.apply_put(created.clone());
    let version = store.delete_if("svc", None).await.unwrap();
    manager.apply_delete("svc", Some(version));
    assert_eq!(running(&manager), None);
    // The feed now brings the create, then the delete.
    for _ in 0..2 {
        match feed.next().await.unwrap() {
            StoreEvent::Put(def) => manager.apply_put(def),
            StoreEvent::Deleted { name, version } => manager.apply_delete(&name, version),
            other => unreachable!("nothing lagged and no group was written: {other:?}"),
        }
        assert_eq!(running(&manager), None, "resurrected by a stale event");
    }
    // Created again, it is newer than the deletion and runs.
    let again = store.create(def("again")).await.unwrap();
    manager.apply_put(again);
    assert_eq!(running(&manager).as_deref(), Some("again"));
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_resync_keeps_what_was_written_after_its_listing() {
    let (store, manager) = setup();
    let created = store.create(def("first")).await.unwrap();
    manager.apply_put(created);
    manager.resync().await.unwrap();
    assert_eq!(running(&manager).as_deref(), Some("first"));
    // A deletion the feed missed is caught up by the resync.
    store.delete("svc").await.unwrap();
    manager.resync().await.unwrap();
    assert_eq!(running(&manager), None);
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

/// A group over `svc` with this description.
fn group(description: &str) -> GroupDefinition {
    let mut g = GroupDefinition::new("team");
    g.description = Some(description.to_owned());
    g.members = vec!["svc".into(), "absent".into()];
    g
}

fn running_group(manager: &Manager) -> Option<String> {
    manager
        .group("team")
        .map(|g| g.definition().description.clone().unwrap_or_default())
}

#[tokio::test]
async fn groups_apply_in_version_order_and_never_come_back_from_a_stale_put() {
    let (store, manager) = setup();
    let first = store.create_group(group("first")).await.unwrap();
    let second = store.update_group(group("second")).await.unwrap();
    manager.apply_group_put(second.clone());
    let running = manager.group("team").unwrap();
    manager.apply_group_put(first.clone());
    assert_eq!(running_group(&manager).as_deref(), Some("second"));
    assert!(Arc::ptr_eq(&running, &manager.group("team").unwrap()));

    let version = store.delete_group_if("team", None).await.unwrap();
    manager.apply_group_delete("team", Some(version));
    assert!(manager.group("team").is_none());
    assert!(running.is_stopped(), "its sessions end");
    // late events of the earlier writes change nothing
    manager.apply_group_put(first);
    manager.apply_group_put(second);
    assert_eq!(
        running_group(&manager),
        None,
        "resurrected by a stale event"
    );
    let again = store.create_group(group("again")).await.unwrap();
    manager.apply_group_put(again);
    assert_eq!(running_group(&manager).as_deref(), Some("again"));
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_group_change_keeps_the_group_unless_its_auth_changed() {
    let (store, manager) = setup();
    manager.apply_group_put(store.create_group(group("v1")).await.unwrap());
    let running = manager.group("team").unwrap();
    let mut change = group("v2");
    change.prefix = PrefixMode::Always;
    manager.apply_group_put(store.update_group(change).await.unwrap());
    let now = manager.group("team").unwrap();
    assert!(Arc::ptr_eq(&running, &now), "reconfigured in place");
    assert!(!running.is_stopped(), "its sessions live on");
    assert_eq!(now.definition().prefix, PrefixMode::Always);

    let mut auth = group("v3");
    auth.auth_tokens = vec!["a-new-group-token".into()];
    manager.apply_group_put(store.update_group(auth).await.unwrap());
    let replaced = manager.group("team").unwrap();
    assert!(!Arc::ptr_eq(&running, &replaced), "replaced");
    assert!(
        running.is_stopped(),
        "sessions opened under the old rules end"
    );
    assert_eq!(replaced.definition().auth_tokens.len(), 1);
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_resync_catches_up_groups_and_leaves_the_built_in_one() {
    let (store, manager) = setup();
    assert!(manager.group("mcp").is_some_and(|g| g.is_built_in()));
    store.create_group(group("missed")).await.unwrap();
    manager.resync().await.unwrap();
    assert_eq!(running_group(&manager).as_deref(), Some("missed"));
    store.delete_group("team").await.unwrap();
    manager.resync().await.unwrap();
    assert_eq!(
        running_group(&manager),
        None,
        "a missed deletion is caught up"
    );
    assert!(manager.group("mcp").is_some(), "the built-in group stays");
    // a group the store names like the built-in one is never applied
    let mut rogue = GroupDefinition::new("mcp");
    rogue.version = Some(u64::MAX);
    manager.apply_group_put(rogue);
    assert!(manager.group("mcp").unwrap().is_built_in());
    manager.apply_group_delete("mcp", Some(u64::MAX));
    assert!(manager.group("mcp").is_some());
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_status_of_a_group_names_absent_members_and_unknown_overrides() {
    let (store, manager) = setup();
    let mut g = group("status");
    g.overrides.insert(
        "svc.nothing".into(),
        mcp_types::ToolOverride {
            hidden: true,
            ..Default::default()
        },
    );
    let stored = store.create_group(g).await.unwrap();
    // not applied yet: the status is what it would be
    let preview = manager.group_status(&stored);
    manager.apply_group_put(stored.clone());
    let status = manager.group_status(&stored);
    for s in [&preview, &status] {
        let members: Vec<(&str, bool)> = s
            .members
            .iter()
            .map(|m| (m.name.as_str(), m.present))
            .collect();
        assert_eq!(members, [("absent", false), ("svc", false)]);
        assert_eq!(s.unknown_overrides, ["svc.nothing"]);
        assert_eq!(s.tools, 0);
        assert!(s.available, "failMode open");
    }
    manager.apply_put(store.create(def("up")).await.unwrap());
    let status = manager.group_status(&stored);
    assert!(status.members.iter().any(|m| m.name == "svc" && m.present));
    manager.shutdown(std::time::Duration::from_secs(1)).await;
}
