//! `groups` (`list`, `get`, `add`, `rm`, `tools`).

use std::path::Path;

use mcp_proxy_client::GroupEntry;
use mcp_types::{FailMode, GroupDefinition, PrefixMode, Secret};

use super::{Ctx, endpoint};
use crate::cli::{FailModeArg, GroupAddArgs, GroupsCommand, PrefixArg};
use crate::exit::{Exit, Failure};
use crate::input;
use crate::table::{Table, cut};

/// Runs a `groups` subcommand (`list` when none is given).
pub(crate) async fn run(ctx: &Ctx, command: Option<GroupsCommand>) -> anyhow::Result<Exit> {
    match command.unwrap_or(GroupsCommand::List) {
        GroupsCommand::List => list(ctx).await,
        GroupsCommand::Get { name } => get(ctx, &name).await,
        GroupsCommand::Add(args) => add(ctx, args).await,
        GroupsCommand::Rm {
            names,
            ignore_missing,
        } => rm(ctx, &names, ignore_missing).await,
        GroupsCommand::Tools { name } => tools(ctx, &name).await,
    }
}

/// `present/total`, and who is down.
fn members(e: &GroupEntry) -> String {
    let s = &e.status;
    let up = s
        .members
        .iter()
        .filter(|m| m.state.is_some_and(|st| st.as_str() == "connected"))
        .count();
    format!("{up}/{} connected", s.members.len())
}

async fn list(ctx: &Ctx) -> anyhow::Result<Exit> {
    let entries = ctx.client.groups().await?;
    if ctx.json {
        ctx.print_json(&entries);
        return Ok(Exit::Ok);
    }
    let mut t = Table::new(&[
        "NAME",
        "AVAILABLE",
        "MEMBERS",
        "TOOLS",
        "PROMPTS",
        "RESOURCES",
        "COLLISIONS",
        "DESCRIPTION",
    ]);
    for e in &entries {
        let s = &e.status;
        t.row(vec![
            e.group.name.clone(),
            if s.available { "yes" } else { "no" }.to_owned(),
            members(e),
            s.tools.to_string(),
            s.prompts.to_string(),
            s.resources.to_string(),
            s.collisions.len().to_string(),
            e.group
                .description
                .as_deref()
                .map_or("-".into(), |d| cut(d, 60)),
        ]);
    }
    if t.is_empty() {
        println!("no groups (add one with `proxyctl groups add NAME --member SERVER`)");
    } else {
        print!("{}", t.render());
    }
    Ok(Exit::Ok)
}

async fn get(ctx: &Ctx, name: &str) -> anyhow::Result<Exit> {
    let entry = ctx.client.group(name).await?;
    if ctx.json {
        ctx.print_json(&entry);
        return Ok(Exit::Ok);
    }
    print!("{}", describe(ctx, &entry));
    Ok(Exit::Ok)
}

/// The human view of one group.
fn describe(ctx: &Ctx, e: &GroupEntry) -> String {
    let g = &e.group;
    let s = &e.status;
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let mut row = |k: &str, v: String| t.row(vec![k.to_owned(), v]);
    row("name", g.name.clone());
    if e.read_only {
        row("built in", "yes (every server; aggregate_all)".into());
    }
    if let Some(d) = &g.description {
        row("description", d.clone());
    }
    for m in &s.members {
        let state = match (m.present, m.state) {
            (false, _) => "not registered".to_owned(),
            (true, Some(st)) => st.as_str().to_owned(),
            (true, None) => "-".to_owned(),
        };
        row("member", format!("{} ({state})", m.name));
    }
    if !g.member_tags.is_empty() {
        row("member tags", g.member_tags.join(", "));
    }
    row(
        "prefix",
        format!("{} (separator {:?})", g.prefix.as_str(), g.separator),
    );
    if g.strict_names {
        row("strict names", "yes".into());
    }
    row("fail mode", g.fail_mode.as_str().to_owned());
    row("available", if s.available { "yes" } else { "no" }.into());
    row(
        "catalog",
        format!(
            "{} tools, {} prompts, {} resources",
            s.tools, s.prompts, s.resources
        ),
    );
    for c in &s.collisions {
        row(
            "collision",
            format!(
                "{} {:?}: {} (served to neither)",
                c.kind,
                c.name,
                c.origins.join(", ")
            ),
        );
    }
    for key in &s.unknown_overrides {
        row(
            "unknown override",
            format!("{key} (no member has this tool)"),
        );
    }
    for (key, o) in &g.overrides {
        let mut what = Vec::new();
        if let Some(n) = &o.name {
            what.push(format!("as {n}"));
        }
        if o.hidden {
            what.push("hidden".into());
        }
        if o.description.is_some() || o.title.is_some() {
            what.push("described".into());
        }
        row("override", format!("{key}: {}", what.join(", ")));
    }
    row("endpoint", endpoint(ctx.client.base_url(), &g.name, false));
    row(
        "client auth",
        if e.auth_required { "required" } else { "none" }.to_owned(),
    );
    t.render()
}

