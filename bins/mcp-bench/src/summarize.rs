//! `mcp-bench summarize`: medians over repeats, ratios against reference rows, as
//! Markdown tables and JSON.
//!
//! Input lines are the `--json` objects of runs. Labels steer the tables: `section`
//! (one table per section, in the order first seen), `row` (a path's stable id), `title`
//! (its name in the table), `ref` (the row it is compared with: same section, client
//! protocol version, sessions and payload) and, per section, `view=latency` for p50/p99
//! per column instead of p50 at one session and req/s above.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::stats::median;

#[derive(Debug, Deserialize)]
struct Record {
    mode: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    protocol_version: String,
    #[serde(default)]
    sessions: usize,
    #[serde(default)]
    sessions_opened: usize,
    #[serde(default)]
    payload_bytes: usize,
    #[serde(default)]
    calls: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    req_per_s: f64,
    #[serde(default)]
    latency: Option<Latency>,
    #[serde(default)]
    watched: Option<WatchedIn>,
    #[serde(default)]
    median_ms: Option<f64>,
    #[serde(default)]
    samples_ms: Vec<f64>,
    #[serde(default)]
    rss_kib: Option<u64>,
    #[serde(default)]
    load_average: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    mean_us: f64,
}

#[derive(Debug, Deserialize)]
struct WatchedIn {
    #[serde(default)]
    cpu_us_per_call: Option<f64>,
    rss_kib_before: u64,
    rss_kib_after: u64,
    #[serde(default)]
    kib_per_session: Option<f64>,
}

/// One table row: a path in one cell (version, sessions, payload), medians over repeats.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    pub(crate) section: String,
    pub(crate) row: String,
    pub(crate) title: String,
    pub(crate) mode: String,
    pub(crate) version: String,
    pub(crate) sessions: usize,
    pub(crate) payload_bytes: usize,
    pub(crate) repeats: usize,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p90_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    pub(crate) mean_us: Option<f64>,
    pub(crate) req_per_s: Option<f64>,
    pub(crate) cpu_us_per_call: Option<f64>,
    pub(crate) rss_kib: Option<f64>,
    pub(crate) rss_kib_before: Option<f64>,
    pub(crate) kib_per_session: Option<f64>,
    pub(crate) sessions_opened: usize,
    pub(crate) startup_ms: Option<f64>,
    /// The machine's load average when the runs started (median).
    pub(crate) load_average: Option<f64>,
    pub(crate) reference: Option<String>,
    pub(crate) p50_added_us: Option<f64>,
    pub(crate) p50_ratio: Option<f64>,
    pub(crate) req_per_s_ratio: Option<f64>,
    #[serde(skip)]
    view: Option<String>,
    #[serde(skip)]
    samples: Samples,
}

#[derive(Debug, Clone, Default)]
struct Samples {
    p50: Vec<f64>,
    p90: Vec<f64>,
    p99: Vec<f64>,
    mean: Vec<f64>,
    rps: Vec<f64>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
    rss_before: Vec<f64>,
    per_session: Vec<f64>,
    startup: Vec<f64>,
    load: Vec<f64>,
}

type Key = (String, String, String, usize, usize);

