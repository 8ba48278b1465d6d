//! The official conformance suite (`@modelcontextprotocol/conformance`, server scenarios,
//! `--suite all`) against `/{name}/mcp`:
//!
//! - in front of server-everything (over stdio and over streamable HTTP), compared with a
//!   direct run against server-everything in the same test: every scenario that passes
//!   directly must pass through the proxy;
//! - in front of our conformance fixture (`mcp-test-support`'s `conformance-fixture`, the
//!   names the scenarios call), where every scenario must pass;
//! - with `--requirements 2026-07-28` (suite 0.2.0-alpha.12), in front of the 2026-era
//!   fixture on the official Python SDK over stdio and over streamable HTTP, compared with
//!   a direct run against the same fixture: every scenario that passes directly, scored
//!   (the 14 input-required ones among them, by pass-through) or not (such as the pending
//!   `http-header-validation`), must pass through the proxy.

use std::collections::BTreeMap;
use std::path::Path;

use mcp_test_support::conformance::suite::{self, conformance};
use mcp_test_support::e2e::Admin;
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools::{self, EverythingMode, EverythingServer};

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

/// The 2026-07-28 run against `url`: each scenario's verdict, the 37 it scores and the
/// ones it runs without scoring (pending ones, extensions), listed after the total.
async fn conformance_2026(url: &str, out: &Path) -> (BTreeMap<String, bool>, String) {
    let (verdicts, summary) = suite::run(
        &tools::conformance_2026_cli(),
        &["--requirements", "2026-07-28"],
        url,
        out,
    )
    .await;
    let unscored = summary.split_once("Not scored for").map_or("", |(_, u)| u);
    let unscored: Vec<&str> = unscored
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("✓ ").or_else(|| l.strip_prefix("✗ "))?;
            rest.split_whitespace().next()
        })
        .collect();
    let scored_count = verdicts
        .keys()
        .filter(|name| !unscored.contains(&name.as_str()))
        .count();
    assert_eq!(
        scored_count, 37,
        "the revision scores 37 scenarios:\n{summary}"
    );
    (verdicts, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_passes_the_2026_scenarios_the_modern_fixture_passes() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = mcp_test_support::conformance::Fixture2026::start().await;
    let direct_dir = dir.path().join("direct");
    std::fs::create_dir_all(&direct_dir).unwrap();
    // `localhost`, as dns-rebinding-protection requires a localhost URL.
    let direct_url = fixture.url().replace("127.0.0.1", "localhost");
    let (direct, direct_summary) = conformance_2026(&direct_url, &direct_dir).await;
    eprintln!("2026-07-28, the fixture directly:{direct_summary}");
    let input_required: Vec<&String> = direct
        .iter()
        .filter(|(s, passed)| s.starts_with("input-required-result-") && **passed)
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        input_required.len(),
        14,
        "the fixture passes the 14 input-required scenarios directly:\n{direct_summary}"
    );

    let proxyd = Proxyd::start(BIN, &[]).await.unwrap();
    let admin = Admin::new(&proxyd);
    let stdio = mcp_test_support::conformance::fixture_2026_def("modern");
    admin.register_def(&stdio).await;
    admin.register_def(&fixture.def("modern-http")).await;
    for name in ["modern", "modern-http"] {
        admin.wait_connected(name).await;
        let status = admin.status(name).await;
        assert_eq!(status["era"], "modern", "{status}");
        assert_eq!(status["protocolVersion"], "2026-07-28", "{status}");
        let out = dir.path().join(name);
        std::fs::create_dir_all(&out).unwrap();
        let url = format!("{}/{name}/mcp", proxyd.url()).replace("127.0.0.1", "localhost");
        let (proxied, proxied_summary) = conformance_2026(&url, &out).await;
        eprintln!("2026-07-28, through the proxy ({name}):{proxied_summary}");
        let regressions: Vec<&String> = direct
            .iter()
            .filter(|(s, passed)| **passed && !proxied.get(*s).copied().unwrap_or(false))
            .map(|(s, _)| s)
            .collect();
        assert!(
            regressions.is_empty(),
            "scenarios passing directly but not through the proxy ({name}): {regressions:?}\n\
             direct:{direct_summary}\nthrough the proxy:{proxied_summary}"
        );
        assert_eq!(proxied.len(), direct.len(), "{proxied_summary}");
    }
}

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
        .register_def(&tools::everything_stdio_def("everything"))
        .await;
    admin
        .register_connected(&everything.def("everything-http"))
        .await;
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
    admin.register_connected(&def).await;
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
