//! Server-sent events toward clients: event encoding, the per-stream replay buffers behind
//! `Last-Event-ID`, and response bodies with keep-alive comments.
//!
//! Event ids are `{stream}-{seq}`: unique within a session, and they name the stream they
//! belong to (2025-11-25 asks for both). Stream 0 is the session's standalone GET stream;
//! each POST that carries requests gets the next number. A session other replicas may
//! continue marks its ids with the replica that wrote them, `{stream}-{seq}@{replica}`
//! (percent-encoded), so a `Last-Event-ID` that lands elsewhere can be sent where its
//! events are.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use mcp_types::RequestId;
use tokio::sync::mpsc;

use crate::body::Body;

/// Events kept per stream for replay.
pub(crate) const REPLAY_CAPACITY: usize = 512;
/// Finished streams kept for a late resume.
const FINISHED_KEPT: usize = 32;
/// Default bytes of events kept for replay per session (`session_replay_bytes`).
pub(crate) const DEFAULT_REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// Capacity of the channel feeding one live HTTP response.
pub(crate) const LIVE_CAPACITY: usize = 256;

/// One message on its way to a live HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// The SSE event id (`None` on legacy SSE).
    pub(crate) id: Option<String>,
    /// The JSON-RPC message.
    pub(crate) json: Bytes,
    /// The response that completes its stream.
    pub(crate) last: bool,
}

impl Item {
    /// The SSE encoding: `id:`, `event: message`, `data:`.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.json.len() + 48);
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"event: message\ndata: ");
        out.extend_from_slice(&self.json);
        out.extend_from_slice(b"\n\n");
        out.into()
    }
}

/// The id of event `seq` of stream `sid`, marked with the replica that wrote it.
fn event_id(origin: Option<&str>, sid: u64, seq: u64) -> String {
    match origin {
        Some(o) => format!("{sid}-{seq}@{o}"),
        None => format!("{sid}-{seq}"),
    }
}

