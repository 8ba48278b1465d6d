//! One client session: answers `initialize` and `ping`, forwards everything else to its
//! upstream link with ids and progress tokens rewritten, and restores them on the way back.

mod end;
mod relay;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use mcp_types::jsonrpc::codes;
use mcp_types::mcp::{
    InitializeParams, InitializeResult, LATEST_PROTOCOL_VERSION, is_supported_version, methods,
};
use mcp_types::{Message, Notification, Request, RequestId, Response, SessionMode};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::link::Link;
use super::{Outbound, Permit, SessionHub, SessionOptions, rewrite};
use crate::Upstream;
use crate::connector::SessionParams;

/// A client session. Created by [`SessionHub::open`]; ends on [`ClientSession::close`],
/// when its upstream session dies, or when its upstream is removed or replaced.
#[derive(Debug)]
pub struct ClientSession {
    id: String,
    hub: SessionHub,
    upstream: Arc<Upstream>,
    options: SessionOptions,
    state: Mutex<State>,
    cancel: CancellationToken,
    /// Its place in the session limits, given back when the session ends.
    permit: Mutex<Option<Permit>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Initializing,
    Ready,
    Ended,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    out: Option<mpsc::Sender<Outbound>>,
    link: Option<Arc<Link>>,
    protocol_version: Option<String>,
    capabilities: Value,
    /// Client request id → the forward in flight.
    inflight: HashMap<RequestId, Inflight>,
    next_seq: u64,
    /// Id we gave a server→client request → the upstream's id for it.
    server_requests: HashMap<RequestId, RequestId>,
    next_server_id: i64,
    subscriptions: HashSet<String>,
}

#[derive(Debug)]
struct Inflight {
    upstream_id: RequestId,
    seq: u64,
    token: CancellationToken,
    progress: Option<RequestId>,
}

impl ClientSession {
    pub(super) fn spawn(
        hub: SessionHub,
        upstream: Arc<Upstream>,
        options: SessionOptions,
        out: mpsc::Sender<Outbound>,
        permit: Permit,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let session = Arc::new(Self {
            id: format!("{:032x}", rand::random::<u128>()),
            hub,
            upstream,
            options,
            state: Mutex::new(State {
                phase: Phase::New,
                out: Some(out),
                link: None,
                protocol_version: None,
                capabilities: Value::Null,
                inflight: HashMap::new(),
                next_seq: 0,
                server_requests: HashMap::new(),
                next_server_id: 0,
                subscriptions: HashSet::new(),
            }),
            cancel,
            permit: Mutex::new(Some(permit)),
        });
        // Ends the session when its upstream is removed or replaced, or at shutdown.
        let weak = Arc::downgrade(&session);
        let (upstream, cancel) = (session.upstream.clone(), session.cancel.clone());
        tokio::spawn(async move {
            let reason = tokio::select! {
                () = upstream.stopped() => format!("mcp {:?} was removed or replaced", upstream.name()),
                () = cancel.cancelled() => "the proxy is shutting down".to_owned(),
            };
            if let Some(session) = weak.upgrade() {
                session.terminate(Some(reason)).await;
            }
        });
        session
    }

    /// The session id (128 random bits, hex).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The upstream's name.
    pub fn upstream_name(&self) -> &str {
        self.upstream.name()
    }

    /// The protocol version negotiated with the client, once initialized.
    pub fn protocol_version(&self) -> Option<String> {
        self.state().protocol_version.clone()
    }

    /// Whether `initialize` succeeded.
    pub fn is_initialized(&self) -> bool {
        self.state().phase == Phase::Ready
    }

