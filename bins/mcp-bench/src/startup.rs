//! `mcp-bench startup`: how long a server takes from spawn to its health URL answering.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use serde::Serialize;
use tokio::process::Command;

use crate::cli::StartupArgs;
use crate::client::{self, Conn, ExtraHeaders, Target};
use crate::stats::median;

/// Every start, and their median.
#[derive(Debug, Serialize)]
pub(crate) struct StartupReport {
    pub(crate) mode: &'static str,
    pub(crate) command: String,
    pub(crate) samples_ms: Vec<f64>,
    pub(crate) median_ms: f64,
    pub(crate) min_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) labels: BTreeMap<String, String>,
}

/// Free loopback ports (all bound at once, so they are distinct, then released).
pub(crate) fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot bind a loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Starts the command `args.repeat` times and times each start.
pub(crate) async fn startup(args: &StartupArgs) -> anyhow::Result<StartupReport> {
    let mut samples = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat.max(1) {
        samples.push(once(args).await?.as_secs_f64() * 1e3);
    }
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(0.0, f64::max);
    Ok(StartupReport {
        mode: "startup",
        command: args.command.join(" "),
        median_ms: median(&samples).unwrap_or(0.0),
        samples_ms: samples,
        min_ms: min,
        max_ms: max,
        labels: args.labels.iter().cloned().collect(),
    })
}

async fn once(args: &StartupArgs) -> anyhow::Result<Duration> {
    let port = free_ports(1)?[0].to_string();
    let url = args.url.replace("{port}", &port);
    let target = Target::resolve(url.parse().context("--url")?, false).await?;
    let argv: Vec<String> = args
        .command
        .iter()
        .map(|a| a.replace("{port}", &port))
        .collect();
    let (program, rest) = argv.split_first().context("no command")?;
    let t0 = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {program:?}"))?;
    let result = loop {
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "{program} exited ({status}) before {url} answered"
            ));
        }
        if answers(&target).await {
            break Ok(t0.elapsed());
        }
        if t0.elapsed() > args.timeout {
            break Err(anyhow::anyhow!(
                "{url} did not answer 200 within {}",
                humantime::format_duration(args.timeout)
            ));
        }
        // Poll at a fine grain: the figure is in milliseconds.
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    result
}

/// Whether `GET target` answers 200 now.
async fn answers(target: &Target) -> bool {
    let Ok(mut conn) = Conn::open(target.addr).await else {
        return false;
    };
    let Ok(req) = client::request(Method::GET, target, &ExtraHeaders::default(), &[], None) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), conn.send(req)).await,
        Ok(Ok(resp)) if resp.status() == StatusCode::OK
    )
}

/// Checks the helper's own arguments.
pub(crate) fn check(args: &StartupArgs) -> anyhow::Result<()> {
    if args.repeat == 0 || args.repeat > 1000 {
        bail!("--repeat: must be between 1 and 1000");
    }
    if args.timeout > Duration::from_secs(300) {
        bail!("--timeout: at most 5m");
    }
    Ok(())
}
