//! Runs the official conformance suite (`@modelcontextprotocol/conformance`, server
//! scenarios, `--suite all`) against a URL and reads its verdicts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::tools;

/// Runs the suite against `url`; returns each scenario's verdict (`true` = passed).
pub async fn conformance(url: &str, out: &Path) -> (BTreeMap<String, bool>, String) {
    let root = tools::workspace_root();
    let cli = root.join(".tools/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        cli.exists(),
        "conformance suite missing: run scripts/install-test-deps.sh"
    );
    let (verdicts, summary) = run(&cli, &["--suite", "all"], url, out).await;
    assert!(verdicts.len() >= 30, "too few scenarios parsed:\n{summary}");
    (verdicts, summary)
}

/// Runs the suite's `cli` (`server --url URL ARGS… -o OUT`) and reads the verdict of each
/// scenario in its summary (`✓ name: …` / `✗ name: …` lines), and the summary itself.
pub async fn run(
    cli: &Path,
    args: &[&str],
    url: &str,
    out: &Path,
) -> (BTreeMap<String, bool>, String) {
    let mut cmd = tokio::process::Command::new(tools::node22());
    cmd.arg(cli)
        .args(["server", "--url", url])
        .args(args)
        .arg("-o")
        .arg(out)
        .current_dir(out)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("the conformance suite finished in time")
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let summary = text
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in the suite's output:\n{text}"))
        .to_owned();
    let mut verdicts = BTreeMap::new();
    for line in summary.lines() {
        let (passed, rest) = if let Some(r) = line.strip_prefix("✓ ") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("✗ ") {
            (false, r)
        } else {
            continue;
        };
        if let Some((name, _)) = rest.split_once(':') {
            verdicts.insert(name.trim().to_owned(), passed);
        }
    }
    (verdicts, summary)
}
