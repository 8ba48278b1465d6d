//! Who is calling: client IP resolution behind trusted proxies, IP allow-lists, bearer
//! tokens compared in constant time, and the `Host` check against DNS rebinding.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST};
use ipnet::IpNet;
use mcp_types::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A set of IP networks. An empty set contains nobody ([`IpSet::contains`] is `false`):
/// `admin_allow_ips = []` closes the Admin API to every client. Where an empty list means
/// "no restriction" instead (a definition's `allowedIPs`), the caller checks
/// [`IpSet::is_empty`] first and says so.
#[derive(Debug, Clone, Default)]
pub struct IpSet(Vec<IpNet>);

impl IpSet {
    /// Builds a set from networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Parses entries that are IP addresses or CIDR networks.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| mcp_types::validate::parse_ip_net(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether the client is in one of the networks. An unknown client never is.
    pub fn contains(&self, client: impl Into<ClientAddr>) -> bool {
        let ClientAddr::Known(ip) = client.into() else {
            return false;
        };
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who is calling, as far as the proxy can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAddr {
    /// The client's address.
    Known(IpAddr),
    /// A trusted proxy forwarded an `X-Forwarded-For` entry that cannot be read (not ASCII,
    /// not an address, empty, `unknown`): the client is somewhere behind it, and it is
    /// certainly not the proxy itself. An unknown client matches no allow-list entry, not
    /// even `0.0.0.0/0`; logs show it as `unknown`.
    Unknown,
}

impl ClientAddr {
    /// The address, when known.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Self::Known(ip) => Some(ip),
            Self::Unknown => None,
        }
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        Self::Known(ip)
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(ip) => write!(f, "{ip}"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// Resolves the client address: the peer, or — when the peer is a trusted proxy — the first
/// untrusted address of `X-Forwarded-For`, read right to left.
///
/// Every `X-Forwarded-For` header line counts, in order, read as raw bytes. An entry that
/// cannot be read, met before the first untrusted address, makes the client
/// [`ClientAddr::Unknown`]: nothing left of it can be believed, and taking the last trusted
/// hop instead would make a forged header turn any client into the proxy. When every entry
/// is a trusted proxy, the left-most one is the client.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &IpSet) -> ClientAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return ClientAddr::Known(peer);
    }
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|hop| hop.trim_ascii())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return ClientAddr::Unknown;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    ClientAddr::Known(client)
}

/// Parses an `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`. Anything else (other bytes, an empty entry, `unknown`) is `None`.
pub fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok().filter(|h| h.is_ascii())?;
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    None
}

