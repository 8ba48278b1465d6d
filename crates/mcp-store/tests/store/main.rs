//! Integration tests of the store back-ends: one contract suite run against every back-end
//! (Redis against a real `redis-server` started per test), for definitions and for groups,
//! plus Redis-only behaviour.

/// Runs each named contract check against a fresh `MemoryStore` and against a `RedisStore`
/// on its own `redis-server`, under a prefix named after the check.
macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&mcp_store::MemoryStore::new()).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $check() {
                    let server = mcp_test_support::redis::RedisServer::start().await;
                    let prefix = concat!("contract:", stringify!($check), ":");
                    let store = crate::support::redis_store(&server, prefix).await;
                    super::$check(&store).await;
                }
            )*
        }
    };
}

mod contract;
mod groups;
mod redis;
mod sessions;
mod support;
