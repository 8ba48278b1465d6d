//! Command-line options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::{HeaderName, HeaderValue};
use serde::Serialize;

use crate::client::ExtraHeaders;
use crate::jsonrpc::{ID_STRIDE, MAX_SESSIONS};

/// Longest measured window, warm-up or hold accepted.
pub(crate) const MAX_RUN: Duration = Duration::from_secs(3600);

/// Load generator for MCP servers and gateways.
///
/// Opens N sessions (one `initialize` and `notifications/initialized` each), then sends
/// `tools/call` from every session in a closed loop, one request in flight per session,
/// and prints p50/p90/p99, mean, requests per second and errors.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) helper: Option<Helper>,
    #[command(flatten)]
    pub(crate) load: LoadArgs,
}

/// Helpers for `scripts/bench.sh`.
#[derive(Debug, Subcommand)]
pub(crate) enum Helper {
    /// Time from spawning a server to its health URL answering 200, several times.
    Startup(StartupArgs),
    /// Medians over repeats and ratios against reference rows, from `--json` lines.
    Summarize(SummarizeArgs),
    /// Prints free loopback TCP ports, one a line.
    FreePorts {
        /// How many.
        #[arg(default_value_t = 1)]
        count: usize,
    },
}

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// Streamable HTTP (`POST`s to one URL).
    Streamable,
    /// Legacy HTTP+SSE (a `GET` stream and `POST`s to its endpoint).
    Sse,
    /// A child process's stdin and stdout.
    Stdio,
}

/// `tools/call` load, or idle sessions.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The server's URL: its streamable HTTP endpoint (`…/mcp`) or its legacy SSE
    /// stream (`…/sse`).
    pub(crate) url: Option<url::Url>,
    /// Drive a stdio server instead: the command and its arguments (put it last).
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
    pub(crate) stdio: Vec<String>,
    /// The transport (default: `stdio` with `--stdio`, `sse` for a URL ending in
    /// `/sse`, else `streamable`).
    #[arg(long, value_enum)]
    pub(crate) transport: Option<Transport>,
    /// Concurrent sessions, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub(crate) sessions: usize,
    /// Measured calls per session (otherwise `--duration`).
    #[arg(long, conflicts_with = "duration")]
    pub(crate) calls: Option<u64>,
    /// Measured time (default 10s when `--calls` is not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Unmeasured calls per session first: a count, or a time such as `1s`.
    #[arg(long, default_value = "0", value_parser = parse_warmup)]
    pub(crate) warmup: Warmup,
    /// The request each session sends in its loop: `tools/call` (the tool below), or a
    /// listing (`tools/list`, `prompts/list`, `resources/list`) without params.
    #[arg(long, default_value = "tools/call", value_parser = ["tools/call", "tools/list", "prompts/list", "resources/list"])]
    pub(crate) method: String,
    /// The tool to call.
    #[arg(long, default_value = "echo")]
    pub(crate) tool: String,
    /// Size of the `message` argument in bytes (default: the word "hi").
    #[arg(long, conflicts_with = "arguments")]
    pub(crate) payload: Option<usize>,
    /// The tool's arguments as JSON, instead of `{"message": …}`.
    #[arg(long)]
    pub(crate) arguments: Option<String>,
    /// The protocol version asked for in `initialize`.
    #[arg(long, default_value = "2025-11-25", value_parser = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])]
    pub(crate) protocol_version: String,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V", value_parser = parse_header)]
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Open this many sessions and hold them, without calls (for memory per session).
    #[arg(long, conflicts_with_all = ["calls", "duration"])]
    pub(crate) idle_sessions: Option<usize>,
    /// How long `--idle-sessions` are held before they are closed; the watched
    /// process's RSS is read at the end of it.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) hold: Duration,
    /// Report this process's CPU time per measured call and its RSS (`/proc`).
    #[arg(long, value_name = "PID")]
    pub(crate) watch_pid: Option<u32>,
    /// Deadline of each request.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Deadline of opening one session (a gateway may start a process for it).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) open_timeout: Duration,
    /// Sessions opened (and closed) at once.
    #[arg(long, default_value_t = 32)]
    pub(crate) connect_concurrency: usize,
    /// Client worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// With `--stdio`: child processes the sessions are spread over.
    #[arg(long, default_value_t = 1)]
    pub(crate) stdio_processes: usize,
    /// Largest message accepted from the server, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    pub(crate) max_message_bytes: usize,
    /// A `key=value` copied into the JSON output (repeatable), to tag runs.
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub(crate) allow_remote: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Warm-up: calls per session, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Warmup {
    Calls(u64),
    For(Duration),
}

