//! A legacy HTTP+SSE (2024-11-05) session: a `GET` stream whose first event names the
//! endpoint, and a `POST` per message to that endpoint (202); answers come on the stream.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderValue, Method};

use super::{Answer, SessionOpts, bounded};
use crate::client::{self, Conn, SseBody, Target};
use crate::jsonrpc::{self, Message};

/// The state of one legacy SSE session.
#[derive(Debug)]
pub(crate) struct LegacySse {
    opts: Arc<SessionOpts>,
    /// The `GET` stream, read only while a request waits for its answer.
    stream: SseBody,
    /// Keeps the stream's connection open.
    _stream_conn: Conn,
    endpoint: Target,
    conn: Option<Conn>,
    negotiated: String,
    replies: Vec<Vec<u8>>,
}

impl LegacySse {
    pub(super) async fn open(
        target: Target,
        opts: Arc<SessionOpts>,
        init_id: u64,
    ) -> anyhow::Result<Self> {
        let mut stream_conn = Conn::open(target.addr).await?;
        let accept = [(ACCEPT, HeaderValue::from_static("text/event-stream"))];
        let req = client::request(Method::GET, &target, &opts.headers, &accept, None)?;
        let resp = stream_conn.send(req).await?;
        if !resp.status().is_success() {
            bail!("GET {}: {}", target.url, client::error_text(resp).await);
        }
        if !client::is_event_stream(resp.headers()) {
            let ct = client::content_type(resp.headers());
            bail!("GET {}: answered {ct:?}, not an event stream", target.url);
        }
        let mut stream = SseBody::new(resp.into_body(), opts.max_message_bytes);
        let endpoint = loop {
            let ev = stream
                .next_event()
                .await?
                .ok_or_else(|| anyhow!("the stream ended before its endpoint event"))?;
            if ev.event.as_deref() == Some("endpoint") {
                break String::from_utf8(ev.data).context("the endpoint is not UTF-8")?;
            }
        };
        let endpoint = target.join(endpoint.trim(), opts.allow_remote).await?;
        let mut s = Self {
            opts,
            stream,
            _stream_conn: stream_conn,
            endpoint,
            conn: None,
            negotiated: String::new(),
            replies: Vec::new(),
        };
        let params = jsonrpc::initialize_params(&s.opts.protocol_version);
        let answer = s
            .exchange(init_id, jsonrpc::request(init_id, "initialize", &params))
            .await
            .context("initialize")?;
        s.negotiated = jsonrpc::negotiated(answer.outcome)?;
        s.post_only(Bytes::from_static(jsonrpc::INITIALIZED))
            .await
            .context("notifications/initialized")?;
        Ok(s)
    }

    pub(super) fn negotiated(&self) -> &str {
        &self.negotiated
    }

    pub(super) fn is_dead(&self) -> bool {
        self.stream.is_finished()
    }

    pub(super) fn release_connection(&mut self) {
        self.conn = None;
    }

    pub(super) async fn call(&mut self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        let timeout = self.opts.timeout;
        let result = bounded(timeout, "the request", self.exchange(id, body)).await;
        if result.is_err() {
            self.conn = None;
        }
        for reply in std::mem::take(&mut self.replies) {
            let _ = bounded(timeout, "a reply", self.post_only(reply.into())).await;
        }
        result
    }

    /// Posts request `id` and reads the stream until its response, both at once: the
    /// answer may come on the stream before the `POST` is acknowledged.
    async fn exchange(&mut self, id: u64, body: Vec<u8>) -> anyhow::Result<Answer> {
        let Self {
            opts,
            stream,
            endpoint,
            conn,
            replies,
            ..
        } = self;
        let req = client::request(
            Method::POST,
            endpoint,
            &opts.headers,
            &[],
            Some(body.into()),
        )?;
        let conn = fresh(conn, endpoint).await?;
        let post = async {
            let resp = conn.send(req).await?;
            if !resp.status().is_success() {
                bail!("POST {}: {}", endpoint.url, client::error_text(resp).await);
            }
            client::read_body(resp.into_body(), 64 << 10).await?;
            Ok(())
        };
        let wait = async {
            loop {
                let ev = stream
                    .next_event()
                    .await?
                    .ok_or_else(|| anyhow!("the event stream ended (the session is over)"))?;
                if !ev.is_message() {
                    continue;
                }
                let mut found = None;
                for m in jsonrpc::parse(&ev.data)? {
                    match m {
                        Message::Response {
                            id: Some(got),
                            outcome,
                        } if got == id => found = Some(outcome),
                        Message::Request { id, method } => {
                            replies.push(jsonrpc::reply_to(&id, &method));
                        }
                        _ => {}
                    }
                }
                if let Some(outcome) = found {
                    return Ok(Answer {
                        outcome,
                        bytes: ev.data.len(),
                    });
                }
            }
        };
        let ((), answer) = tokio::try_join!(post, wait)?;
        Ok(answer)
    }

    /// Posts a notification or a response.
    async fn post_only(&mut self, body: Bytes) -> anyhow::Result<()> {
        let req = client::request(
            Method::POST,
            &self.endpoint,
            &self.opts.headers,
            &[],
            Some(body),
        )?;
        let resp = fresh(&mut self.conn, &self.endpoint)
            .await?
            .send(req)
            .await?;
        if !resp.status().is_success() {
            bail!("{}", client::error_text(resp).await);
        }
        client::read_body(resp.into_body(), 64 << 10).await?;
        Ok(())
    }
}

/// The `POST` connection, opened again when the server closed it.
async fn fresh<'a>(conn: &'a mut Option<Conn>, to: &Target) -> anyhow::Result<&'a mut Conn> {
    if conn.as_ref().is_none_or(Conn::is_closed) {
        *conn = Some(Conn::open(to.addr).await?);
    }
    conn.as_mut().ok_or_else(|| anyhow!("no connection"))
}
