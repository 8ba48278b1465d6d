//! `mcp-bench`: a load generator for MCP servers and gateways.
//!
//! It speaks MCP as a client over streamable HTTP, legacy HTTP+SSE, or a child's stdio,
//! with its own small client (hyper's connection-level HTTP/1.1, one keep-alive
//! connection per session), so that what it measures is the server, not shared code.
//!
//! ```text
//! mcp-bench http://127.0.0.1:8080/evh/mcp --sessions 32 --duration 5s --warmup 1s \
//!     --payload 65536 --protocol-version 2025-03-26 --watch-pid 1234 --json
//! mcp-bench --sessions 4 --calls 1000 --stdio node dist/index.js stdio
//! mcp-bench http://127.0.0.1:8080/evs/sse --idle-sessions 1000 --watch-pid 1234
//! ```
//!
//! `scripts/bench.sh` drives it; `docs/PERFORMANCE.md` has the results.

mod cli;
mod client;
mod jsonrpc;
mod procstat;
mod report;
mod run;
mod session;
mod sse;
mod startup;
mod stats;
mod summarize;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Helper};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.load.threads;
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.helper {
        Some(Helper::FreePorts { count }) => {
            if count == 0 || count > 1000 {
                anyhow::bail!("free-ports: between 1 and 1000 ports");
            }
            for p in startup::free_ports(count)? {
                println!("{p}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Helper::Summarize(args)) => {
            summarize::summarize(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Helper::Startup(args)) => {
            startup::check(&args)?;
            let r = startup::startup(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{}: median {:.1} ms over {} starts (min {:.1}, max {:.1})",
                    r.command,
                    r.median_ms,
                    r.samples_ms.len(),
                    r.min_ms,
                    r.max_ms
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            cli.load.check()?;
            let report = run::run(&cli.load).await?;
            if cli.load.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.text());
            }
            let failed = report.mode == "load" && report.calls == 0;
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
