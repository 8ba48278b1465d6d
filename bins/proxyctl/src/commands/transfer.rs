//! `import` (an `mcpServers` file into the proxy) and `export` (the client configuration
//! that points at the proxy).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use mcp_proxy_client::{ImportReport, ImportResult};
use mcp_types::TransportKind;
use serde_json::{Map, Value, json};

use super::{Ctx, endpoint};
use crate::cli::{ExportArgs, ExportFormat};
use crate::exit::{Exit, Failure};
use crate::input;
use crate::table::{Table, cut};

/// `import FILE`.
pub(crate) async fn import(
    ctx: &Ctx,
    file: &Path,
    dry_run: bool,
    transports: &[String],
    expand_env: bool,
) -> anyhow::Result<Exit> {
    let text = input::read_text(file)?;
    let mut doc: Value = serde_json::from_str(&input::strip_jsonc(&text)).map_err(|e| {
        Failure::new(
            Exit::Invalid,
            format!("{}: invalid json: {e}", file.display()),
        )
    })?;
    let mut chosen = BTreeMap::new();
    for t in transports {
        let (name, kind) = t.split_once('=').ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                format!("--transport {t:?}: expected NAME=sse|streamable-http"),
            )
        })?;
        chosen.insert(name.to_owned(), kind_of(kind)?);
    }
    for (name, kind) in &chosen {
        set_type(&mut doc, name, kind).ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                format!("--transport: the file has no entry {name:?}"),
            )
        })?;
    }
    if expand_env {
        expand_doc(&mut doc)?;
    }
    let mut report = ctx.client.import(&doc, dry_run).await?;
    // Ask for what the proxy could not tell, when someone is there to answer.
    let ambiguous: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.code.as_deref() == Some("ambiguous_transport"))
        .map(|r| r.name.clone())
        .collect();
    if !ambiguous.is_empty() && !ctx.json && std::io::stdin().is_terminal() {
        let mut answered = Map::new();
        let entries = entries_mut(&mut doc);
        for name in &ambiguous {
            let Some(kind) = ask(name, entries.as_ref().and_then(|e| e.get(name)))? else {
                continue;
            };
            if let Some(entry) = entries.as_ref().and_then(|e| e.get(name)) {
                let mut entry = entry.clone();
                entry["type"] = Value::String(kind.into());
                answered.insert(name.clone(), entry);
            }
        }
        if !answered.is_empty() {
            let again = ctx
                .client
                .import(&json!({ "mcpServers": answered }), dry_run)
                .await?;
            merge_report(&mut report, again);
        }
    }
    print_report(ctx, &report);
    let failed = report
        .results
        .iter()
        .any(|r| r.action == "skipped" && r.code.as_deref() != Some("disabled"));
    Ok(if failed { Exit::Partial } else { Exit::Ok })
}

fn kind_of(text: &str) -> Result<&'static str, Failure> {
    match text {
        "sse" => Ok("sse"),
        "streamable-http" | "http" => Ok("http"),
        other => Err(Failure::new(
            Exit::Usage,
            format!("--transport: {other:?} is not sse or streamable-http"),
        )),
    }
}

/// The entries object of the document (`mcpServers`, or VS Code's `servers`).
fn entries_mut(doc: &mut Value) -> Option<Map<String, Value>> {
    doc.get("mcpServers")
        .or_else(|| doc.get("servers"))
        .and_then(Value::as_object)
        .cloned()
}

fn set_type(doc: &mut Value, name: &str, kind: &str) -> Option<()> {
    let key = if doc.get("mcpServers").is_some() {
        "mcpServers"
    } else {
        "servers"
    };
    let entry = doc.get_mut(key)?.get_mut(name)?.as_object_mut()?;
    entry.insert("type".into(), Value::String(kind.into()));
    Some(())
}

/// Asks which transport `name` speaks; `None` to leave it out.
fn ask(name: &str, entry: Option<&Value>) -> anyhow::Result<Option<&'static str>> {
    let url = entry.and_then(|e| e["url"].as_str()).unwrap_or("its url");
    let mut out = std::io::stderr();
    let stdin = std::io::stdin();
    for _ in 0..3 {
        write!(
            out,
            "{name}: does {url} speak [s]treamable http or legacy s[s]e? (h/s, empty to skip) "
        )?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(None);
        }
        match line.trim() {
            "" => return Ok(None),
            "h" | "http" | "streamable-http" => return Ok(Some("http")),
            "s" | "sse" => return Ok(Some("sse")),
            _ => writeln!(out, "answer h, s or nothing")?,
        }
    }
    Ok(None)
}