    /// Whether the session is over.
    pub fn is_ended(&self) -> bool {
        self.state().phase == Phase::Ended
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one message from the client. Work happens in the background; what the client
    /// gets back comes out of the session's receiver.
    pub fn handle(self: &Arc<Self>, msg: Message) -> Result<(), crate::Error> {
        let phase = self.state().phase;
        if phase == Phase::Ended {
            return Err(crate::Error::SessionEnded(self.id.clone()));
        }
        match msg {
            Message::Request(req) => self.on_request(req, phase),
            Message::Notification(n) => self.on_notification(n, phase),
            Message::Response(r) => self.on_response(r),
        }
        Ok(())
    }

    fn on_request(self: &Arc<Self>, req: Request, phase: Phase) {
        let refusal = match (req.method.as_str(), phase) {
            (methods::PING, _) => {
                let pong = Message::result(req.id.clone(), &serde_json::json!({}));
                return self.spawn_emit(pong, Some(req.id));
            }
            (methods::INITIALIZE, Phase::New) => {
                self.state().phase = Phase::Initializing;
                let me = self.clone();
                let cancel = self.cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = me.initialize(req) => {}
                    }
                });
                return;
            }
            (methods::INITIALIZE, _) => "the session is already initialized".to_owned(),
            (_, Phase::Ready) => return self.forward(req),
            _ => "the session is not initialized: send initialize first".to_owned(),
        };
        let error = Message::error(req.id.clone(), codes::INVALID_REQUEST, refusal);
        self.spawn_emit(error, Some(req.id));
    }

    fn on_notification(self: &Arc<Self>, n: Notification, phase: Phase) {
        let link = self.state().link.clone();
        let Some(link) = link.filter(|_| phase == Phase::Ready) else {
            return;
        };
        match n.method.as_str() {
            methods::INITIALIZED => {}
            methods::CANCELLED => {
                let Some(id) = rewrite::cancelled_request_id(n.params.as_deref()) else {
                    return;
                };
                let reason = rewrite::cancelled_reason(n.params.as_deref())
                    .unwrap_or_else(|| "cancelled by the client".into());
                let entry = self.state().inflight.remove(&id);
                if let Some(entry) = entry {
                    entry.token.cancel();
                    if let Some(t) = &entry.progress {
                        link.forget_progress(t);
                    }
                    self.spawn_owned(async move {
                        let _ = link
                            .client()
                            .cancel_request(&entry.upstream_id, &reason)
                            .await;
                    });
                }
            }
            _ => {
                self.spawn_owned(async move {
                    let send = link.client().send_raw(Message::Notification(n));
                    let _ = tokio::time::timeout(super::SEND_TIMEOUT, send).await;
                });
            }
        }
    }

    fn on_response(self: &Arc<Self>, r: Response) {
        let (upstream_id, link) = {
            let mut state = self.state();
            (state.server_requests.remove(&r.id), state.link.clone())
        };
        let (Some(upstream_id), Some(link)) = (upstream_id, link) else {
            debug!(session = %self.id, id = %r.id, "response to no request of ours; ignored");
            return;
        };
        link.forget_server_request(&upstream_id);
        self.spawn_owned(async move {
            let send = link.client().respond(upstream_id, r.outcome);
            let _ = tokio::time::timeout(super::SEND_TIMEOUT, send).await;
        });
    }

    async fn initialize(self: Arc<Self>, req: Request) {
        let params: Result<InitializeParams, _> = req.params.as_deref().map_or_else(
            || serde_json::from_str("null"),
            |p| serde_json::from_str(p.get()),
        );
        let params = match params {
            Ok(p) => p,
            Err(e) => {
                self.state().phase = Phase::New;
                let msg = format!("invalid initialize params: {e}");
                let error = Message::error(req.id.clone(), codes::INVALID_PARAMS, msg);
                return self.emit(error, Some(req.id)).await;
            }
        };
        let version = if is_supported_version(&params.protocol_version) {
            params.protocol_version.clone()
        } else {
            LATEST_PROTOCOL_VERSION.to_owned()
        };
        let linked = match self.upstream.definition().session_mode {
            SessionMode::PerClient => {
                let sp = SessionParams {
                    client_info: params.client_info.clone(),
                    capabilities: params.capabilities.clone(),
                    extra_headers: self.options.extra_headers.clone(),
                    path_suffix: self.options.path_suffix.clone(),
                };
                Link::open_per_client(&self.hub, &self.upstream, sp).await
            }
            SessionMode::Shared => self.hub.shared_link(&self.upstream).await,
        };
        let link = match linked {
            Ok(link) => link,
            Err(e) => {
                tracing::warn!(session = %self.id, upstream = %self.upstream.name(), error = %e, "cannot open the upstream session");
                self.state().phase = Phase::New;
                let msg = format!("cannot open an upstream session: {e}");
                let error = Message::error(req.id.clone(), codes::INTERNAL_ERROR, msg);
                return self.emit(error, Some(req.id)).await;
            }
        };
        {
            let mut state = self.state();
            if state.phase == Phase::Ended {
                drop(state);
                return link.detach(&self);
            }
            state.phase = Phase::Ready;
            state.link = Some(link.clone());
            state.protocol_version = Some(version.clone());
            state.capabilities = params.capabilities;
        }
        link.attach(&self);
        let init = link.init();
        let result = InitializeResult {
            protocol_version: version,
            capabilities: init.capabilities.clone(),
            server_info: init.server_info.clone(),
            instructions: init.instructions.clone(),
            extra: serde_json::Map::new(),
        };
        debug!(session = %self.id, upstream = %self.upstream.name(), shared = link.is_shared(), "client session initialized");
        self.emit(Message::result(req.id.clone(), &result), Some(req.id))
            .await;
    }
}
