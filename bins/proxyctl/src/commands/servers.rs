//! `list`, `get`, `add`, `apply`, `edit`, `rm`, `reconnect`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mcp_proxy_client::{Ensured, McpEntry, RegisterService};
use mcp_types::{CommandSpec, ConnectionState, McpDefinition, Secret, SessionMode, TransportKind};

use super::{Ctx, endpoint, transport};
use crate::cli::{AddArgs, HttpTransport, SessionModeArg};
use crate::exit::{Exit, Failure};
use crate::input;
use crate::table::{Table, cut};

/// `list`.
pub(crate) async fn list(ctx: &Ctx) -> anyhow::Result<Exit> {
    let entries = ctx.client.list().await?;
    if ctx.json {
        ctx.print_json(&entries);
        return Ok(Exit::Ok);
    }
    if entries.is_empty() {
        println!("no servers registered (add one with `proxyctl add NAME -- COMMAND`)");
        return Ok(Exit::Ok);
    }
    let mut t = Table::new(&[
        "NAME",
        "SOURCE",
        "TRANSPORT",
        "STATE",
        "TOOLS",
        "REQUESTS",
        "ERRORS",
        "LAST ERROR",
    ]);
    for e in &entries {
        let s = &e.status;
        t.row(vec![
            e.definition.name.clone(),
            e.definition.source.as_str().to_owned(),
            transport(e).to_owned(),
            s.state.as_str().to_owned(),
            s.tool_count.map_or("-".into(), |n| n.to_string()),
            s.total_requests.to_string(),
            s.total_errors.to_string(),
            s.last_error.as_deref().map_or("-".into(), |m| cut(m, 80)),
        ]);
    }
    print!("{}", t.render());
    Ok(Exit::Ok)
}

/// `get NAME`.
pub(crate) async fn get(ctx: &Ctx, name: &str) -> anyhow::Result<Exit> {
    let entry = ctx.client.get(name).await?;
    if ctx.json {
        ctx.print_json(&entry);
        return Ok(Exit::Ok);
    }
    print!("{}", describe(ctx, &entry));
    Ok(Exit::Ok)
}

/// The human view of one entry.
fn describe(ctx: &Ctx, e: &McpEntry) -> String {
    let d = &e.definition;
    let s = &e.status;
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_owned(), v]);
    row("name", d.name.clone());
    row("source", d.source.as_str().to_owned());
    row("transport", d.transport.as_str().to_owned());
    if let Some((program, args)) = d.argv() {
        let mut words = vec![program.to_owned()];
        words.extend(args.iter().map(|a| (*a).to_owned()));
        row("command", words.join(" "));
    }
    if let Some(url) = &d.url {
        row("url", url.clone());
    }
    for (k, v) in &d.env {
        row("env", format!("{k}={}", v.expose()));
    }
    for (k, v) in &d.headers {
        row("header", format!("{k}: {}", v.expose()));
    }
    if let Some(desc) = &d.description {
        row("description", desc.clone());
    }
    if !d.tags.is_empty() {
        row("tags", d.tags.join(", "));
    }
    row("timeout", mcp_types::duration::format(d.timeout));
    row(
        "session mode",
        format!("{:?}", d.session_mode).to_lowercase(),
    );
    row("state", s.state.as_str().to_owned());
    if let Some(t) = &s.last_connected {
        row("last connected", t.to_string());
    }
    if let Some(err) = &s.last_error {
        row("last error", err.clone());
    }
    row("reconnects", s.reconnect_attempts.to_string());
    if let Some(n) = s.tool_count {
        row("tools", n.to_string());
    }
    row(
        "requests",
        format!("{} ({} failed)", s.total_requests, s.total_errors),
    );
    row(
        "endpoint",
        endpoint(
            ctx.client.base_url(),
            &d.name,
            d.transport == TransportKind::Sse,
        ),
    );
    row(
        "client auth",
        if e.auth_required { "required" } else { "none" }.to_owned(),
    );
    t.render()
}

/// Splits `KEY=VALUE`.
fn pair(what: &str, text: &str) -> Result<(String, String), Failure> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Failure::new(
            Exit::Usage,
            format!("{what} {text:?}: expected KEY=VALUE"),
        )),
    }
}

fn secrets(what: &str, items: &[String]) -> Result<BTreeMap<String, Secret>, Failure> {
    items
        .iter()
        .map(|i| pair(what, i).map(|(k, v)| (k, Secret::new(v))))
        .collect()
}

