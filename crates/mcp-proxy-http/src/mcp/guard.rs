//! Per-server security of the proxy endpoints: `Origin` (against DNS rebinding),
//! `allowedIPs`, bearer tokens (`authTokens ∪ global_auth_tokens`, `requireAuth`), and
//! which client headers may travel upstream.

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName, ORIGIN};
use mcp_proxy_core::Metrics;
use mcp_proxy_core::metrics::AuthFailure;
use mcp_types::McpDefinition;

use crate::config::HttpConfig;
use crate::error::Error;
use crate::security::{self, ClientAddr, IpSet, TokenSet};

/// The security rules of one upstream's endpoints, built once per applied definition
/// (see `Upstream::derived`), never per request.
#[derive(Debug)]
pub(crate) struct Policy {
    name: String,
    /// `allowedIPs`; `None` lets anyone in.
    allowed: Option<IpSet>,
    /// `authTokens ∪ global_auth_tokens`.
    tokens: TokenSet,
    require_auth: bool,
    /// `passthroughHeaders` that may travel (never `Authorization` and the like).
    passthrough: Vec<HeaderName>,
}

impl Policy {
    pub(crate) fn new(def: &McpDefinition, cfg: &HttpConfig) -> Self {
        let allowed = (!def.allowed_ips.is_empty())
            // A list that does not parse lets nobody in (validation refuses such lists).
            .then(|| IpSet::parse(&def.allowed_ips).unwrap_or_default());
        Self {
            name: def.name.clone(),
            allowed,
            tokens: TokenSet::new(&def.auth_tokens).union(&cfg.global_auth_tokens),
            require_auth: def.require_auth,
            passthrough: passthrough_names(def),
        }
    }
}

impl Policy {
    /// The rules of a group's endpoints: its own auth fields; nothing passes through
    /// (each member keeps its own definition's headers).
    pub(crate) fn for_group(def: &mcp_types::GroupDefinition, cfg: &HttpConfig) -> Self {
        let allowed = (!def.allowed_ips.is_empty())
            .then(|| IpSet::parse(&def.allowed_ips).unwrap_or_default());
        Self {
            name: def.name.clone(),
            allowed,
            tokens: TokenSet::new(&def.auth_tokens).union(&cfg.global_auth_tokens),
            require_auth: def.require_auth,
            passthrough: Vec::new(),
        }
    }

    /// Whether a bearer token is needed.
    pub(crate) fn requires_auth(&self) -> bool {
        self.require_auth || !self.tokens.is_empty()
    }
}

/// Refuses the request unless its Origin, address and token pass the server's rules.
pub(crate) fn check(
    cfg: &HttpConfig,
    metrics: &Metrics,
    policy: &Policy,
    headers: &HeaderMap,
    client: ClientAddr,
) -> Result<(), Error> {
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, cfg) {
            metrics.auth_failure(AuthFailure::OriginNotAllowed);
            return Err(Error::Forbidden(format!(
                "origin {origin:?} is not allowed: add it to allowed_origins"
            )));
        }
    }
    if let Some(allowed) = &policy.allowed
        && !allowed.contains(client)
    {
        metrics.auth_failure(AuthFailure::IpNotAllowed);
        return Err(Error::Forbidden(format!(
            "client address {client} is not allowed to use mcp {:?}",
            policy.name
        )));
    }
    if policy.requires_auth() {
        security::check_bearer(headers, &policy.tokens).map_err(|f| {
            metrics.auth_failure(f.metric());
            Error::Unauthorized(f.message())
        })?;
    }
    Ok(())
}

/// Whether a browser `Origin` may use the proxy endpoints.
pub(crate) fn origin_allowed(origin: &str, cfg: &HttpConfig) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
    if cfg.allowed_origins.is_empty() {
        return security::is_loopback_name(host)
            || cfg.extra_hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
    }
    cfg.allowed_origins.iter().any(|allowed| {
        let Ok(a) = url::Url::parse(allowed) else {
            return allowed == "*";
        };
        a.scheme() == url.scheme()
            && a.host_str() == url.host_str()
            && (a.port().is_none() || a.port_or_known_default() == url.port_or_known_default())
    })
}

/// The header names of `passthroughHeaders` that may travel upstream. The client's
/// `Authorization` is never among them (it is the proxy's credential), nor are hop-by-hop
/// or framing headers.
fn passthrough_names(def: &McpDefinition) -> Vec<HeaderName> {
    const NEVER: &[&str] = &[
        "authorization",
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "proxy-authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "accept",
    ];
    def.passthrough_headers
        .iter()
        .filter_map(|name| HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok())
        .filter(|name| !NEVER.contains(&name.as_str()) && *name != AUTHORIZATION)
        .collect()
}

/// The client headers named in `passthroughHeaders`, to add to upstream requests.
pub(crate) fn passthrough(policy: &Policy, headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in &policy.passthrough {
        for value in headers.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_default_to_loopback_on_any_port() {
        let cfg = HttpConfig::default();
        assert!(origin_allowed("http://localhost:5173", &cfg));
        assert!(origin_allowed("https://127.0.0.1", &cfg));
        assert!(origin_allowed("http://[::1]:80", &cfg));
        assert!(!origin_allowed("http://evil.example.com", &cfg));
        assert!(!origin_allowed("null", &cfg));
        let cfg = HttpConfig {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
            ],
            ..HttpConfig::default()
        };
        assert!(origin_allowed("https://app.example.com:443", &cfg));
        assert!(origin_allowed("https://app.example.com:8443", &cfg));
        assert!(origin_allowed("http://localhost:3000", &cfg));
        assert!(!origin_allowed("http://localhost:3001", &cfg));
        assert!(!origin_allowed("http://app.example.com", &cfg));
    }

    #[test]
    fn authorization_is_never_passed_through() {
        let mut def = McpDefinition::new("x", mcp_types::TransportKind::StreamableHttp);
        def.passthrough_headers = vec!["X-Tenant".into(), "Authorization".into()];
        let mut h = HeaderMap::new();
        h.insert("x-tenant", "t1".parse().unwrap());
        h.insert("authorization", "Bearer secret".parse().unwrap());
        h.insert("x-other", "o".parse().unwrap());
        let out = passthrough(&Policy::new(&def, &HttpConfig::default()), &h);
        assert_eq!(out.len(), 1);
        assert_eq!(out["x-tenant"], "t1");
    }
}
