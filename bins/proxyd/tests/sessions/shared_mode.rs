//! Shared mode: many client sessions over one upstream session, kept apart.

use mcp_test_support::e2e::{Admin, McpHttp};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use serde_json::{Value, json};

use crate::BIN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_mode_keeps_identical_ids_and_progress_tokens_apart() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(tools::everything_stdio_def("shared")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/shared/mcp", proxyd.url());
    let one = mcp.open_session(&url, "2025-11-25").await;
    let two = mcp.open_session(&url, "2025-06-18").await;
    let call = |msg: &str| {
        json!({"jsonrpc":"2.0","id":"same","method":"tools/call","params":{
            "name":"trigger-long-running-operation","arguments":{"duration":0.5,"steps":5},
            "_meta":{"progressToken":"tok","tag":msg}}})
    };
    let echo = |msg: &str| json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":msg}}});
    for _ in 0..3 {
        let (c1, c2, e1, e2) = (call("one"), call("two"), echo("from-one"), echo("from-two"));
        let (a, b, c, d) = tokio::join!(
            mcp.post_collect(&url, Some(&one), &c1),
            mcp.post_collect(&url, Some(&two), &c2),
            mcp.post_collect(&url, Some(&one), &e1),
            mcp.post_collect(&url, Some(&two), &e2),
        );
        for (msgs, who) in [(&a, "one"), (&b, "two")] {
            let progress: Vec<&Value> = msgs
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .collect();
            assert_eq!(
                progress.len(),
                5,
                "session {who} gets exactly its own 5 progress notifications: {msgs:?}"
            );
            assert!(
                progress
                    .iter()
                    .all(|p| p["params"]["progressToken"] == "tok"),
                "{progress:?}"
            );
            let resp = msgs.last().unwrap();
            assert_eq!(resp["id"], "same", "{resp}");
            assert!(resp["result"].is_object(), "{resp}");
        }
        assert_eq!(c.last().unwrap()["id"], 7);
        assert!(c.last().unwrap().to_string().contains("from-one"));
        assert!(d.last().unwrap().to_string().contains("from-two"));
    }
    // one upstream process serves both: the primary connection plus one shared one
    let status = admin.status("shared").await;
    assert_eq!(status["state"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_are_reference_counted() {
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let mut def = serde_json::to_value(mcp_test_support::conformance::fixture_def("fx")).unwrap();
    def["sessionMode"] = json!("shared");
    admin.register(def).await;
    let mcp = McpHttp::new();
    let url = format!("{}/fx/mcp", proxyd.url());
    let a = mcp.open_session(&url, "2025-11-25").await;
    let b = mcp.open_session(&url, "2025-11-25").await;
    let req = |method: &str| json!({"jsonrpc":"2.0","id":9,"method":method,"params":{"uri":"test://watched-resource"}});
    // what reached the fixture shows up as its log message on the request's stream
    let reached = |msgs: &[Value], method: &str| {
        let last = msgs.last().unwrap();
        assert_eq!(last["result"], json!({}), "{msgs:?}");
        msgs.iter().any(|m| {
            m["params"]["data"]
                .as_str()
                .is_some_and(|d| d.starts_with(method))
        })
    };
    let sub = req("resources/subscribe");
    let unsub = req("resources/unsubscribe");
    let msgs = mcp.post_collect(&url, Some(&a), &sub).await;
    assert!(
        reached(&msgs, "resources/subscribe"),
        "the first subscriber subscribes upstream"
    );
    let msgs = mcp.post_collect(&url, Some(&b), &sub).await;
    assert!(
        !reached(&msgs, "resources/subscribe"),
        "the second one is answered by the proxy"
    );
    let msgs = mcp.post_collect(&url, Some(&a), &unsub).await;
    assert!(!reached(&msgs, "resources/unsubscribe"), "b still needs it");
    let msgs = mcp.post_collect(&url, Some(&b), &unsub).await;
    assert!(
        reached(&msgs, "resources/unsubscribe"),
        "the last one unsubscribes upstream"
    );
}
