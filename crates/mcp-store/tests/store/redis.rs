//! Behaviour only the Redis back-end has: sharing between replicas, prefixes, the key
//! layout, outages and corrupt values.

use std::time::Duration;

use fred::prelude::{KeysInterface, SetsInterface};
use futures_util::StreamExt;
use mcp_store::{Error, RedisConfig, RedisStore, Store, StoreEvent, WatchStream};
use mcp_test_support::assert_eventually;
use mcp_test_support::redis::RedisServer;
use mcp_types::{ConnectionState, McpStatus};

use crate::support::{
    assert_not_found, expect_deleted, expect_group_deleted, expect_group_put, expect_put, group,
    http_def, raw_client, redis_config, redis_store, two_replicas, version,
};

/// Upper bound for "fails fast": far above the 2 s command timeout, far below a hang.
const FAIL_FAST_BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn two_stores_on_one_server_see_each_others_changes() {
    let (_server, a, b) = two_replicas("shared:").await;
    let mut feed_a = a.watch();
    let mut feed_b = b.watch();

    let created = a.create(http_def("fs", "from a")).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(1), expect_put(&mut feed_b, "fs"))
        .await
        .expect("b sees a's create within a second");
    assert_eq!(seen, created);
    assert_eq!(b.get("fs").await.unwrap(), Some(created));

    let updated = b.update(http_def("fs", "from b")).await.unwrap();
    // a sees its own create first, then b's update.
    expect_put(&mut feed_a, "fs").await;
    let seen = tokio::time::timeout(Duration::from_secs(1), expect_put(&mut feed_a, "fs"))
        .await
        .expect("a sees b's update within a second");
    assert_eq!(seen.description.as_deref(), Some("from b"));
    assert_eq!(seen, updated);

    a.delete("fs").await.unwrap();
    expect_put(&mut feed_b, "fs").await; // b's own update
    tokio::time::timeout(Duration::from_secs(1), expect_deleted(&mut feed_b, "fs"))
        .await
        .expect("b sees a's delete within a second");
    assert!(b.get("fs").await.unwrap().is_none());
}

#[tokio::test]
async fn concurrent_creates_of_one_name_let_exactly_one_win() {
    let (_server, a, b) = two_replicas("race:").await;
    let attempts = (0..8).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        store.create(http_def("one", &format!("attempt {i}")))
    });
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(Error::is_already_exists)
    );
    assert_eq!(a.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_prefix_isolates_stores_and_keys_follow_the_documented_layout() {
    let server = RedisServer::start().await;
    let blue = redis_store(&server, "blue:").await;
    let green = redis_store(&server, "green:").await;
    let mut green_feed = green.watch();

    blue.create(http_def("fs", "blue")).await.unwrap();
    blue.save_status("fs", &McpStatus::default()).await.unwrap();
    assert!(green.get("fs").await.unwrap().is_none());
    assert!(green.list().await.unwrap().is_empty());
    assert!(green.load_status("fs").await.unwrap().is_none());
    assert_not_found(green.delete("fs").await);

    // Green's feed never carried blue's change: its first change is its own create.
    green.create(http_def("fs", "green")).await.unwrap();
    let seen = expect_put(&mut green_feed, "fs").await;
    assert_eq!(seen.description.as_deref(), Some("green"));
    assert_eq!(
        blue.get("fs")
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("blue")
    );

    let raw = raw_client(&server).await;
    let text: String = raw.get("blue:mcps:fs").await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["name"], "fs");
    assert_eq!(json["description"], "blue");
    assert!(
        raw.sismember::<bool, _, _>("blue:index", "fs")
            .await
            .unwrap()
    );
    assert!(raw.exists::<bool, _>("blue:status:fs").await.unwrap());
    assert!(!raw.exists::<bool, _>("green:status:fs").await.unwrap());
    let version: String = raw.get("blue:version").await.unwrap();
    assert_eq!(
        version.parse::<u64>().ok(),
        json["version"].as_u64(),
        "the counter holds the version of the latest write"
    );
}

