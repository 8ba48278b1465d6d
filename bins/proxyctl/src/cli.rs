//! The command line: global options and every subcommand, with examples in `--help`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Connection: --proxy / MCP_PROXY_URL / `url` in the config file (default http://127.0.0.1:8080);
            --token / MCP_PROXY_TOKEN / `token` in the config file (default: proxyd's
            loopback-only CHANGE_ME_ADMIN_TOKEN). The config file is --config FILE,
            MCP_PROXYCTL_CONFIG, or $XDG_CONFIG_HOME/proxyctl/config.toml
            (~/.config/proxyctl/config.toml).

Exit codes: 0 ok, 1 other error, 2 usage, 3 proxy unreachable or unavailable, 4 not
            authorized, 5 not found, 6 invalid input, 7 conflict (exists, declared in the
            configuration, limit reached), 8 the tool or upstream reported an error,
            9 partly done (some entries skipped, or not connected in time).

Examples:
  proxyctl status
  proxyctl add time -- uvx mcp-server-time
  proxyctl call time get_current_time --arg timezone=UTC
  proxyctl groups add team --member time --member search
  proxyctl import ~/.config/Claude/claude_desktop_config.json
  proxyctl export > mcp.json
  proxyctl completions bash > /etc/bash_completion.d/proxyctl";

/// Drive an MCP proxy (proxyd) from the command line: register servers, see their state,
/// call tools, import and export client configurations.
#[derive(Debug, Parser)]
#[command(name = "proxyctl", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The proxy's base URL.
    #[arg(
        long = "proxy",
        global = true,
        env = "MCP_PROXY_URL",
        value_name = "URL"
    )]
    pub(crate) proxy: Option<String>,
    /// The Admin API token.
    #[arg(
        long,
        global = true,
        env = "MCP_PROXY_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// Config file with `url` and `token` (TOML).
    #[arg(long, global = true, env = "MCP_PROXYCTL_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Time each request to the proxy may take.
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Option<Duration>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// A duration such as `30s`, `1m30s` or `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    mcp_types::duration::parse(text)
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Is the proxy up and ready, and how are its servers doing.
    #[command(after_help = "Examples:\n  proxyctl status\n  proxyctl status --json")]
    Status,
    /// List the registered servers with their state.
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  proxyctl list\n  proxyctl list --json | jq '.[].definition.name'"
    )]
    List,
    /// Show one server: its definition (secrets as ***) and status.
    #[command(after_help = "Examples:\n  proxyctl get time\n  proxyctl get time --json")]
    Get {
        /// The server's name.
        name: String,
    },
    /// Register a new server, from flags or a file.
    #[command(after_help = "\
Examples:
  proxyctl add time -- uvx mcp-server-time --local-timezone UTC
  proxyctl add fs --env LOG_LEVEL=debug -- npx -y @modelcontextprotocol/server-filesystem /srv
  proxyctl add search --url https://search.example.com/mcp --header 'Authorization=Bearer s3cret'
  proxyctl add legacy --url http://127.0.0.1:9000/events --transport sse
  proxyctl add -f time.json")]
    Add(AddArgs),
    /// Create or update servers from a file so the proxy holds exactly them (idempotent).
    #[command(after_help = "\
The file is JSON or TOML: one definition, a list (a JSON array, `[[servers]]`), the same
shapes as proxyd's servers_dir. Keys in camelCase or snake_case.

Examples:
  proxyctl apply -f servers.toml
  cat time.json | proxyctl apply -f -")]
    Apply {
        /// The file (`-` for standard input).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Edit a server's definition in $VISUAL / $EDITOR, then apply it.
    #[command(after_help = "\
Secrets show as \"***\"; leaving them so keeps the stored values.

Examples:
  proxyctl edit time
  EDITOR=nano proxyctl edit search")]
    Edit {
        /// The server's name.
        name: String,
    },
    /// Remove servers (their client sessions end).
    #[command(
        visible_alias = "delete",
        after_help = "Examples:\n  proxyctl rm time\n  proxyctl rm a b c --ignore-missing"
    )]
    Rm {
        /// The servers' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// A server that is not registered is not an error.
        #[arg(long)]
        ignore_missing: bool,
    },
    /// Force a fresh connection (also wakes a server resting in `error`).
    #[command(after_help = "Examples:\n  proxyctl reconnect time")]
    Reconnect {
        /// The server's name.
        name: String,
    },
    /// Groups: one MCP endpoint (/NAME/mcp) over several servers.
    #[command(after_help = "\