fn parse_warmup(s: &str) -> anyhow::Result<Warmup> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Warmup::Calls(n));
    }
    humantime::parse_duration(s)
        .map(Warmup::For)
        .with_context(|| format!("{s:?} is neither a count nor a duration such as 2s"))
}

fn parse_header(s: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (k, v) = s
        .split_once(':')
        .with_context(|| format!("{s:?} is not Name:value"))?;
    Ok((
        HeaderName::try_from(k.trim()).with_context(|| format!("bad header name {k:?}"))?,
        HeaderValue::try_from(v.trim()).with_context(|| format!("bad header value for {k:?}"))?,
    ))
}

fn parse_label(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?} is not key=value"))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// `startup` options.
#[derive(Debug, Args)]
pub(crate) struct StartupArgs {
    /// Starts measured.
    #[arg(long, default_value_t = 7)]
    pub(crate) repeat: usize,
    /// The URL that must answer 200; `{port}` is replaced by a free port.
    #[arg(long, default_value = "http://127.0.0.1:{port}/healthz")]
    pub(crate) url: String,
    /// Give up on one start after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// A `key=value` copied into the JSON output (repeatable).
    #[arg(long = "label", value_name = "K=V", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// The server command; `{port}` in an argument is replaced by the same free port.
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
}

/// `summarize` options.
#[derive(Debug, Args)]
pub(crate) struct SummarizeArgs {
    /// JSON lines written by `mcp-bench --json` and `mcp-bench startup --json`.
    pub(crate) input: PathBuf,
    /// Where to write the Markdown tables (default: standard output).
    #[arg(long)]
    pub(crate) markdown: Option<PathBuf>,
    /// Where to write the medians as JSON.
    #[arg(long = "json")]
    pub(crate) json_out: Option<PathBuf>,
}

/// How long the measured phase may last, and how many calls each session makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stop {
    pub(crate) calls: Option<u64>,
    pub(crate) duration: Duration,
}

impl LoadArgs {
    /// The transport, from the flags or the URL.
    pub(crate) fn transport(&self) -> Transport {
        match (self.transport, self.stdio.is_empty(), &self.url) {
            (Some(t), _, _) => t,
            (None, false, _) => Transport::Stdio,
            (None, true, Some(u)) if u.path().trim_end_matches('/').ends_with("/sse") => {
                Transport::Sse
            }
            _ => Transport::Streamable,
        }
    }

