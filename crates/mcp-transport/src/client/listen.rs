//! `subscriptions/listen` on a modern upstream: one long-lived request per [`Listener`]
//! whose answer carries the change notifications its filter asks for, held open by a task
//! of its own and opened again when the upstream ends it, or when the filter changes (the
//! revision fixes a listen's filter when it opens).
//!
//! Every message of a listen is tagged with its request id
//! (`_meta["io.modelcontextprotocol/subscriptionId"]`); the router sends change
//! notifications to the connection's [`super::Handler`], like those a 2025 server sends
//! on its shared channel, and the acknowledgement to the listen itself.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::modern;
use mcp_types::{Message, Notification, Outcome, Request, RequestId};
use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{McpClient, Refused, Sink};
use crate::error::Error;

/// First wait before a listen the upstream ended is opened again; doubled up to
/// [`MAX_RETRY`] while attempts keep failing.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// What a listen asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    pub tools: bool,
    /// `notifications/prompts/list_changed`.
    pub prompts: bool,
    /// `notifications/resources/list_changed`.
    pub resources: bool,
    /// `notifications/resources/updated` for these URIs.
    pub uris: BTreeSet<String>,
}

impl ListenFilter {
    /// The `list_changed` kinds a server's capabilities say it sends.
    pub fn for_capabilities(capabilities: &Value) -> Self {
        let flag = |kind: &str| {
            capabilities
                .get(kind)
                .and_then(|c| c.get("listChanged"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Self {
            tools: flag("tools"),
            prompts: flag("prompts"),
            resources: flag("resources"),
            uris: BTreeSet::new(),
        }
    }

    /// Whether it asks for nothing (then no listen is held open).
    pub fn is_empty(&self) -> bool {
        !self.tools && !self.prompts && !self.resources && self.uris.is_empty()
    }

    fn to_params(&self) -> Value {
        let mut filter = Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                filter.insert(key.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            filter.insert(
                "resourceSubscriptions".into(),
                self.uris.iter().cloned().collect(),
            );
        }
        serde_json::json!({ "notifications": filter })
    }
}

/// A listen held open on a modern connection; dropping it ends the listen.
#[derive(Debug)]
pub struct Listener {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

#[derive(Debug)]
struct Shared {
    /// The filter, and its generation (bumped on every change).
    filter: Mutex<(ListenFilter, u64)>,
    changed: Notify,
    /// The generation the upstream last acknowledged.
    acked: watch::Sender<u64>,
}

impl McpClient {
    /// Holds a `subscriptions/listen` with `filter` open on this (modern) connection;
    /// its change notifications reach the connection's handler. Must run inside a tokio
    /// runtime.
    pub fn listen(&self, filter: ListenFilter) -> Listener {
        let shared = Arc::new(Shared {
            filter: Mutex::new((filter, 1)),
            changed: Notify::new(),
            acked: watch::channel(0).0,
        });
        let cancel = CancellationToken::new();
        tokio::spawn(hold(self.clone(), shared.clone(), cancel.clone()));
        Listener {
            shared,
            _stop: cancel.drop_guard(),
        }
    }
}

impl Listener {
    /// The filter asked for now.
    pub fn filter(&self) -> ListenFilter {
        self.shared.lock().0.clone()
    }

    /// Changes the filter; the listen opens again with it when it differs.
    pub fn update(&self, change: impl FnOnce(&mut ListenFilter)) {
        let mut current = self.shared.lock();
        let mut next = current.0.clone();
        change(&mut next);
        if next != current.0 {
            *current = (next, current.1 + 1);
            drop(current);
            self.shared.changed.notify_one();
        }
    }

    /// Waits (at most `timeout`) until the upstream acknowledged the listen of the
    /// current filter; whether it did. Nothing to listen for counts as acknowledged.
    pub async fn acknowledged(&self, timeout: Duration) -> bool {
        self.acknowledgement(timeout).await
    }

    /// [`Listener::acknowledged`] as a future that borrows nothing.
    pub fn acknowledgement(&self, timeout: Duration) -> impl Future<Output = bool> + Send + use<> {
        let (filter, generation) = self.shared.lock().clone();
        let mut acked = self.shared.acked.subscribe();
        async move {
            if filter.is_empty() {
                return true;
            }
            let wait = acked.wait_for(|g| *g >= generation);
            matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, (ListenFilter, u64)> {
        self.filter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes the acknowledgement of one listen (of one filter generation).
#[derive(Debug)]
struct Acks {
    shared: Arc<Shared>,
    generation: u64,
}

impl Sink for Acks {
    fn related(&self, _: &RequestId, msg: Message) -> Result<(), Refused> {
        if msg.method() == Some(modern::LISTEN_ACKNOWLEDGED) {
            self.shared
                .acked
                .send_modify(|g| *g = (*g).max(self.generation));
        }
        Ok(())
    }
}

/// The task behind a [`Listener`]: one listen at a time, until stopped or the connection
/// closes.
async fn hold(client: McpClient, shared: Arc<Shared>, cancel: CancellationToken) {
    let name = client.target().name.clone();
    let mut retry = FIRST_RETRY;
    loop {
        if cancel.is_cancelled() || client.is_closed() {
            return;
        }
        let (filter, generation) = shared.lock().clone();
        if filter.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = shared.changed.notified() => continue,
            }
        }
        let request = Request {
            id: RequestId::Null,
            method: modern::LISTEN.into(),
            params: Some(to_raw(&filter.to_params())),
            extra: Extra::new(),
        };
        let acks = Arc::new(Acks {
            shared: shared.clone(),
            generation,
        });
        let Ok(call) = client.begin_as(request, Some(acks), false) else {
            return;
        };
        let upstream_id = call.upstream_id().clone();
        let mut run = Box::pin(call.run(Duration::MAX));
        let ended = tokio::select! {
            () = cancel.cancelled() => None,
            () = shared.changed.notified() => None,
            r = &mut run => Some(r),
        };
        let Some(ended) = ended else {
            // Stopped, or the filter changed: this listen ends (on HTTP dropping its
            // stream is the cancellation; stdio is told).
            drop(run);
            let _ = client.cancel_request(&upstream_id, "listen closed").await;
            continue;
        };
        if *shared.acked.borrow() >= generation {
            retry = FIRST_RETRY;
        }
        match ended {
            Ok(response) => match response.outcome {
                Outcome::Result(_) => {
                    tracing::debug!(upstream = %name, "the upstream ended its listen; opening it again");
                }
                Outcome::Error(e) if e.code == codes::METHOD_NOT_FOUND => {
                    tracing::warn!(upstream = %name, error = %e.message, "the upstream does not serve subscriptions/listen; its change notifications are not followed");
                    return;
                }
                Outcome::Error(e) => {
                    tracing::warn!(upstream = %name, code = e.code, error = %e.message, "subscriptions/listen refused");
                }
            },
            Err(Error::Closed { .. } | Error::NotDelivered { .. }) => return,
            Err(e) => tracing::debug!(upstream = %name, error = %e, "subscriptions/listen ended"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = shared.changed.notified() => {}
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Whether a notification belongs to a listen (carries its subscription id).
pub(super) fn is_tagged(n: &Notification) -> bool {
    n.params
        .as_deref()
        .is_some_and(|p| p.get().contains(modern::META_SUBSCRIPTION))
        && subscription_id(n).is_some()
}

/// The listen request a notification belongs to.
pub(super) fn subscription_id(n: &Notification) -> Option<RequestId> {
    let params = mcp_types::params::Members::parse(n.params.as_deref()?).ok()?;
    let meta = mcp_types::params::Members::parse(params.get("_meta")?).ok()?;
    serde_json::from_str(meta.get(modern::META_SUBSCRIPTION)?.get()).ok()
}

/// Removes the subscription id (it names the proxy's own listen, nobody else's).
pub(super) fn untag(n: &mut Notification) {
    let Some(params) = n.params.as_deref() else {
        return;
    };
    let Ok(members) = mcp_types::params::Members::parse(params) else {
        return;
    };
    let Some(Ok(mut meta)) = members
        .get("_meta")
        .map(|m| serde_json::from_str::<Map<String, Value>>(m.get()))
    else {
        return;
    };
    meta.remove(modern::META_SUBSCRIPTION);
    n.params = Some(if meta.is_empty() {
        members.without("_meta")
    } else {
        members.with("_meta", &to_raw(&meta))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_capabilities_and_serialize_as_the_revision_says() {
        let caps =
            serde_json::json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}});
        let mut f = ListenFilter::for_capabilities(&caps);
        assert!(f.tools && !f.prompts && !f.resources);
        f.uris.insert("test://a".into());
        assert_eq!(
            f.to_params(),
            serde_json::json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["test://a"]}})
        );
        assert!(ListenFilter::default().is_empty());
    }

    #[test]
    fn tags_are_read_and_removed() {
        let mut n = Notification {
            method: "notifications/tools/list_changed".into(),
            params: Some(to_raw(
                &serde_json::json!({"_meta": {modern::META_SUBSCRIPTION: 7}}),
            )),
            extra: Extra::new(),
        };
        assert!(is_tagged(&n));
        assert_eq!(subscription_id(&n), Some(RequestId::number(7)));
        untag(&mut n);
        assert!(!is_tagged(&n));
        assert_eq!(n.params.as_deref().map(|p| p.get()), Some("{}"));
    }
}
