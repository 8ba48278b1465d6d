//! An engine's view of the proxy: check it is up, register an MCP server, wait for it to
//! connect, list its tools, call one, and remove what it registered.
//!
//! ```text
//! cargo run -p mcp-proxy-client --example engine_client -- \
//!     [--proxy URL] [--token TOKEN] [--name NAME] [--tool TOOL] [--arguments JSON] \
//!     [-- PROGRAM ARGS…]
//! ```
//!
//! Inputs fall back to the environment: `ENGINE_PROXY_URL` (default `http://127.0.0.1:8080`),
//! `ENGINE_PROXY_TOKEN`, and `ENGINE_CLIENT_COMMAND` (a shell-like line; default
//! `uvx mcp-server-time`). The default tool is `get_current_time` with
//! `{"timezone": "UTC"}`. Exits non-zero when any step fails or the tool reports an error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use mcp_proxy_client::{ProxyClient, RegisterService, RetryPolicy};
use mcp_types::McpDefinition;

#[derive(Debug)]
struct Args {
    proxy: String,
    token: String,
    name: String,
    tool: String,
    arguments: serde_json::Value,
    command: Vec<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut args = Args {
        proxy: env("ENGINE_PROXY_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
        token: env("ENGINE_PROXY_TOKEN").unwrap_or_default(),
        name: "engine-client-demo".into(),
        tool: "get_current_time".into(),
        arguments: serde_json::json!({"timezone": "UTC"}),
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--proxy" => args.proxy = value()?,
            "--token" => args.token = value()?,
            "--name" => args.name = value()?,
            "--tool" => args.tool = value()?,
            "--arguments" => {
                args.arguments = serde_json::from_str(&value()?).context("--arguments")?;
            }
            "--" => {
                args.command = it.by_ref().collect();
            }
            other => bail!("unknown argument {other:?} (see the example's doc comment)"),
        }
    }
    if args.command.is_empty() {
        let line = env("ENGINE_CLIENT_COMMAND").unwrap_or_else(|| "uvx mcp-server-time".into());
        args.command = shell_words::split(&line).context("ENGINE_CLIENT_COMMAND")?;
    }
    if args.token.is_empty() {
        bail!("no admin token: pass --token or set ENGINE_PROXY_TOKEN");
    }
    Ok(args)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let retry = RetryPolicy::try_new(
        8,
        Duration::from_millis(200),
        Duration::from_secs(2),
        Duration::from_secs(20),
    )?;
    let client =
        ProxyClient::try_new(&args.proxy, &args.token, Duration::from_secs(30))?.with_retry(retry);

    let health = client.health().await?;
    println!(
        "proxy {} is up (version {})",
        client.base_url(),
        health.version
    );

    let (program, rest) = args.command.split_first().context("empty command")?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let def = McpDefinition::stdio(&args.name, program.as_str(), &rest);
    let service = RegisterService::new(client.clone());
    let outcome = service.ensure(&def).await?;
    println!("mcp {:?}: {outcome:?}", args.name);

    let result = async {
        let entries = client
            .wait_for_connections(&[&args.name], Duration::from_secs(60))
            .await?;
        let status = &entries[0].status;
        println!(
            "connected (protocol {})",
            status.protocol_version.as_deref().unwrap_or("?")
        );
        let tools = client.list_tools().await?;
        let mine: Vec<_> = tools
            .items
            .iter()
            .filter(|t| t.mcp_name == args.name)
            .map(|t| t.name.as_str())
            .collect();
        println!("tools: {}", mine.join(", "));
        if !mine.contains(&args.tool.as_str()) {
            bail!("the mcp has no tool {:?}", args.tool);
        }
        let r = client
            .call_tool(&args.name, &args.tool, Some(args.arguments.clone()))
            .await?;
        println!("{} → {}", args.tool, r.text());
        if r.is_error {
            bail!("the tool reported an error: {}", r.text());
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
            eprintln!("engine_client: {e:#}");
            ExitCode::FAILURE
        }
    }
}
