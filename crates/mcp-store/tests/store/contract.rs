//! The contract every `Store` back-end honours, run against each of them.

use std::time::Duration;

use mcp_store::{Error, Store, StoreEvent};
use mcp_types::{ConnectionState, McpDefinition, McpStatus, Secret, Timestamp};

use crate::support::{
    assert_not_found, assert_version_mismatch, expect_deleted, expect_put, http_def, next_change,
    version,
};

contract_tests!(
    create_get_list_update_delete,
    duplicate_create_is_already_exists_and_keeps_the_original,
    update_and_delete_of_missing_are_not_found,
    timestamps_are_server_set,
    status_round_trips_and_goes_with_its_definition,
    secrets_are_stored_intact,
    watch_sees_own_writes,
    every_watch_call_gets_its_own_feed,
    missing_names_read_as_none,
    every_write_gets_a_greater_version,
    conditional_writes_check_the_version_atomically,
);

#[tokio::test]
async fn memory_answers_ping_as_memory() {
    let store = mcp_store::MemoryStore::new();
    store.ping().await.unwrap();
    assert_eq!(store.backend(), "memory");
}

#[tokio::test]
async fn redis_answers_ping_as_redis() {
    let server = mcp_test_support::redis::RedisServer::start().await;
    let store = crate::support::redis_store(&server, "contract:ping:").await;
    store.ping().await.unwrap();
    assert_eq!(store.backend(), "redis");
}

async fn create_get_list_update_delete(store: &dyn Store) {
    assert!(store.get("a").await.unwrap().is_none());
    assert!(store.list().await.unwrap().is_empty());

    for name in ["charlie", "alpha", "bravo"] {
        let stored = store.create(http_def(name, "v1")).await.unwrap();
        assert_eq!(stored.name, name);
        assert_eq!(store.get(name).await.unwrap(), Some(stored));
    }
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["alpha", "bravo", "charlie"]);

    let updated = store.update(http_def("bravo", "v2")).await.unwrap();
    assert_eq!(updated.description.as_deref(), Some("v2"));
    assert_eq!(store.get("bravo").await.unwrap(), Some(updated.clone()));
    let listed = store.list().await.unwrap();
    assert_eq!(listed[1], updated);

    store.delete("bravo").await.unwrap();
    assert!(store.get("bravo").await.unwrap().is_none());
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["alpha", "charlie"]);
}

async fn duplicate_create_is_already_exists_and_keeps_the_original(store: &dyn Store) {
    let original = store.create(http_def("dup", "first")).await.unwrap();
    let err = store.create(http_def("dup", "second")).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists(n) if n == "dup"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"definition "dup" already exists"#);
    assert!(!err.is_retryable());
    assert_eq!(store.get("dup").await.unwrap(), Some(original));
}

async fn update_and_delete_of_missing_are_not_found(store: &dyn Store) {
    let err = store.update(http_def("ghost", "x")).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.to_string(), r#"definition "ghost" not found"#);
    // An update must not create.
    assert!(store.get("ghost").await.unwrap().is_none());
    let err = store.delete("ghost").await.unwrap_err();
    assert!(matches!(&err, Error::NotFound(n) if n == "ghost"), "{err}");

    store.create(http_def("once", "x")).await.unwrap();
    store.delete("once").await.unwrap();
    assert_not_found(store.delete("once").await);
}