/// Groups records, takes medians and computes the ratios.
pub(crate) fn aggregate(text: &str) -> (Vec<Group>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut order: Vec<Key> = Vec::new();
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("line {}: skipped, not a run record: {e}", n + 1));
                continue;
            }
        };
        let label = |k: &str| r.labels.get(k).cloned();
        let section = label("section").unwrap_or_else(|| "runs".into());
        let row = label("row").unwrap_or_else(|| format!("{}-{}", r.mode, n + 1));
        let key = (
            section.clone(),
            row.clone(),
            r.protocol_version.clone(),
            r.sessions,
            r.payload_bytes,
        );
        let g = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Group {
                section,
                title: label("title").unwrap_or_else(|| row.clone()),
                row,
                mode: r.mode.clone(),
                version: r.protocol_version.clone(),
                sessions: r.sessions,
                payload_bytes: r.payload_bytes,
                repeats: 0,
                calls: 0,
                errors: 0,
                p50_us: None,
                p90_us: None,
                p99_us: None,
                mean_us: None,
                req_per_s: None,
                cpu_us_per_call: None,
                rss_kib: None,
                rss_kib_before: None,
                kib_per_session: None,
                sessions_opened: usize::MAX,
                startup_ms: None,
                load_average: None,
                reference: label("ref"),
                p50_added_us: None,
                p50_ratio: None,
                req_per_s_ratio: None,
                view: label("view"),
                samples: Samples::default(),
            }
        });
        g.repeats += 1;
        g.calls += r.calls;
        g.errors += r.errors;
        g.sessions_opened = g.sessions_opened.min(r.sessions_opened);
        let s = &mut g.samples;
        if let Some(l) = &r.latency {
            s.p50.push(l.p50_us);
            s.p90.push(l.p90_us);
            s.p99.push(l.p99_us);
            s.mean.push(l.mean_us);
        }
        if r.mode == "load" {
            s.rps.push(r.req_per_s);
        }
        if let Some(w) = &r.watched {
            s.cpu.extend(w.cpu_us_per_call);
            s.rss.push(w.rss_kib_after as f64);
            s.rss_before.push(w.rss_kib_before as f64);
            s.per_session.extend(w.kib_per_session);
        }
        s.rss.extend(r.rss_kib.map(|v| v as f64));
        s.load.extend(r.load_average);
        if r.mode == "startup" {
            s.startup.extend(r.samples_ms.iter().copied());
            if r.samples_ms.is_empty() {
                s.startup.extend(r.median_ms);
            }
        }
    }
    for g in groups.values_mut() {
        let s = &g.samples;
        g.p50_us = median(&s.p50);
        g.p90_us = median(&s.p90);
        g.p99_us = median(&s.p99);
        g.mean_us = median(&s.mean);
        g.req_per_s = median(&s.rps);
        g.cpu_us_per_call = median(&s.cpu);
        g.rss_kib = median(&s.rss);
        g.rss_kib_before = median(&s.rss_before);
        g.kib_per_session = median(&s.per_session);
        g.startup_ms = median(&s.startup);
        g.load_average = median(&s.load);
        if g.sessions_opened == usize::MAX {
            g.sessions_opened = 0;
        }
    }
    let snapshot = groups.clone();
    for g in groups.values_mut() {
        let Some(reference) = &g.reference else {
            continue;
        };
        let key = (
            g.section.clone(),
            reference.clone(),
            g.version.clone(),
            g.sessions,
            g.payload_bytes,
        );
        match snapshot.get(&key) {
            Some(r) => {
                g.p50_added_us = g.p50_us.zip(r.p50_us).map(|(a, b)| a - b);
                g.p50_ratio = g.p50_us.zip(r.p50_us).map(|(a, b)| a / b);
                g.req_per_s_ratio = g.req_per_s.zip(r.req_per_s).map(|(a, b)| a / b);
            }
            None => warnings.push(format!(
                "{}/{}: reference row {reference:?} has no run with version {}, {} sessions, {} bytes",
                g.section, g.row, g.version, g.sessions, g.payload_bytes
            )),
        }
    }
    let out = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect();
    (out, warnings)
}

fn ms(us: Option<f64>) -> String {
    us.map_or_else(|| "—".into(), |v| format!("{:.3}", v / 1e3))
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(
        || "—".into(),
        |v| {
            let n = v.round() as u64;
            let s = n.to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        },
    )
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(String::new, |r| format!(" ({r:.2}×)"))
}

fn payload(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or_else(|| "—".into(), |k| format!("{:.1}", k / 1024.0))
}

/// The Markdown tables.
pub(crate) fn markdown(groups: &[Group]) -> String {
    let mut out = String::new();
    let mut sections: Vec<&str> = Vec::new();
    for g in groups {
        if !sections.contains(&g.section.as_str()) {
            sections.push(&g.section);
        }
    }
    for section in sections {
        let rows: Vec<&Group> = groups.iter().filter(|g| g.section == section).collect();
        out.push_str(&format!("### {section}\n\n"));
        let load: Vec<&Group> = rows.iter().copied().filter(|g| g.mode == "load").collect();
        if !load.is_empty() {
            overview(&mut out, &load);
            detail(&mut out, &load);
        }
        let idle: Vec<&Group> = rows.iter().copied().filter(|g| g.mode == "idle").collect();
        if !idle.is_empty() {
            out.push_str("| what | sessions open | RSS before (MiB) | RSS after (MiB) | KiB per session | repeats |\n|---|---|---|---|---|---|\n");
            for g in idle {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    g.title,
                    g.sessions_opened,
                    mib(g.rss_kib_before),
                    mib(g.rss_kib),
                    g.kib_per_session
                        .map_or_else(|| "—".into(), |k| format!("{k:.1}")),
                    g.repeats
                ));
            }
            out.push('\n');
        }
        let other: Vec<&Group> = rows
            .iter()
            .copied()
            .filter(|g| g.mode == "startup" || g.mode == "rss")
            .collect();
        if !other.is_empty() {
            out.push_str("| what | value | runs |\n|---|---|---|\n");
            for g in other {
                let value = match g.startup_ms {
                    Some(v) => format!("{v:.1} ms (median of {} starts)", g.samples.startup.len()),
                    None => format!("{} MiB RSS", mib(g.rss_kib)),
                };
                out.push_str(&format!("| {} | {value} | {} |\n", g.title, g.repeats));
            }
            out.push('\n');
        }
    }
    out
}

