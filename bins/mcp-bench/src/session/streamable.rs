//! A streamable HTTP session: every message is a `POST`; an answer comes back as
//! `application/json` or as an event stream (priming events, keep-alives, related
//! notifications, then the response).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::{Answer, SessionOpts, bounded};
use crate::client::{self, Conn, SseBody, Target};
use crate::jsonrpc::{self, Message};

const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The state of one streamable HTTP session.
#[derive(Debug)]
pub(crate) struct Streamable {
    target: Target,
    opts: Arc<SessionOpts>,
    conn: Option<Conn>,
    session_id: Option<HeaderValue>,
    negotiated: String,
    version_header: Option<HeaderValue>,
    /// Answers to server→client requests, sent once the current answer is read.
    replies: Vec<Vec<u8>>,
    dead: bool,
}

impl Streamable {
    pub(super) async fn open(
        target: Target,
        opts: Arc<SessionOpts>,
        init_id: u64,
    ) -> anyhow::Result<Self> {
        let mut s = Self {
            target,
            opts,
            conn: None,
            session_id: None,
            negotiated: String::new(),
            version_header: None,
            replies: Vec::new(),
            dead: false,
        };
        let params = jsonrpc::initialize_params(&s.opts.protocol_version);
        let body = jsonrpc::request(init_id, "initialize", &params);
        let resp = s.post(body.into()).await.context("initialize")?;
        s.session_id = resp.headers().get(SESSION_ID).cloned();
        let answer = s.answer(resp, init_id).await.context("initialize")?;
        s.negotiated = jsonrpc::negotiated(answer.outcome)?;
        s.version_header = HeaderValue::from_str(&s.negotiated).ok();
        s.notify(Bytes::from_static(jsonrpc::INITIALIZED))
            .await
            .context("notifications/initialized")?;
        Ok(s)
    }

    pub(super) fn negotiated(&self) -> &str {
        &self.negotiated
    }

    pub(super) fn is_dead(&self) -> bool {
        self.dead
    }

    pub(super) fn release_connection(&mut self) {
        self.conn = None;
    }

    pub(super) async fn call(&mut self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        let timeout = self.opts.timeout;
        let result = bounded(timeout, "the request", async {
            let resp = self.post(body.into()).await?;
            self.answer(resp, id).await
        })
        .await;
        if result.is_err() {
            // The connection may hold the rest of an answer nobody will read.
            self.conn = None;
        }
        self.flush_replies().await;
        result
    }

    pub(super) async fn close(mut self) -> anyhow::Result<()> {
        if self.session_id.is_none() {
            return Ok(());
        }
        let timeout = self.opts.timeout;
        bounded(timeout, "DELETE", async {
            let headers = self.session_headers();
            let req = client::request(
                Method::DELETE,
                &self.target,
                &self.opts.headers,
                &headers,
                None,
            )?;
            let resp = self.conn().await?.send(req).await?;
            let status = resp.status();
            let _ = client::read_body(resp.into_body(), 64 << 10).await;
            // 405: the server does not let clients end sessions; 404: already gone.
            if status.is_success()
                || status == StatusCode::METHOD_NOT_ALLOWED
                || status == StatusCode::NOT_FOUND
            {
                Ok(())
            } else {
                bail!("DELETE answered {status}")
            }
        })
        .await
    }

    /// The connection, opened again when the server closed it.
    async fn conn(&mut self) -> anyhow::Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(Conn::is_closed) {
            self.conn = Some(Conn::open(self.target.addr).await?);
        }
        self.conn.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    fn session_headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut h = Vec::with_capacity(2);
        if let Some(id) = &self.session_id {
            h.push((SESSION_ID, id.clone()));
        }
        if let Some(v) = &self.version_header {
            h.push((PROTOCOL_VERSION, v.clone()));
        }
        h
    }

    async fn post(&mut self, body: Bytes) -> anyhow::Result<Response<Incoming>> {
        let headers = self.session_headers();
        let req = client::request(
            Method::POST,
            &self.target,
            &self.opts.headers,
            &headers,
            Some(body),
        )?;
        self.conn().await?.send(req).await
    }

    /// Posts a notification or a response: 202 (or another 2xx) with nothing to read.
    async fn notify(&mut self, body: Bytes) -> anyhow::Result<()> {
        let resp = self.post(body).await?;
        if !resp.status().is_success() {
            bail!("{}", client::error_text(resp).await);
        }
        client::read_body(resp.into_body(), 64 << 10).await?;
        Ok(())
    }

    /// Reads the answer to request `id` from a POST's response.
    async fn answer(&mut self, resp: Response<Incoming>, id: u64) -> anyhow::Result<Answer> {
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND if self.session_id.is_some() => {
                self.dead = true;
                bail!(
                    "the session is gone (404); {}",
                    client::error_text(resp).await
                );
            }
            StatusCode::ACCEPTED => bail!("the server answered 202 to a request"),
            _ => bail!("{}", client::error_text(resp).await),
        }
        let max = self.opts.max_message_bytes;
        if client::is_event_stream(resp.headers()) {
            let mut stream = SseBody::new(resp.into_body(), max);
            let mut found = None;
            while let Some(ev) = stream.next_event().await? {
                if !ev.is_message() {
                    continue;
                }
                if let Some(a) = self.take(&ev.data, id)? {
                    found = Some(a);
                    break;
                }
            }
            let answer = found.ok_or_else(|| {
                anyhow!("the event stream ended before the response to request {id}")
            })?;
            // The server ends the stream after the response; read to its end so the
            // connection can carry the next request, but do not wait long for it.
            let drained = tokio::time::timeout(Duration::from_secs(1), stream.drain()).await;
            if !matches!(drained, Ok(Ok(()))) {
                self.conn = None;
            }
            Ok(answer)
        } else if client::content_type(resp.headers()).starts_with("application/json") {
            let body = client::read_body(resp.into_body(), max).await?;
            self.take(&body, id)?
                .ok_or_else(|| anyhow!("the JSON answer holds no response to request {id}"))
        } else {
            let ct = client::content_type(resp.headers());
            bail!("unexpected content type {ct:?} in the answer to a request")
        }
    }

    /// Handles the messages of one JSON body or event; returns the response to `id`.
    fn take(&mut self, data: &[u8], id: u64) -> anyhow::Result<Option<Answer>> {
        let mut found = None;
        for m in jsonrpc::parse(data)? {
            match m {
                Message::Response {
                    id: Some(got),
                    outcome,
                } if got == id => {
                    found = Some(Answer {
                        outcome,
                        bytes: data.len(),
                    });
                }
                Message::Request { id, method } => {
                    self.replies.push(jsonrpc::reply_to(&id, &method));
                }
                _ => {}
            }
        }
        Ok(found)
    }

    async fn flush_replies(&mut self) {
        for reply in std::mem::take(&mut self.replies) {
            let timeout = self.opts.timeout;
            let _ = bounded(timeout, "a reply", self.notify(reply.into())).await;
        }
    }
}