Examples:
  proxyctl groups
  proxyctl groups add team --member search --member fs --prefix always
  proxyctl groups add tagged --tag team-tools --fail-mode closed --auth-token \"$TOKEN\"
  proxyctl groups add -f team.json
  proxyctl groups get team
  proxyctl groups tools team
  proxyctl groups rm team")]
    Groups {
        /// What to do (default: list).
        #[command(subcommand)]
        command: Option<GroupsCommand>,
    },
    /// List the tools the servers offer (tool filters applied).
    #[command(after_help = "Examples:\n  proxyctl tools\n  proxyctl tools --server time")]
    Tools {
        /// Only this server's tools.
        #[arg(long, short = 's', value_name = "NAME")]
        server: Option<String>,
    },
    /// Call a tool and print what it answered.
    #[command(after_help = "\
Arguments: --arg KEY=VALUE (repeatable; VALUE is taken as the tool's input schema says:
numbers, booleans, arrays and objects are parsed as JSON, strings are kept as written),
or --args JSON with the whole arguments object (`-` reads it from standard input).
With --json the whole CallToolResult is printed. Exit code 8 when the tool reports an error.

Examples:
  proxyctl call time get_current_time --arg timezone=UTC
  proxyctl call time convert_time --args '{\"source_timezone\":\"UTC\",\"time\":\"12:00\",\"target_timezone\":\"Asia/Tokyo\"}'
  proxyctl call everything add --arg a=2 --arg b=3 --json")]
    Call {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// An argument, KEY=VALUE.
        #[arg(long = "arg", short = 'a', value_name = "KEY=VALUE")]
        args: Vec<String>,
        /// All arguments as one JSON object (`-` for standard input).
        #[arg(long = "args", value_name = "JSON", conflicts_with = "args")]
        args_json: Option<String>,
    },
    /// Import an {"mcpServers": {...}} file (Claude Desktop, Cursor, VS Code, …).
    #[command(after_help = "\
Each entry becomes a server named after its key: `command` entries are stdio, `url`
entries are streamable HTTP or SSE after their `type` or their URL (…/mcp, …/sse). An
entry whose transport cannot be told is asked for on a terminal, or named by --transport.
Importing the same file again changes nothing. Comments (// and /* */) are allowed.

Examples:
  proxyctl import ~/.config/Claude/claude_desktop_config.json
  proxyctl import .vscode/mcp.json --dry-run
  proxyctl import mcp.json --transport search=streamable-http --expand-env")]
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
        /// Report what would happen, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The transport of an entry whose URL does not say: NAME=sse|streamable-http.
        #[arg(long = "transport", value_name = "NAME=KIND")]
        transports: Vec<String>,
        /// Replace ${VAR} (and ${env:VAR}) in env and headers values with this shell's
        /// environment before sending.
        #[arg(long)]
        expand_env: bool,
    },
    /// Print the client configuration that points MCP clients at the proxy.
    #[command(after_help = "\
Examples:
  proxyctl export > ~/.cursor/mcp.json
  proxyctl export time search --format vscode
  proxyctl export --public-url https://mcp.example.com --client-token \"$CLIENT_TOKEN\"")]
    Export(ExportArgs),
    /// Show the proxy's counters.
    #[command(after_help = "Examples:\n  proxyctl metrics\n  proxyctl metrics --prometheus")]
    Metrics {
        /// Print the Prometheus text (GET /metrics) instead.
        #[arg(long)]
        prometheus: bool,
    },
    /// A live table of the servers' states (Ctrl-C stops).
    #[command(after_help = "\
On a terminal the table is redrawn; otherwise one line is printed per state change
(with --json, one JSON object per refresh).

Examples:
  proxyctl watch
  proxyctl watch --interval 5s
  proxyctl watch --count 1 > snapshot.txt")]
    Watch {
        /// Time between refreshes.
        #[arg(long, value_parser = parse_duration, default_value = "1s")]
        interval: Duration,
        /// Stop after this many refreshes.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  proxyctl completions bash > ~/.local/share/bash-completion/completions/proxyctl
  proxyctl completions zsh > \"${fpath[1]}/_proxyctl\"
  proxyctl completions fish > ~/.config/fish/completions/proxyctl.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `groups …`.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List the groups (the built-in `mcp` too) with their members' state.
    #[command(visible_alias = "ls")]
    List,
    /// Show one group: its definition (tokens as handles), members and collisions.
    Get {
        /// The group's name.
        name: String,
    },
    /// Create a group, from flags or a JSON file.
    Add(GroupAddArgs),
    /// Remove groups (their client sessions end; the servers stay).
    #[command(visible_alias = "delete")]
    Rm {
        /// The groups' names.
        #[arg(required = true)]
        names: Vec<String>,
        /// A group that does not exist is not an error.
        #[arg(long)]
        ignore_missing: bool,
    },
    /// List a group's merged tools with the server and name each comes from.
    Tools {
        /// The group's name.
        name: String,
    },
}