/// Replaces the first report's results for the names the second one answers.
fn merge_report(report: &mut ImportReport, again: ImportReport) {
    for r in again.results {
        if let Some(old) = report.results.iter_mut().find(|o| o.name == r.name) {
            *old = r;
        }
    }
    let count = |a: &str| report.results.iter().filter(|r| r.action == a).count();
    report.created = count("created");
    report.updated = count("updated");
    report.unchanged = count("unchanged");
    report.skipped = count("skipped");
}

/// `${VAR}` and `${env:VAR}` in `env` and `headers` values, from this environment.
fn expand_doc(doc: &mut Value) -> Result<(), Failure> {
    let mut missing = Vec::new();
    for key in ["mcpServers", "servers"] {
        let Some(entries) = doc.get_mut(key).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            for part in ["env", "headers"] {
                let Some(map) = entry.get_mut(part).and_then(Value::as_object_mut) else {
                    continue;
                };
                for (k, v) in map.iter_mut() {
                    if let Value::String(s) = v {
                        match expand(s) {
                            Ok(new) => *s = new,
                            Err(var) => {
                                missing.push(format!("{name}.{part}.{k}: {var} is not set"))
                            }
                        }
                    }
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::Invalid,
            format!("--expand-env: {}", missing.join("; ")),
        ))
    }
}

/// Expands `${VAR}` / `${env:VAR}`; the name of a missing variable as the error.
fn expand(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let var = after[..end].trim_start_matches("env:");
        out.push_str(&std::env::var(var).map_err(|_| var.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn print_report(ctx: &Ctx, report: &ImportReport) {
    if ctx.json {
        ctx.print_json(report);
        return;
    }
    let mut t = Table::new(&["NAME", "ACTION", "TRANSPORT", "DETAIL"]);
    for r in &report.results {
        t.row(vec![
            r.name.clone(),
            r.action.clone(),
            r.transport.map_or("-", TransportKind::as_str).to_owned(),
            detail(r),
        ]);
    }
    print!("{}", t.render());
    let would = if report.dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    println!(
        "{} created, {} updated, {} unchanged, {} skipped{would}",
        report.created, report.updated, report.unchanged, report.skipped
    );
    for r in &report.results {
        if r.code.as_deref() == Some("ambiguous_transport") {
            eprintln!(
                "hint: {}: pass --transport {}=streamable-http or --transport {}=sse",
                r.name, r.name, r.name
            );
        }
    }
}

fn detail(r: &ImportResult) -> String {
    let mut parts = Vec::new();
    if let Some(reason) = &r.reason {
        parts.push(reason.clone());
    }
    parts.extend(r.notes.iter().cloned());
    if parts.is_empty() {
        "-".into()
    } else {
        cut(&parts.join("; "), 160)
    }
}

/// `export [NAMES…]`.
pub(crate) async fn export(ctx: &Ctx, args: &ExportArgs) -> anyhow::Result<Exit> {
    let entries = ctx.client.list().await?;
    for name in &args.names {
        if !entries.iter().any(|e| &e.definition.name == name) {
            return Err(Failure::new(Exit::NotFound, format!("{name}: not registered")).into());
        }
    }
    let base = match &args.public_url {
        Some(u) => url::Url::parse(u)
            .map_err(|e| Failure::new(Exit::Usage, format!("--public-url {u:?}: {e}")))?,
        None => ctx.client.base_url().clone(),
    };
    let mut servers = Map::new();
    let mut placeholder = false;
    for e in entries
        .iter()
        .filter(|e| args.names.is_empty() || args.names.contains(&e.definition.name))
    {
        let sse = args.sse;
        let mut server = Map::new();
        server.insert(
            "type".into(),
            Value::String(if sse { "sse" } else { "http" }.into()),
        );
        server.insert(
            "url".into(),
            Value::String(endpoint(&base, &e.definition.name, sse)),
        );
        if e.auth_required {
            let token = match &args.client_token {
                Some(t) => t.clone(),
                None => {
                    placeholder = true;
                    "${MCP_PROXY_CLIENT_TOKEN}".into()
                }
            };
            server.insert(
                "headers".into(),
                json!({ "Authorization": format!("Bearer {token}") }),
            );
        }
        servers.insert(e.definition.name.clone(), Value::Object(server));
    }
    let key = match args.format {
        ExportFormat::McpServers => "mcpServers",
        ExportFormat::Vscode => "servers",
    };
    let text = serde_json::to_string_pretty(&json!({ key: servers }))? + "\n";
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| Failure::new(Exit::Error, format!("{}: {e}", path.display())))?;
            eprintln!("wrote {} servers to {}", servers.len(), path.display());
        }
        None => print!("{text}"),
    }
    if placeholder {
        eprintln!(
            "note: some servers require a client token; the file says ${{MCP_PROXY_CLIENT_TOKEN}}: \
             set it in the client's environment or pass --client-token"
        );
    }
    Ok(Exit::Ok)
}
