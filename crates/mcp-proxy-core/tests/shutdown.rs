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

/// The session hub owns the tasks spawned for its sessions, by the core or by the HTTP
/// layer over it: at shutdown the ordinary ones stop, the cleanups run to their end, and
/// `SessionHub::wait` returns only once both are over.
#[tokio::test(start_paused = true)]
async fn the_session_hub_stops_its_tasks_and_waits_for_its_cleanups() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(
        store,
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    let hub = mcp_proxy_core::SessionHub::new(manager.clone(), 4);
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel::<()>();
    hub.spawn(async move {
        let _dropped_when_stopped = stopped_tx;
        std::future::pending::<()>().await;
    });
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let cleaned = Arc::new(AtomicBool::new(false));
    let flag = cleaned.clone();
    hub.spawn_cleanup(async move {
        let _ = released.await;
        flag.store(true, Ordering::SeqCst);
    });

    hub.shutdown();
    assert!(
        stopped.await.is_err(),
        "an ordinary task is stopped at shutdown"
    );
    assert!(
        !hub.wait(Duration::from_secs(5)).await,
        "wait does not return while a cleanup runs"
    );
    assert!(!cleaned.load(Ordering::SeqCst));
    release.send(()).unwrap();
    assert!(hub.wait(Duration::from_secs(5)).await);
    assert!(cleaned.load(Ordering::SeqCst), "the cleanup ran to its end");
    manager.shutdown(Duration::from_secs(1)).await;
}
