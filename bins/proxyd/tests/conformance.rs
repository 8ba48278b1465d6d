//! The official conformance suite (`@modelcontextprotocol/conformance`, server scenarios,
//! `--suite all`) against `/{name}/mcp`:
//!
//! - in front of server-everything (over stdio and over streamable HTTP), compared with a
//!   direct run against server-everything in the same test: every scenario that passes
//!   directly must pass through the proxy;
//! - in front of our conformance fixture (`mcp-test-support`'s `conformance-fixture`, the
//!   names the scenarios call), where every scenario must pass.

#[path = "conformance/suite.rs"]
mod suite;
#[path = "sessions/support.rs"]
mod support;

use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};
use suite::conformance;
use support::{Admin, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_passes_every_scenario_server_everything_passes() {
    let dir = tempfile::tempdir().unwrap();
    let direct_dir = dir.path().join("direct");
    let proxy_dir = dir.path().join("proxy");
    let http_dir = dir.path().join("proxy-http");
    for d in [&direct_dir, &proxy_dir, &http_dir] {
        std::fs::create_dir_all(d).unwrap();
    }

    let everything = EverythingServer::start(EverythingMode::StreamableHttp).await;
    let (direct, direct_summary) = conformance(&everything.url(), &direct_dir).await;

    // The proxy in front of server-everything over stdio and over streamable HTTP.
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    admin
        .register(serde_json::to_value(tools::everything_stdio_def("everything")).unwrap())
        .await;
    admin
        .register(serde_json::to_value(everything.def("everything-http")).unwrap())
        .await;
    admin.wait_connected("everything").await;
    admin.wait_connected("everything-http").await;
    for (name, dir) in [("everything", &proxy_dir), ("everything-http", &http_dir)] {
        let url = format!("{}/{name}/mcp", proxyd.url());
        let (proxied, proxied_summary) = conformance(&url, dir).await;
        let regressions: Vec<&String> = direct
            .iter()
            .filter(|(scenario, passed)| {
                **passed && !proxied.get(*scenario).copied().unwrap_or(false)
            })
            .map(|(scenario, _)| scenario)
            .collect();
        assert!(
            regressions.is_empty(),
            "scenarios passing directly but not through the proxy ({name}): {regressions:?}\n\
             direct:{direct_summary}\nthrough the proxy:{proxied_summary}"
        );
    }
    assert!(
        direct.values().any(|p| *p),
        "nothing passed directly; the comparison would prove nothing:\n{direct_summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_through_the_proxy_in_front_of_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let def = mcp_test_support::conformance::fixture_def("fixture");
    admin.register(serde_json::to_value(def).unwrap()).await;
    admin.wait_connected("fixture").await;
    // `localhost`, as dns-rebinding-protection requires a localhost URL.
    let url = format!("{}/fixture/mcp", proxyd.url()).replace("127.0.0.1", "localhost");
    let (verdicts, summary) = conformance(&url, dir.path()).await;
    let failed: Vec<&String> = verdicts
        .iter()
        .filter(|(_, passed)| !**passed)
        .map(|(name, _)| name)
        .collect();
    assert!(failed.is_empty(), "failed scenarios: {failed:?}\n{summary}");
    assert_eq!(verdicts.len(), 32, "{summary}");
}
