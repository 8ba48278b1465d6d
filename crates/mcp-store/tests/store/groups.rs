//! The contract of groups, run against every back-end: stored beside definitions, in one
//! namespace with them, on the same change feed and the same versions.

use std::time::Duration;

use mcp_store::{Error, Kind, Store};
use mcp_types::{PrefixMode, Secret, Timestamp, ToolOverride};

use crate::support::{
    assert_not_found, assert_version_mismatch, expect_deleted, expect_group_deleted,
    expect_group_put, expect_put, group, http_def, next_change, version,
};

contract_tests!(
    groups_are_created_read_listed_updated_and_deleted,
    a_duplicate_group_is_refused_and_missing_groups_are_not_found,
    groups_and_definitions_share_one_namespace,
    group_writes_share_the_versions_of_definitions,
    conditional_group_writes_check_the_version,
    the_feed_carries_group_changes_and_nothing_for_failed_writes,
    a_group_is_stored_whole_secrets_included,
);

async fn names(store: &dyn Store) -> Vec<String> {
    store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect()
}

async fn groups_are_created_read_listed_updated_and_deleted(store: &dyn Store) {
    assert!(store.get_group("a").await.unwrap().is_none());
    assert!(store.list_groups().await.unwrap().is_empty());
    let long_ago = Timestamp::from(std::time::UNIX_EPOCH);
    for name in ["charlie", "alpha-team", "bravo"] {
        let mut input = group(name, "v1");
        input.created_at = Some(long_ago);
        let stored = store.create_group(input).await.unwrap();
        let created = stored.created_at.expect("createdAt set by the store");
        assert!(created.elapsed() < Duration::from_secs(60), "{created}");
        assert_eq!(stored.updated_at, Some(created));
        assert_eq!(store.get_group(name).await.unwrap(), Some(stored));
    }
    assert_eq!(names(store).await, ["alpha-team", "bravo", "charlie"]);
    assert!(
        store.list().await.unwrap().is_empty(),
        "groups are not definitions"
    );

    let before = store.get_group("bravo").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut change = group("bravo", "v2");
    change.prefix = PrefixMode::Never;
    change.created_at = Some(long_ago);
    let updated = store.update_group(change).await.unwrap();
    assert_eq!(updated.description.as_deref(), Some("v2"));
    assert_eq!(updated.prefix, PrefixMode::Never);
    assert_eq!(updated.created_at, before.created_at, "createdAt kept");
    assert!(updated.updated_at > before.updated_at);
    assert_eq!(
        store.get_group("bravo").await.unwrap(),
        Some(updated.clone())
    );
    assert_eq!(store.list_groups().await.unwrap()[1], updated);

    store.delete_group("bravo").await.unwrap();
    assert!(store.get_group("bravo").await.unwrap().is_none());
    assert_eq!(names(store).await, ["alpha-team", "charlie"]);
}

