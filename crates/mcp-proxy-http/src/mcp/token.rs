//! Session tokens: the `Mcp-Session-Id` a streamable-HTTP client gets when `session_keys`
//! is configured (several replicas share the keys).
//!
//! A token is sealed ([`super::seal`]) and says which session it names (the registry key,
//! the id of the core session), on which endpoint, for which principal (a digest of the
//! bearer token the client initialized with) and until when. Any replica holding one of
//! the keys can tell a genuine token from a forged one without asking anybody, and finds
//! the session by the id inside. A token that does not open, has expired, or is presented
//! on another endpoint or with another bearer token names no session: 404, as for any
//! unknown session, with the reason in `data.details.reason`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::seal::{Keys, Unsealed, hex};
use crate::config::StateKey;

/// What every session token starts with.
pub(crate) const TOKEN_PREFIX: &str = "mcps1.";
/// Associated data of every sealed token.
const AAD: &[u8] = b"mcp-proxy session token 1";

/// Why a presented token names no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a token of this proxy's format.
    Malformed,
    /// Sealed under a key id none of `session_keys` has (retired or foreign).
    UnknownKey,
    /// Not sealed by the key it names, or changed since.
    Forged,
    /// Past its expiry.
    Expired,
    /// Issued to a client with another bearer token.
    OtherPrincipal,
    /// Issued on another endpoint.
    OtherEndpoint,
}

impl Refusal {
    /// The reason in the error's details.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::Forged => "forged",
            Self::Expired => "expired",
            Self::OtherPrincipal => "other_principal",
            Self::OtherEndpoint => "other_endpoint",
        }
    }

    /// What the client is told.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Malformed => {
                "session not found: the mcp-session-id is not a session token of this proxy"
            }
            Self::UnknownKey => {
                "session not found: the session token was sealed with a key this proxy no longer holds"
            }
            Self::Forged => "session not found: the session token failed verification",
            Self::Expired => "session not found: the session token has expired",
            Self::OtherPrincipal => {
                "session not found: the session token was issued to another client"
            }
            Self::OtherEndpoint => {
                "session not found: the session token belongs to another endpoint"
            }
        }
    }
}

impl From<Unsealed> for Refusal {
    fn from(u: Unsealed) -> Self {
        match u {
            Unsealed::Malformed => Self::Malformed,
            Unsealed::UnknownKey => Self::UnknownKey,
            Unsealed::Forged => Self::Forged,
        }
    }
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The session's id (its registry key).
    s: String,
    /// The endpoint (upstream or group name).
    n: String,
    /// Principal digest, hex.
    p: String,
    /// Expiry, milliseconds since the Unix epoch.
    e: u64,
}

/// Issues and opens session tokens.
#[derive(Debug)]
pub(crate) struct Tokens {
    keys: Keys,
    lifetime: Duration,
}

impl Tokens {
    /// Tokens sealed with `keys`, valid for `lifetime`; `None` without keys (one replica:
    /// session ids stay plain random ids).
    pub(crate) fn new(keys: &[StateKey], lifetime: Duration) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        Some(Self {
            keys: Keys::new(keys, "mcp-proxy/session-token", AAD, TOKEN_PREFIX),
            lifetime,
        })
    }

    /// The token of session `id` on `endpoint`, for the client presenting `headers`.
    pub(crate) fn issue(&self, id: &str, endpoint: &str, headers: &HeaderMap) -> String {
        let lifetime = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        self.keys.seal(&Claims {
            s: id.to_owned(),
            n: endpoint.to_owned(),
            p: principal(headers),
            e: now_ms().saturating_add(lifetime),
        })
    }

    /// The session id `token` names, if it is genuine, current, for `endpoint` and for
    /// the client presenting `headers`.
    pub(crate) fn open(
        &self,
        token: &str,
        endpoint: &str,
        headers: &HeaderMap,
    ) -> Result<String, Refusal> {
        let claims: Claims = self.keys.open(token)?;
        if claims.e < now_ms() {
            return Err(Refusal::Expired);
        }
        if claims.n != endpoint {
            return Err(Refusal::OtherEndpoint);
        }
        if claims.p != principal(headers) {
            return Err(Refusal::OtherPrincipal);
        }
        Ok(claims.s)
    }
}