/// One line per path; one column per (sessions, payload) cell.
fn overview(out: &mut String, load: &[&Group]) {
    let mut cells: Vec<(usize, usize)> = Vec::new();
    let mut paths: Vec<(&str, &str)> = Vec::new();
    for g in load {
        if !cells.contains(&(g.sessions, g.payload_bytes)) {
            cells.push((g.sessions, g.payload_bytes));
        }
        if !paths.contains(&(g.row.as_str(), g.version.as_str())) {
            paths.push((&g.row, &g.version));
        }
    }
    let latency_view = load.iter().any(|g| g.view.as_deref() == Some("latency"));
    out.push_str("| path | client version |");
    for (s, p) in &cells {
        let what = if latency_view {
            "p50 / p99 ms"
        } else if *s == 1 {
            "p50 ms"
        } else {
            "req/s"
        };
        let sessions = if *s == 1 {
            "1 session".to_owned()
        } else {
            format!("{s} sessions")
        };
        out.push_str(&format!(" {sessions}, {}: {what} |", payload(*p)));
    }
    out.push_str(" gateway CPU µs/call |\n|---|---|");
    out.push_str(&"---|".repeat(cells.len() + 1));
    out.push('\n');
    for (row, version) in paths {
        let of = |c: &(usize, usize)| {
            load.iter().find(|g| {
                g.row == row && g.version == version && (g.sessions, g.payload_bytes) == *c
            })
        };
        let title = load
            .iter()
            .find(|g| g.row == row)
            .map_or(row, |g| g.title.as_str());
        out.push_str(&format!("| {title} | {version} |"));
        let mut cpu = Vec::new();
        for c in &cells {
            let text = match of(c) {
                None => "—".into(),
                Some(g) if latency_view => format!("{} / {}", ms(g.p50_us), ms(g.p99_us)),
                Some(g) if c.0 == 1 => format!("{}{}", ms(g.p50_us), ratio(g.p50_ratio)),
                Some(g) => format!("{}{}", num(g.req_per_s), ratio(g.req_per_s_ratio)),
            };
            if let Some(v) = of(c).and_then(|g| g.cpu_us_per_call) {
                cpu.push(format!("{v:.0}"));
            }
            out.push_str(&format!(" {text} |"));
        }
        let cpu = if cpu.is_empty() {
            "—".to_owned()
        } else {
            cpu.join(" / ")
        };
        out.push_str(&format!(" {cpu} |\n"));
    }
    out.push('\n');
}

/// Every measured cell.
fn detail(out: &mut String, load: &[&Group]) {
    out.push_str("<details><summary>every cell</summary>\n\n");
    out.push_str("| path | client version | sessions | payload | p50 ms | p90 ms | p99 ms | mean ms | req/s | errors | gateway CPU µs/call | gateway RSS MiB | p50 added vs ref (ms) | req/s vs ref | repeats | load average |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut sorted: Vec<&&Group> = load.iter().collect();
    sorted.sort_by_key(|g| (g.payload_bytes, g.sessions));
    for g in sorted {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            g.title,
            g.version,
            g.sessions,
            payload(g.payload_bytes),
            ms(g.p50_us),
            ms(g.p90_us),
            ms(g.p99_us),
            ms(g.mean_us),
            num(g.req_per_s),
            g.errors,
            g.cpu_us_per_call
                .map_or_else(|| "—".into(), |v| format!("{v:.1}")),
            mib(g.rss_kib),
            g.p50_added_us
                .map_or_else(String::new, |v| format!("{:+.3}", v / 1e3)),
            g.req_per_s_ratio
                .map_or_else(String::new, |v| format!("{v:.2}×")),
            g.repeats,
            g.load_average
                .map_or_else(|| "—".into(), |v| format!("{v:.1}"))
        ));
    }
    out.push_str("\n</details>\n\n");
}