    /// Checks what clap cannot: one target, bounds that keep the run finite.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        match (self.transport(), &self.url, self.stdio.is_empty()) {
            (Transport::Stdio, None, false) => {}
            (Transport::Stdio, _, _) => bail!("--transport stdio needs --stdio CMD… and no URL"),
            (_, Some(_), true) => {}
            (_, None, true) => bail!("a target URL or --stdio CMD… is required"),
            (_, _, false) => bail!("--stdio cannot be combined with --transport streamable|sse"),
        }
        let sessions = self.idle_sessions.unwrap_or(self.sessions);
        if sessions == 0 || sessions > MAX_SESSIONS {
            bail!("sessions: must be between 1 and {MAX_SESSIONS}");
        }
        if self.calls.is_some_and(|c| c == 0 || c >= ID_STRIDE / 2) {
            bail!("--calls: must be between 1 and {}", ID_STRIDE / 2 - 1);
        }
        if let Warmup::Calls(n) = self.warmup
            && n >= ID_STRIDE / 2
        {
            bail!("--warmup: at most {} calls", ID_STRIDE / 2 - 1);
        }
        let too_long = |d: Duration| d > MAX_RUN;
        if self.duration.is_some_and(too_long)
            || matches!(self.warmup, Warmup::For(d) if too_long(d))
            || too_long(self.hold)
            || too_long(self.timeout)
            || too_long(self.open_timeout)
        {
            bail!("--duration, --warmup, --hold and the timeouts are at most 1h each");
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration: must be more than zero");
        }
        if self.connect_concurrency == 0 || self.threads == 0 || self.stdio_processes == 0 {
            bail!("--connect-concurrency, --threads and --stdio-processes must be at least 1");
        }
        if self.payload.is_some_and(|p| p > 64 << 20) {
            bail!("--payload: at most 64 MiB");
        }
        if let Some(a) = &self.arguments {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(a)
                .context("--arguments: not a JSON object")?;
        }
        Ok(())
    }

    /// When the measured phase stops.
    pub(crate) fn stop(&self) -> Stop {
        Stop {
            calls: self.calls,
            duration: match (self.calls, self.duration) {
                (_, Some(d)) => d,
                (Some(_), None) => MAX_RUN,
                (None, None) => Duration::from_secs(10),
            },
        }
    }

    /// The params of [`Self::method`], serialized once, and the payload size an answer
    /// must at least have.
    pub(crate) fn call_params(&self) -> anyhow::Result<(Vec<u8>, usize)> {
        if self.method != "tools/call" {
            return Ok((b"{}".to_vec(), 0));
        }
        let (arguments, payload) = match (&self.arguments, self.payload) {
            (Some(a), _) => (serde_json::from_str::<serde_json::Value>(a)?, 0),
            (None, Some(n)) => (serde_json::json!({"message": "x".repeat(n)}), n),
            (None, None) => (serde_json::json!({"message": "hi"}), 2),
        };
        let params = serde_json::json!({"name": self.tool, "arguments": arguments});
        Ok((serde_json::to_vec(&params)?, payload))
    }

    pub(crate) fn extra_headers(&self) -> ExtraHeaders {
        ExtraHeaders(self.headers.clone())
    }

    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("mcp-bench").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn transport_from_flags_and_url() {
        let c = parse(&["http://127.0.0.1:1/x/sse", "--sessions", "3"]);
        assert_eq!(c.load.transport(), Transport::Sse);
        assert_eq!(c.load.sessions, 3);
        c.load.check().unwrap();
        let c = parse(&["--sessions", "2", "--stdio", "node", "x.js", "--flag"]);
        assert_eq!(c.load.transport(), Transport::Stdio);
        assert_eq!(c.load.stdio, ["node", "x.js", "--flag"]);
        c.load.check().unwrap();
        let c = parse(&[
            "http://127.0.0.1:1/mcp",
            "--warmup",
            "2s",
            "--header",
            "X-A: b",
        ]);
        assert_eq!(c.load.transport(), Transport::Streamable);
        assert_eq!(c.load.warmup, Warmup::For(Duration::from_secs(2)));
        assert_eq!(c.load.headers[0].1, "b");
        assert!(parse(&["free-ports", "3"]).helper.is_some());
    }

    #[test]
    fn bad_combinations_are_refused() {
        assert!(parse(&[]).load.check().is_err());
        assert!(
            parse(&["http://127.0.0.1:1/mcp", "--sessions", "0"])
                .load
                .check()
                .is_err()
        );
        assert!(
            parse(&["http://127.0.0.1:1/mcp", "--duration", "2h"])
                .load
                .check()
                .is_err()
        );
        assert!(
            parse(&["http://127.0.0.1:1/mcp", "--transport", "stdio"])
                .load
                .check()
                .is_err()
        );
        assert!(
            Cli::try_parse_from([
                "mcp-bench",
                "http://x/mcp",
                "--calls",
                "5",
                "--duration",
                "1s"
            ])
            .is_err()
        );
    }

    #[test]
    fn payload_is_the_message_argument() {
        let c = parse(&["http://127.0.0.1:1/mcp", "--payload", "65536"]);
        let (params, n) = c.load.call_params().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&params).unwrap();
        assert_eq!(n, 65536);
        assert_eq!(v["name"], "echo");
        assert_eq!(v["arguments"]["message"].as_str().unwrap().len(), 65536);
        let c = parse(&["http://127.0.0.1:1/mcp"]);
        let (params, _) = c.load.call_params().unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&params).unwrap()["arguments"]["message"],
            "hi"
        );
        let c = parse(&["http://127.0.0.1:1/mcp", "--method", "tools/list"]);
        assert_eq!(c.load.call_params().unwrap(), (b"{}".to_vec(), 0));
    }
}
