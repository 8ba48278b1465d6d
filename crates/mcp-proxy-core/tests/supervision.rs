//! Supervision timing under paused tokio time: back-off, giving up, reviving, health
//! checks. Connections come from fake connectors, so every attempt is counted exactly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mcp_proxy_core::{Connection, Connector, Manager, ManagerConfig};
use mcp_store::{MemoryStore, Store};
use mcp_transport::{Events, Handler, McpClient, Target, Transport, TransportEvent};
use mcp_types::{ConnectionState, McpDefinition, Message, TransportKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Records when each attempt happened; fails them all, or hands out silent connections.
#[derive(Debug, Default)]
struct FakeConnector {
    attempts: Mutex<Vec<Instant>>,
    silent: bool,
    sent: Arc<Mutex<Vec<String>>>,
    // keeps the event senders of silent connections open
    keep: Mutex<Vec<mpsc::Sender<TransportEvent>>>,
}

impl FakeConnector {
    fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }
}

/// A transport that swallows everything and never answers.
#[derive(Debug)]
struct SilentTransport {
    target: Target,
    sent: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Transport for SilentTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Stdio
    }
    fn target(&self) -> &Target {
        &self.target
    }
    async fn send(&self, msg: Message) -> mcp_transport::Result<()> {
        self.sent
            .lock()
            .unwrap()
            .push(msg.method().unwrap_or("response").to_owned());
        Ok(())
    }
    async fn close(&self) -> mcp_transport::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Connector for FakeConnector {
    async fn connect(
        &self,
        def: &McpDefinition,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        self.attempts.lock().unwrap().push(Instant::now());
        let target = Target::new(def.name.clone(), def.transport);
        if !self.silent {
            return Err(mcp_transport::Error::Config {
                target,
                reason: "nobody home".into(),
            });
        }
        let (tx, rx): (_, Events) = mpsc::channel(8);
        self.keep.lock().unwrap().push(tx);
        let transport = SilentTransport {
            target,
            sent: self.sent.clone(),
        };
        let client = McpClient::from_channel(Box::new(transport), rx, def.timeout, handler);
        let init = serde_json::from_value(serde_json::json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "serverInfo": {"name": "fake", "version": "1"}
        }))
        .unwrap();
        Ok(Connection { client, init })
    }
}

fn manager(connector: Arc<FakeConnector>) -> Manager {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    Manager::new(store, connector, ManagerConfig::default())
}

fn def(max_reconnects: u32, delay: Duration) -> McpDefinition {
    let mut d = McpDefinition::stdio("fake", "fake", &[]);
    d.max_reconnects = max_reconnects;
    d.reconnect_delay = delay;
    d
}

async fn wait_attempts(c: &FakeConnector, n: usize) {
    for _ in 0..100_000 {
        if c.attempts().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("only {} attempts", c.attempts().len());
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn within(d: Duration, nominal: Duration) -> bool {
    d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2) + Duration::from_millis(20)
}

#[tokio::test(start_paused = true)]
async fn backs_off_exponentially_then_rests_in_error_until_asked() {
    let c = Arc::new(FakeConnector::default());
    let m = manager(c.clone());
    m.apply_put(def(3, Duration::from_secs(1)));
    wait_attempts(&c, 3).await;
    // Resting: an hour later nothing more has been tried.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let times = c.attempts();
    assert_eq!(times.len(), 3, "gave up after maxReconnects");
    let g = gaps(&times);
    assert!(within(g[0], Duration::from_secs(1)), "{g:?}");
    assert!(within(g[1], Duration::from_secs(2)), "{g:?}");
    let s = m.status("fake").unwrap();
    assert_eq!(s.state, ConnectionState::Error);
    assert_eq!(s.reconnect_attempts, 3);
    assert!(s.last_error.unwrap().contains("nobody home"));

    m.reconnect("fake").unwrap();
    wait_attempts(&c, 4).await;
    let revived = c.attempts()[3] - times[2];
    assert!(
        revived >= Duration::from_secs(3600),
        "only after the request"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        m.status("fake").unwrap().reconnect_attempts >= 1,
        "counting restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn unlimited_attempts_are_capped_at_a_minute_apart() {
    let c = Arc::new(FakeConnector::default());
    let m = manager(c.clone());
    m.apply_put(def(0, Duration::from_secs(1)));
    wait_attempts(&c, 10).await;
    let g = gaps(&c.attempts());
    let nominal = [1u64, 2, 4, 8, 16, 32, 60, 60, 60];
    for (gap, n) in g.iter().zip(nominal) {
        assert!(within(*gap, Duration::from_secs(n)), "{g:?}");
    }
    m.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn auto_reconnect_off_means_one_attempt() {
    let c = Arc::new(FakeConnector::default());
    let m = manager(c.clone());
    let mut d = def(5, Duration::from_secs(1));
    d.auto_reconnect = false;
    m.apply_put(d);
    wait_attempts(&c, 1).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(c.attempts().len(), 1);
    assert_eq!(m.status("fake").unwrap().state, ConnectionState::Error);
}

#[tokio::test(start_paused = true)]
async fn two_failed_health_checks_count_as_a_lost_connection() {
    let c = Arc::new(FakeConnector {
        silent: true,
        ..FakeConnector::default()
    });
    let m = manager(c.clone());
    let mut d = def(5, Duration::from_secs(1));
    d.health_check_interval = Duration::from_secs(30);
    d.timeout = Duration::from_secs(5);
    m.apply_put(d);
    wait_attempts(&c, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.status("fake").unwrap().state, ConnectionState::Connected);
    // One failed ping (sent at 30 s, timed out at 35 s) is not enough.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(m.status("fake").unwrap().state, ConnectionState::Connected);
    assert_eq!(c.attempts().len(), 1);
    // The second failure (sent at ~65 s) is a loss; the upstream is reconnected.
    wait_attempts(&c, 2).await;
    let times = c.attempts();
    let connected_for = times[1] - times[0];
    assert!(
        connected_for >= Duration::from_secs(65) && connected_for <= Duration::from_secs(80),
        "{connected_for:?}"
    );
    let pings = c
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|m| *m == "ping")
        .count();
    assert_eq!(pings, 2);
    let s = m.status("fake").unwrap();
    assert!(
        s.last_error.unwrap().contains("health check failed twice"),
        "the loss says why"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_on_a_silent_upstream_times_out_and_is_cancelled_upstream() {
    let c = Arc::new(FakeConnector {
        silent: true,
        ..FakeConnector::default()
    });
    let m = manager(c.clone());
    let mut d = def(5, Duration::from_secs(1));
    d.timeout = Duration::from_secs(3);
    m.apply_put(d);
    wait_attempts(&c, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = m
        .upstream("fake")
        .unwrap()
        .request("tools/call", None)
        .await
        .expect_err("nobody answers");
    assert!(err.is_timeout(), "{err}");
    assert!(err.is_upstream() && err.is_retryable());
    let sent = c.sent.lock().unwrap().clone();
    assert!(
        sent.contains(&"notifications/cancelled".to_owned()),
        "{sent:?}"
    );
}
