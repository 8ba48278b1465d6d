//! A link to a modern upstream: one `subscriptions/listen` carries the `list_changed`
//! notifications the upstream's capabilities promise and the `resources/updated` of the
//! URIs its sessions subscribed to (a 2025 client's `resources/subscribe` never reaches a
//! modern upstream, which no longer has the method). Its notifications arrive like a
//! 2025 upstream's, through the link's handler.

use std::time::Duration;

use mcp_transport::ListenFilter;
use tracing::warn;

use super::UpstreamSession;

/// Longest wait for the upstream to acknowledge the listen before the link is used
/// anyway (a change before then may be missed).
const ACK_WAIT: Duration = Duration::from_secs(5);

impl UpstreamSession {
    fn listener(&self) -> std::sync::MutexGuard<'_, Option<mcp_transport::Listener>> {
        self.listener.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the listen of a modern link (when its upstream promises list changes) and
    /// waits, bounded, for the acknowledgement: a change made right after the link is
    /// ready reaches its sessions.
    pub(super) async fn start_listening(&self) {
        if !self.client.is_modern() {
            return;
        }
        let filter = ListenFilter::for_capabilities(&self.init.capabilities);
        if filter.is_empty() {
            return;
        }
        let listener = self.client.listen(filter);
        let wait = ACK_WAIT.min(self.upstream.definition().timeout);
        if !listener.acknowledged(wait).await {
            warn!(upstream = %self.upstream.name(), "the upstream did not acknowledge subscriptions/listen in time");
        }
        *self.listener() = Some(listener);
    }

    /// Resolves once the upstream acknowledged the listen as it stands now (at most
    /// [`ACK_WAIT`]); whether it did. Nothing to listen for counts as acknowledged.
    pub(crate) fn listening(&self) -> impl Future<Output = bool> + Send + use<> {
        let wait = ACK_WAIT.min(self.upstream.definition().timeout);
        let ack = self.listener().as_ref().map(|l| l.acknowledgement(wait));
        async move {
            match ack {
                Some(ack) => ack.await,
                None => true,
            }
        }
    }

    /// Adds `uri` to (or removes it from) what the listen asks for; the listen opens
    /// again with the new filter.
    pub(super) fn listen_uri(&self, uri: &str, on: bool) {
        let mut listener = self.listener();
        let listener = listener.get_or_insert_with(|| self.client.listen(ListenFilter::default()));
        listener.update(|f| {
            if on {
                f.uris.insert(uri.to_owned());
            } else {
                f.uris.remove(uri);
            }
        });
    }
}
