//! Properties of `X-Forwarded-For` resolution over generated headers: a forged header can
//! never make a client look like a trusted proxy, an unreadable entry makes the client
//! unknown, and an unknown client matches no allow-list.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use mcp_proxy_http::security::{ClientAddr, IpSet, client_addr, parse_hop};
use proptest::prelude::*;

/// Bounded for CI; `PROPTEST_CASES` runs more (proptest's default configuration reads it).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            512
        },
        failure_persistence: None,
        ..default
    }
}

/// A small pool, so that generated hops often are (or are not) trusted proxies.
const POOL: &[&str] = &[
    "127.0.0.1",
    "10.0.0.1",
    "10.0.0.2",
    "203.0.113.7",
    "198.51.100.4",
    "::1",
    "2001:db8::7",
];

fn ip(i: usize) -> IpAddr {
    POOL[i].parse().unwrap()
}

/// One entry as a proxy might write it: an address (maybe with a port), or junk.
#[derive(Debug, Clone)]
enum Hop {
    Addr(usize, bool),
    Junk(Vec<u8>),
}

impl Hop {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Addr(i, false) => POOL[*i].as_bytes().to_vec(),
            Self::Addr(i, true) => match ip(*i) {
                IpAddr::V4(a) => format!("{a}:443").into_bytes(),
                IpAddr::V6(a) => format!("[{a}]:443").into_bytes(),
            },
            Self::Junk(b) => b.clone(),
        }
    }
}

fn hop() -> impl Strategy<Value = Hop> {
    prop_oneof![
        4 => (0..POOL.len(), any::<bool>()).prop_map(|(i, p)| Hop::Addr(i, p)),
        1 => prop_oneof![
            Just(b"unknown".to_vec()),
            Just(b"".to_vec()),
            Just(b"nonsense".to_vec()),
            Just(b"203.0.113.7\xff".to_vec()),
            Just(b"\xc3\xa9".to_vec()),
            Just(b"1.2.3.4.5".to_vec()),
            prop::collection::vec(0x21u8..0xff, 1..6)
                .prop_filter("no comma, no DEL", |v| !v.contains(&b',') && !v.contains(&0x7f)),
        ]
        .prop_map(Hop::Junk),
    ]
}

/// The hops written into header lines: a new line starts before hop `i` when `splits[i]`.
fn headers(hops: &[Hop], splits: &[bool]) -> HeaderMap {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (i, hop) in hops.iter().enumerate() {
        match lines.last_mut() {
            Some(line) if !splits.get(i).copied().unwrap_or(false) => {
                line.extend_from_slice(b", ");
                line.extend_from_slice(&hop.bytes());
            }
            _ => lines.push(hop.bytes()),
        }
    }
    let mut h = HeaderMap::new();
    for line in lines {
        h.append("x-forwarded-for", HeaderValue::from_bytes(&line).unwrap());
    }
    h
}

fn trusted_set(mask: &[bool]) -> IpSet {
    let entries: Vec<&str> = POOL
        .iter()
        .zip(mask)
        .filter(|(_, t)| **t)
        .map(|(a, _)| *a)
        .collect();
    IpSet::parse(&entries).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// The result is what a right-to-left walk over the entries gives, never a trusted
    /// proxy unless every entry is a readable trusted proxy, and junk before the first
    /// untrusted address is never read.
    #[test]
    fn a_forged_header_never_makes_the_client_a_trusted_proxy(
        peer in 0..POOL.len(),
        mask in prop::collection::vec(any::<bool>(), POOL.len()),
        hops in prop::collection::vec(hop(), 0..6),
        splits in prop::collection::vec(any::<bool>(), 7),
        spoof in prop::collection::vec(hop(), 0..3),
    ) {
        let trusted = trusted_set(&mask);
        let got = client_addr(ip(peer), &headers(&hops, &splits), &trusted);
        if !trusted.contains(ip(peer)) {
            prop_assert_eq!(got, ClientAddr::Known(ip(peer)), "an untrusted peer is the client");
            return Ok(());
        }
        // Right to left: the first unreadable entry, or the first untrusted address.
        let mut expected = ClientAddr::Known(ip(peer));
        for h in hops.iter().rev() {
            match parse_hop(&h.bytes()) {
                None => {
                    expected = ClientAddr::Unknown;
                    break;
                }
                Some(a) => {
                    expected = ClientAddr::Known(a);
                    if !trusted.contains(a) {
                        break;
                    }
                }
            }
        }
        prop_assert_eq!(got, expected);
        if let ClientAddr::Known(a) = got
            && trusted.contains(a)
            && !hops.is_empty()
        {
            prop_assert!(
                hops.iter().all(|h| parse_hop(&h.bytes()).is_some_and(|a| trusted.contains(a))),
                "a trusted proxy came out of {:?}", hops
            );
        }
        // Whatever a client puts in front of an untrusted address changes nothing.
        if let ClientAddr::Known(a) = got && !trusted.contains(a) && !hops.is_empty() {
            let mut forged = spoof.clone();
            forged.extend(hops.iter().cloned());
            prop_assert_eq!(client_addr(ip(peer), &headers(&forged, &[]), &trusted), got);
        }
    }

    /// An unknown client is in no allow-list, however wide.
    #[test]
    fn an_unknown_client_matches_no_allow_list(mask in prop::collection::vec(any::<bool>(), POOL.len())) {
        let mut set = trusted_set(&mask);
        prop_assert!(!set.contains(ClientAddr::Unknown));
        set = IpSet::parse(&["0.0.0.0/0", "::/0"]).unwrap();
        prop_assert!(!set.contains(ClientAddr::Unknown));
    }
}