async fn a_duplicate_group_is_refused_and_missing_groups_are_not_found(store: &dyn Store) {
    let original = store.create_group(group("dup", "first")).await.unwrap();
    let err = store
        .create_group(group("dup", "second"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::GroupAlreadyExists(n) if n == "dup"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"group "dup" already exists"#);
    assert!(err.is_already_exists() && !err.is_retryable());
    assert_eq!(store.get_group("dup").await.unwrap(), Some(original));

    let err = store.update_group(group("ghost", "x")).await.unwrap_err();
    assert!(
        matches!(&err, Error::GroupNotFound(n) if n == "ghost"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"group "ghost" not found"#);
    assert!(err.is_not_found());
    assert!(
        store.get_group("ghost").await.unwrap().is_none(),
        "an update must not create"
    );
    assert_not_found(store.delete_group("ghost").await);
    store.delete_group("dup").await.unwrap();
    assert_not_found(store.delete_group("dup").await);
}

async fn groups_and_definitions_share_one_namespace(store: &dyn Store) {
    let mut feed = store.watch();
    let def = store.create(http_def("fs", "upstream")).await.unwrap();
    expect_put(&mut feed, "fs").await;
    let err = store.create_group(group("fs", "clash")).await.unwrap_err();
    match &err {
        Error::NameTaken {
            name,
            wanted,
            taken,
        } => {
            assert_eq!(
                (name.as_str(), *wanted, *taken),
                ("fs", Kind::Group, Kind::Definition)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_already_exists(), "{err}");
    assert!(
        store.get_group("fs").await.unwrap().is_none(),
        "nothing written"
    );
    assert!(names(store).await.is_empty());
    assert_eq!(store.get("fs").await.unwrap(), Some(def));

    store.create_group(group("team", "g")).await.unwrap();
    let err = store.create(http_def("team", "clash")).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NameTaken {
                wanted: Kind::Definition,
                taken: Kind::Group,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        store.get("team").await.unwrap().is_none(),
        "nothing written"
    );
    // The refused creates published nothing: the next change is the group's creation.
    expect_group_put(&mut feed, "team").await;

    // A name freed by one kind can be taken by the other.
    store.delete_group("team").await.unwrap();
    expect_group_deleted(&mut feed, "team").await;
    store
        .create(http_def("team", "now an upstream"))
        .await
        .unwrap();
    expect_put(&mut feed, "team").await;
    store.delete("fs").await.unwrap();
    expect_deleted(&mut feed, "fs").await;
    store
        .create_group(group("fs", "now a group"))
        .await
        .unwrap();
    expect_group_put(&mut feed, "fs").await;
}

async fn group_writes_share_the_versions_of_definitions(store: &dyn Store) {
    assert_eq!(store.version().await.unwrap(), 0, "no write yet");
    let d1 = version(store.create(http_def("a", "v1")).await);
    let g1 = version(store.create_group(group("g", "v1")).await);
    let d2 = version(store.update(http_def("a", "v2")).await);
    let mut forged = group("g", "v2");
    forged.version = Some(u64::MAX);
    let g2 = version(store.update_group(forged).await);
    assert!(
        d1 < g1 && g1 < d2 && d2 < g2 && g2 < u64::MAX,
        "{d1} {g1} {d2} {g2}"
    );
    assert_eq!(
        store.get_group("g").await.unwrap().unwrap().version,
        Some(g2)
    );
    assert_eq!(store.list_groups().await.unwrap()[0].version, Some(g2));
    assert_eq!(store.version().await.unwrap(), g2, "the latest write");
    let deleted = store.delete_group_if("g", None).await.unwrap();
    assert!(g2 < deleted);
    let again = version(store.create_group(group("g", "v3")).await);
    assert!(deleted < again);
    assert_eq!(store.version().await.unwrap(), again);
}

async fn conditional_group_writes_check_the_version(store: &dyn Store) {
    let v1 = version(store.create_group(group("c", "v1")).await);
    let err = store
        .update_group_if(group("c", "stale"), Some(v1 - 1))
        .await
        .unwrap_err();
    match &err {
        Error::VersionMismatch {
            kind,
            name,
            expected,
            current,
        } => {
            assert_eq!(
                (*kind, name.as_str(), *expected, *current),
                (Kind::Group, "c", v1 - 1, Some(v1))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().starts_with(r#"group "c" is at version "#),
        "{err}"
    );
    let stored = store.get_group("c").await.unwrap().unwrap();
    assert_eq!(
        stored.description.as_deref(),
        Some("v1"),
        "a refused write changes nothing"
    );
    let v2 = version(store.update_group_if(group("c", "v2"), Some(v1)).await);
    assert_version_mismatch(store.update_group_if(group("c", "lost"), Some(v1)).await);
    assert_version_mismatch(store.delete_group_if("c", Some(v1)).await);
    assert!(store.get_group("c").await.unwrap().is_some());
    let deleted = store.delete_group_if("c", Some(v2)).await.unwrap();
    assert!(v2 < deleted);
    assert_not_found(store.delete_group_if("c", Some(v2)).await);
}

async fn the_feed_carries_group_changes_and_nothing_for_failed_writes(store: &dyn Store) {
    let mut feed = store.watch();
    let mut other = store.watch();
    let created = store.create_group(group("w", "v1")).await.unwrap();
    assert_eq!(expect_group_put(&mut feed, "w").await, created);
    let updated = store.update_group(group("w", "v2")).await.unwrap();
    assert_eq!(expect_group_put(&mut feed, "w").await, updated);
    let version = store.delete_group_if("w", None).await.unwrap();
    assert_eq!(expect_group_deleted(&mut feed, "w").await, Some(version));

    assert!(store.delete_group("w").await.is_err());
    assert!(store.update_group(group("w", "v3")).await.is_err());
    store
        .create(http_def("w", "an upstream now"))
        .await
        .unwrap();
    expect_put(&mut feed, "w").await;
    // every feed saw the same changes, in order
    assert_eq!(expect_group_put(&mut other, "w").await, created);
    expect_group_put(&mut other, "w").await;
    assert!(matches!(
        next_change(&mut other).await,
        mcp_store::StoreEvent::GroupDeleted { name, .. } if name == "w"
    ));
}

async fn a_group_is_stored_whole_secrets_included(store: &dyn Store) {
    let mut g = group("full", "everything set");
    g.member_tags = vec!["search".into()];
    g.prefix = PrefixMode::Always;
    g.separator = "-".into();
    g.strict_names = true;
    g.overrides.insert(
        "alpha.read".into(),
        ToolOverride {
            name: Some("read_alpha".into()),
            hidden: false,
            ..ToolOverride::default()
        },
    );
    g.auth_tokens = vec![Secret::new("s3cr3t-group-token")];
    g.require_auth = true;
    g.allowed_ips = vec!["127.0.0.1".into(), "10.0.0.0/8".into()];
    g.fail_mode = mcp_types::FailMode::Closed;
    let stored = store.create_group(g.clone()).await.unwrap();
    let read = store.get_group("full").await.unwrap().unwrap();
    assert_eq!(read, stored);
    assert!(read.same_config(&g));
    assert_eq!(read.auth_tokens[0].expose(), "s3cr3t-group-token");
    assert_eq!(
        store.list_groups().await.unwrap()[0].auth_tokens[0].expose(),
        "s3cr3t-group-token"
    );
}