/// Who the client is, as far as the proxy knows: a digest of its bearer token (none is a
/// principal too: every anonymous client of an open endpoint).
fn principal(headers: &HeaderMap) -> String {
    let token = crate::security::bearer_token(headers).unwrap_or("");
    let mut h = Sha256::new();
    h.update(b"mcp-proxy session principal\0");
    h.update(token.as_bytes());
    hex(&h.finalize()[..16])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> StateKey {
        StateKey {
            id: id.into(),
            key: [byte; 32],
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn no_keys_no_tokens() {
        assert!(Tokens::new(&[], Duration::from_secs(60)).is_none());
    }

    #[test]
    fn a_token_opens_for_its_client_and_endpoint_only() {
        let tokens = Tokens::new(&[key("a", 1)], Duration::from_secs(60)).unwrap();
        let t = tokens.issue("sid1", "ev", &bearer("alice"));
        assert!(t.starts_with("mcps1.a."), "{t}");
        assert!(
            t.bytes().all(|b| b.is_ascii_graphic()),
            "a header value: {t}"
        );
        assert_eq!(tokens.open(&t, "ev", &bearer("alice")).unwrap(), "sid1");
        assert_eq!(
            tokens.open(&t, "ev", &bearer("mallory")),
            Err(Refusal::OtherPrincipal)
        );
        assert_eq!(
            tokens.open(&t, "ev", &HeaderMap::new()),
            Err(Refusal::OtherPrincipal)
        );
        assert_eq!(
            tokens.open(&t, "other", &bearer("alice")),
            Err(Refusal::OtherEndpoint)
        );
        let mut forged = t.clone().into_bytes();
        let i = forged.len() - 4;
        forged[i] = if forged[i] == b'x' { b'y' } else { b'x' };
        assert_eq!(
            tokens.open(&String::from_utf8(forged).unwrap(), "ev", &bearer("alice")),
            Err(Refusal::Forged)
        );
        assert_eq!(
            tokens.open("0123abcd", "ev", &bearer("alice")),
            Err(Refusal::Malformed)
        );
    }

    #[test]
    fn rotation_first_key_seals_all_open() {
        let old = Tokens::new(&[key("old", 1)], Duration::from_secs(60)).unwrap();
        let t_old = old.issue("s", "ev", &HeaderMap::new());
        let rotated =
            Tokens::new(&[key("new", 2), key("old", 1)], Duration::from_secs(60)).unwrap();
        assert_eq!(rotated.open(&t_old, "ev", &HeaderMap::new()).unwrap(), "s");
        let t_new = rotated.issue("s2", "ev", &HeaderMap::new());
        assert!(t_new.starts_with("mcps1.new."));
        let retired = Tokens::new(&[key("new", 2)], Duration::from_secs(60)).unwrap();
        assert_eq!(
            retired.open(&t_old, "ev", &HeaderMap::new()),
            Err(Refusal::UnknownKey)
        );
        // The same key id with other key material: forged.
        let impostor = Tokens::new(&[key("old", 9)], Duration::from_secs(60)).unwrap();
        assert_eq!(
            impostor.open(&t_old, "ev", &HeaderMap::new()),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tokens = Tokens::new(&[key("a", 1)], Duration::ZERO).unwrap();
        let t = tokens.issue("s", "ev", &HeaderMap::new());
        // Expiry is in milliseconds: wait past it without a fixed sleep.
        let start = now_ms();
        while now_ms() <= start + 1 {
            std::thread::yield_now();
        }
        assert_eq!(
            tokens.open(&t, "ev", &HeaderMap::new()),
            Err(Refusal::Expired)
        );
    }
}
