//! A client session other replicas may continue: its [`SessionSnapshot`], its restoring
//! from one, and letting go of its upstream sessions (rather than ending them) when only
//! this replica's copy of it ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use mcp_types::mcp::methods;
use mcp_types::{Message, SessionMode, TransportKind};
use tracing::debug;

use super::{ClientSession, Declared, Ended, Phase, Serves};
use crate::connector::{ResumeParams, SessionParams};
use crate::session::snapshot::{LinkSnapshot, Resumed, SessionSnapshot};
use crate::session::upstream_session::UpstreamSession;

/// How a replicated session's copy on this replica ended without ending the session: its
/// upstream sessions were let go of, for other replicas to go on with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Idle past the limit here (other replicas may have used it meanwhile).
    Expired,
    /// Its place here was needed.
    Evicted,
    /// This replica is shutting down.
    Shutdown,
}

/// Replication state of a session.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    replicated: AtomicBool,
    released: OnceLock<Option<Released>>,
}

impl Replica {
    /// Whether ending for `ended` lets go of the upstream sessions instead of ending them
    /// (recorded: the first end decides).
    pub(crate) fn keeps_upstream(&self, ended: &Ended) -> bool {
        let released = match ended {
            _ if !self.replicated.load(Ordering::Acquire) => None,
            Ended::Expired => Some(Released::Expired),
            Ended::Evicted => Some(Released::Evicted),
            Ended::Shutdown => Some(Released::Shutdown),
            _ => None,
        };
        self.released.get_or_init(|| released).is_some()
    }
}

/// A replica id as it stands in a server→client request id: `%`, `~` and `@` escaped.
fn escape_replica(id: &str) -> String {
    id.replace('%', "%25")
        .replace('~', "%7E")
        .replace('@', "%40")
}

fn unescape_replica(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    Some(
        text.replace("%40", "@")
            .replace("%7E", "~")
            .replace("%25", "%"),
    )
}

impl ClientSession {
    /// Marks the session as one other replicas may continue (it is in the session
    /// registry): when only this replica's copy ends (idle, evicted, shutdown), its
    /// upstream sessions are let go of, not ended.
    pub fn set_replicated(&self, replicated: bool) {
        self.replica.replicated.store(replicated, Ordering::Release);
    }

    /// The id a server→client request gets toward the client: `mcp-proxy-N`, and for a
    /// replicated session also the replica that asked (`@replica`, when the hub names
    /// it), the member and the upstream's id, so that whichever replica the client's
    /// answer lands on can hand it to the upstream session, or to the replica that asked.
    pub(crate) fn server_request_id(
        &self,
        n: i64,
        member: &str,
        upstream_id: &mcp_types::RequestId,
    ) -> mcp_types::RequestId {
        if !self.replica.replicated.load(Ordering::Acquire) {
            return mcp_types::RequestId::String(format!("mcp-proxy-{n}"));
        }
        let upstream = serde_json::to_string(upstream_id).unwrap_or_default();
        let asker = match self.hub.replica_id() {
            Some(r) => format!("@{}", escape_replica(r)),
            None => String::new(),
        };
        mcp_types::RequestId::String(format!("mcp-proxy-{n}{asker}~{member}~{upstream}"))
    }

    /// The replica to send the client's answer `id` to: another replica's copy of this
    /// session asked it (the id names that replica), and this copy can neither settle it
    /// nor hand it to its own upstream session. `None`: answer here.
    pub fn answered_elsewhere(&self, id: &mcp_types::RequestId) -> Option<String> {
        let mcp_types::RequestId::String(text) = id else {
            return None;
        };
        let (head, _) = text.strip_prefix("mcp-proxy-")?.split_once('~')?;
        let (_, asker) = head.split_once('@')?;
        let asker = unescape_replica(asker)?;
        if self.hub.replica_id() == Some(asker.as_str()) {
            return None;
        }
        {
            let state = self.state();
            if state.asked.contains_key(id) || state.server_requests.contains_key(id) {
                return None;
            }
        }
        self.foreign_server_request(id).is_none().then_some(asker)
    }

    /// The member and upstream id of an answer to a server→client request another
    /// replica's copy of this session sent (see [`ClientSession::server_request_id`]).
    pub(crate) fn foreign_server_request(
        &self,
        id: &mcp_types::RequestId,
    ) -> Option<(String, mcp_types::RequestId)> {
        if !self.replica.replicated.load(Ordering::Acquire) {
            return None;
        }
        let mcp_types::RequestId::String(text) = id else {
            return None;
        };
        let rest = text.strip_prefix("mcp-proxy-")?;
        let (_, rest) = rest.split_once('~')?;
        let (member, upstream) = rest.split_once('~')?;
        let upstream: mcp_types::RequestId = serde_json::from_str(upstream).ok()?;
        // Only an upstream session this replica continues too (HTTP) can take it.
        let state = self.state();
        let link = state.links.get(member)?;
        (!link.is_shared()
            && link.upstream().definition().transport == TransportKind::StreamableHttp)
            .then(|| (member.to_owned(), upstream))
    }

    /// How the session ended without ending its upstream sessions, if it did.
    pub fn released(&self) -> Option<Released> {
        self.replica.released.get().copied().flatten()
    }

