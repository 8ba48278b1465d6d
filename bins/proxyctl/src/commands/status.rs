//! `status`, `metrics`, `watch`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use mcp_proxy_client::McpEntry;
use serde_json::json;

use super::{Ctx, transport};
use crate::exit::Exit;
use crate::table::{Table, cut};

/// `status`: health, readiness, and a count of the servers by state.
pub(crate) async fn status(ctx: &Ctx) -> anyhow::Result<Exit> {
    let health = ctx.client.health().await?;
    let ready = ctx.client.ready().await;
    let metrics = ctx.client.metrics().await?;
    let url = ctx.client.base_url().to_string();
    if ctx.json {
        ctx.print_json(&json!({
            "url": url,
            "health": health,
            "ready": ready.is_ok(),
            "readyError": ready.as_ref().err().map(ToString::to_string),
            "metrics": metrics,
        }));
    } else {
        let up = mcp_types::duration::format(Duration::from_secs(health.uptime_seconds));
        let mut t = Table::new(&["PROXY", "VALUE"]);
        t.row(vec!["url".into(), url]);
        t.row(vec!["version".into(), health.version.clone()]);
        t.row(vec!["uptime".into(), up]);
        t.row(vec![
            "ready".into(),
            match &ready {
                Ok(()) => "yes".into(),
                Err(e) => format!("no: {e}"),
            },
        ]);
        t.row(vec![
            "servers".into(),
            format!(
                "{} ({} connected, {} connecting, {} error, {} disconnected)",
                metrics.total_clients,
                metrics.connected,
                metrics.connecting,
                metrics.errored,
                metrics.disconnected
            ),
        ]);
        t.row(vec![
            "client sessions".into(),
            metrics.active_sessions.to_string(),
        ]);
        t.row(vec![
            "requests".into(),
            format!(
                "{} ({} failed)",
                metrics.total_requests, metrics.total_errors
            ),
        ]);
        print!("{}", t.render());
    }
    Ok(if ready.is_ok() {
        Exit::Ok
    } else {
        Exit::Unreachable
    })
}

/// `metrics [--prometheus]`.
pub(crate) async fn metrics(ctx: &Ctx, prometheus: bool) -> anyhow::Result<Exit> {
    if prometheus {
        print!("{}", ctx.client.prometheus().await?);
        return Ok(Exit::Ok);
    }
    let m = ctx.client.metrics().await?;
    if ctx.json {
        ctx.print_json(&m);
        return Ok(Exit::Ok);
    }
    let value = serde_json::to_value(&m)?;
    let mut t = Table::new(&["METRIC", "VALUE"]);
    for (k, v) in value.as_object().into_iter().flatten() {
        t.row(vec![k.clone(), v.to_string()]);
    }
    print!("{}", t.render());
    Ok(Exit::Ok)
}

/// `watch`: the state table, refreshed every `interval`.
pub(crate) async fn watch(
    ctx: &Ctx,
    interval: Duration,
    count: Option<u64>,
) -> anyhow::Result<Exit> {
    let tty = std::io::stdout().is_terminal() && !ctx.json;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Ok),
        }
        let entries = match ctx.client.list().await {
            Ok(e) => e,
            // A proxy that went away is reported and watched again, not fatal.
            Err(e) if !tty && count.is_none() => {
                eprintln!("proxyctl: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if ctx.json {
            let rows: Vec<_> = entries.iter().map(summary).collect();
            println!("{}", serde_json::to_string(&json!({ "servers": rows }))?);
        } else if tty {
            // Clear the screen and home the cursor, then draw.
            print!("\x1b[2J\x1b[H{}", render(&entries));
            println!(
                "\nevery {} — Ctrl-C to stop",
                mcp_types::duration::format(interval)
            );
        } else {
            changes(&entries, &mut last, done == 0);
        }
        done += 1;
        if count.is_some_and(|c| done >= c) {
            return Ok(Exit::Ok);
        }
    }
}

fn summary(e: &McpEntry) -> serde_json::Value {
    json!({
        "name": e.definition.name,
        "state": e.status.state,
        "transport": transport(e),
        "source": e.definition.source,
        "tools": e.status.tool_count,
        "requests": e.status.total_requests,
        "errors": e.status.total_errors,
        "lastError": e.status.last_error,
    })
}

fn render(entries: &[McpEntry]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "STATE",
        "TRANSPORT",
        "TOOLS",
        "REQUESTS",
        "ERRORS",
        "LAST ERROR",
    ]);
    for e in entries {
        let s = &e.status;
        t.row(vec![
            e.definition.name.clone(),
            s.state.as_str().to_owned(),
            transport(e).to_owned(),
            s.tool_count.map_or("-".into(), |n| n.to_string()),
            s.total_requests.to_string(),
            s.total_errors.to_string(),
            s.last_error.as_deref().map_or("-".into(), |m| cut(m, 60)),
        ]);
    }
    t.render()
}

/// One line per server whose state changed (every server on the first round).
fn changes(entries: &[McpEntry], last: &mut BTreeMap<String, String>, first: bool) {
    let now: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            (
                e.definition.name.clone(),
                e.status.state.as_str().to_owned(),
            )
        })
        .collect();
    for e in entries {
        let name = &e.definition.name;
        let state = &now[name];
        match last.get(name) {
            Some(old) if old == state => {}
            Some(old) => println!("{name}: {old} -> {state}{}", why(e)),
            None if first => println!("{name}: {state}{}", why(e)),
            None => println!("{name}: added, {state}{}", why(e)),
        }
    }
    for name in last.keys().filter(|n| !now.contains_key(*n)) {
        println!("{name}: removed");
    }
    *last = now;
}

fn why(e: &McpEntry) -> String {
    match (&e.status.state, &e.status.last_error) {
        (mcp_types::ConnectionState::Error, Some(err)) => format!(" ({})", cut(err, 120)),
        _ => String::new(),
    }
}
