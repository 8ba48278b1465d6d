//! A bounded soak (ignored by default; `scripts/soak.sh` runs it): `SOAK_MINUTES` (default
//! 10) of sessions opening and closing, tool calls on per-client, shared and HTTP
//! upstreams, legacy SSE clients that vanish, clients that send nothing, trickle their
//! headers or leave mid-call and never come back, stdio children killed and an HTTP upstream restarted every
//! few seconds — while proxyd's resident memory and open descriptors are sampled every 5 s.
//! It ends with a verdict line (`soak verdict: flat …` or `soak verdict: growing …`) and
//! fails unless flat and no request outlived its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_test_support::e2e::raw;
use mcp_test_support::e2e::{Admin, McpHttp, open_fds, read_until, rss_kib};
use mcp_test_support::mock::{Fault, MockServer};
use mcp_test_support::proxyd::Proxyd;
use mcp_test_support::tools;
use mcp_types::{McpDefinition, TransportKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_proxyd");

const V: &str = "2025-11-25";
/// Every request of the soak is bounded by this; one that is not answered in time counts
/// as hung and fails the soak.
const BOUND: Duration = Duration::from_secs(20);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Counters every worker adds to.
#[derive(Debug, Default)]
struct Tally {
    calls: AtomicU64,
    /// Errors a fault explains (a killed child, a restarted upstream): counted, not fatal.
    errors: AtomicU64,
    sessions: AtomicU64,
    hung: AtomicU64,
    faults: AtomicU64,
    slow_clients: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn call(id: u64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"message": message}}})
}

/// A session on `url`, or `None` when the upstream is down right now.
async fn open(mcp: &McpHttp, url: &str, tally: &Tally) -> Option<String> {
    let init = McpHttp::initialize_body(V);
    let Ok((status, headers, body)) =
        tokio::time::timeout(BOUND, mcp.post(url, None, &[], &init)).await
    else {
        Tally::add(&tally.hung);
        return None;
    };
    let sid = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .filter(|_| status == StatusCode::OK && body["result"].is_object());
    let Some(sid) = sid else {
        Tally::add(&tally.errors);
        return None;
    };
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let _ = tokio::time::timeout(BOUND, mcp.post(url, Some(sid), &[], &note)).await;
    Tally::add(&tally.sessions);
    Some(sid.to_owned())
}

/// One echo call; `false` when the session is gone (404) and must be opened again.
async fn echo(mcp: &McpHttp, url: &str, sid: &str, id: u64, tally: &Tally) -> bool {
    match tokio::time::timeout(BOUND, mcp.post(url, Some(sid), &[], &call(id, "soak"))).await {
        Err(_) => {
            Tally::add(&tally.hung);
            false
        }
        Ok((StatusCode::NOT_FOUND, _, _)) => false,
        Ok((_, _, body)) => {
            if body["result"].is_object() {
                Tally::add(&tally.calls);
            } else {
                Tally::add(&tally.errors);
            }
            true
        }
    }
}

async fn close(mcp: &McpHttp, url: &str, sid: &str) {
    let _ = tokio::time::timeout(
        BOUND,
        mcp.http.delete(url).header("mcp-session-id", sid).send(),
    )
    .await;
}

/// Opens a session, makes a few calls, ends it; again and again.
async fn churn(mcp: McpHttp, url: String, tally: Arc<Tally>, stop: CancellationToken) {
    let mut id = 0;
    while !stop.is_cancelled() {
        let Some(sid) = open(&mcp, &url, &tally).await else {
            pause(&stop, Duration::from_millis(200)).await;
            continue;
        };
        for _ in 0..5 {
            id += 1;
            if !echo(&mcp, &url, &sid, id, &tally).await {
                break;
            }
        }
        close(&mcp, &url, &sid).await;
        pause(&stop, Duration::from_millis(20)).await;
    }
}

/// One long-lived session calling in a loop, opening a new one when it ends.
async fn steady(mcp: McpHttp, url: String, tally: Arc<Tally>, stop: CancellationToken) {
    let mut id = 0;
    let mut session = None;
    while !stop.is_cancelled() {
        let Some(sid) = &session else {
            session = open(&mcp, &url, &tally).await;
            if session.is_none() {
                pause(&stop, Duration::from_millis(200)).await;
            }
            continue;
        };
        id += 1;
        if !echo(&mcp, &url, sid, id, &tally).await {
            session = None;
        }
        pause(&stop, Duration::from_millis(10)).await;
    }
}