/// The replica that wrote event `id`, when the id names one.
pub(crate) fn event_replica(id: &str) -> Option<String> {
    let (_, tag) = id.trim().rsplit_once('@')?;
    let decoded = url::form_urlencoded::parse(format!("r={tag}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some(decoded).filter(|r| !r.is_empty())
}

/// A legacy SSE event of another type (`endpoint`).
pub(crate) fn named_event(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

#[derive(Debug, Default)]
struct StreamBuf {
    events: VecDeque<(u64, Item)>,
    /// Bytes held in `events`.
    bytes: usize,
    /// The highest seq no longer kept (replay from before it is impossible).
    dropped_through: u64,
    next_seq: u64,
    /// Highest seq handed to a live response.
    sent_seq: u64,
    live: Option<mpsc::Sender<Item>>,
    /// Responses still due on this stream.
    pending: usize,
    finished: bool,
}

/// The SSE streams of one streamable HTTP session, with what they keep for replay: at
/// most [`REPLAY_CAPACITY`] events per stream, [`FINISHED_KEPT`] finished streams, and a
/// byte budget for the whole session (oldest finished streams go first, then the oldest
/// events).
#[derive(Debug)]
pub(crate) struct Streams {
    next_stream: u64,
    streams: HashMap<u64, StreamBuf>,
    by_request: HashMap<RequestId, u64>,
    finished: VecDeque<u64>,
    /// Bytes of events kept, all streams together, and the most allowed.
    bytes: usize,
    budget: usize,
    /// The mark of this replica on event ids (percent-encoded), when sessions are shared.
    origin: Option<String>,
}

impl Default for Streams {
    fn default() -> Self {
        Self::with_budget(DEFAULT_REPLAY_BYTES)
    }
}

impl StreamBuf {
    fn drop_front(&mut self) -> usize {
        match self.events.pop_front() {
            Some((seq, item)) => {
                self.dropped_through = seq;
                self.bytes -= item.json.len();
                item.json.len()
            }
            None => 0,
        }
    }
}

/// Why a GET stream cannot be attached.
#[derive(Debug)]
pub(crate) enum AttachError {
    /// The standalone stream is already open.
    Busy,
    /// The `Last-Event-ID` names no stream we still have.
    Unknown,
}

impl Streams {
    /// Streams keeping at most `budget` bytes of events for replay.
    pub(crate) fn with_budget(budget: usize) -> Self {
        let mut streams = HashMap::new();
        streams.insert(0, StreamBuf::default());
        Self {
            next_stream: 1,
            streams,
            by_request: HashMap::new(),
            finished: VecDeque::new(),
            bytes: 0,
            budget,
            origin: None,
        }
    }

    /// Marks the event ids written from now on with replica `replica`.
    pub(crate) fn set_origin(&mut self, replica: &str) {
        self.origin = Some(url::form_urlencoded::byte_serialize(replica.as_bytes()).collect());
    }

    /// The priming event of a 2025-11-25 stream: an id and empty data.
    pub(crate) fn priming(&self, stream: u64) -> Bytes {
        let id = event_id(self.origin.as_deref(), stream, 0);
        Bytes::from(format!("id: {id}\ndata: \n\n"))
    }

    /// Bytes of events kept for replay.
    #[cfg(test)]
    pub(crate) fn replay_bytes(&self) -> usize {
        self.bytes
    }

    /// Gives bytes back until the session is within its budget: finished streams first
    /// (oldest first), then the oldest events of the oldest streams. Live streams keep
    /// receiving; only what a resume could replay is lost.
    fn trim(&mut self) {
        while self.bytes > self.budget {
            if let Some(sid) = self.finished.pop_front() {
                if let Some(buf) = self.streams.remove(&sid) {
                    self.bytes -= buf.bytes;
                }
                continue;
            }
            let oldest = self
                .streams
                .iter()
                .filter(|(_, b)| !b.events.is_empty())
                .map(|(sid, _)| *sid)
                .min();
            let Some(sid) = oldest else { break };
            if let Some(buf) = self.streams.get_mut(&sid) {
                self.bytes -= buf.drop_front();
            }
        }
    }

    /// A new stream for the requests `ids` of one POST, with its live channel; `Err`
    /// with an id that is already awaited on another stream (or twice in `ids`): the
    /// answers could not be told apart.
    pub(crate) fn open_request_stream(
        &mut self,
        ids: &[RequestId],
    ) -> Result<(u64, mpsc::Receiver<Item>), RequestId> {
        for (i, id) in ids.iter().enumerate() {
            if self.by_request.contains_key(id) || ids[..i].contains(id) {
                return Err(id.clone());
            }
        }
        let sid = self.next_stream;
        self.next_stream += 1;
        let (tx, rx) = mpsc::channel(LIVE_CAPACITY);
        self.streams.insert(
            sid,
            StreamBuf {
                live: Some(tx),
                pending: ids.len(),
                ..StreamBuf::default()
            },
        );
        for id in ids {
            self.by_request.insert(id.clone(), sid);
        }
        Ok((sid, rx))
    }

    /// Forgets stream `sid` and its requests: its answer went out as plain JSON, which
    /// nobody can resume, so nothing of it is kept.
    pub(crate) fn forget(&mut self, sid: u64) {
        if let Some(buf) = self.streams.remove(&sid) {
            self.bytes -= buf.bytes;
        }
        self.by_request.retain(|_, s| *s != sid);
    }

    /// Files a message: on the stream of the request it relates to, else on the
    /// standalone stream. A response on no stream is dropped (returns `false`).
    pub(crate) fn push(
        &mut self,
        json: Bytes,
        related: Option<&RequestId>,
        is_response: bool,
    ) -> bool {
        let sid = related
            .and_then(|id| self.by_request.get(id).copied())
            .unwrap_or(0);
        if is_response && sid == 0 {
            return false;
        }
        if is_response && let Some(id) = related {
            self.by_request.remove(id);
        }
        let Some(buf) = self.streams.get_mut(&sid) else {
            return false;
        };
        let mut last = false;
        if is_response {
            buf.pending = buf.pending.saturating_sub(1);
            if buf.pending == 0 {
                buf.finished = true;
                last = true;
            }
        }
        buf.next_seq += 1;
        let seq = buf.next_seq;
        let item = Item {
            id: Some(event_id(self.origin.as_deref(), sid, seq)),
            json,
            last,
        };
        if buf.events.len() == REPLAY_CAPACITY {
            self.bytes -= buf.drop_front();
        }
        buf.bytes += item.json.len();
        self.bytes += item.json.len();
        buf.events.push_back((seq, item.clone()));
        if let Some(live) = &buf.live {
            match live.try_send(item) {
                Ok(()) => buf.sent_seq = seq,
                // A client too slow to read loses the connection, not the events: it
                // resumes with Last-Event-ID.
                Err(_) => buf.live = None,
            }
        }
        if last {
            buf.live = None;
            self.retire(sid);
        }
        self.trim();
        true
    }

    /// Keeps a finished stream for late resumes, forgetting the oldest beyond the bound.
    fn retire(&mut self, sid: u64) {
        self.finished.push_back(sid);
        while self.finished.len() > FINISHED_KEPT {
            if let Some(old) = self.finished.pop_front()
                && let Some(buf) = self.streams.remove(&old)
            {
                self.bytes -= buf.bytes;
            }
        }
    }

    /// The client cancelled request `id`: no response is due on its stream any more.
    pub(crate) fn cancel(&mut self, id: &RequestId) {
        let Some(sid) = self.by_request.remove(id) else {
            return;
        };
        if let Some(buf) = self.streams.get_mut(&sid) {
            buf.pending = buf.pending.saturating_sub(1);
            if buf.pending == 0 {
                buf.finished = true;
                buf.live = None;
                self.retire(sid);
            }
        }
    }

    /// Attaches a GET: a resume after `last_event_id`, or the standalone stream. Returns
    /// the events to send first and the live channel (`None` when the stream is over).
    pub(crate) fn attach(
        &mut self,
        last_event_id: Option<&str>,
    ) -> Result<(Vec<Item>, Option<mpsc::Receiver<Item>>), AttachError> {
        let (sid, after) = match last_event_id {
            Some(id) => parse_event_id(id, self.origin.as_deref()).ok_or(AttachError::Unknown)?,
            None => {
                let buf = self.streams.get(&0).ok_or(AttachError::Unknown)?;
                if buf.live.as_ref().is_some_and(|l| !l.is_closed()) {
                    return Err(AttachError::Busy);
                }
                (0, buf.sent_seq)
            }
        };
        let buf = self.streams.get_mut(&sid).ok_or(AttachError::Unknown)?;
        if after < buf.dropped_through {
            // Events after `after` are gone (the replay budget): a resume would skip them.
            return Err(AttachError::Unknown);
        }
        let replay: Vec<Item> = buf
            .events
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(_, item)| item.clone())
            .collect();
        buf.sent_seq = buf.next_seq;
        if buf.finished {
            buf.live = None;
            return Ok((replay, None));
        }
        let (tx, rx) = mpsc::channel(LIVE_CAPACITY);
        buf.live = Some(tx);
        Ok((replay, Some(rx)))
    }

    /// Ends every live response (the session is over).
    pub(crate) fn close_all(&mut self) {
        for buf in self.streams.values_mut() {
            buf.live = None;
        }
    }
}

/// Stream and seq of an event id this replica wrote (`origin`: its mark).
fn parse_event_id(id: &str, origin: Option<&str>) -> Option<(u64, u64)> {
    let id = id.trim();
    let id = match id.rsplit_once('@') {
        // Written by another replica: its events are not here.
        Some((id, tag)) if Some(tag) == origin => id,
        Some(_) => return None,
        None => id,
    };
    let (sid, seq) = id.split_once('-')?;
    Some((sid.parse().ok()?, seq.parse().ok()?))
}

/// Runs `f` when dropped (a response body the client stopped reading).
pub(crate) struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    pub(crate) fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(f)))
    }

    /// Drops without running.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl std::fmt::Debug for OnDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnDrop")
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

