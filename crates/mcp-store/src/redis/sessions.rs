//! The session registry in Redis: `{prefix}session:{id}` hashes (`owner`, `state`) with
//! a sliding TTL, and `{prefix}replica:{id}` heartbeats (the replica's address) with a TTL.
//! Writes that change more than one thing, or that depend on what is stored, are one Lua
//! script each, so two replicas taking over one session cannot both win.

use std::time::Duration;

use fred::prelude::{Expiration, HashesInterface, KeysInterface};

use super::RedisStore;
use crate::Result;
use crate::sessions::{SessionEntry, SessionRegistry};

/// KEYS: the session. ARGV: owner, state, TTL in ms. Replaces the entry whole.
const PUT: &str = "redis.call('DEL', KEYS[1])\n\
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'state', ARGV[2])\n\
redis.call('PEXPIRE', KEYS[1], ARGV[3])\n\
return 1";

/// KEYS: the session. ARGV: the owner expected, the new owner, the new state ('' keeps
/// it), TTL in ms. 1 when taken, 0 when gone or owned by another.
const TAKE_OVER: &str = "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n\
redis.call('HSET', KEYS[1], 'owner', ARGV[2])\n\
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[3]) end\n\
redis.call('PEXPIRE', KEYS[1], ARGV[4])\n\
return 1";

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait::async_trait]
impl SessionRegistry for RedisStore {
    async fn put_session(&self, id: &str, owner: &str, state: &str, ttl: Duration) -> Result<()> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        conn.eval(
            &format!("put session {id:?}"),
            PUT,
            &[key],
            &[owner.to_owned(), state.to_owned(), millis(ttl).to_string()],
        )
        .await
        .map(drop)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionEntry>> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        let with = conn.with();
        let fields: Vec<Option<String>> = conn
            .call(
                || format!("read session {id:?}"),
                with.hmget(&key, vec!["owner", "state"]),
            )
            .await?;
        Ok(match fields.as_slice() {
            [Some(owner), Some(state)] => Some(SessionEntry {
                owner: owner.clone(),
                state: state.clone(),
            }),
            _ => None,
        })
    }

    async fn touch_session(&self, id: &str, ttl: Duration) -> Result<bool> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        let with = conn.with();
        conn.call(
            || format!("touch session {id:?}"),
            with.pexpire::<bool, _>(&key, millis(ttl), None),
        )
        .await
    }

    async fn session_ttl(&self, id: &str) -> Result<Option<Duration>> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        let with = conn.with();
        let ms: i64 = conn
            .call(|| format!("ttl of session {id:?}"), with.pttl(&key))
            .await?;
        // -2: no such key; -1: no expiry (not written by us, treat as long-lived).
        Ok(match ms {
            -2 => None,
            -1 => Some(Duration::MAX),
            ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        conn.del(&key, || format!("delete session {id:?}")).await
    }

    async fn take_over(
        &self,
        id: &str,
        from: &str,
        owner: &str,
        state: Option<&str>,
        ttl: Duration,
    ) -> Result<bool> {
        let conn = self.conn()?;
        let key = conn.keys().session(id);
        let taken = conn
            .eval(
                &format!("take over session {id:?}"),
                TAKE_OVER,
                &[key],
                &[
                    from.to_owned(),
                    owner.to_owned(),
                    state.unwrap_or("").to_owned(),
                    millis(ttl).to_string(),
                ],
            )
            .await?;
        Ok(taken == 1)
    }

    async fn heartbeat(&self, replica: &str, address: &str, ttl: Duration) -> Result<()> {
        let conn = self.conn()?;
        let key = conn.keys().replica(replica);
        let with = conn.with();
        conn.call(
            || format!("heartbeat of replica {replica:?}"),
            with.set::<(), _, _>(
                &key,
                address,
                Some(Expiration::PX(millis(ttl))),
                None,
                false,
            ),
        )
        .await
    }

    async fn replica(&self, replica: &str) -> Result<Option<String>> {
        let conn = self.conn()?;
        let key = conn.keys().replica(replica);
        let with = conn.with();
        conn.call(
            || format!("read replica {replica:?}"),
            with.get::<Option<String>, _>(&key),
        )
        .await
    }

    async fn retire(&self, replica: &str) -> Result<()> {
        let conn = self.conn()?;
        let key = conn.keys().replica(replica);
        conn.del(&key, || format!("retire replica {replica:?}"))
            .await
    }
}