/// The definition `add`'s flags describe.
fn from_flags(a: &AddArgs) -> Result<McpDefinition, Failure> {
    let name = a.name.clone().unwrap_or_default();
    let mut def = match (&a.url, a.command.as_slice()) {
        (Some(url), []) => {
            let kind = match a.transport {
                Some(HttpTransport::Sse) => TransportKind::Sse,
                Some(HttpTransport::StreamableHttp) => TransportKind::StreamableHttp,
                None => infer(url)?,
            };
            McpDefinition::http(&name, kind, url)
        }
        (None, [program, rest @ ..]) => {
            let mut d = McpDefinition::new(&name, TransportKind::Stdio);
            d.command = Some(CommandSpec::Program(program.clone()));
            d.args = rest.to_vec();
            d
        }
        (None, []) => {
            return Err(Failure::new(
                Exit::Usage,
                "give a stdio server's command after `--` (proxyctl add NAME -- uvx \
                 mcp-server-time), an HTTP server's --url, or a file with -f",
            ));
        }
        (Some(_), _) => {
            return Err(Failure::new(
                Exit::Usage,
                "a server has either a command or a url",
            ));
        }
    };
    def.env = secrets("--env", &a.env)?;
    def.headers = secrets("--header", &a.headers)?;
    def.cwd.clone_from(&a.cwd);
    def.description.clone_from(&a.description);
    def.tags.clone_from(&a.tags);
    def.max_sessions = a.max_sessions;
    def.auth_tokens = a.auth_tokens.iter().map(Secret::new).collect();
    if let Some(m) = a.session_mode {
        def.session_mode = match m {
            SessionModeArg::PerClient => SessionMode::PerClient,
            SessionModeArg::Shared => SessionMode::Shared,
        };
    }
    if let Some(t) = &a.request_timeout {
        def.timeout = mcp_types::duration::parse(t)
            .map_err(|e| Failure::new(Exit::Usage, format!("--request-timeout: {e}")))?;
    }
    Ok(def)
}

/// The HTTP transport a URL's last segment names.
fn infer(url: &str) -> Result<TransportKind, Failure> {
    let last = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.rfind(|x| !x.is_empty()).map(str::to_owned))
        })
        .unwrap_or_default();
    match last.as_str() {
        "sse" => Ok(TransportKind::Sse),
        "mcp" => Ok(TransportKind::StreamableHttp),
        _ => Err(Failure::new(
            Exit::Usage,
            format!(
                "the url {url:?} does not say whether the server speaks sse or streamable http: \
                 add --transport sse or --transport streamable-http"
            ),
        )),
    }
}

/// `add`.
pub(crate) async fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<Exit> {
    let defs = match &a.file {
        Some(path) => input::definitions(path)?,
        None => vec![from_flags(&a)?],
    };
    let mut entries = Vec::new();
    for def in &defs {
        let entry = ctx.client.register(def).await?;
        if !ctx.json {
            println!("{}: registered", entry.definition.name);
        }
        entries.push(entry);
    }
    if a.no_wait {
        if ctx.json {
            ctx.print_json(&entries);
        }
        return Ok(Exit::Ok);
    }
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    wait(ctx, &names, a.wait_timeout).await
}

/// How often `add` looks at the state of what it registered.
const POLL: Duration = Duration::from_millis(200);

/// Waits for `names` to connect and says how they are. A server that fails its first
/// attempt is reported at once with the proxy's reason (the proxy keeps retrying it).
async fn wait(ctx: &Ctx, names: &[String], deadline: Duration) -> anyhow::Result<Exit> {
    let until = tokio::time::Instant::now() + deadline;
    let mut pending: Vec<String> = names.to_vec();
    let mut done: Vec<McpEntry> = Vec::new();
    let mut exit = Exit::Ok;
    loop {
        let mut still = Vec::new();
        for name in pending {
            let e = ctx.client.get(&name).await?;
            match e.status.state {
                ConnectionState::Connected => {
                    if !ctx.json {
                        let tools = e
                            .status
                            .tool_count
                            .map_or(String::new(), |n| format!(", {n} tools"));
                        let ep = endpoint(
                            ctx.client.base_url(),
                            &name,
                            e.definition.transport == TransportKind::Sse,
                        );
                        println!("{name}: connected{tools}; clients use {ep}");
                    }
                    done.push(e);
                }
                ConnectionState::Error => {
                    eprintln!(
                        "{name}: error: {}",
                        e.status
                            .last_error
                            .as_deref()
                            .unwrap_or("no error reported")
                    );
                    if e.definition.auto_reconnect {
                        eprintln!("{name}: the proxy keeps retrying; see `proxyctl get {name}`");
                    }
                    exit = Exit::Partial;
                    done.push(e);
                }
                _ if tokio::time::Instant::now() >= until => {
                    eprintln!(
                        "{name}: not connected after {} ({})",
                        mcp_types::duration::format(deadline),
                        e.status.state.as_str()
                    );
                    exit = Exit::Partial;
                    done.push(e);
                }
                _ => still.push(name),
            }
        }
        if still.is_empty() {
            break;
        }
        pending = still;
        tokio::time::sleep(POLL).await;
    }
    if ctx.json {
        ctx.print_json(&done);
    }
    Ok(exit)
}