struct BodyState {
    prelude: VecDeque<Bytes>,
    rx: Option<mpsc::Receiver<Item>>,
    tick: tokio::time::Interval,
    _guard: Option<OnDrop>,
}

/// An SSE response: `prelude` chunks, then each item from `rx` until it closes, with a
/// keep-alive comment every `keepalive`. No write timeout applies. `guard` is dropped
/// with the body.
pub(crate) fn sse_response(
    prelude: Vec<Bytes>,
    rx: Option<mpsc::Receiver<Item>>,
    keepalive: Duration,
    guard: Option<OnDrop>,
) -> Response<Body> {
    let period = keepalive.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = BodyState {
        prelude: prelude.into(),
        rx,
        tick,
        _guard: guard,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if let Some(chunk) = st.prelude.pop_front() {
            return Some((Ok::<_, std::io::Error>(Frame::data(chunk)), st));
        }
        let rx = st.rx.as_mut()?;
        tokio::select! {
            item = rx.recv() => item.map(|i| (Ok(Frame::data(i.encode())), st)),
            _ = st.tick.tick() => Some((Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n"))), st)),
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> RequestId {
        RequestId::number(n)
    }

    #[test]
    fn related_messages_go_on_their_request_stream_and_responses_finish_it() {
        let mut s = Streams::default();
        let (sid, mut rx) = s.open_request_stream(&[id(1)]).unwrap();
        assert_eq!(
            s.open_request_stream(&[id(1)]).unwrap_err(),
            id(1),
            "in use"
        );
        assert_eq!(s.open_request_stream(&[id(2), id(2)]).unwrap_err(), id(2));
        assert!(s.push(Bytes::from_static(b"{}"), Some(&id(1)), false));
        assert!(s.push(Bytes::from_static(b"{}"), None, false));
        assert!(s.push(Bytes::from_static(b"{}"), Some(&id(1)), true));
        let first = rx.try_recv().unwrap();
        assert_eq!(first.id.as_deref(), Some(format!("{sid}-1").as_str()));
        assert!(rx.try_recv().unwrap().last);
        // the unrelated one waits on the standalone stream for a GET
        let (replay, live) = s.attach(None).unwrap();
        assert_eq!(replay.len(), 1);
        assert!(live.is_some());
        assert!(matches!(s.attach(None), Err(AttachError::Busy)));
        // a response for nobody is dropped, never put on the GET stream
        assert!(!s.push(Bytes::from_static(b"{}"), Some(&id(9)), true));
    }

    #[test]
    fn the_replay_budget_drops_finished_streams_then_old_events() {
        let mut s = Streams::with_budget(10);
        let (done, rx) = s.open_request_stream(&[id(1)]).unwrap();
        drop(rx);
        assert!(s.push(Bytes::from_static(b"aaaa"), Some(&id(1)), true));
        let (live, _rx) = s.open_request_stream(&[id(2)]).unwrap();
        for _ in 0..3 {
            s.push(Bytes::from_static(b"bbbb"), Some(&id(2)), false);
        }
        assert!(s.replay_bytes() <= 10, "{}", s.replay_bytes());
        assert!(
            matches!(
                s.attach(Some(&format!("{done}-0"))),
                Err(AttachError::Unknown)
            ),
            "the finished stream went first"
        );
        assert!(
            matches!(
                s.attach(Some(&format!("{live}-0"))),
                Err(AttachError::Unknown)
            ),
            "a resume from before dropped events is refused, not silently short"
        );
        let (replay, _) = s.attach(Some(&format!("{live}-1"))).unwrap();
        assert_eq!(replay.len(), 2);
        s.forget(live);
        assert_eq!(s.replay_bytes(), 0);
    }

    #[test]
    fn resume_replays_only_that_stream_after_the_id() {
        let mut s = Streams::default();
        let (sid, rx) = s.open_request_stream(&[id(1), id(2)]).unwrap();
        drop(rx);
        s.push(Bytes::from_static(b"a"), Some(&id(1)), false);
        s.push(Bytes::from_static(b"b"), Some(&id(1)), true);
        s.push(Bytes::from_static(b"c"), None, false);
        let (replay, live) = s.attach(Some(&format!("{sid}-1"))).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(&replay[0].json[..], b"b");
        assert!(live.is_some(), "request 2 is still due");
        s.push(Bytes::from_static(b"d"), Some(&id(2)), true);
        let (replay, live) = s.attach(Some(&format!("{sid}-0"))).unwrap();
        assert_eq!(replay.len(), 3);
        assert!(live.is_none(), "finished");
        assert!(matches!(s.attach(Some("99-1")), Err(AttachError::Unknown)));
        assert!(matches!(s.attach(Some("junk")), Err(AttachError::Unknown)));
    }

    #[test]
    fn ids_name_the_replica_that_wrote_them() {
        let mut s = Streams::default();
        s.set_origin("r 1/x");
        let (sid, rx) = s.open_request_stream(&[id(1)]).unwrap();
        drop(rx);
        s.push(Bytes::from_static(b"a"), Some(&id(1)), false);
        let (replay, _) = s.attach(Some(&format!("{sid}-0@r+1%2Fx"))).unwrap();
        let written = replay[0].id.clone().unwrap();
        assert_eq!(written, format!("{sid}-1@r+1%2Fx"));
        assert_eq!(event_replica(&written).as_deref(), Some("r 1/x"));
        assert!(
            s.priming(sid)
                .starts_with(format!("id: {sid}-0@r+1%2Fx\n").as_bytes())
        );
        // Another replica's events are not here; an unmarked id is read as before.
        assert!(matches!(
            s.attach(Some(&format!("{sid}-0@r2"))),
            Err(AttachError::Unknown)
        ));
        assert_eq!(event_replica(&format!("{sid}-0@r2")).as_deref(), Some("r2"));
        assert!(s.attach(Some(&format!("{sid}-0"))).is_ok());
        assert_eq!(event_replica("3-4"), None);
    }
}
