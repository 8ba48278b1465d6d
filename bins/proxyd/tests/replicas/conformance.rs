//! The official 2025-11-25 conformance suite (`--suite all`) through nginx round robin
//! over three replicas, in front of our conformance fixture registered twice: `shared`
//! (a session that lands on another replica is resumed there, on that replica's own
//! upstream) and `per-client` (its stdio process lives on the replica that opened the
//! session; the others forward to it). Every scenario must pass, as it does against one
//! proxyd — except, for now, the four below.

use mcp_test_support::conformance::{self, suite};
use mcp_types::SessionMode;

use super::*;

/// Known bug (issue 15): in a `shared` session, the client's answer to a server→client
/// request (sampling, elicitation) that nginx lands on another replica than the one that
/// asked is dropped there ("response to no request of ours; ignored": the id names the
/// member and the upstream's id but not the replica, and a shared link is this replica's
/// own connection), so the upstream's call times out after 30 s. Empty this list once
/// such answers are forwarded to the replica that asked.
const SHARED_KNOWN_FAILURES: [&str; 4] = [
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
    "tools-call-elicitation",
    "tools-call-sampling",
];

/// Resumes and forwards per replica, in replica order.
fn counts(cluster: &Cluster) -> (Vec<usize>, Vec<usize>) {
    (
        cluster.replicas.iter().map(resumed).collect(),
        cluster.replicas.iter().map(forwarded).collect(),
    )
}

fn delta(after: &[usize], before: &[usize]) -> Vec<usize> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_conformance_scenario_passes_through_round_robin_over_three_replicas() {
    let cluster = Cluster::start([K1, K1, K1], &[]).await;
    let mut shared = conformance::fixture_def("fx-shared");
    shared.session_mode = SessionMode::Shared;
    let per_client = conformance::fixture_def("fx-client");
    assert_eq!(per_client.session_mode, SessionMode::PerClient);
    for def in [&shared, &per_client] {
        cluster.register(serde_json::to_value(def).unwrap()).await;
    }
    let nginx = Nginx::start(&cluster.ports()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut spread = Vec::new();
    for name in ["fx-shared", "fx-client"] {
        let out = dir.path().join(name);
        std::fs::create_dir_all(&out).unwrap();
        let (resumes_before, forwards_before) = counts(&cluster);
        // `localhost`, as dns-rebinding-protection requires a localhost URL.
        let url = nginx
            .url(&format!("/{name}/mcp"))
            .replace("127.0.0.1", "localhost");
        let (verdicts, summary) = suite::conformance(&url, &out).await;
        let failed: Vec<&String> = verdicts
            .iter()
            .filter(|(_, passed)| !**passed)
            .map(|(scenario, _)| scenario)
            .collect();
        let known: &[&str] = if name == "fx-shared" {
            &SHARED_KNOWN_FAILURES
        } else {
            &[]
        };
        let unexpected: Vec<&&String> = failed
            .iter()
            .filter(|s| !known.contains(&s.as_str()))
            .collect();
        assert!(
            unexpected.is_empty(),
            "failed scenarios through the replicas ({name}): {unexpected:?}\n{summary}"
        );
        assert_eq!(verdicts.len(), 32, "{name}: {summary}");
        eprintln!("{name}: failed (known) {failed:?}");
        let (resumes, forwards) = counts(&cluster);
        spread.push((
            name,
            delta(&resumes, &resumes_before),
            delta(&forwards, &forwards_before),
        ));
    }
    let [(_, shared_resumes, _), (_, client_resumes, client_forwards)] = &spread[..] else {
        unreachable!()
    };
    // Shared: sessions went on on replicas that did not open them, on at least two of
    // them (round robin cannot land everything on one).
    assert!(
        shared_resumes.iter().filter(|n| **n >= 1).count() >= 2,
        "resumes per replica: {spread:?}"
    );
    // Per-client: every session's process stayed on its owner, reached from the others.
    assert!(
        client_forwards.iter().filter(|n| **n >= 1).count() >= 2,
        "forwards per replica: {spread:?}"
    );
    assert!(
        client_resumes.iter().all(|n| *n == 0),
        "a per-client stdio session is never resumed elsewhere: {spread:?}"
    );
    for r in &cluster.replicas {
        assert_eq!(support::log_count(r, "took over"), 0, "{spread:?}");
    }
}
