//! `RegisterService` against a real `proxyd`: create, update when different, leave alone
//! when the same, every failure named, and shutdown removing only its own MCPs.

use std::num::NonZeroUsize;
use std::time::Duration;

use mcp_proxy_client::{Ensured, Error, ProxyClient, RegisterService};
use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd, proxyd_binary};
use mcp_test_support::tools;
use mcp_types::{McpDefinition, TransportKind};

async fn proxy() -> (Proxyd, ProxyClient) {
    let p = Proxyd::start(proxyd_binary(), &[]).await.unwrap();
    let c = ProxyClient::try_new(&p.url(), ADMIN_TOKEN, Duration::from_secs(30)).unwrap();
    (p, c)
}

#[tokio::test]
async fn ensure_creates_updates_when_different_and_leaves_the_same_alone() {
    let (_p, c) = proxy().await;
    let svc = RegisterService::new(c.clone());
    let mut def = tools::server_time_def("time");
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Created);
    let stamp = c.get("time").await.unwrap().definition.updated_at;
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Unchanged);
    assert_eq!(
        c.get("time").await.unwrap().definition.updated_at,
        stamp,
        "no write"
    );

    def.args = vec!["--local-timezone".into(), "UTC".into()];
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Updated);
    assert_eq!(c.get("time").await.unwrap().definition.args, def.args);

    // Someone else changes it behind our back: ensure puts ours back.
    let mut theirs = def.clone();
    theirs.args.clear();
    c.update(&theirs).await.unwrap();
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Updated);
    assert_eq!(c.get("time").await.unwrap().definition.args, def.args);
}

#[tokio::test]
async fn secrets_the_proxy_cannot_show_are_never_left_stale() {
    let (_p, c) = proxy().await;
    let mut def = McpDefinition::http(
        "search",
        TransportKind::StreamableHttp,
        "http://127.0.0.1:9/mcp",
    );
    def.headers
        .insert("Authorization".into(), "Bearer old-token".into());
    def.auto_reconnect = false;
    // Registered by another engine with the old token.
    c.register(&def).await.unwrap();

    let svc = RegisterService::new(c.clone());
    def.headers
        .insert("Authorization".into(), "Bearer new-token".into());
    // Everything visible matches ("***"), so the secret cannot be compared: update once.
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Updated);
    // Now the proxy holds what this service sent, and nobody changed it since.
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Unchanged);
    // A change by someone else (a new updatedAt) makes it update again.
    c.update(&def).await.unwrap();
    assert_eq!(svc.ensure(&def).await.unwrap(), Ensured::Updated);
    assert!(
        svc.owned().is_empty(),
        "updated, not created: not ours to remove"
    );
}

#[tokio::test]
async fn ensure_many_applies_all_it_can_and_names_every_failure() {
    let (_p, c) = proxy().await;
    let svc = RegisterService::new(c.clone()).with_parallelism(NonZeroUsize::new(2).unwrap());
    let mut bad_url = McpDefinition::new("bad-url", TransportKind::Sse);
    bad_url.url = Some("gopher://x".into());
    let no_command = McpDefinition::new("no-command", TransportKind::Stdio);
    let defs = vec![
        tools::server_time_def("time"),
        bad_url,
        tools::everything_stdio_def("every"),
        no_command,
    ];
    let err = svc.ensure_many(&defs).await.unwrap_err();
    let Error::Batch {
        total, failures, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*total, 4);
    let failed: Vec<_> = failures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, ["bad-url", "no-command"]);
    assert!(
        failures
            .iter()
            .all(|(_, e)| matches!(e, Error::Invalid { .. }))
    );
    let text = err.to_string();
    assert!(
        text.starts_with("ensure_many: 2 of 4 failed: \"bad-url\": "),
        "{text}"
    );
    assert!(text.contains("\"no-command\": "), "{text}");
    // The valid ones were applied.
    let names: Vec<_> = c
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.definition.name)
        .collect();
    assert_eq!(names, ["every", "time"]);

    let ok = svc.ensure_many(&defs[..1]).await.unwrap();
    assert_eq!(ok, [Ensured::Unchanged]);
}

#[tokio::test]
async fn shutdown_removes_only_what_this_instance_registered() {
    let (_p, c) = proxy().await;
    // Another engine's MCP, which this one also uses.
    c.register(&tools::server_time_def("shared")).await.unwrap();
    let engine_a = RegisterService::new(c.clone());
    let engine_b = RegisterService::new(c.clone());
    engine_a
        .ensure_many(&[
            tools::server_time_def("shared"),
            tools::server_time_def("mine"),
        ])
        .await
        .unwrap();
    engine_b
        .ensure(&tools::everything_stdio_def("theirs"))
        .await
        .unwrap();
    assert_eq!(engine_a.owned(), ["mine"]);

    // Someone already removed one of ours: fine.
    let extra = tools::server_time_def("gone");
    engine_a.ensure(&extra).await.unwrap();
    c.deregister("gone").await.unwrap();

    let mut removed = engine_a.shutdown().await.unwrap();
    removed.sort();
    assert_eq!(removed, ["gone", "mine"]);
    let mut left: Vec<_> = c
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.definition.name)
        .collect();
    left.sort();
    assert_eq!(left, ["shared", "theirs"]);
    assert!(engine_a.owned().is_empty());
    assert_eq!(engine_b.shutdown().await.unwrap(), ["theirs"]);
}