/// Legacy SSE clients that initialize, call a few times and vanish without a word.
async fn vanishing_legacy(mcp: McpHttp, base: String, tally: Arc<Tally>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let opened = tokio::time::timeout(BOUND, async {
            let (status, _, mut sse) = mcp.get_sse(&format!("{base}/sse"), &[]).await;
            if status != StatusCode::OK {
                return None;
            }
            let first = read_until(&mut sse, "\n\n").await;
            let endpoint = first
                .lines()
                .find_map(|l| l.strip_prefix("data: "))?
                .to_owned();
            Some((sse, endpoint))
        })
        .await;
        let Ok(Some((sse, endpoint))) = opened else {
            Tally::add(&tally.errors);
            pause(&stop, Duration::from_millis(200)).await;
            continue;
        };
        let origin = base.rsplit_once('/').map_or(base.as_str(), |(o, _)| o);
        let url = format!("{origin}{endpoint}");
        let post = |body: Value| {
            let (http, url) = (mcp.http.clone(), url.clone());
            async move {
                tokio::time::timeout(BOUND, http.post(url).json(&body).send())
                    .await
                    .map(|r| r.map(|r| r.status()).ok())
            }
        };
        let mut ok = post(McpHttp::initialize_body("2024-11-05")).await.is_ok();
        for id in 0..3 {
            ok &= post(call(id, "legacy")).await.is_ok();
        }
        if ok {
            Tally::add(&tally.sessions);
        } else {
            Tally::add(&tally.hung);
        }
        drop(sse);
        pause(&stop, Duration::from_millis(300)).await;
    }
}

/// Clients that misbehave: one that sends nothing, one that trickles its headers, one
/// that starts a call and leaves before the answer, never to end its session (idle
/// expiry and eviction of idle sessions at the limit take care of it). Each is closed by
/// proxyd or leaves.
async fn slow_clients(base: String, sh_url: String, tally: Arc<Tally>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let mut silent = raw::connect(&base).await;
        let mut trickle = raw::connect(&base).await;
        let _ = raw::send(&mut trickle, b"GET /healthz HTTP/1.1\r\nHost: local").await;
        // a call on a shared upstream, abandoned mid-way
        let leaving = tokio::spawn({
            let (mcp, sh_url) = (McpHttp::new(), sh_url.clone());
            async move {
                if let Ok((_, headers, _)) = tokio::time::timeout(
                    BOUND,
                    mcp.post(&sh_url, None, &[], &McpHttp::initialize_body(V)),
                )
                .await
                    && let Some(sid) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
                {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(50),
                        mcp.post(&sh_url, Some(sid), &[], &call(1, "left")),
                    )
                    .await;
                    // and never ends its session: idle expiry and eviction must
                }
            }
        });
        // proxyd closes both within its first-byte and header deadlines (1 s here)
        let closed_silent = raw::closed(&mut silent, BOUND).await.is_some();
        let closed_trickle = raw::closed(&mut trickle, BOUND).await.is_some();
        let _ = leaving.await;
        if closed_silent && closed_trickle {
            Tally::add(&tally.slow_clients);
        } else {
            Tally::add(&tally.hung);
        }
        pause(&stop, Duration::from_secs(1)).await;
    }
}

/// The mock-stdio children of `pid`.
fn stdio_children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            let cmd = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
            ppid == Some(pid) && cmd.contains("mock-stdio")
        })
        .collect()
}

/// Every 7 s a fault: a stdio child killed (SIGKILL), or the HTTP upstream restarted.
async fn faults(
    pid: u32,
    mut http: MockServer,
    tally: Arc<Tally>,
    stop: CancellationToken,
) -> MockServer {
    let mut round = 0u64;
    while !stop.is_cancelled() {
        pause(&stop, Duration::from_secs(7)).await;
        if stop.is_cancelled() {
            break;
        }
        round += 1;
        if round.is_multiple_of(3) {
            let port = http.port();
            drop(http);
            http = MockServer::start_on(Fault::None, port).await;
        } else {
            let children = stdio_children(pid);
            if children.is_empty() {
                continue;
            }
            let victim = children[(round as usize * 7) % children.len()];
            // It may have ended with its session meanwhile.
            let _ = tokio::process::Command::new("kill")
                .args(["-KILL", &victim.to_string()])
                .status()
                .await;
        }
        Tally::add(&tally.faults);
    }
    http
}

