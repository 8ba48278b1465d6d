//! Side-by-side latency, throughput and CPU of a forwarded `tools/call`: directly to an
//! upstream, and through `proxyd`. Run with
//! `cargo bench -p proxyd --bench forward` (env `BENCH_CALLS`, default 2000).
//!
//! The upstream is the `mock-stdio` fixture (a Rust stdio server that answers at once), so
//! what is measured is the proxy's own cost. Every path runs in the same process run, one
//! after the other, so the ratios are comparable on a noisy machine.

use std::time::{Duration, Instant};

use mcp_test_support::proxyd::{ADMIN_TOKEN, Proxyd};
use mcp_test_support::tools;
use mcp_transport::{McpClient, TransportOptions};
use mcp_types::TransportKind;
use mcp_types::mcp::Implementation;
use serde_json::{Value, json};

struct Run {
    name: &'static str,
    latencies: Vec<Duration>,
    wall: Duration,
    proxy_cpu: Option<Duration>,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of /proc/pid/stat; `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn connect(def: &mcp_types::McpDefinition) -> McpClient {
    let (client, mut events) = McpClient::connect(def, &TransportOptions::default())
        .await
        .expect("connect");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    client
        .initialize(Implementation::new("bench", "1"), json!({}))
        .await
        .expect("initialize");
    client
}

async fn mcp_calls(client: &McpClient, n: usize) -> Vec<Duration> {
    let params = json!({"name": "echo", "arguments": {"message": "bench"}});
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client
            .request("tools/call", Some(mcp_types::jsonrpc::to_raw(&params)))
            .await
            .expect("call");
        let _: Value = r.into_result().expect("result");
        out.push(t.elapsed());
    }
    out
}

/// `warm` unmeasured calls, then `calls` measured ones; `pid` is proxyd's, when it is on
/// the path.
async fn measure(
    name: &'static str,
    client: &McpClient,
    warm: usize,
    calls: usize,
    pid: Option<u32>,
) -> Run {
    mcp_calls(client, warm).await;
    let (cpu0, t) = (pid.map(cpu_of), Instant::now());
    let latencies = mcp_calls(client, calls).await;
    Run {
        name,
        latencies,
        wall: t.elapsed(),
        proxy_cpu: pid.zip(cpu0).map(|(p, c)| cpu_of(p).saturating_sub(c)),
    }
}

/// A streamable-HTTP definition for `/{name}/mcp` on the proxy.
fn through_proxy(proxy: &Proxyd, name: &str) -> mcp_types::McpDefinition {
    let mut via = mcp_types::McpDefinition::http(
        format!("{name}-via-proxy"),
        TransportKind::StreamableHttp,
        format!("{}/{name}/mcp", proxy.url()),
    );
    via.timeout = Duration::from_secs(10);
    via
}

async fn admin_calls(http: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let body = json!({"mcpName": "bench", "toolName": "echo", "arguments": {"message": "bench"}});
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = http
            .post(url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert!(resp.status().is_success(), "{}", resp.status());
        let _ = resp.bytes().await.expect("body");
        out.push(t.elapsed());
    }
    out
}

fn report(runs: &[Run], calls: usize) {
    println!("| path | calls | p50 | p90 | p99 | mean | calls/s | proxyd CPU per call |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in runs {
        let mut s = r.latencies.clone();
        s.sort();
        let mean = s.iter().sum::<Duration>() / s.len() as u32;
        let cpu = r
            .proxy_cpu
            .map(|c| format!("{:.1} µs", c.as_secs_f64() * 1e6 / calls as f64))
            .unwrap_or_else(|| "—".into());
        println!(
            "| {} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} | {} |",
            r.name,
            s.len(),
            pct(&s, 0.5).as_secs_f64() * 1e6,
            pct(&s, 0.9).as_secs_f64() * 1e6,
            pct(&s, 0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            s.len() as f64 / r.wall.as_secs_f64(),
            cpu
        );
    }
}

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let upstream = tools::mock_stdio_def("bench", &["echo"]);
        let proxy = Proxyd::start(env!("CARGO_BIN_EXE_proxyd"), &["--log-format", "json"])
            .await
            .expect("proxyd");
        let pid = proxy.pid().expect("pid");
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{}/admin/mcps", proxy.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&upstream)
            .send()
            .await
            .expect("register");
        assert!(resp.status().is_success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = http
                .get(format!("{}/admin/mcps/bench", proxy.url()))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .expect("status")
                .json()
                .await
                .expect("json");
            if v["status"]["state"] == "connected" {
                break;
            }
            assert!(Instant::now() < deadline, "upstream did not connect: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rss_idle = rss_kib(pid);

        let warm = calls / 10;
        let direct = connect(&upstream).await;
        let mut runs = vec![measure("direct (stdio)", &direct, warm, calls, None).await];

        let url = format!("{}/admin/tools/call", proxy.url());
        admin_calls(&http, &url, warm).await;
        let (cpu0, t) = (cpu_of(pid), Instant::now());
        let lat = admin_calls(&http, &url, calls).await;
        runs.push(Run {
            name: "proxyd /admin/tools/call",
            latencies: lat,
            wall: t.elapsed(),
            proxy_cpu: Some(cpu_of(pid).saturating_sub(cpu0)),
        });

        // The client-facing streamable HTTP endpoint in front of the stdio upstream.
        let via = connect(&through_proxy(&proxy, "bench")).await;
        let name = "proxyd /bench/mcp (streamable HTTP)";
        runs.push(measure(name, &via, warm, calls, Some(pid)).await);

        // HTTP to HTTP: the same in-process streamable-HTTP mock (JSON answers), directly
        // and through the proxy, isolates what the proxy adds on an HTTP hop.
        let mock =
            mcp_test_support::mock::MockServer::start(mcp_test_support::mock::Fault::JsonResponses)
                .await;
        let mock_def =
            mcp_types::McpDefinition::http("bench-http", TransportKind::StreamableHttp, mock.url());
        let direct_http = connect(&mock_def).await;
        let name = "direct (streamable HTTP mock)";
        runs.push(measure(name, &direct_http, warm, calls, None).await);
        let resp = http
            .post(format!("{}/admin/mcps", proxy.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&mock_def)
            .send()
            .await
            .expect("register");
        assert!(resp.status().is_success());
        let via_http = connect(&through_proxy(&proxy, "bench-http")).await;
        let name = "proxyd /bench-http/mcp → streamable HTTP mock";
        runs.push(measure(name, &via_http, warm, calls, Some(pid)).await);
        report(&runs, calls);
        println!();
        println!(
            "proxyd RSS: {} KiB idle with one upstream, {} KiB after the runs",
            rss_idle,
            rss_kib(pid)
        );
    });
}
