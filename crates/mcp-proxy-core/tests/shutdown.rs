//! `Manager::shutdown` awaits the tasks the manager owns under its deadline: when it
//! returns, the upstreams' stdio children have exited and been reaped, and the change-feed
//! follower no longer applies anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_store::{MemoryStore, Store};
use mcp_test_support::assert_eventually;
use mcp_types::{ConnectionState, McpDefinition};

/// A stdio upstream (the mock-stdio fixture) that writes its pid to `pid_file` first.
fn recorded(name: &str, pid_file: &std::path::Path) -> McpDefinition {
    let mock = mcp_test_support::tools::mock_stdio();
    let script = format!(
        "echo $$ > '{}'; exec '{}'",
        pid_file.display(),
        mock.display()
    );
    McpDefinition::stdio(name, "/bin/sh", &["-c", &script])
}

#[tokio::test]
async fn shutdown_returns_once_every_child_has_exited() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    manager.start().await;
    let files: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("pid-{i}")))
        .collect();
    for (i, file) in files.iter().enumerate() {
        manager
            .register(recorded(&format!("m{i}"), file))
            .await
            .unwrap();
    }
    assert_eventually!(
        Duration::from_secs(30),
        manager
            .upstreams()
            .iter()
            .all(|u| u.state() == ConnectionState::Connected)
    );
    let pids: Vec<u32> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().trim().parse().unwrap())
        .collect();
    for pid in &pids {
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    let started = Instant::now();
    assert!(
        manager.shutdown(Duration::from_secs(20)).await,
        "all tasks ended in time"
    );
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still exists when shutdown returned"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));

    // Nothing owned by the manager runs on: a definition stored now is not applied.
    store
        .create(recorded("late", &dir.path().join("late")))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    assert!(manager.upstream("late").is_none());
    assert!(manager.upstreams().is_empty());
}