#[tokio::test]
async fn versions_keep_growing_after_redis_lost_its_counter() {
    let server = RedisServer::start().await;
    let store = redis_store(&server, "v:").await;
    let raw = raw_client(&server).await;
    let first = version(store.create(http_def("a", "v1")).await);
    // A counter far ahead of the clock (a clock stepped back): writes go on from it.
    raw.set::<(), _, _>(
        "v:version",
        (first + 1_000_000_000).to_string(),
        None,
        None,
        false,
    )
    .await
    .unwrap();
    let ahead = version(store.update(http_def("a", "v2")).await);
    assert_eq!(ahead, first + 1_000_000_001);
    // The counter lost (a restart without persistence): versions go on from the server's
    // clock, past every version the clock gave before. (Only a clock stepped back and a
    // lost counter together could repeat a version.)
    raw.del::<(), _>("v:version").await.unwrap();
    let after = version(store.update(http_def("a", "v3")).await);
    assert!(first < after, "{first} < {after}");
    let deleted = store.delete_if("a", None).await.unwrap();
    assert!(after < deleted, "{after} < {deleted}");
}

#[tokio::test]
async fn corrupt_values_are_reported_and_do_not_break_the_listing() {
    let server = RedisServer::start().await;
    let store = redis_store(&server, "c:").await;
    store.create(http_def("good", "x")).await.unwrap();
    let raw = raw_client(&server).await;
    let _: () = raw
        .set("c:mcps:bad", "{not json", None, None, false)
        .await
        .unwrap();
    let _: () = raw.sadd("c:index", "bad").await.unwrap();
    let _: () = raw
        .set("c:status:good", "[1,2", None, None, false)
        .await
        .unwrap();

    let err = store.get("bad").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { name, .. } if name == "c:mcps:bad"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(r#"stored value "c:mcps:bad" is corrupt: "#),
        "{err}"
    );
    assert!(!err.is_retryable());

    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(
        names,
        ["good"],
        "the corrupt entry is skipped, the good one kept"
    );

    let err = store.load_status("good").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { name, .. } if name == "c:status:good"),
        "{err}"
    );

    // An update repairs a corrupt definition.
    let repaired = store.update(http_def("bad", "fixed")).await.unwrap();
    assert_eq!(store.get("bad").await.unwrap(), Some(repaired));
}

#[tokio::test]
async fn connect_to_a_dead_port_is_unavailable_quickly() {
    let mut server = RedisServer::start().await;
    let config = RedisConfig {
        connect_timeout: Duration::from_secs(1),
        ..redis_config(&server, "dead:")
    };
    server.stop().await;
    let outcome = tokio::time::timeout(FAIL_FAST_BOUND, RedisStore::connect(config))
        .await
        .expect("connect gave up in time");
    let err = outcome.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().starts_with("redis unavailable: connect "),
        "{err}"
    );
}

#[tokio::test]
async fn open_without_redis_fails_fast_until_it_starts_then_connects_and_asks_for_a_resync() {
    let mut server = RedisServer::not_started();
    let store = tokio::time::timeout(
        FAIL_FAST_BOUND,
        RedisStore::open(redis_config(&server, "late:")),
    )
    .await
    .expect("open returns without redis")
    .expect("open accepts an unreachable server");
    let mut feed = store.watch();
    for (op, err) in [
        ("list", bounded(store.list()).await.err()),
        (
            "create",
            bounded(store.create(http_def("early", "x"))).await.err(),
        ),
        ("ping", bounded(store.ping()).await.err()),
    ] {
        let err = err.unwrap_or_else(|| panic!("{op} succeeded with no redis"));
        assert!(err.is_retryable(), "{op}: {err}");
        assert!(
            err.to_string()
                .starts_with("redis unavailable: not connected yet: connect redis://"),
            "{op}: {err}"
        );
    }
    server.start_again().await;
    expect_resync(&mut feed).await;
    store.ping().await.unwrap();
    store.create(http_def("late", "x")).await.unwrap();
    expect_put(&mut feed, "late").await;
    let other = redis_store(&server, "late:").await;
    other.create(http_def("from-other", "x")).await.unwrap();
    expect_put(&mut feed, "from-other").await;
    assert_eq!(store.list().await.unwrap().len(), 2);
}

