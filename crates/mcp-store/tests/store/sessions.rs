//! The session registry contract, against `MemorySessions` and a `RedisStore` on its own
//! `redis-server`; plus a race of replicas taking over one session (Redis).

use std::time::Duration;

use mcp_store::{MemorySessions, SessionEntry, SessionRegistry};
use mcp_test_support::assert_eventually;
use mcp_test_support::redis::RedisServer;

const LONG: Duration = Duration::from_secs(60);

macro_rules! registry_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&mcp_store::MemorySessions::new()).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $check() {
                    let server = mcp_test_support::redis::RedisServer::start().await;
                    let prefix = concat!("sessions:", stringify!($check), ":");
                    let store = crate::support::redis_store(&server, prefix).await;
                    super::$check(&store).await;
                }
            )*
        }
    };
}

registry_tests!(
    a_session_is_written_read_and_deleted,
    a_session_not_refreshed_expires_and_a_touch_keeps_it,
    take_over_succeeds_only_from_the_owner_named,
    heartbeats_expire_and_retire,
);

async fn a_session_is_written_read_and_deleted(r: &dyn SessionRegistry) {
    assert_eq!(r.session("s1").await.unwrap(), None);
    r.put_session("s1", "replica-a", r#"{"v":1}"#, LONG)
        .await
        .unwrap();
    let want = SessionEntry {
        owner: "replica-a".into(),
        state: r#"{"v":1}"#.into(),
    };
    assert_eq!(r.session("s1").await.unwrap(), Some(want));
    // A write replaces the entry whole.
    r.put_session("s1", "replica-b", r#"{"v":2}"#, LONG)
        .await
        .unwrap();
    let entry = r.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (entry.owner.as_str(), entry.state.as_str()),
        ("replica-b", r#"{"v":2}"#)
    );
    let ttl = r.session_ttl("s1").await.unwrap().unwrap();
    assert!(ttl <= LONG && ttl > LONG / 2, "{ttl:?}");
    r.delete_session("s1").await.unwrap();
    assert_eq!(r.session("s1").await.unwrap(), None);
    assert_eq!(r.session_ttl("s1").await.unwrap(), None);
    assert!(!r.touch_session("s1", LONG).await.unwrap());
    // Deleting what is gone is no error.
    r.delete_session("s1").await.unwrap();
}

async fn a_session_not_refreshed_expires_and_a_touch_keeps_it(r: &dyn SessionRegistry) {
    let short = Duration::from_millis(300);
    r.put_session("brief", "a", "{}", short).await.unwrap();
    r.put_session("kept", "a", "{}", short).await.unwrap();
    assert!(r.touch_session("kept", LONG).await.unwrap());
    assert_eventually!(
        Duration::from_secs(5),
        r.session("brief").await.unwrap().is_none()
    );
    assert!(r.session("kept").await.unwrap().is_some());
}

async fn take_over_succeeds_only_from_the_owner_named(r: &dyn SessionRegistry) {
    r.put_session("s", "dead", "old", LONG).await.unwrap();
    // Not from the owner named: refused, nothing changes.
    assert!(
        !r.take_over("s", "someone", "me", Some("new"), LONG)
            .await
            .unwrap()
    );
    assert_eq!(r.session("s").await.unwrap().unwrap().owner, "dead");
    assert!(
        r.take_over("s", "dead", "me", Some("new"), LONG)
            .await
            .unwrap()
    );
    let entry = r.session("s").await.unwrap().unwrap();
    assert_eq!((entry.owner.as_str(), entry.state.as_str()), ("me", "new"));
    // A second take-over from the dead owner loses: it is owned by "me" now.
    assert!(!r.take_over("s", "dead", "other", None, LONG).await.unwrap());
    // Without a state, the state stays.
    assert!(r.take_over("s", "me", "other", None, LONG).await.unwrap());
    assert_eq!(r.session("s").await.unwrap().unwrap().state, "new");
    assert!(!r.take_over("gone", "dead", "me", None, LONG).await.unwrap());
}

async fn heartbeats_expire_and_retire(r: &dyn SessionRegistry) {
    assert_eq!(r.replica("a").await.unwrap(), None);
    r.heartbeat("a", "http://127.0.0.1:1", LONG).await.unwrap();
    r.heartbeat("b", "http://127.0.0.1:2", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        r.replica("a").await.unwrap().as_deref(),
        Some("http://127.0.0.1:1")
    );
    assert_eventually!(
        Duration::from_secs(5),
        r.replica("b").await.unwrap().is_none()
    );
    r.retire("a").await.unwrap();
    assert_eq!(r.replica("a").await.unwrap(), None);
}

#[tokio::test]
async fn of_replicas_racing_to_take_over_one_session_exactly_one_wins() {
    let server = RedisServer::start().await;
    let stores = [
        crate::support::redis_store(&server, "race:").await,
        crate::support::redis_store(&server, "race:").await,
        crate::support::redis_store(&server, "race:").await,
    ];
    for round in 0..20 {
        let id = format!("s{round}");
        stores[0]
            .put_session(&id, "dead", "{}", LONG)
            .await
            .unwrap();
        let attempts = stores.iter().enumerate().map(|(i, s)| {
            let (id, me) = (id.clone(), format!("r{i}"));
            async move { s.take_over(&id, "dead", &me, None, LONG).await.unwrap() }
        });
        let won = futures_util::future::join_all(attempts).await;
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        let owner = stores[1].session(&id).await.unwrap().unwrap().owner;
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(owner, format!("r{winner}"));
    }
}

#[tokio::test]
async fn memory_sessions_do_not_keep_expired_entries() {
    let r = MemorySessions::new();
    for i in 0..100 {
        r.put_session(&format!("s{i}"), "a", "{}", Duration::from_millis(1))
            .await
            .unwrap();
    }
    // Any write sweeps what expired.
    assert_eventually!(Duration::from_secs(5), {
        r.put_session("probe", "a", "{}", LONG).await.unwrap();
        r.len() == 1
    });
}

#[tokio::test]
async fn with_redis_down_every_call_fails_fast_and_says_so() {
    let mut server = RedisServer::start().await;
    let store = crate::support::redis_store(&server, "down:").await;
    store.put_session("s", "a", "{}", LONG).await.unwrap();
    server.stop().await;
    let started = std::time::Instant::now();
    let err = store.session("s").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("redis"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