async fn pause(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ten minutes long: scripts/soak.sh runs it"]
async fn soak() {
    let minutes: f64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10.0);
    let length = Duration::from_secs_f64(minutes * 60.0);
    let p = Proxyd::start_with_env(
        BIN,
        &[],
        &[
            ("MCP_PROXY_LISTENER__FIRST_BYTE_TIMEOUT", "1s"),
            ("MCP_PROXY_LISTENER__HEADER_READ_TIMEOUT", "1s"),
            ("MCP_PROXY_LISTENER__IDLE_TIMEOUT", "10s"),
            ("MCP_PROXY_SESSION_IDLE_TIMEOUT", "30s"),
            ("RUST_LOG", "warn,proxyd=info"),
        ],
    )
    .await
    .unwrap();
    let pid = p.pid().unwrap();
    let admin = Admin::new(&p);
    let http = MockServer::start_on(Fault::None, tools::restartable_port()).await;
    let mut shared = serde_json::to_value(tools::mock_stdio_def("sh", &["echo"])).unwrap();
    shared["sessionMode"] = json!("shared");
    let mut per_client = serde_json::to_value(tools::mock_stdio_def("pc", &["echo"])).unwrap();
    per_client["reconnectDelay"] = json!("100ms");
    shared["reconnectDelay"] = json!("100ms");
    admin.register(per_client).await;
    admin.register(shared).await;
    let mut web = serde_json::to_value(McpDefinition::http(
        "web",
        TransportKind::StreamableHttp,
        http.url(),
    ))
    .unwrap();
    web["reconnectDelay"] = json!("100ms");
    web["maxReconnects"] = json!(0);
    admin.register(web).await;
    for name in ["pc", "sh", "web"] {
        admin.wait_connected(name).await;
    }

    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let base = p.url();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        workers.spawn(churn(
            McpHttp::new(),
            format!("{base}/pc/mcp"),
            tally.clone(),
            stop.clone(),
        ));
    }
    workers.spawn(churn(
        McpHttp::new(),
        format!("{base}/web/mcp"),
        tally.clone(),
        stop.clone(),
    ));
    for upstream in ["sh", "web"] {
        workers.spawn(steady(
            McpHttp::new(),
            format!("{base}/{upstream}/mcp"),
            tally.clone(),
            stop.clone(),
        ));
    }
    workers.spawn(vanishing_legacy(
        McpHttp::new(),
        format!("{base}/sh"),
        tally.clone(),
        stop.clone(),
    ));
    workers.spawn(slow_clients(
        base.clone(),
        format!("{base}/sh/mcp"),
        tally.clone(),
        stop.clone(),
    ));
    let fault_task = tokio::spawn(faults(pid, http, tally.clone(), stop.clone()));

    let started = Instant::now();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while started.elapsed() < length {
        tick.tick().await;
        let (rss, fds) = (rss_kib(pid), open_fds(pid));
        let t = started.elapsed().as_secs_f64();
        samples.push((t, rss, fds));
        let (_, metrics) = admin
            .send(reqwest::Method::GET, "/admin/metrics", None)
            .await;
        let open_sessions = metrics["active_sessions"].as_u64().unwrap_or(0);
        eprintln!(
            "soak sample t={t:.0}s rss={rss}KiB fds={fds} open_sessions={open_sessions} \
             calls={} sessions={} errors={} faults={} slow_clients={} hung={}",
            tally.calls.load(Ordering::Relaxed),
            tally.sessions.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
            tally.faults.load(Ordering::Relaxed),
            tally.slow_clients.load(Ordering::Relaxed),
            tally.hung.load(Ordering::Relaxed),
        );
    }
    stop.cancel();
    while workers.join_next().await.is_some() {}
    let _http = fault_task.await.unwrap();

    // warm-up: the first fifth; then the median of the first and the last fifth of the rest
    let steady: Vec<_> = samples[samples.len() / 5..].to_vec();
    let fifth = (steady.len() / 5).max(1);
    let early = &steady[..fifth];
    let late = &steady[steady.len() - fifth..];
    let rss_early = median(early.iter().map(|s| s.1).collect());
    let rss_late = median(late.iter().map(|s| s.1).collect());
    let fds_early = median(early.iter().map(|s| s.2 as u64).collect());
    let fds_late = median(late.iter().map(|s| s.2 as u64).collect());
    let peak = steady.iter().map(|s| s.1).max().unwrap_or(0);
    let growth = rss_late.saturating_sub(rss_early);
    // flat: within 10 % (at least 8 MiB) of the early level, descriptors within 8
    let rss_flat = growth <= (rss_early / 10).max(8 * 1024);
    let fds_flat = fds_late <= fds_early + 8;
    let hung = tally.hung.load(Ordering::Relaxed);
    let verdict = if rss_flat && fds_flat {
        "flat"
    } else {
        "growing"
    };
    println!(
        "soak verdict: {verdict}: {minutes} min; rss {:.1} MiB -> {:.1} MiB (peak {:.1} MiB), \
         fds {fds_early} -> {fds_late}; {} calls, {} sessions, {} errors during faults, \
         {} faults, {} slow clients closed, {hung} hung",
        rss_early as f64 / 1024.0,
        rss_late as f64 / 1024.0,
        peak as f64 / 1024.0,
        tally.calls.load(Ordering::Relaxed),
        tally.sessions.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally.faults.load(Ordering::Relaxed),
        tally.slow_clients.load(Ordering::Relaxed),
    );
    assert_eq!(hung, 0, "requests outlived their deadline");
    assert!(rss_flat && fds_flat, "memory or descriptors grew");
}