#[tokio::test]
async fn open_rejects_a_bad_url_at_once() {
    let err = RedisStore::open(RedisConfig::new("not a url"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn an_outage_fails_fast_then_everything_recovers_and_watchers_resync() {
    let mut server = RedisServer::start().await;
    let store = redis_store(&server, "outage:").await;
    let other = redis_store(&server, "outage:").await;
    store.create(http_def("before", "x")).await.unwrap();
    let mut feed = store.watch();
    expect_put(&mut feed, "before").await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), feed.next()).await;
    assert!(quiet.is_err(), "nothing else before the outage: {quiet:?}");

    server.stop().await;
    let status = McpStatus {
        state: ConnectionState::Connected,
        ..McpStatus::default()
    };
    let checks = [
        ("get", bounded(store.get("before")).await.err()),
        ("list", bounded(store.list()).await.err()),
        (
            "create",
            bounded(store.create(http_def("new", "x"))).await.err(),
        ),
        (
            "update",
            bounded(store.update(http_def("before", "y"))).await.err(),
        ),
        ("delete", bounded(store.delete("before")).await.err()),
        (
            "save_status",
            bounded(store.save_status("before", &status)).await.err(),
        ),
        (
            "load_status",
            bounded(store.load_status("before")).await.err(),
        ),
        ("ping", bounded(store.ping()).await.err()),
    ];
    for (op, err) in checks {
        let err = err.unwrap_or_else(|| panic!("{op} succeeded with redis stopped"));
        assert!(err.is_retryable(), "{op}: {err}");
        assert!(
            err.to_string().starts_with("redis unavailable: "),
            "{op}: {err}"
        );
    }

    // The restarted server is empty (no persistence); the client reconnects by itself.
    server.start_again().await;
    expect_resync(&mut feed).await;
    assert_eventually!(store.ping().await.is_ok());
    assert_eventually!(other.ping().await.is_ok());
    store.create(http_def("after", "x")).await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 1);

    // The re-established subscription delivers both our own and the other replica's writes.
    expect_put(&mut feed, "after").await;
    other.create(http_def("from-other", "x")).await.unwrap();
    expect_put(&mut feed, "from-other").await;
    store.delete("after").await.unwrap();
    expect_deleted(&mut feed, "after").await;
}

/// Runs a store call with the fail-fast bound; a hang fails the test.
async fn bounded<T>(call: impl Future<Output = mcp_store::Result<T>>) -> mcp_store::Result<T> {
    tokio::time::timeout(FAIL_FAST_BOUND, call)
        .await
        .expect("store call returned within the fail-fast bound instead of hanging")
}