/// `apply -f FILE`.
pub(crate) async fn apply(ctx: &Ctx, file: &Path) -> anyhow::Result<Exit> {
    let defs = input::definitions(file)?;
    let service = RegisterService::new(ctx.client.clone());
    let mut results = Vec::new();
    let mut failed = false;
    for def in &defs {
        let outcome = service.ensure(def).await;
        let (action, error) = match &outcome {
            Ok(Ensured::Created) => ("created", None),
            Ok(Ensured::Updated) => ("updated", None),
            Ok(Ensured::Unchanged) => ("unchanged", None),
            Err(e) => {
                failed = true;
                ("failed", Some(e.to_string()))
            }
        };
        results.push(serde_json::json!({ "name": def.name, "action": action, "error": error }));
    }
    if ctx.json {
        ctx.print_json(&results);
    } else {
        let mut t = Table::new(&["NAME", "ACTION", "ERROR"]);
        for r in &results {
            t.row(vec![
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["error"].as_str().map_or("-".into(), |e| cut(e, 100)),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(if failed { Exit::Partial } else { Exit::Ok })
}

/// `edit NAME`: the definition in an editor, then PUT when it changed.
pub(crate) async fn edit(ctx: &Ctx, name: &str) -> anyhow::Result<Exit> {
    let entry = ctx.client.get(name).await?;
    let mut shown = serde_json::to_value(&entry.definition)?;
    if let Some(obj) = shown.as_object_mut() {
        for k in ["createdAt", "updatedAt", "source"] {
            obj.remove(k);
        }
    }
    let original = serde_json::to_string_pretty(&shown)? + "\n";
    let file = tempfile::Builder::new()
        .prefix(&format!("proxyctl-{name}-"))
        .suffix(".json")
        .tempfile()
        .context("cannot create a temporary file")?;
    std::fs::write(file.path(), &original)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // `$EDITOR` may carry arguments (`code --wait`).
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(words)
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        return Err(Failure::new(
            Exit::Error,
            format!("the editor {editor:?} failed ({status})"),
        )
        .into());
    }
    let edited = std::fs::read_to_string(file.path())?;
    if edited.trim() == original.trim() {
        println!("{name}: no change");
        return Ok(Exit::Ok);
    }
    let keep = |why: String| -> anyhow::Error {
        // Keep what the user typed: nothing is lost to a typo.
        let kept = file.path().with_extension("kept.json");
        let saved = std::fs::write(&kept, &edited).is_ok();
        let at = if saved {
            format!("; your edit is kept in {}", kept.display())
        } else {
            String::new()
        };
        Failure::new(Exit::Invalid, format!("{why}{at}")).into()
    };
    let def: McpDefinition = match serde_json::from_str(&edited) {
        Ok(d) => d,
        Err(e) => return Err(keep(format!("the edited definition is not valid: {e}"))),
    };
    if def.name != name {
        return Err(keep(format!(
            "the edited definition is named {:?}: a server cannot be renamed (add a new one)",
            def.name
        )));
    }
    match ctx.client.update(&def).await {
        Ok(entry) => {
            println!("{}: updated", entry.definition.name);
            Ok(Exit::Ok)
        }
        Err(e) => {
            let exit = Exit::of(&e);
            let err = keep(e.to_string());
            let failure = err.downcast::<Failure>().expect("keep makes a failure");
            Err(Failure::new(exit, failure.message).into())
        }
    }
}

/// `rm NAME…`.
pub(crate) async fn rm(ctx: &Ctx, names: &[String], ignore_missing: bool) -> anyhow::Result<Exit> {
    let mut exit = Exit::Ok;
    for name in names {
        match ctx.client.deregister(name).await {
            Ok(true) => println!("{name}: removed"),
            Ok(false) if ignore_missing => println!("{name}: not registered"),
            Ok(false) => {
                eprintln!("proxyctl: {name}: not registered");
                exit = Exit::NotFound;
            }
            Err(e) => {
                eprintln!("proxyctl: {name}: {}", crate::exit::describe(&e));
                if let Some(h) = crate::exit::client_hint(&e) {
                    eprintln!("hint: {h}");
                }
                exit = Exit::of(&e);
            }
        }
    }
    Ok(exit)
}

/// `reconnect NAME`.
pub(crate) async fn reconnect(ctx: &Ctx, name: &str) -> anyhow::Result<Exit> {
    ctx.client.reconnect(name).await?;
    println!("{name}: reconnecting");
    Ok(Exit::Ok)
}