async fn timestamps_are_server_set(store: &dyn Store) {
    let long_ago = Timestamp::from(std::time::UNIX_EPOCH);
    let mut input = http_def("ts", "v1");
    input.created_at = Some(long_ago);
    input.updated_at = Some(long_ago);

    let created = store.create(input).await.unwrap();
    let created_at = created.created_at.expect("createdAt set");
    assert_eq!(created.updated_at, Some(created_at));
    assert!(
        created_at.elapsed() < Duration::from_secs(60),
        "{created_at}"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut change = http_def("ts", "v2");
    change.created_at = Some(long_ago);
    let updated = store.update(change).await.unwrap();
    assert_eq!(updated.created_at, Some(created_at), "createdAt kept");
    let updated_at = updated.updated_at.expect("updatedAt set");
    assert!(updated_at > created_at, "{updated_at} after {created_at}");

    let stored = store.get("ts").await.unwrap().unwrap();
    assert_eq!(stored.created_at, Some(created_at));
    assert_eq!(stored.updated_at, Some(updated_at));
}

async fn status_round_trips_and_goes_with_its_definition(store: &dyn Store) {
    store.create(http_def("st", "x")).await.unwrap();
    assert!(store.load_status("st").await.unwrap().is_none());

    let status = McpStatus {
        state: ConnectionState::Connected,
        last_error: Some("boom".into()),
        reconnect_attempts: 3,
        total_requests: 42,
        up_time: Some(Duration::from_secs(61)),
        ..McpStatus::default()
    };
    store.save_status("st", &status).await.unwrap();
    assert_eq!(store.load_status("st").await.unwrap(), Some(status.clone()));

    let newer = McpStatus {
        state: ConnectionState::Error,
        ..status
    };
    store.save_status("st", &newer).await.unwrap();
    assert_eq!(store.load_status("st").await.unwrap(), Some(newer.clone()));

    store.delete("st").await.unwrap();
    assert!(store.load_status("st").await.unwrap().is_none());

    // A status saved after the definition is gone (a late supervisor) does not haunt a
    // new definition of the same name.
    store.save_status("st", &newer).await.unwrap();
    store.create(http_def("st", "again")).await.unwrap();
    assert!(store.load_status("st").await.unwrap().is_none());
}

async fn secrets_are_stored_intact(store: &dyn Store) {
    let mut def = http_def("secret", "x");
    def.headers
        .insert("Authorization".into(), Secret::new("Bearer s3cr3t-header"));
    def.env.insert("API_KEY".into(), Secret::new("s3cr3t-env"));
    def.auth_tokens.push(Secret::new("s3cr3t-token"));
    store.create(def).await.unwrap();

    let stored = store.get("secret").await.unwrap().unwrap();
    assert_eq!(
        stored.headers["Authorization"].expose(),
        "Bearer s3cr3t-header"
    );
    assert_eq!(stored.env["API_KEY"].expose(), "s3cr3t-env");
    assert_eq!(stored.auth_tokens[0].expose(), "s3cr3t-token");
    let listed = store.list().await.unwrap();
    assert_eq!(listed[0].auth_tokens[0].expose(), "s3cr3t-token");
}

async fn watch_sees_own_writes(store: &dyn Store) {
    let mut feed = store.watch();
    let created = store.create(http_def("w", "v1")).await.unwrap();
    assert_eq!(expect_put(&mut feed, "w").await, created);

    let updated = store.update(http_def("w", "v2")).await.unwrap();
    assert_eq!(expect_put(&mut feed, "w").await, updated);

    store.delete("w").await.unwrap();
    expect_deleted(&mut feed, "w").await;

    // Failed writes publish nothing: the next change is the next successful write.
    assert!(store.delete("w").await.is_err());
    assert!(store.update(http_def("w", "v3")).await.is_err());
    store.create(http_def("z", "v1")).await.unwrap();
    expect_put(&mut feed, "z").await;
}

async fn every_watch_call_gets_its_own_feed(store: &dyn Store) {
    let mut first = store.watch();
    let mut second = store.watch();
    store.create(http_def("both", "x")).await.unwrap();
    expect_put(&mut first, "both").await;
    expect_put(&mut second, "both").await;

    // A feed opened later starts from then on, and dropping one feed leaves the other.
    drop(first);
    let mut third = store.watch();
    store.delete("both").await.unwrap();
    expect_deleted(&mut second, "both").await;
    match next_change(&mut third).await {
        StoreEvent::Deleted { name, .. } => assert_eq!(name, "both"),
        other => panic!("a new feed replayed an old change: {other:?}"),
    }
}

async fn missing_names_read_as_none(store: &dyn Store) {
    store.create(http_def("something", "x")).await.unwrap();
    let missing: Option<McpDefinition> = store.get("nothing").await.unwrap();
    assert!(missing.is_none());
    assert!(store.load_status("nothing").await.unwrap().is_none());
}

async fn every_write_gets_a_greater_version(store: &dyn Store) {
    assert_eq!(store.version().await.unwrap(), 0, "no write yet");
    let mut feed = store.watch();
    let a = store.create(http_def("a", "v1")).await.unwrap();
    let a1 = a.version.expect("a created definition has a version");
    assert_eq!(expect_put(&mut feed, "a").await.version, Some(a1));
    assert_eq!(store.get("a").await.unwrap().unwrap().version, Some(a1));
    let b = version(store.create(http_def("b", "v1")).await);
    let a2 = version(store.update(http_def("a", "v2")).await);
    assert!(a1 < b && b < a2, "{a1} < {b} < {a2}");
    assert_eq!(store.list().await.unwrap()[0].version, Some(a2));
    expect_put(&mut feed, "b").await;
    expect_put(&mut feed, "a").await;
    // A version sent in is not the store's to keep.
    let mut forged = http_def("b", "v2");
    forged.version = Some(u64::MAX);
    let b2 = version(store.update(forged).await);
    assert!(a2 < b2 && b2 < u64::MAX, "{b2}");
    expect_put(&mut feed, "b").await;
    store.delete("a").await.unwrap();
    let deleted = expect_deleted(&mut feed, "a")
        .await
        .expect("deletions carry a version");
    assert!(b2 < deleted, "{b2} < {deleted}");
    // A definition created again after a delete is newer than the delete.
    let again = version(store.create(http_def("a", "v3")).await);
    assert!(deleted < again, "{deleted} < {again}");
    assert_eq!(store.version().await.unwrap(), again, "the latest write");
}

async fn conditional_writes_check_the_version_atomically(store: &dyn Store) {
    let v1 = version(store.create(http_def("c", "v1")).await);
    let err = store
        .update_if(http_def("c", "stale"), Some(v1 - 1))
        .await
        .unwrap_err();
    match err {
        Error::VersionMismatch {
            expected, current, ..
        } => assert_eq!((expected, current), (v1 - 1, Some(v1))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .get("c")
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("v1"),
        "a refused write changes nothing"
    );
    let v2 = version(store.update_if(http_def("c", "v2"), Some(v1)).await);
    // The version the first writer read is gone: a second writer holding it loses.
    assert_version_mismatch(store.update_if(http_def("c", "lost"), Some(v1)).await);
    assert_version_mismatch(store.delete_if("c", Some(v1)).await);
    assert!(store.get("c").await.unwrap().is_some());
    let deleted = store.delete_if("c", Some(v2)).await.unwrap();
    assert!(v2 < deleted);
    assert_not_found(store.delete_if("c", Some(v2)).await);
    assert_not_found(store.update_if(http_def("c", "x"), Some(v2)).await);
}
