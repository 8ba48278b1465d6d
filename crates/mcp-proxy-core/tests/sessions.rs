//! Shared-mode multiplexing, deterministically: a scripted upstream behind a fake connector
//! shows exactly which ids and tokens reach it and where its messages are routed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mcp_proxy_core::{
    ClientSession, Connection, Connector, Manager, ManagerConfig, Outbound, SessionHub,
    SessionOptions, SessionParams,
};
use mcp_store::{MemoryStore, Store};
use mcp_transport::{
    CloseKind, CloseReason, Handler, McpClient, Target, Transport, TransportEvent,
};
use mcp_types::mcp::{Implementation, InitializeResult};
use mcp_types::{McpDefinition, Message, RequestId, SessionMode, TransportKind};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the scripted upstream sees, and the handle to speak as it.
#[derive(Debug, Clone)]
struct Upstream {
    seen: mpsc::UnboundedSender<Message>,
    speak: Arc<Mutex<Option<mpsc::Sender<TransportEvent>>>>,
}

#[derive(Debug)]
struct ScriptedTransport {
    target: Target,
    seen: mpsc::UnboundedSender<Message>,
}

#[async_trait]
impl Transport for ScriptedTransport {
    fn kind(&self) -> TransportKind {
        TransportKind::Stdio
    }
    fn target(&self) -> &Target {
        &self.target
    }
    async fn send(&self, msg: Message) -> mcp_transport::Result<()> {
        let _ = self.seen.send(msg);
        Ok(())
    }
    async fn close(&self) -> mcp_transport::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct ScriptedConnector {
    upstream: Upstream,
    sessions_opened: Mutex<u32>,
}

impl ScriptedConnector {
    fn connection(
        &self,
        def: &McpDefinition,
        seen: mpsc::UnboundedSender<Message>,
        handler: Arc<dyn Handler>,
    ) -> Connection {
        let (tx, rx) = mpsc::channel(64);
        let transport = ScriptedTransport {
            target: Target::new(&def.name, TransportKind::Stdio),
            seen,
        };
        let client = McpClient::from_channel(Box::new(transport), rx, def.timeout, handler);
        *self.upstream.speak.lock().unwrap() = Some(tx);
        Connection {
            client,
            init: InitializeResult {
                protocol_version: "2025-11-25".into(),
                capabilities: json!({"tools": {}}),
                server_info: Implementation::new("scripted", "1"),
                instructions: None,
                extra: serde_json::Map::new(),
            },
        }
    }
}

#[async_trait]
impl Connector for ScriptedConnector {
    async fn connect(
        &self,
        def: &McpDefinition,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        // The primary connection: its traffic is not what these tests look at.
        let (seen, _) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::channel(64);
        let transport = ScriptedTransport {
            target: Target::new(&def.name, TransportKind::Stdio),
            seen,
        };
        let client = McpClient::from_channel(Box::new(transport), rx, def.timeout, handler);
        std::mem::forget(tx); // a primary that never closes
        Ok(Connection {
            client,
            init: InitializeResult {
                protocol_version: "2025-11-25".into(),
                capabilities: json!({}),
                server_info: Implementation::new("scripted", "1"),
                instructions: None,
                extra: serde_json::Map::new(),
            },
        })
    }