/// Bearer tokens, compared in constant time (SHA-256 digests compared with `subtle`, so
/// neither content nor length leaks through timing).
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl TokenSet {
    /// Builds the set.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a Secret>) -> Self {
        Self {
            digests: tokens.into_iter().map(|t| digest(t.expose())).collect(),
        }
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `candidate` is one of the tokens. Every configured token is compared.
    pub fn matches(&self, candidate: &str) -> bool {
        let d = digest(candidate);
        let mut found = subtle::Choice::from(0);
        for known in &self.digests {
            found |= known.ct_eq(&d);
        }
        found.into()
    }

    /// Extends with another set (per-server tokens ∪ global tokens).
    pub fn union(&self, other: &Self) -> Self {
        let mut digests = self.digests.clone();
        digests.extend_from_slice(&other.digests);
        Self { digests }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The bearer token of the `Authorization` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Why a request is refused by [`check_bearer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is not in the set.
    Invalid,
}

impl AuthFailure {
    /// The message for the response body.
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "missing bearer token: send Authorization: Bearer <token>",
            Self::Invalid => "invalid bearer token",
        }
    }

    /// The reason counted in `mcp_proxy_auth_failures_total`.
    pub(crate) fn metric(self) -> mcp_proxy_core::metrics::AuthFailure {
        use mcp_proxy_core::metrics::AuthFailure as M;
        match self {
            Self::Missing => M::MissingToken,
            Self::Invalid => M::InvalidToken,
        }
    }
}

/// Checks the request's bearer token against `tokens`.
pub fn check_bearer(headers: &HeaderMap, tokens: &TokenSet) -> Result<(), AuthFailure> {
    match bearer_token(headers) {
        None => Err(AuthFailure::Missing),
        Some(t) if tokens.matches(t) => Ok(()),
        Some(_) => Err(AuthFailure::Invalid),
    }
}

/// Whether the host a request names is acceptable for a server listening on loopback: a
/// loopback name or address, or one of `extra_hosts` (the host of `base_url`).
///
/// Every place a request names its host is checked: each `Host` header and the URI's
/// authority, which is where HTTP/2 (`:authority`) and absolute-form HTTP/1.1 requests
/// carry it. A request naming no host at all (HTTP/1.0) is accepted; browsers, the
/// DNS-rebinding vector, always name one.
pub fn host_allowed(uri: &http::Uri, headers: &HeaderMap, extra_hosts: &[String]) -> bool {
    let allowed = |name: &str| {
        let name = name.trim_matches(['[', ']']);
        is_loopback_name(name) || extra_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    };
    if let Some(authority) = uri.authority()
        && !allowed(authority.host())
    {
        return false;
    }
    headers.get_all(HOST).iter().all(|value| {
        value
            .to_str()
            .is_ok_and(|host| !host.is_empty() && allowed(strip_port(host)))
    })
}

/// The host part of a `Host` value (`[::1]:80` → `::1`, `a:80` → `a`).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// Whether `name` is `localhost` (or a subdomain of it) or a loopback address.
pub fn is_loopback_name(name: &str) -> bool {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || lower.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> ClientAddr {
        ClientAddr::Known(s.parse().unwrap())
    }

    fn client_ip(peer: ClientAddr, headers: &HeaderMap, trusted: &IpSet) -> ClientAddr {
        client_addr(peer.ip().unwrap(), headers, trusted)
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = IpSet::parse(&["10.0.0.1"]).unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(ip("192.0.2.9"), &h, &trusted), ip("192.0.2.9"));
        assert_eq!(
            client_ip(ip("192.0.2.9"), &h, &IpSet::default()),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn forwarded_for_is_walked_right_to_left_over_trusted_hops() {
        let trusted = IpSet::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        // spoofed left-most entry must not win
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.7"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &all_trusted, &trusted),
            ip("10.0.0.5")
        );
        let with_port = headers(&[("x-forwarded-for", "[2001:db8::7]:443")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &with_port, &trusted),
            ip("2001:db8::7")
        );
        // Garbage left of the first untrusted address is never read.
        let garbage = headers(&[("x-forwarded-for", "nonsense, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &garbage, &trusted),
            ip("203.0.113.7")
        );
        let mapped = headers(&[("x-forwarded-for", "::ffff:198.51.100.4")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &mapped, &trusted),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn an_unreadable_entry_makes_the_client_unknown_never_the_proxy() {
        let trusted = IpSet::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap();
        let peer = ip("127.0.0.1");
        let mut non_ascii = HeaderMap::new();
        non_ascii.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"203.0.113.7\xff").unwrap(),
        );
        let mut behind = HeaderMap::new();
        behind.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"198.51.100.1, 203.0.113.7\xff").unwrap(),
        );
        behind.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        for h in [
            non_ascii,
            behind,
            headers(&[("x-forwarded-for", "203.0.113.7, nonsense, 10.0.0.9")]),
            headers(&[("x-forwarded-for", "unknown")]),
            headers(&[("x-forwarded-for", "10.0.0.5, , 10.0.0.6")]),
            headers(&[("x-forwarded-for", "")]),
        ] {
            assert_eq!(client_ip(peer, &h, &trusted), ClientAddr::Unknown, "{h:?}");
        }
        let all = IpSet::parse(&["0.0.0.0/0", "::/0"]).unwrap();
        assert!(
            !all.contains(ClientAddr::Unknown),
            "unknown matches no entry"
        );
        assert!(all.contains(ip("192.0.2.1")));
        assert_eq!(ClientAddr::Unknown.to_string(), "unknown");
        // Without a header, the trusted peer itself is the client.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }

    #[test]
    fn tokens_match_exactly() {
        let a = Secret::new("admin-token-0123456789");
        let set = TokenSet::new([&a]);
        assert!(set.matches("admin-token-0123456789"));
        assert!(!set.matches("admin-token-012345678"));
        assert!(!set.matches(""));
        assert!(!TokenSet::default().matches("x"));
        let h = headers(&[("authorization", "bearer admin-token-0123456789")]);
        assert_eq!(check_bearer(&h, &set), Ok(()));
        let h = headers(&[("authorization", "Basic YTpi")]);
        assert_eq!(check_bearer(&h, &set), Err(AuthFailure::Missing));
        let h = headers(&[("authorization", "Bearer nope")]);
        assert_eq!(check_bearer(&h, &set), Err(AuthFailure::Invalid));
    }

    #[test]
    fn host_check_allows_loopback_and_base_url_host_only() {
        let extra = vec!["proxy.example.com".to_owned()];
        let path = http::Uri::from_static("/healthz");
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:80",
            "proxy.example.com",
            "a.localhost",
        ] {
            assert!(
                host_allowed(&path, &headers(&[("host", ok)]), &extra),
                "{ok}"
            );
            let uri: http::Uri = format!("http://{ok}/healthz").parse().unwrap();
            assert!(host_allowed(&uri, &HeaderMap::new(), &extra), "{uri}");
        }
        for bad in ["evil.example", "127.0.0.1.evil.example:80", "10.0.0.1:8080"] {
            assert!(
                !host_allowed(&path, &headers(&[("host", bad)]), &extra),
                "{bad}"
            );
            // HTTP/2 carries the host in :authority, which hyper puts in the URI.
            let uri: http::Uri = format!("http://{bad}/healthz").parse().unwrap();
            assert!(!host_allowed(&uri, &HeaderMap::new(), &extra), "{uri}");
            // Absolute-form HTTP/1.1 names two hosts: both must be ours.
            assert!(
                !host_allowed(&uri, &headers(&[("host", "localhost")]), &extra),
                "{uri}"
            );
        }
        assert!(host_allowed(&path, &HeaderMap::new(), &extra), "HTTP/1.0");
        assert!(!host_allowed(&path, &headers(&[("host", "")]), &extra));
    }
}