/// The group `groups add` describes: from a file, or from the flags.
fn group_of(args: GroupAddArgs) -> Result<GroupDefinition, Failure> {
    if let Some(file) = &args.file {
        return read_group(file);
    }
    let name = args.name.unwrap_or_default();
    let mut g = GroupDefinition::new(name);
    g.description = args.description;
    g.members = args.members;
    g.member_tags = args.tags;
    if let Some(p) = args.prefix {
        g.prefix = match p {
            PrefixArg::Always => PrefixMode::Always,
            PrefixArg::OnCollision => PrefixMode::OnCollision,
            PrefixArg::Never => PrefixMode::Never,
        };
    }
    if let Some(sep) = args.separator {
        g.separator = sep;
    }
    g.strict_names = args.strict_names;
    if let Some(f) = args.fail_mode {
        g.fail_mode = match f {
            FailModeArg::Open => FailMode::Open,
            FailModeArg::Closed => FailMode::Closed,
        };
    }
    g.auth_tokens = args.auth_tokens.into_iter().map(Secret::new).collect();
    Ok(g)
}

/// A group from a JSON file (comments allowed).
fn read_group(path: &Path) -> Result<GroupDefinition, Failure> {
    let text = input::strip_jsonc(&input::read_text(path)?);
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            Exit::Invalid,
            format!("{}: not a group definition: {e}", path.display()),
        )
    })
}

async fn add(ctx: &Ctx, args: GroupAddArgs) -> anyhow::Result<Exit> {
    let group = group_of(args)?;
    let entry = ctx.client.create_group(&group).await?;
    if ctx.json {
        ctx.print_json(&entry);
        return Ok(Exit::Ok);
    }
    let s = &entry.status;
    println!(
        "{}: created, {} tools over {} ({})",
        entry.group.name,
        s.tools,
        members(&entry),
        endpoint(ctx.client.base_url(), &entry.group.name, false)
    );
    for m in s.members.iter().filter(|m| !m.present) {
        eprintln!(
            "note: member {:?} is not registered; it joins when it is",
            m.name
        );
    }
    for key in &s.unknown_overrides {
        eprintln!("note: override {key:?} names no tool of a member");
    }
    for c in &s.collisions {
        eprintln!(
            "note: {} {:?} is left out: {} would share it",
            c.kind,
            c.name,
            c.origins.join(", ")
        );
    }
    Ok(Exit::Ok)
}

async fn rm(ctx: &Ctx, names: &[String], ignore_missing: bool) -> anyhow::Result<Exit> {
    let mut exit = Exit::Ok;
    for name in names {
        match ctx.client.delete_group(name).await {
            Ok(true) => println!("{name}: removed"),
            Ok(false) if ignore_missing => println!("{name}: no such group"),
            Ok(false) => {
                eprintln!("proxyctl: {name}: no such group");
                exit = Exit::NotFound;
            }
            Err(e) => {
                eprintln!("proxyctl: {name}: {}", crate::exit::describe(&e));
                exit = Exit::of(&e);
            }
        }
    }
    Ok(exit)
}

async fn tools(ctx: &Ctx, name: &str) -> anyhow::Result<Exit> {
    let listing = ctx.client.group_tools(name).await?;
    let exit = if listing.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Partial
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({"tools": listing.items, "errors": listing.errors}));
        return Ok(exit);
    }
    let mut t = Table::new(&["NAME", "SERVER", "ORIGINAL", "DESCRIPTION"]);
    for tool in &listing.items {
        t.row(vec![
            tool.name.clone(),
            tool.mcp_name.clone(),
            tool.extra
                .get("originalName")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("-")
                .to_owned(),
            tool.description
                .as_deref()
                .map_or("-".into(), |d| cut(d, 60)),
        ]);
    }
    if t.is_empty() {
        println!("group {name:?} has no tools now");
    } else {
        print!("{}", t.render());
    }
    for e in &listing.errors {
        eprintln!("{}: {}", e.mcp_name, e.error);
    }
    Ok(exit)
}
