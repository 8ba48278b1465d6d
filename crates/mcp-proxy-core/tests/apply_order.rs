//! The order in which a replica applies changes: its own writes are applied at once and
//! come back later on the change feed, interleaved with other replicas' writes. Whatever
//! the interleaving, the newest change wins. These tests deliver the feed's events by hand,
//! late, as a slow feed would.

use std::sync::Arc;

use futures_util::StreamExt;
use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_store::{MemoryStore, Store, StoreEvent};
use mcp_types::{McpDefinition, TransportKind};

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
            StoreEvent::Resync => unreachable!("nothing lagged"),
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
