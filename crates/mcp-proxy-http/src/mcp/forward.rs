//! Forwarding a request to the replica that holds what it needs: a streamable-HTTP
//! session whose upstream lives in its owner's process (a `per-client` stdio child), the
//! event stream of a legacy SSE session, the events a `Last-Event-ID` names.
//!
//! - **Replayed as sent.** Method, path and query, the client's headers minus hop-by-hop
//!   ones, and the body (already read within `max_body_bytes`) go to the holder's address
//!   (`replica_url`, recorded with its heartbeat). Its answer streams back as it comes,
//!   frame by frame (SSE answers, GET streams); a client that goes away drops the
//!   forwarded connection with it.
//! - **Marked, sealed.** The forwarded request carries [`FORWARDED_HEADER`], sealed with
//!   the shared session keys: the sending replica, the client's address as the sender
//!   determined it, the method and path, and an expiry of a few seconds. The receiver
//!   accepts it only when it opens; it then applies its IP rules to that address and never
//!   forwards the request again (no loops). One that does not open is refused (400).
//! - **Bounded.** Connecting gives up after [`CONNECT_TIMEOUT`] (503
//!   `replica_unreachable`; the session is not taken over while its owner's heartbeat is
//!   current), the answer's head is awaited for the upstream's timeout plus a margin, and
//!   nothing is buffered beyond one frame. Holders are remembered for [`HOLDER_TTL`] so a
//!   forwarded request costs no Redis round trip.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::seal::Keys;
use crate::app::App;
use crate::body::Body;
use crate::config::StateKey;
use crate::error::Error;
use crate::security::ClientAddr;

/// The header that marks a request one replica forwarded to another.
pub(crate) const FORWARDED_HEADER: &str = "mcp-proxy-forwarded";
/// What every forwarded header starts with.
const PREFIX: &str = "mcpf1.";
/// Associated data of every sealed forwarded header.
const AAD: &[u8] = b"mcp-proxy forwarded request 1";
/// How long a forwarded header is accepted after it was sealed (replicas' clocks must
/// agree within this).
const LIFETIME: Duration = Duration::from_secs(10);
/// How long connecting to another replica may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a holder looked up in the registry is remembered.
const HOLDER_TTL: Duration = Duration::from_secs(2);
/// Holders remembered at most.
const HOLDERS_KEPT: usize = 8192;
/// Forwarded headers remembered at most while they are current (each is accepted once).
const SEEN_KEPT: usize = 65_536;
/// Added to the upstream's timeout while the answer's head is awaited.
const HEAD_MARGIN: Duration = Duration::from_secs(10);

/// How a request reached this replica: set on every MCP-endpoint request.
#[derive(Debug, Clone)]
pub(crate) struct Via {
    /// The client's address (as the sending replica determined it, when forwarded).
    pub(crate) client: ClientAddr,
    /// The replica that forwarded it here, if one did.
    pub(crate) from: Option<String>,
}

impl Via {
    /// The request's `Via`; a request that has none was never checked, so it is taken as
    /// forwarded already (it is not forwarded).
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        req.extensions().get::<Self>().cloned().unwrap_or(Self {
            client: ClientAddr::Unknown,
            from: Some(String::new()),
        })
    }

    /// Whether this request may be forwarded (it came from a client, not a replica).
    pub(crate) fn may_forward(&self) -> bool {
        self.from.is_none()
    }
}

/// What a forwarded header says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The sending replica.
    r: String,
    /// The replica it is for (only that one accepts it).
    t: String,
    /// The client's address; `None`: unknown.
    c: Option<std::net::IpAddr>,
    /// Method.
    m: String,
    /// Path and query.
    p: String,
    /// Expiry, milliseconds since the Unix epoch.
    e: u64,
}

/// A request as it is replayed to another replica.
#[derive(Debug)]
pub(crate) struct Replay<'a> {
    pub(crate) method: Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: Bytes,
}

/// The replica holding what a request needs, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) replica: String,
    pub(crate) address: String,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Forwards requests to other replicas, and checks those forwarded here.
