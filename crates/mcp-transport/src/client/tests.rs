//! The client against an in-memory transport.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mcp_types::mcp::Implementation;
use mcp_types::{Message, Outcome, RequestId, TransportKind};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ClientEvent, ClientEvents, McpClient};
use crate::error::{Error, Target};
use crate::transport::{CloseKind, CloseReason, Transport, TransportEvent};

#[derive(Debug)]
struct Fake {
    target: Target,
    sent: mpsc::Sender<Message>,
    closed: AtomicBool,
}

#[async_trait]
impl Transport for Fake {
    fn kind(&self) -> TransportKind {
        TransportKind::Stdio
    }
    fn target(&self) -> &Target {
        &self.target
    }
    async fn send(&self, msg: Message) -> crate::Result<()> {
        self.sent.try_send(msg).expect("test channel has room");
        Ok(())
    }
    async fn close(&self) -> crate::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

struct Harness {
    client: McpClient,
    events: ClientEvents,
    upstream: mpsc::Sender<TransportEvent>,
    sent: mpsc::Receiver<Message>,
}

fn harness() -> Harness {
    let (sent_tx, sent) = mpsc::channel(64);
    let (upstream, events_rx) = mpsc::channel(64);
    let fake = Fake {
        target: Target::new("fake", TransportKind::Stdio),
        sent: sent_tx,
        closed: AtomicBool::new(false),
    };
    let (client, events) = McpClient::new(Box::new(fake), events_rx, Duration::from_secs(30), 8);
    Harness {
        client,
        events,
        upstream,
        sent,
    }
}

async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("did not hang")
}

fn result(id: RequestId, value: Value) -> TransportEvent {
    TransportEvent::Message(Message::result(id, &value))
}

#[tokio::test]
async fn responses_find_their_requests_in_any_order_and_ping_is_answered() {
    let mut h = harness();
    let a = tokio::spawn({
        let c = h.client.clone();
        async move { c.request("a", None).await }
    });
    let first = within(h.sent.recv()).await.unwrap();
    let b = tokio::spawn({
        let c = h.client.clone();
        async move { c.request("b", None).await }
    });
    let second = within(h.sent.recv()).await.unwrap();
    let (id_a, id_b) = (first.id().unwrap().clone(), second.id().unwrap().clone());
    assert_ne!(id_a, id_b);
    h.upstream.send(result(id_b, json!("for b"))).await.unwrap();
    h.upstream.send(result(id_a, json!("for a"))).await.unwrap();
    let text = |r: crate::Result<mcp_types::Response>| match r.unwrap().outcome {
        Outcome::Result(raw) => raw.get().to_owned(),
        Outcome::Error(e) => panic!("{e:?}"),
    };
    assert_eq!(text(within(a).await.unwrap()), "\"for a\"");
    assert_eq!(text(within(b).await.unwrap()), "\"for b\"");

    let ping = Message::request(RequestId::from("srv-1"), "ping", None::<&Value>);
    h.upstream
        .send(TransportEvent::Message(ping))
        .await
        .unwrap();
    let pong = within(h.sent.recv()).await.unwrap();
    assert_eq!(
        pong.to_json_string(),
        r#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#
    );
}

#[tokio::test]
async fn a_close_fails_every_pending_request_at_once() {
    let mut h = harness();
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let c = h.client.clone();
            tokio::spawn(async move { c.request("slow", None).await })
        })
        .collect();
    for _ in 0..3 {
        within(h.sent.recv()).await.unwrap();
    }
    let reason = CloseReason::new(CloseKind::Exited, "the process exited with status 1");
    h.upstream
        .send(TransportEvent::Closed(reason))
        .await
        .unwrap();
    for p in pending {
        let err = within(p).await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            r#"upstream "fake" (stdio): connection closed: the process exited with status 1"#
        );
    }
    assert!(matches!(
        within(h.events.recv()).await,
        Some(ClientEvent::Closed(_))
    ));
    assert!(h.client.is_closed());
}

#[tokio::test]
async fn server_requests_reach_the_owner_or_get_method_not_found() {
    let mut h = harness();
    let req = Message::request(7, "sampling/createMessage", Some(&json!({})));
    h.upstream
        .send(TransportEvent::Message(req.clone()))
        .await
        .unwrap();
    let Some(ClientEvent::Request(got)) = within(h.events.recv()).await else {
        panic!("request not delivered");
    };
    assert_eq!(got.id, RequestId::number(7));
    drop(h.events);
    h.upstream.send(TransportEvent::Message(req)).await.unwrap();
    let refused = within(h.sent.recv()).await.unwrap();
    assert!(refused.to_json_string().contains("-32601"), "{refused:?}");
}

#[tokio::test]
async fn initialize_refuses_an_unsupported_version() {
    let mut h = harness();
    let init = tokio::spawn({
        let c = h.client.clone();
        async move { c.initialize(Implementation::new("t", "0"), json!({})).await }
    });
    let sent = within(h.sent.recv()).await.unwrap();
    let params: Value = serde_json::from_str(sent.params().unwrap().get()).unwrap();
    assert_eq!(
        params["protocolVersion"],
        mcp_types::mcp::LATEST_PROTOCOL_VERSION
    );
    let answer = json!({"protocolVersion": "1999-01-01", "capabilities": {},
        "serverInfo": {"name": "old", "version": "1"}});
    h.upstream
        .send(result(sent.id().unwrap().clone(), answer))
        .await
        .unwrap();
    let err = within(init).await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains(r#"protocol version "1999-01-01""#),
        "{err}"
    );
    assert!(h.client.is_closed());
}
