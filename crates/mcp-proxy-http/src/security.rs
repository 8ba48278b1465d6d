//! Who is calling: client IP resolution behind trusted proxies, IP allow-lists, bearer
//! tokens compared in constant time, and the `Host` check against DNS rebinding.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST};
use ipnet::IpNet;
use mcp_types::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A set of IP networks; empty means "anyone" where used as an allow-list.
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

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Resolves the client address: the peer, or — when the peer is a trusted proxy — the first
/// untrusted address of `X-Forwarded-For`, read right to left.
///
/// Every `X-Forwarded-For` header line counts, in order. An entry that is not an IP address
/// stops the walk: the last trusted hop before it is taken as the client, since nothing
/// left of a malformed entry can be believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &IpSet) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !trusted.contains(ip) {
            return ip;
        }
    }
    client
}

/// Parses an `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
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
}

/// Checks the request's bearer token against `tokens`.
pub fn check_bearer(headers: &HeaderMap, tokens: &TokenSet) -> Result<(), AuthFailure> {
    match bearer_token(headers) {
        None => Err(AuthFailure::Missing),
        Some(t) if tokens.matches(t) => Ok(()),
        Some(_) => Err(AuthFailure::Invalid),
    }
}

/// Whether the `Host` header is acceptable for a server listening on loopback: a loopback
/// name or address, or one of `extra_hosts` (the host of `base_url`). A missing `Host`
/// (HTTP/1.0, HTTP/2 with `:authority` folded by hyper) is accepted.
pub fn host_allowed(headers: &HeaderMap, extra_hosts: &[String]) -> bool {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return headers.get(HOST).is_none();
    };
    let name = strip_port(host);
    is_loopback_name(name) || extra_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
        let garbage = headers(&[("x-forwarded-for", "203.0.113.7, nonsense, 10.0.0.9")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &garbage, &trusted),
            ip("10.0.0.9")
        );
        let mapped = headers(&[("x-forwarded-for", "::ffff:198.51.100.4")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &mapped, &trusted),
            ip("198.51.100.4")
        );
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
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:80",
            "proxy.example.com",
            "a.localhost",
        ] {
            assert!(host_allowed(&headers(&[("host", ok)]), &extra), "{ok}");
        }
        for bad in ["evil.example", "127.0.0.1.evil.example:80", "10.0.0.1:8080"] {
            assert!(!host_allowed(&headers(&[("host", bad)]), &extra), "{bad}");
        }
    }
}