    async fn open_session(
        &self,
        def: &McpDefinition,
        _params: &SessionParams,
        handler: Arc<dyn Handler>,
    ) -> Result<Connection, mcp_transport::Error> {
        *self.sessions_opened.lock().unwrap() += 1;
        Ok(self.connection(def, self.upstream.seen.clone(), handler))
    }
}

async fn recv(rx: &mut mpsc::Receiver<Outbound>) -> Outbound {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a message for the client")
        .expect("the session is open")
}

async fn upstream_recv(rx: &mut mpsc::UnboundedReceiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a message for the upstream")
        .expect("open")
}

fn msg(v: Value) -> Message {
    Message::from_slice(v.to_string().as_bytes()).unwrap()
}

fn as_json(m: &Message) -> Value {
    serde_json::from_slice(&m.to_vec()).unwrap()
}

async fn initialize(s: &Arc<ClientSession>, rx: &mut mpsc::Receiver<Outbound>, caps: Value) {
    s.handle(msg(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":caps,"clientInfo":{"name":"t","version":"1"}}})))
        .unwrap();
    let out = as_json(&recv(rx).await.message);
    assert_eq!(out["result"]["protocolVersion"], "2025-06-18", "{out}");
    assert_eq!(out["result"]["serverInfo"]["name"], "scripted");
}

#[tokio::test]
async fn shared_mode_remaps_ids_tokens_and_routes_server_requests() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let upstream = Upstream {
        seen: seen_tx,
        speak: Arc::default(),
    };
    let connector = Arc::new(ScriptedConnector {
        upstream: upstream.clone(),
        sessions_opened: Mutex::new(0),
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(store.clone(), connector.clone(), ManagerConfig::default());
    manager.start().await;
    let mut def = McpDefinition::stdio("x", "unused", &[]);
    def.session_mode = SessionMode::Shared;
    def.health_check_enabled = false;
    store.create(def).await.unwrap();
    mcp_test_support::assert_eventually!(Duration::from_secs(5), manager.upstream("x").is_some());
    let hub = SessionHub::new(manager.clone(), 16);
    let (a, mut a_rx) = hub.open_channel("x", SessionOptions::default()).unwrap();
    let (b, mut b_rx) = hub.open_channel("x", SessionOptions::default()).unwrap();
    initialize(&a, &mut a_rx, json!({"sampling": {}})).await;
    initialize(&b, &mut b_rx, json!({})).await;
    assert_eq!(
        *connector.sessions_opened.lock().unwrap(),
        1,
        "one shared connection"
    );

    // the same id and progress token from both clients
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":"tok","keep":true}}});
    a.handle(msg(call.clone())).unwrap();
    let up_a = as_json(&upstream_recv(&mut seen).await);
    b.handle(msg(call)).unwrap();
    let up_b = as_json(&upstream_recv(&mut seen).await);
    assert_ne!(up_a["id"], up_b["id"], "the upstream sees distinct ids");
    let (tok_a, tok_b) = (
        up_a["params"]["_meta"]["progressToken"].clone(),
        up_b["params"]["_meta"]["progressToken"].clone(),
    );
    assert_ne!(tok_a, tok_b, "and distinct progress tokens");
    assert!(tok_a.is_string(), "of the client's type");
    assert_eq!(
        up_a["params"]["_meta"]["keep"], true,
        "other _meta survives"
    );

    let speak = upstream.speak.lock().unwrap().clone().unwrap();
    let say = |v: Value| TransportEvent::Message(msg(v));
    // progress for a's token reaches a only, with a's token
    speak
        .send(say(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":tok_a,"progress":1}})))
        .await
        .unwrap();
    let p = recv(&mut a_rx).await;
    assert_eq!(p.related, Some(RequestId::number(1)));
    assert_eq!(as_json(&p.message)["params"]["progressToken"], "tok");

    // a sampling request while b's call is the latest: b lacks the capability → error
    speak
        .send(say(
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}),
        ))
        .await
        .unwrap();
    let refusal = as_json(&upstream_recv(&mut seen).await);
    assert_eq!(refusal["id"], "s1");
    assert_eq!(refusal["error"]["code"], -32601, "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sampling")
    );

    // b's call ends; now a's is the only one in flight and a gets the next request
    speak
        .send(say(
            json!({"jsonrpc":"2.0","id":up_b["id"],"result":{"content":[]}}),
        ))
        .await
        .unwrap();
    let r = as_json(&recv(&mut b_rx).await.message);
    assert_eq!(r["id"], 1, "b's answer carries b's own id: {r}");
    speak
        .send(say(
            json!({"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}}),
        ))
        .await
        .unwrap();
    let asked = recv(&mut a_rx).await;
    assert_eq!(
        asked.related,
        Some(RequestId::number(1)),
        "on a's request stream"
    );
    let asked = as_json(&asked.message);
    assert_ne!(asked["id"], "s2", "a fresh id on the client side");
    a.handle(msg(
        json!({"jsonrpc":"2.0","id":asked["id"],"result":{"role":"assistant"}}),
    ))
    .unwrap();
    let answered = as_json(&upstream_recv(&mut seen).await);
    assert_eq!(
        answered["id"], "s2",
        "the answer goes back under the upstream's id"
    );

    // a cancels: the upstream is told a's upstream id
    a.handle(msg(
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
    ))
    .unwrap();
    let cancel = as_json(&upstream_recv(&mut seen).await);
    assert_eq!(cancel["method"], "notifications/cancelled");
    assert_eq!(cancel["params"]["requestId"], up_a["id"]);

    // b calls again; the upstream dies: b's call fails, both sessions end
    b.handle(msg(
        json!({"jsonrpc":"2.0","id":"again","method":"tools/call","params":{"name":"t"}}),
    ))
    .unwrap();
    let _ = upstream_recv(&mut seen).await;
    speak
        .send(TransportEvent::Closed(CloseReason::new(
            CloseKind::Exited,
            "the process exited with status 1",
        )))
        .await
        .unwrap();
    let failed = as_json(&recv(&mut b_rx).await.message);
    assert_eq!(failed["id"], "again");
    assert_eq!(failed["error"]["code"], -32000, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited")
    );
    let end = tokio::time::timeout(Duration::from_secs(5), b_rx.recv()).await;
    assert!(matches!(end, Ok(None)), "b's session ended");
    let end = tokio::time::timeout(Duration::from_secs(5), a_rx.recv()).await;
    assert!(matches!(end, Ok(None)), "a's session ended");
    assert!(a.is_ended() && b.is_ended());
    assert!(
        a.handle(msg(json!({"jsonrpc":"2.0","id":5,"method":"ping"})))
            .is_err()
    );
    assert_eq!(hub.active(), 0, "their places are free");
}
