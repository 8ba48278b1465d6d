//! [`RegisterService`]: makes the proxy hold the definitions an engine needs, and removes
//! on shutdown only what it added.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use mcp_types::{McpDefinition, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::client::ProxyClient;
use crate::error::Error;

/// Default number of definitions [`RegisterService::ensure_many`] applies at once.
pub const DEFAULT_PARALLELISM: usize = 4;

/// What [`RegisterService::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The MCP was not registered; this service registered it (and owns it).
    Created,
    /// The MCP was registered with a different definition; this service replaced it.
    Updated,
    /// The proxy already held exactly this definition.
    Unchanged,
}

/// What this service last sent for a name, to recognise its own secrets.
#[derive(Debug, Clone)]
struct Applied {
    definition: McpDefinition,
    updated_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct State {
    /// Names this service created: the only ones `shutdown` removes.
    owned: BTreeMap<String, ()>,
    applied: BTreeMap<String, Applied>,
}

#[derive(Debug)]
struct Inner {
    client: ProxyClient,
    state: Mutex<State>,
}

/// Registers an engine's MCPs with the proxy. Cheap to clone; clones share what they own.
///
/// - [`ensure`](Self::ensure) creates a definition, or updates it when the stored one
///   differs — a stale definition is never silently kept.
/// - [`shutdown`](Self::shutdown) deregisters only the MCPs this service created; MCPs
///   that other engines registered (even ones this service updated) stay.
///
/// The proxy never shows secret values (`env`, `headers`, `authTokens` come back as
/// `***`), so when a definition has secrets and everything else matches, `ensure`
/// cannot see whether the secrets match. It then updates once, and afterwards trusts the
/// stored definition as long as its `updatedAt` is the one its own update produced.
#[derive(Debug, Clone)]
pub struct RegisterService {
    inner: Arc<Inner>,
    parallelism: usize,
}

impl RegisterService {
    /// A service registering through `client`.
    pub fn new(client: ProxyClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                state: Mutex::new(State::default()),
            }),
            parallelism: DEFAULT_PARALLELISM,
        }
    }

    /// Applies at most `n` definitions at once in [`ensure_many`](Self::ensure_many).
    pub fn with_parallelism(mut self, n: NonZeroUsize) -> Self {
        self.parallelism = n.get();
        self
    }

    /// The client this service uses.
    pub fn client(&self) -> &ProxyClient {
        &self.inner.client
    }

    /// The names this service created (and will deregister on shutdown), sorted.
    pub fn owned(&self) -> Vec<String> {
        self.state().owned.keys().cloned().collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the proxy hold `def`: creates it, updates it when the stored definition
    /// differs, or leaves it alone.
    pub async fn ensure(&self, def: &McpDefinition) -> Result<Ensured, Error> {
        let client = &self.inner.client;
        let name = def.name.as_str();
        // Two rounds: a create can race with another engine's create.
        for _ in 0..2 {
            let stored = match client.get(name).await {
                Ok(entry) => entry.definition,
                Err(e) if e.is_not_found() => match client.register(def).await {
                    Ok(entry) => {
                        self.remember(def, entry.definition.updated_at, true);
                        info!(mcp = %name, "mcp registered");
                        return Ok(Ensured::Created);
                    }
                    Err(Error::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            };
            if def.redacted().same_config(&stored) && !self.secrets_unknown(def, &stored) {
                return Ok(Ensured::Unchanged);
            }
            let entry = client.update(def).await?;
            self.remember(def, entry.definition.updated_at, false);
            info!(mcp = %name, "mcp definition updated");
            return Ok(Ensured::Updated);
        }
        Err(Error::AlreadyExists {
            op: format!("ensure {name:?}"),
            message: "created and deleted concurrently by someone else; try again".into(),
        })
    }

    /// Whether `def` has secrets the proxy cannot show and this service did not put there.
    fn secrets_unknown(&self, def: &McpDefinition, stored: &McpDefinition) -> bool {
        let has_secrets =
            !def.env.is_empty() || !def.headers.is_empty() || !def.auth_tokens.is_empty();
        if !has_secrets {
            return false;
        }
        let state = self.state();
        !state.applied.get(&def.name).is_some_and(|a| {
            a.definition.same_config(def)
                && a.updated_at.is_some()
                && a.updated_at == stored.updated_at
        })
    }

    fn remember(&self, def: &McpDefinition, updated_at: Option<Timestamp>, created: bool) {
        let mut state = self.state();
        state.applied.insert(
            def.name.clone(),
            Applied {
                definition: def.clone(),
                updated_at,
            },
        );
        if created {
            state.owned.insert(def.name.clone(), ());
        }
    }

    /// [`ensure`](Self::ensure) for each definition, a bounded number at once. Every
    /// definition is attempted; the error names every one that failed. On success, the
    /// outcomes come in the order of `defs`.
    pub async fn ensure_many(&self, defs: &[McpDefinition]) -> Result<Vec<Ensured>, Error> {
        let permits = Arc::new(Semaphore::new(self.parallelism));
        let mut tasks = JoinSet::new();
        for (i, def) in defs.iter().cloned().enumerate() {
            let me = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (i, def.name.clone(), me.ensure(&def).await)
            });
        }
        let mut outcomes = vec![None; defs.len()];
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, _, Ok(outcome))) => outcomes[i] = Some(outcome),
                Ok((i, name, Err(e))) => failures.push((i, name, e)),
                Err(e) => warn!(error = %e, "ensure task failed"),
            }
        }
        failures.sort_by_key(|(i, _, _)| *i);
        let failures: Vec<(String, Error)> = failures.into_iter().map(|(_, n, e)| (n, e)).collect();
        if !failures.is_empty() {
            return Err(Error::Batch {
                op: "ensure_many",
                total: defs.len(),
                failures,
            });
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ensured::Unchanged))
            .collect())
    }

    /// Deregisters `name` if this service created it; `false` when it did not own it.
    pub async fn release(&self, name: &str) -> Result<bool, Error> {
        if !self.state().owned.contains_key(name) {
            return Ok(false);
        }
        self.inner.client.deregister(name).await?;
        let mut state = self.state();
        state.owned.remove(name);
        state.applied.remove(name);
        info!(mcp = %name, "mcp deregistered");
        Ok(true)
    }

    /// Deregisters every MCP this service created (already-removed ones are fine) and
    /// returns their names. MCPs registered by others stay. The error names every one that
    /// could not be removed; those stay owned, so a later `shutdown` tries again.
    pub async fn shutdown(&self) -> Result<Vec<String>, Error> {
        let owned = self.owned();
        let mut removed = Vec::new();
        let mut failures = Vec::new();
        for name in &owned {
            match self.release(name).await {
                Ok(_) => removed.push(name.clone()),
                Err(e) => failures.push((name.clone(), e)),
            }
        }
        if failures.is_empty() {
            Ok(removed)
        } else {
            Err(Error::Batch {
                op: "shutdown",
                total: owned.len(),
                failures,
            })
        }
    }
}
