//! Keeps a proxy in step with a workflow document's `mcps:` list: registers (or updates)
//! every `use_proxy` entry, waits for them to connect, prints how the engine reaches each
//! entry, then re-reads the file every `--interval` and applies changes, until Ctrl-C (or
//! SIGTERM), `--once`, or `--for DURATION`. On the way out it deregisters what it
//! registered, and only that.
//!
//! ```text
//! cargo run -p mcp-proxy-client --example register_from_yaml -- WORKFLOW.yaml \
//!     [--proxy URL] [--token TOKEN] [--once] [--for 30s] [--interval 10s]
//! ```
//!
//! `ENGINE_PROXY_URL` (default `http://127.0.0.1:8080`) and `ENGINE_PROXY_TOKEN` stand in
//! for the flags. `{{ .env.NAME }}` placeholders are resolved from this process's
//! environment; a missing variable is an error. Exits non-zero on failure.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use mcp_proxy_client::workflow::{self, Endpoint, PlannedMcp, WorkflowMcps};
use mcp_proxy_client::{ProxyClient, RegisterService};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug)]
struct Args {
    file: PathBuf,
    proxy: String,
    token: String,
    once: bool,
    run_for: Option<Duration>,
    interval: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let duration = |v: String| mcp_types::duration::parse(&v).map_err(anyhow::Error::msg);
    let mut file = None;
    let mut args = Args {
        file: PathBuf::new(),
        proxy: env("ENGINE_PROXY_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        token: env("ENGINE_PROXY_TOKEN").unwrap_or_default(),
        once: false,
        run_for: None,
        interval: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--proxy" => args.proxy = value()?,
            "--token" => args.token = value()?,
            "--once" => args.once = true,
            "--for" => args.run_for = Some(duration(value()?)?),
            "--interval" => args.interval = duration(value()?)?,
            f if f.starts_with("--") => bail!("unknown flag {f:?}"),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => bail!("unexpected argument {extra:?}"),
        }
    }
    args.file = file.context("usage: register_from_yaml WORKFLOW.yaml [--once] [--for 30s]")?;
    if args.token.is_empty() {
        bail!("no admin token: pass --token or set ENGINE_PROXY_TOKEN");
    }
    if args.interval.is_zero() {
        bail!("--interval must be positive");
    }
    Ok(args)
}

/// Reads, validates and plans the document, releases what it no longer lists, then
/// applies it.
async fn sync(
    args: &Args,
    client: &ProxyClient,
    service: &RegisterService,
    vars: &HashMap<String, String>,
) -> anyhow::Result<Vec<PlannedMcp>> {
    let text = tokio::fs::read_to_string(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let mcps = WorkflowMcps::from_yaml(&text)?;
    let planned = workflow::plan(&mcps, client, vars)?;
    let wanted: BTreeSet<&str> = planned
        .iter()
        .filter_map(|p| p.register.as_ref().map(|d| d.name.as_str()))
        .collect();
    for owned in service.owned() {
        if !wanted.contains(owned.as_str()) && service.release(&owned).await? {
            println!("{owned}: removed from the document, deregistered");
        }
    }
    service.apply(&planned).await?;
    Ok(planned)
}

fn print_plan(planned: &[PlannedMcp]) {
    for p in planned {
        match &p.endpoint {
            Endpoint::Proxy { url, transport, .. } => {
                println!("{}: via proxy {url} ({})", p.id, transport.as_str());
            }
            Endpoint::Stdio { program, .. } => println!("{}: direct stdio {program}", p.id),
            Endpoint::Http { url, .. } => println!("{}: direct {url}", p.id),
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = ProxyClient::try_new(&args.proxy, &args.token, Duration::from_secs(30))?;
    let service = RegisterService::new(client.clone());
    let vars: HashMap<String, String> = std::env::vars().collect();
    let mut sigterm = signal(SignalKind::terminate())?;

    let result = async {
        let planned = sync(&args, &client, &service, &vars).await?;
        print_plan(&planned);
        let tools = client.list_tools().await?;
        println!("in sync: {} tools on the proxy", tools.items.len());
        if args.once {
            return Ok(());
        }
        let stop = async {
            match args.run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(args.interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = sigterm.recv() => break,
                () = &mut stop => break,
                _ = tick.tick() => {
                    // A broken edit must not tear down what runs: report and keep going.
                    if let Err(e) = sync(&args, &client, &service, &vars).await {
                        eprintln!("register_from_yaml: sync failed: {e:#}");
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    let removed = service.shutdown().await?;
    println!("deregistered: {removed:?}");
    result
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match parse_args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("register_from_yaml: {e:#}");
            ExitCode::FAILURE
        }
    }
}