    /// What another replica needs to continue the session; `None` before it is
    /// initialized, after it ended, or for a stateless (2026-07-28) one.
    pub fn snapshot(&self) -> Option<SessionSnapshot> {
        if self.stateless {
            return None;
        }
        let state = self.state();
        if state.phase != Phase::Ready {
            return None;
        }
        let declared = state.declared.as_ref()?;
        let mut links: Vec<LinkSnapshot> = state
            .links
            .iter()
            .map(|(member, link)| {
                let transport = link.upstream().definition().transport;
                let client = link.client();
                LinkSnapshot {
                    member: member.clone(),
                    shared: link.is_shared(),
                    bound: !link.is_shared() && transport != TransportKind::StreamableHttp,
                    session_id: client.session_id(),
                    protocol_version: client.protocol_version(),
                    init: link.init().clone(),
                }
            })
            .collect();
        links.sort_by(|a, b| a.member.cmp(&b.member));
        Some(SessionSnapshot {
            endpoint: self.serves.name().to_owned(),
            protocol_version: declared.version.clone(),
            client_info: declared.client_info.clone(),
            capabilities: declared.capabilities.clone(),
            path_suffix: self.options.path_suffix.clone(),
            links,
        })
    }

    /// Makes a session opened under a registered id ready from its snapshot.
    pub(crate) async fn restore(
        self: &Arc<Self>,
        snapshot: &SessionSnapshot,
    ) -> Result<Resumed, crate::Error> {
        let declared = Declared {
            client_info: snapshot.client_info.clone(),
            capabilities: snapshot.capabilities.clone(),
            version: snapshot.protocol_version.clone(),
        };
        let mut fresh = false;
        let mut links = Vec::new();
        match &self.serves {
            Serves::Upstream(upstream) => {
                let saved = snapshot.links.iter().find(|l| l.member == upstream.name());
                let (link, was_fresh) = self.continue_link(upstream, saved, &declared).await?;
                fresh |= was_fresh;
                links.push((upstream.name().to_owned(), link));
            }
            Serves::Group(_) => {
                // Members open on first use; those whose upstream session can be
                // continued are continued now, so that their state is not lost.
                for saved in &snapshot.links {
                    let Some(upstream) = self.hub.manager().upstream(&saved.member) else {
                        continue;
                    };
                    if saved.bound {
                        fresh = true;
                        continue;
                    }
                    if saved.shared || saved.session_id.is_none() {
                        continue;
                    }
                    match self.continue_link(&upstream, Some(saved), &declared).await {
                        Ok((link, _)) => links.push((saved.member.clone(), link)),
                        Err(e) => {
                            debug!(session = %self.id, member = %saved.member, error = %e, "member session not continued; it opens again on next use");
                        }
                    }
                }
            }
        }
        {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                drop(state);
                for (_, link) in links {
                    link.detach(self);
                }
                return Err(crate::Error::SessionEnded(self.id.clone()));
            }
            state.phase = Phase::Ready;
            for (member, link) in &links {
                state.links.insert(member.clone(), link.clone());
            }
            state.protocol_version = Some(snapshot.protocol_version.clone());
            state.capabilities = snapshot.capabilities.clone();
            state.declared = Some(declared);
        }
        for (_, link) in &links {
            link.attach(self);
            link.release_early();
        }
        debug!(session = %self.id, endpoint = %self.serves.name(), fresh, "client session resumed from the registry");
        if fresh {
            // What the fresh upstream session offers may differ from the one the client
            // listed: it should list again.
            self.emit(
                Message::notification(methods::TOOLS_LIST_CHANGED, None::<&()>),
                None,
            );
        }
        Ok(Resumed { fresh })
    }

    /// The link to `upstream` of a resumed session: the shared connection, the same
    /// upstream session when it can be continued, a fresh one otherwise (`true`).
    async fn continue_link(
        &self,
        upstream: &Arc<crate::Upstream>,
        saved: Option<&LinkSnapshot>,
        declared: &Declared,
    ) -> Result<(Arc<UpstreamSession>, bool), crate::Error> {
        let def = upstream.definition();
        if def.session_mode == SessionMode::Shared {
            return Ok((self.hub.shared_link(upstream).await?, false));
        }
        let params = SessionParams {
            protocol_version: declared.version.clone(),
            client_info: declared.client_info.clone(),
            capabilities: declared.capabilities.clone(),
            extra_headers: self.options.extra_headers.clone(),
            path_suffix: self.options.path_suffix.clone(),
            era: upstream.era(),
        };
        let resumable = saved
            .filter(|s| !s.bound && !s.shared && def.transport == TransportKind::StreamableHttp);
        if let Some(saved) = resumable
            && let Some(session_id) = &saved.session_id
        {
            let resume = ResumeParams {
                session_id: session_id.clone(),
                protocol_version: saved
                    .protocol_version
                    .clone()
                    .unwrap_or_else(|| saved.init.protocol_version.clone()),
                init: saved.init.clone(),
            };
            let link =
                UpstreamSession::resume_per_client(&self.hub, upstream, params, &resume).await?;
            return Ok((link, false));
        }
        let link = UpstreamSession::open_per_client(&self.hub, upstream, params).await?;
        Ok((link, true))
    }
}

#[cfg(test)]
mod tests {
    use super::{escape_replica, unescape_replica};

    #[test]
    fn a_replica_id_survives_its_place_in_a_request_id() {
        for id in ["r1", "host-42-ab", "a~b@c%d", "%7E", "%2540", "~@%"] {
            let escaped = escape_replica(id);
            assert!(
                !escaped.contains('~') && !escaped.contains('@'),
                "{escaped}"
            );
            assert_eq!(unescape_replica(&escaped).as_deref(), Some(id), "{escaped}");
        }
        assert_eq!(unescape_replica(""), None);
    }
}