/// Reads `input`, writes the tables and the medians.
pub(crate) fn summarize(args: &crate::cli::SummarizeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let (groups, warnings) = aggregate(&text);
    for w in &warnings {
        eprintln!("mcp-bench summarize: {w}");
    }
    let md = markdown(&groups);
    match &args.markdown {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{md}"),
    }
    if let Some(p) = &args.json_out {
        let body = serde_json::json!({"groups": groups, "warnings": warnings});
        std::fs::write(p, serde_json::to_string_pretty(&body)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(row: &str, reference: Option<&str>, sessions: usize, p50: f64, rps: f64) -> String {
        let mut labels = serde_json::json!({"section": "main", "row": row, "title": row});
        if let Some(r) = reference {
            labels["ref"] = r.into();
        }
        serde_json::json!({
            "mode": "load", "protocol_version": "2025-03-26", "sessions": sessions,
            "sessions_opened": sessions, "payload_bytes": 2, "calls": 100, "errors": 0,
            "req_per_s": rps,
            "latency": {"p50_us": p50, "p90_us": p50, "p99_us": p50, "mean_us": p50},
            "watched": {"cpu_us_per_call": 50.0, "rss_kib_before": 1024, "rss_kib_after": 2048},
            "labels": labels,
        })
        .to_string()
    }

    #[test]
    fn medians_over_repeats_and_ratios_against_the_reference() {
        let lines = [
            load("direct", None, 1, 400.0, 2000.0),
            load("direct", None, 1, 500.0, 1800.0),
            load("direct", None, 1, 450.0, 1900.0),
            load("proxy", Some("direct"), 1, 900.0, 1000.0),
            load("proxy", Some("direct"), 1, 550.0, 1500.0),
            load("proxy", Some("direct"), 1, 600.0, 1400.0),
            load("proxy", Some("direct"), 32, 600.0, 1400.0),
            "not json".into(),
        ]
        .join("\n");
        let (groups, warnings) = aggregate(&lines);
        assert_eq!(groups.len(), 3);
        let proxy = &groups[1];
        assert_eq!(proxy.repeats, 3);
        assert_eq!(proxy.p50_us, Some(600.0));
        assert_eq!(proxy.req_per_s, Some(1400.0));
        assert_eq!(proxy.p50_added_us, Some(150.0));
        assert!((proxy.req_per_s_ratio.unwrap() - 1400.0 / 1900.0).abs() < 1e-9);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("line 8"), "{warnings:?}");
        assert!(warnings[1].contains("no run with version"), "{warnings:?}");
        let md = markdown(&groups);
        assert!(
            md.contains("| proxy | 2025-03-26 | 0.600 (1.33×) | 1,400 |"),
            "{md}"
        );
        assert!(
            md.contains("| 1 session, 2 B: p50 ms | 32 sessions, 2 B: req/s |"),
            "{md}"
        );
    }

    #[test]
    fn idle_startup_and_rss_records() {
        let lines = [
            r#"{"mode":"idle","sessions":1000,"sessions_opened":1000,"watched":{"rss_kib_before":10240,"rss_kib_after":20480,"kib_per_session":10.24},"labels":{"section":"memory","row":"idle-sse","title":"1,000 idle SSE sessions"}}"#,
            r#"{"mode":"startup","samples_ms":[5.0,7.0,6.0],"median_ms":6.0,"labels":{"section":"memory","row":"startup","title":"startup to /healthz"}}"#,
            r#"{"mode":"rss","rss_kib":12288,"labels":{"section":"memory","row":"rss10","title":"idle, 10 upstreams"}}"#,
        ]
        .join("\n");
        let (groups, warnings) = aggregate(&lines);
        assert!(warnings.is_empty(), "{warnings:?}");
        let md = markdown(&groups);
        assert!(
            md.contains("| 1,000 idle SSE sessions | 1000 | 10.0 | 20.0 | 10.2 | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("| startup to /healthz | 6.0 ms (median of 3 starts) | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("| idle, 10 upstreams | 12.0 MiB RSS | 1 |"),
            "{md}"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(num(Some(1234567.4)), "1,234,567");
        assert_eq!(num(Some(999.0)), "999");
        assert_eq!(num(None), "—");
    }
}
