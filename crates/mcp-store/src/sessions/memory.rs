//! The registry in this process: maps behind a lock, expiry checked on read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{SessionEntry, SessionRegistry};
use crate::Result;

/// A [`SessionRegistry`] in this process only (one replica, tests). Expired entries are
/// dropped when next read and on every write, so it does not grow without bound.
#[derive(Debug, Default)]
pub struct MemorySessions {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, (SessionEntry, Instant)>,
    replicas: HashMap<String, (String, Instant)>,
}

impl State {
    fn sweep(&mut self, now: Instant) {
        self.sessions.retain(|_, (_, until)| *until > now);
        self.replicas.retain(|_, (_, until)| *until > now);
    }

    fn live(&mut self, id: &str, now: Instant) -> Option<&mut (SessionEntry, Instant)> {
        if self
            .sessions
            .get(id)
            .is_some_and(|(_, until)| *until <= now)
        {
            self.sessions.remove(id);
        }
        self.sessions.get_mut(id)
    }
}

impl MemorySessions {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions held now (expired ones included until the next write sweeps them).
    pub fn len(&self) -> usize {
        self.state().sessions.len()
    }

    /// Whether it holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl SessionRegistry for MemorySessions {
    async fn put_session(&self, id: &str, owner: &str, state: &str, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut s = self.state();
        s.sweep(now);
        let entry = SessionEntry {
            owner: owner.to_owned(),
            state: state.to_owned(),
        };
        s.sessions.insert(id.to_owned(), (entry, now + ttl));
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<SessionEntry>> {
        let now = Instant::now();
        Ok(self.state().live(id, now).map(|(e, _)| e.clone()))
    }

    async fn touch_session(&self, id: &str, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        Ok(match self.state().live(id, now) {
            Some((_, until)) => {
                *until = now + ttl;
                true
            }
            None => false,
        })
    }

    async fn session_ttl(&self, id: &str) -> Result<Option<Duration>> {
        let now = Instant::now();
        Ok(self.state().live(id, now).map(|(_, until)| *until - now))
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        self.state().sessions.remove(id);
        Ok(())
    }

    async fn take_over(
        &self,
        id: &str,
        from: &str,
        owner: &str,
        state: Option<&str>,
        ttl: Duration,
    ) -> Result<bool> {
        let now = Instant::now();
        let mut s = self.state();
        let Some((entry, until)) = s.live(id, now) else {
            return Ok(false);
        };
        if entry.owner != from {
            return Ok(false);
        }
        owner.clone_into(&mut entry.owner);
        if let Some(state) = state {
            state.clone_into(&mut entry.state);
        }
        *until = now + ttl;
        Ok(true)
    }

    async fn heartbeat(&self, replica: &str, address: &str, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let mut s = self.state();
        s.sweep(now);
        s.replicas
            .insert(replica.to_owned(), (address.to_owned(), now + ttl));
        Ok(())
    }

    async fn replica(&self, replica: &str) -> Result<Option<String>> {
        let now = Instant::now();
        Ok(self
            .state()
            .replicas
            .get(replica)
            .filter(|(_, until)| *until > now)
            .map(|(a, _)| a.clone()))
    }

    async fn retire(&self, replica: &str) -> Result<()> {
        self.state().replicas.remove(replica);
        Ok(())
    }
}
