//! Embeds the proxy core in a program of your own, without any HTTP server: a
//! `Manager` over an in-memory store connects one upstream, lists its tools, calls one,
//! and shuts down.
//!
//! ```text
//! cargo run -p mcp-proxy-core --example embed_core -- \
//!     [--tool TOOL] [--arguments JSON] [-- PROGRAM ARGS…]
//! ```
//!
//! Without `-- PROGRAM ARGS…`, the upstream comes from `EMBED_CORE_COMMAND` (split on
//! whitespace; default `uvx mcp-server-time`). The default tool is `get_current_time` with
//! `{"timezone": "UTC"}`. Exits non-zero when a step fails or the tool reports an error.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mcp_proxy_core::{Manager, ManagerConfig, TransportConnector};
use mcp_store::{MemoryStore, Store};
use mcp_types::{ConnectionState, McpDefinition};

const NAME: &str = "embedded";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Args {
    tool: String,
    arguments: serde_json::Value,
    command: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        tool: "get_current_time".into(),
        arguments: serde_json::json!({"timezone": "UTC"}),
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tool" => args.tool = value()?,
            "--arguments" => {
                args.arguments = serde_json::from_str(&value()?).context("--arguments")?;
            }
            "--" => args.command = it.by_ref().collect(),
            other => bail!("unknown argument {other:?} (see the example's doc comment)"),
        }
    }
    if args.command.is_empty() {
        let line = std::env::var("EMBED_CORE_COMMAND")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "uvx mcp-server-time".into());
        args.command = line.split_whitespace().map(str::to_owned).collect();
    }
    Ok(args)
}

async fn run(manager: &Manager, store: &Arc<dyn Store>, args: &Args) -> anyhow::Result<()> {
    let (program, rest) = args.command.split_first().context("empty command")?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    store
        .create(McpDefinition::stdio(NAME, program.as_str(), &rest))
        .await?;

    // The manager follows the store's change feed and connects on its own.
    let started = Instant::now();
    loop {
        let status = manager.status(NAME).unwrap_or_default();
        if status.state == ConnectionState::Connected && manager.tools().errors.is_empty() {
            println!(
                "connected to {program} (protocol {})",
                status.protocol_version.as_deref().unwrap_or("?")
            );
            break;
        }
        if started.elapsed() > CONNECT_TIMEOUT {
            bail!(
                "{program} did not connect within {CONNECT_TIMEOUT:?}: state {}, last error: {}",
                status.state.as_str(),
                status.last_error.as_deref().unwrap_or("none")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tools = manager.tools();
    let names: Vec<&str> = tools.items.iter().map(|t| t.item.name.as_str()).collect();
    println!("tools: {}", names.join(", "));
    let result = manager
        .call_tool(NAME, &args.tool, Some(args.arguments.clone()))
        .await?;
    let text: Vec<&str> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect();
    println!("{} → {}", args.tool, text.join("\n"));
    if result["isError"] == true {
        bail!("the tool reported an error");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("embed_core: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let manager = Manager::new(
        store.clone(),
        Arc::new(TransportConnector::default()),
        ManagerConfig::default(),
    );
    manager.start().await;
    let outcome = run(&manager, &store, &args).await;
    // Closes the upstream (stdin, then SIGTERM, then SIGKILL) before the process ends.
    manager.shutdown(Duration::from_secs(5)).await;
    match outcome {
        Ok(()) => {
            println!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed_core: {e:#}");
            ExitCode::FAILURE
        }
    }
}