pub(crate) struct Forwarder {
    keys: Keys,
    client: OnceLock<HttpClient>,
    /// Holders by session id, with when they were looked up.
    holders: Mutex<HashMap<String, (Holder, Instant)>>,
    /// Forwarded headers accepted here (a hash of each), with their expiry: a header
    /// captured on the replicas' network cannot be played again.
    seen: Mutex<HashMap<u64, u64>>,
    /// Keys the hashes of `seen`.
    hasher: std::hash::RandomState,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Seals and opens with `keys` (without keys, nothing forwarded opens).
    pub(crate) fn new(keys: &[StateKey]) -> Self {
        Self {
            keys: Keys::new(keys, "mcp-proxy/forwarded-request", AAD, PREFIX),
            client: OnceLock::new(),
            holders: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// How `req` reached this replica (`me`): removes the forwarded header, and accepts it
    /// only when it opens, is current, was sealed for this very method and path and for
    /// this replica, and has not been accepted before.
    pub(crate) fn inbound<B>(
        &self,
        req: &mut Request<B>,
        peer: ClientAddr,
        me: Option<&str>,
    ) -> Result<Via, Error> {
        let values: Vec<HeaderValue> = match req.headers_mut().entry(FORWARDED_HEADER) {
            header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
            header::Entry::Vacant(_) => {
                return Ok(Via {
                    client: peer,
                    from: None,
                });
            }
        };
        let refused = |why: &str| Error::BadRequest {
            kind: crate::error::ErrorKind::ForwardedHeaderRefused,
            message: format!(
                "the {FORWARDED_HEADER} header is refused ({why}): only replicas of this proxy set it"
            ),
        };
        let [value] = values.as_slice() else {
            return Err(refused("sent more than once"));
        };
        let text = value.to_str().map_err(|_| refused("not text"))?;
        let claims: Claims = self
            .keys
            .open(text)
            .map_err(|_| refused("it does not verify"))?;
        if claims.e < now_ms() {
            return Err(refused("expired"));
        }
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        if claims.m != req.method().as_str() || claims.p != path {
            return Err(refused("sealed for another request"));
        }
        if me != Some(claims.t.as_str()) {
            return Err(refused("sealed for another replica"));
        }
        self.first_use(text, claims.e).map_err(refused)?;
        Ok(Via {
            client: claims.c.map_or(ClientAddr::Unknown, ClientAddr::Known),
            from: Some(claims.r),
        })
    }

    /// Records the use of forwarded header `text`, current until `expires`; refuses a
    /// second use, and a new one while [`SEEN_KEPT`] current headers are remembered.
    fn first_use(&self, text: &str, expires: u64) -> Result<(), &'static str> {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(text);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SEEN_KEPT {
            let now = now_ms();
            seen.retain(|_, e| *e >= now);
            if seen.len() >= SEEN_KEPT {
                return Err("too many forwarded requests at once");
            }
        }
        match seen.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => Err("used already"),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(expires);
                Ok(())
            }
        }
    }

    /// The holder of session `id` looked up a moment ago, if any.
    pub(crate) fn holder_of(&self, id: &str) -> Option<Holder> {
        let holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        holders
            .get(id)
            .filter(|(_, at)| at.elapsed() < HOLDER_TTL)
            .map(|(h, _)| h.clone())
    }

    /// Remembers that `holder` holds session `id` (for [`HOLDER_TTL`]).
    pub(crate) fn remember(&self, id: &str, holder: &Holder) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        if holders.len() >= HOLDERS_KEPT {
            holders.retain(|_, (_, at)| at.elapsed() < HOLDER_TTL);
            if holders.len() >= HOLDERS_KEPT {
                holders.clear();
            }
        }
        holders.insert(id.to_owned(), (holder.clone(), Instant::now()));
    }

    /// Forgets every holder at `address` (it could not be reached).
    fn forget(&self, address: &str) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        holders.retain(|_, (h, _)| h.address != address);
    }

    fn client(&self) -> &HttpClient {
        self.client.get_or_init(|| {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
            connector.set_nodelay(true);
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build(connector)
        })
    }

    /// Replays `req` to `to` and streams its answer back. `via` must allow forwarding:
    /// a request forwarded here already gets the holder's refusal instead.
    pub(crate) async fn send(
        &self,
        app: &App,
        endpoint: &str,
        via: &Via,
        to: &Holder,
        req: Replay<'_>,
    ) -> Result<Response<Body>, Error> {
        let Some(me) = app.replica_id().filter(|_| via.may_forward()) else {
            return Err(Error::OnReplica {
                replica: to.replica.clone(),
                address: to.address.clone(),
            });
        };
        let unreachable = |why: String| {
            Error::ReplicaUnreachable(format!(
                "replica {} ({}) holds this session and cannot be reached: {why}; retry (once \
                 its heartbeat expires, another replica takes the session over)",
                to.replica, to.address
            ))
        };
        let base: Uri = to
            .address
            .parse()
            .map_err(|_| unreachable("its address is not a uri".into()))?;
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            return Err(unreachable(
                "its address is not http://host:port (forwarding speaks plain http)".into(),
            ));
        }
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = Uri::builder()
            .scheme("http")
            .authority(base.authority().expect("checked").clone())
            .path_and_query(path)
            .build()
            .map_err(|e| Error::Internal(format!("forwarded uri: {e}")))?;
        let sealed = self.keys.seal(&Claims {
            r: me.to_owned(),
            t: to.replica.clone(),
            c: via.client.ip(),
            m: req.method.as_str().to_owned(),
            p: path.to_owned(),
            e: now_ms().saturating_add(millis(LIFETIME)),
        });
        let mut out = Request::new(Full::new(req.body));
        *out.method_mut() = req.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = end_to_end(req.headers);
        out.headers_mut().remove(header::CONTENT_LENGTH);
        out.headers_mut().insert(
            HeaderName::from_static(FORWARDED_HEADER),
            HeaderValue::from_str(&sealed).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let within = answer_within(app, endpoint);
        debug!(replica = %to.replica, address = %to.address, path, "forwarding to the holder");
        let resp = match tokio::time::timeout(within, self.client().request(out)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) if e.is_connect() => {
                self.forget(&to.address);
                return Err(unreachable(source_of(&e)));
            }
            Ok(Err(e)) => {
                self.forget(&to.address);
                return Err(Error::ReplicaFailed(format!(
                    "replica {} ({}) holds this session and failed to answer the forwarded \
                     request: {}",
                    to.replica,
                    to.address,
                    source_of(&e)
                )));
            }
            Err(_) => {
                return Err(Error::ReplicaFailed(format!(
                    "replica {} ({}) holds this session and did not answer the forwarded \
                     request within {}",
                    to.replica,
                    to.address,
                    mcp_types::duration::format(within)
                )));
            }
        };
        let (mut parts, body) = resp.into_parts();
        parts.headers = end_to_end(&parts.headers);
        Ok(Response::from_parts(parts, stream(body)))
    }
}

