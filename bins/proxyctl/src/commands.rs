//! One function per subcommand; each prints its answer and returns the exit code.

mod groups;
mod servers;
mod status;
mod tools;
mod transfer;

use mcp_proxy_client::{McpEntry, ProxyClient};
use serde::Serialize;

use crate::cli::{Cli, Command};
use crate::exit::Exit;
use crate::settings::Settings;

/// What every command gets.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) client: ProxyClient,
    pub(crate) json: bool,
}

impl Ctx {
    /// Prints `value` as pretty JSON.
    pub(crate) fn print_json(&self, value: &impl Serialize) {
        println!(
            "{}",
            serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    }
}

/// Runs the command `cli` names.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let settings = Settings::resolve(&cli.global)?;
    let ctx = Ctx {
        client: settings.client()?,
        json: cli.global.json,
    };
    match cli.command {
        Command::Status => status::status(&ctx).await,
        Command::List => servers::list(&ctx).await,
        Command::Get { name } => servers::get(&ctx, &name).await,
        Command::Add(args) => servers::add(&ctx, args).await,
        Command::Apply { file } => servers::apply(&ctx, &file).await,
        Command::Edit { name } => servers::edit(&ctx, &name).await,
        Command::Rm {
            names,
            ignore_missing,
        } => servers::rm(&ctx, &names, ignore_missing).await,
        Command::Reconnect { name } => servers::reconnect(&ctx, &name).await,
        Command::Groups { command } => groups::run(&ctx, command).await,
        Command::Tools { server } => tools::tools(&ctx, server.as_deref()).await,
        Command::Call {
            server,
            tool,
            args,
            args_json,
        } => tools::call(&ctx, &server, &tool, &args, args_json.as_deref()).await,
        Command::Import {
            file,
            dry_run,
            transports,
            expand_env,
        } => transfer::import(&ctx, &file, dry_run, &transports, expand_env).await,
        Command::Export(args) => transfer::export(&ctx, &args).await,
        Command::Metrics { prometheus } => status::metrics(&ctx, prometheus).await,
        Command::Watch { interval, count } => status::watch(&ctx, interval, count).await,
        Command::Completions { .. } => Ok(Exit::Ok),
    }
}

/// The proxy endpoint clients use for `entry`: `/NAME/sse` for `sse` upstreams, else
/// `/NAME/mcp`.
pub(crate) fn endpoint(base: &url::Url, name: &str, sse: bool) -> String {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend([name, if sse { "sse" } else { "mcp" }]);
    }
    url.to_string()
}

/// `stdio`, `sse`, `streamable-http`.
pub(crate) fn transport(entry: &McpEntry) -> &'static str {
    entry.definition.transport.as_str()
}