/// `groups add`.
#[derive(Debug, Args)]
pub(crate) struct GroupAddArgs {
    /// The group's name (not with -f).
    #[arg(required_unless_present = "file")]
    pub(crate) name: Option<String>,
    /// Read the group from a JSON file instead (`-` for standard input).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "name"
    )]
    pub(crate) file: Option<PathBuf>,
    /// A member server, by name (repeatable; it may be registered later).
    #[arg(long = "member", short = 'm', value_name = "NAME")]
    pub(crate) members: Vec<String>,
    /// Servers with this tag are members too (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// When member names go in front of tool names.
    #[arg(long, value_enum)]
    pub(crate) prefix: Option<PrefixArg>,
    /// Between the member's name and the tool's (default `__`).
    #[arg(long)]
    pub(crate) separator: Option<String>,
    /// Keep names within ^[A-Za-z0-9_-]{1,64}$.
    #[arg(long)]
    pub(crate) strict_names: bool,
    /// What the group does while a member is down.
    #[arg(long, value_enum)]
    pub(crate) fail_mode: Option<FailModeArg>,
    /// Free text (also the instructions clients get).
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// A token clients must send to use the group (repeatable).
    #[arg(long = "auth-token", value_name = "TOKEN")]
    pub(crate) auth_tokens: Vec<String>,
}

/// `prefix`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PrefixArg {
    /// Always `{member}{separator}{tool}`.
    Always,
    /// Only names more than one member has (the default).
    OnCollision,
    /// Never; a shared name is left out and reported.
    Never,
}

/// `failMode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FailModeArg {
    /// A member that is down is left out.
    Open,
    /// The group is unavailable while a member is down.
    Closed,
}

/// `add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The server's name (not with -f).
    #[arg(required_unless_present = "file")]
    pub(crate) name: Option<String>,
    /// Read the definition (or several) from a file instead (`-` for standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with_all = ["name", "url", "command"])]
    pub(crate) file: Option<PathBuf>,
    /// An HTTP server's URL.
    #[arg(long, value_name = "URL", conflicts_with = "command")]
    pub(crate) url: Option<String>,
    /// The transport of an HTTP server (default: from the URL, …/sse or …/mcp).
    #[arg(long, value_enum)]
    pub(crate) transport: Option<HttpTransport>,
    /// Environment of a stdio server: KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Header sent to an HTTP server: NAME=VALUE (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    pub(crate) headers: Vec<String>,
    /// Working directory of a stdio server.
    #[arg(long, value_name = "DIR")]
    pub(crate) cwd: Option<String>,
    /// Deadline for connecting and for each call.
    #[arg(long = "request-timeout", value_name = "DURATION")]
    pub(crate) request_timeout: Option<String>,
    /// Free text.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// A label (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// `per-client` (default) or `shared`.
    #[arg(long, value_enum)]
    pub(crate) session_mode: Option<SessionModeArg>,
    /// Client sessions at most.
    #[arg(long)]
    pub(crate) max_sessions: Option<u32>,
    /// A token clients must send to use this server (repeatable).
    #[arg(long = "auth-token", value_name = "TOKEN")]
    pub(crate) auth_tokens: Vec<String>,
    /// Return once registered, without waiting for the connection.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// How long to wait for the server to connect.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub(crate) wait_timeout: Duration,
    /// A stdio server's program and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

/// HTTP transports.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum HttpTransport {
    /// HTTP+SSE (2024-11-05).
    Sse,
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
}

/// `sessionMode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SessionModeArg {
    /// Each client session gets its own upstream session.
    PerClient,
    /// One upstream connection for every client session.
    Shared,
}

/// `export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Only these servers (default: all).
    pub(crate) names: Vec<String>,
    /// The shape of the file.
    #[arg(long, value_enum, default_value = "mcp-servers")]
    pub(crate) format: ExportFormat,
    /// Point clients at the legacy SSE endpoints (/NAME/sse) instead of /NAME/mcp.
    #[arg(long)]
    pub(crate) sse: bool,
    /// The proxy URL clients use, when it differs from --proxy.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// The token clients send to servers that require one (default: a
    /// ${MCP_PROXY_CLIENT_TOKEN} placeholder).
    #[arg(
        long,
        env = "MCP_PROXY_CLIENT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) client_token: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// Client configuration shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// `{"mcpServers": {name: {type, url, headers}}}` (Claude Code, Cursor, Windsurf, …).
    McpServers,
    /// `{"servers": {name: {type, url, headers}}}` (VS Code's mcp.json).
    Vscode,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