/// Waits for a `Resync` (anything before it is allowed: it was in flight before the outage).
async fn expect_resync(feed: &mut WatchStream) {
    let wait = async {
        loop {
            match feed.next().await {
                Some(StoreEvent::Resync) => return,
                Some(_) => continue,
                None => panic!("watch feed ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .expect("resync after redis came back");
}

#[tokio::test]
async fn a_frozen_server_times_out_instead_of_hanging_and_recovers_when_thawed() {
    let server = RedisServer::start().await;
    let config = RedisConfig {
        command_timeout: Duration::from_millis(500),
        ..redis_config(&server, "frozen:")
    };
    let store = RedisStore::connect(config).await.unwrap();
    store.create(http_def("fs", "x")).await.unwrap();

    server.freeze().await;
    let err = bounded(store.get("fs")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let err = bounded(store.update(http_def("fs", "y")))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");

    server.thaw().await;
    assert_eventually!(matches!(store.get("fs").await, Ok(Some(_))));
    store.update(http_def("fs", "z")).await.unwrap();
    let stored = store.get("fs").await.unwrap().unwrap();
    assert_eq!(stored.description.as_deref(), Some("z"));
}

#[tokio::test]
async fn replicas_see_each_others_groups_under_the_documented_keys() {
    let (server, a, b) = two_replicas("shared:").await;
    let mut feed_b = b.watch();
    let created = a.create_group(group("team", "from a")).await.unwrap();
    let seen = tokio::time::timeout(
        Duration::from_secs(1),
        expect_group_put(&mut feed_b, "team"),
    )
    .await
    .expect("b sees a's group within a second");
    assert_eq!(seen, created);
    assert_eq!(b.get_group("team").await.unwrap(), Some(created));

    let raw = raw_client(&server).await;
    let text: String = raw.get("shared:groups:team").await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["name"], "team");
    assert_eq!(json["members"], serde_json::json!(["alpha", "beta"]));
    assert!(
        raw.sismember::<bool, _, _>("shared:group_index", "team")
            .await
            .unwrap()
    );
    assert!(
        !raw.sismember::<bool, _, _>("shared:index", "team")
            .await
            .unwrap(),
        "the definitions' index holds no group"
    );
    let version: String = raw.get("shared:version").await.unwrap();
    assert_eq!(version.parse::<u64>().ok(), json["version"].as_u64());

    let updated = b.update_group(group("team", "from b")).await.unwrap();
    expect_group_put(&mut feed_b, "team").await;
    let version = a.delete_group_if("team", updated.version).await.unwrap();
    let deleted = tokio::time::timeout(
        Duration::from_secs(1),
        expect_group_deleted(&mut feed_b, "team"),
    )
    .await
    .expect("b sees a's delete within a second");
    assert_eq!(deleted, Some(version));
    assert!(!raw.exists::<bool, _>("shared:groups:team").await.unwrap());
}

#[tokio::test]
async fn a_definition_and_a_group_racing_for_one_name_on_two_replicas_let_one_win() {
    let (_server, a, b) = two_replicas("race:").await;
    for round in 0..4 {
        let name = format!("n{round}");
        let (def, grp) = tokio::join!(
            a.create(http_def(&name, "upstream")),
            b.create_group(group(&name, "group")),
        );
        match (&def, &grp) {
            (Ok(_), Err(err)) | (Err(err), Ok(_)) => {
                assert!(matches!(err, Error::NameTaken { .. }), "{err}");
            }
            other => panic!("exactly one must win: {other:?}"),
        }
        let stored = (
            a.get(&name).await.unwrap().is_some(),
            a.get_group(&name).await.unwrap().is_some(),
        );
        assert!(
            stored == (true, false) || stored == (false, true),
            "{stored:?}"
        );
    }
}

#[tokio::test]
async fn a_corrupt_group_is_reported_and_does_not_break_the_listing() {
    let server = RedisServer::start().await;
    let store = redis_store(&server, "cg:").await;
    store.create_group(group("good", "x")).await.unwrap();
    let raw = raw_client(&server).await;
    let _: () = raw
        .set(
            "cg:groups:bad",
            r#"{"name":"bad","colour":1}"#,
            None,
            None,
            false,
        )
        .await
        .unwrap();
    let _: () = raw.sadd("cg:group_index", "bad").await.unwrap();
    let err = store.get_group("bad").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { name, .. } if name == "cg:groups:bad"),
        "{err}"
    );
    let names: Vec<String> = store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["good"]);
    // an update repairs it
    let repaired = store.update_group(group("bad", "fixed")).await.unwrap();
    assert_eq!(store.get_group("bad").await.unwrap(), Some(repaired));
}