/// The answer's body as it arrives, frame by frame.
fn stream(body: Incoming) -> Body {
    body.map_err(std::io::Error::other).boxed_unsync()
}

/// How long the answer's head may take: the upstream's timeout (an answer that is not a
/// stream waits for the upstream), plus a margin.
fn answer_within(app: &App, endpoint: &str) -> Duration {
    let upstream = app
        .inner()
        .manager
        .upstream(endpoint)
        .map_or(Duration::from_secs(60), |u| u.definition().timeout);
    upstream + CONNECT_TIMEOUT + HEAD_MARGIN
}

/// The headers without hop-by-hop ones (those named by `Connection` too) and without
/// the forwarded header.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        FORWARDED_HEADER,
    ];
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The innermost cause of a client error (hyper's own message says little).
fn source_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replica the tests' headers are sealed for.
    const ME: &str = "r1";

    fn key() -> StateKey {
        StateKey {
            id: "k".into(),
            key: [7; 32],
        }
    }

    fn request(method: Method, path: &str, forwarded: Option<&str>) -> Request<()> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(f) = forwarded {
            req = req.header(FORWARDED_HEADER, f);
        }
        req.body(()).unwrap()
    }

    fn sealed(f: &Forwarder, m: &str, p: &str, expires: u64) -> String {
        f.keys.seal(&Claims {
            r: "r0".into(),
            t: ME.into(),
            c: Some("10.1.2.3".parse().unwrap()),
            m: m.into(),
            p: p.into(),
            e: expires,
        })
    }

    fn code(e: Error) -> &'static str {
        e.parts().1.as_str()
    }

    #[test]
    fn a_client_request_is_not_forwarded_yet() {
        let f = Forwarder::new(&[key()]);
        let peer = ClientAddr::Known("127.0.0.1".parse().unwrap());
        let via = f
            .inbound(&mut request(Method::POST, "/a/mcp", None), peer, Some(ME))
            .unwrap();
        assert!(via.may_forward());
        assert_eq!(via.client, peer);
    }

    #[test]
    fn a_sealed_header_gives_the_client_address_and_is_never_forwarded_again() {
        let f = Forwarder::new(&[key()]);
        let h = sealed(&f, "POST", "/a/message?sessionId=x", now_ms() + 5000);
        let mut req = request(Method::POST, "/a/message?sessionId=x", Some(&h));
        let via = f.inbound(&mut req, ClientAddr::Unknown, Some(ME)).unwrap();
        assert!(!via.may_forward());
        assert_eq!(via.from.as_deref(), Some("r0"));
        assert_eq!(via.client, ClientAddr::Known("10.1.2.3".parse().unwrap()));
        assert!(req.headers().get(FORWARDED_HEADER).is_none(), "removed");
        // played again (captured on the replicas' network): refused
        let mut again = request(Method::POST, "/a/message?sessionId=x", Some(&h));
        let err = f
            .inbound(&mut again, ClientAddr::Unknown, Some(ME))
            .unwrap_err();
        assert_eq!(code(err), "forwarded_header_refused");
        // a fresh seal for the same request is a new header
        let h2 = sealed(&f, "POST", "/a/message?sessionId=x", now_ms() + 5000);
        let mut next = request(Method::POST, "/a/message?sessionId=x", Some(&h2));
        assert!(f.inbound(&mut next, ClientAddr::Unknown, Some(ME)).is_ok());
    }

    #[test]
    fn forged_expired_foreign_or_misplaced_headers_are_refused() {
        let f = Forwarder::new(&[key()]);
        let peer = ClientAddr::Unknown;
        let ok = sealed(&f, "POST", "/a/mcp", now_ms() + 5000);
        let mut forged = ok.clone().into_bytes();
        let i = forged.len() - 3;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        let other_key = Forwarder::new(&[StateKey {
            id: "k".into(),
            key: [8; 32],
        }]);
        let foreign = sealed(&other_key, "POST", "/a/mcp", now_ms() + 5000);
        let expired = sealed(&f, "POST", "/a/mcp", now_ms() - 1);
        for (what, h, method, path) in [
            ("forged", forged.as_str(), Method::POST, "/a/mcp"),
            ("foreign", foreign.as_str(), Method::POST, "/a/mcp"),
            ("expired", expired.as_str(), Method::POST, "/a/mcp"),
            ("junk", "hello", Method::POST, "/a/mcp"),
            ("other path", ok.as_str(), Method::POST, "/b/mcp"),
            ("other method", ok.as_str(), Method::DELETE, "/a/mcp"),
        ] {
            let err = f
                .inbound(&mut request(method, path, Some(h)), peer, Some(ME))
                .expect_err(what);
            assert_eq!(code(err), "forwarded_header_refused", "{what}");
        }
        // sealed for r1: another replica, or one not sharing sessions, refuses it
        for me in [Some("r2"), None] {
            let err = f
                .inbound(&mut request(Method::POST, "/a/mcp", Some(&ok)), peer, me)
                .expect_err("another replica");
            assert_eq!(code(err), "forwarded_header_refused", "{me:?}");
        }
        let mut twice = request(Method::POST, "/a/mcp", Some(&ok));
        twice
            .headers_mut()
            .append(FORWARDED_HEADER, HeaderValue::from_str(&ok).unwrap());
        assert!(f.inbound(&mut twice, peer, Some(ME)).is_err());
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert(FORWARDED_HEADER, HeaderValue::from_static("x"));
        h.insert("mcp-session-id", HeaderValue::from_static("s"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.append("accept", HeaderValue::from_static("application/json"));
        h.append("accept", HeaderValue::from_static("text/event-stream"));
        let out = end_to_end(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(out.get_all("accept").iter().count(), 2);
        assert!(out.contains_key("mcp-session-id") && out.contains_key("authorization"));
    }

    #[test]
    fn holders_are_remembered_briefly_and_forgotten_when_unreachable() {
        let f = Forwarder::new(&[key()]);
        let h = Holder {
            replica: "r1".into(),
            address: "http://127.0.0.1:1".into(),
        };
        f.remember("s", &h);
        assert_eq!(f.holder_of("s"), Some(h.clone()));
        f.forget(&h.address);
        assert_eq!(f.holder_of("s"), None);
        for i in 0..HOLDERS_KEPT + 5 {
            f.remember(&format!("s{i}"), &h);
        }
        assert!(f.holders.lock().unwrap().len() <= HOLDERS_KEPT);
    }
}
