//! Integration tests of the store back-ends: one contract suite run against every back-end
//! (Redis against a real `redis-server` started per test), plus Redis-only behaviour.

mod contract;
mod redis;
mod support;
