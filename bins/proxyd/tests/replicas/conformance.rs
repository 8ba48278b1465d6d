//! The official 2025-11-25 conformance suite (`--suite all`) through nginx round robin
//! over three replicas, in front of our conformance fixture registered twice: `shared`
//! (a session that lands on another replica is resumed there, on that replica's own
//! upstream) and `per-client` (its stdio process lives on the replica that opened the
//! session; the others forward to it). Every scenario must pass, as it does against one
//! proxyd. In the shared run, the client's answers to server→client requests (sampling,
//! elicitation) that land on another replica than the one that asked are forwarded to it.

use mcp_test_support::conformance::{self, suite};
use mcp_types::SessionMode;

use super::*;

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
        assert!(
            failed.is_empty(),
            "failed scenarios through the replicas ({name}): {failed:?}\n{summary}"
        );
        assert_eq!(verdicts.len(), 32, "{name}: {summary}");
        let (resumes, forwards) = counts(&cluster);
        spread.push((
            name,
            delta(&resumes, &resumes_before),
            delta(&forwards, &forwards_before),
        ));
    }
    let [
        (_, shared_resumes, shared_forwards),
        (_, client_resumes, client_forwards),
    ] = &spread[..]
    else {
        unreachable!()
    };
    // Shared: sessions went on on replicas that did not open them, on at least two of
    // them (round robin cannot land everything on one).
    assert!(
        shared_resumes.iter().filter(|n| **n >= 1).count() >= 2,
        "resumes per replica: {spread:?}"
    );
    // Shared: the answers to the sampling and elicitation requests of the four scenarios
    // that ask the client something cannot all land where they were asked (a session's
    // requests rotate over three replicas): some were forwarded to the replica that asked.
    assert!(
        shared_forwards.iter().sum::<usize>() >= 1,
        "forwards per replica: {spread:?}"
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
