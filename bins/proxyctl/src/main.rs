//! `proxyctl`: the command line of the MCP proxy, over its Admin API (built on
//! `mcp-proxy-client`). `proxyctl --help` lists the commands, each `--help` has examples.

mod cli;
mod commands;
mod exit;
mod input;
mod settings;
mod table;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "proxyctl", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxyctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            eprintln!("proxyctl: {}", exit::describe(e.as_ref()));
            if let Some(hint) = exit::hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(Exit::of_any(&e) as u8)
        }
    }
}
