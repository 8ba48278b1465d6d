//! Per-server security of the proxy endpoints: `Origin` (against DNS rebinding),
//! `allowedIPs`, bearer tokens (`authTokens ∪ global_auth_tokens`, `requireAuth`), and
//! which client headers may travel upstream.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName, ORIGIN};
use mcp_proxy_core::Metrics;
use mcp_proxy_core::metrics::AuthFailure;
use mcp_types::McpDefinition;

use crate::config::HttpConfig;
use crate::error::Error;
use crate::security::{self, IpSet, TokenSet};

/// Refuses the request unless its Origin, address and token pass the server's rules.
pub(crate) fn check(
    cfg: &HttpConfig,
    metrics: &Metrics,
    def: &McpDefinition,
    headers: &HeaderMap,
    client: IpAddr,
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
    if !def.allowed_ips.is_empty() {
        let allowed = IpSet::parse(&def.allowed_ips).unwrap_or_default();
        if !allowed.contains(client) {
            metrics.auth_failure(AuthFailure::IpNotAllowed);
            return Err(Error::Forbidden(format!(
                "client address {client} is not allowed to use mcp {:?}",
                def.name
            )));
        }
    }
    let tokens = TokenSet::new(&def.auth_tokens).union(&cfg.global_auth_tokens);
    if def.require_auth || !tokens.is_empty() {
        security::check_bearer(headers, &tokens).map_err(|f| {
            metrics.auth_failure(match f {
                security::AuthFailure::Missing => AuthFailure::MissingToken,
                security::AuthFailure::Invalid => AuthFailure::InvalidToken,
            });
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

/// The client headers named in `passthroughHeaders`, to add to upstream requests. The
/// client's `Authorization` is never among them (it is the proxy's credential), nor are
/// hop-by-hop or framing headers.
pub(crate) fn passthrough(def: &McpDefinition, headers: &HeaderMap) -> HeaderMap {
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
    let mut out = HeaderMap::new();
    for name in &def.passthrough_headers {
        let Ok(name) = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()) else {
            continue;
        };
        if NEVER.contains(&name.as_str()) || name == AUTHORIZATION {
            continue;
        }
        for value in headers.get_all(&name) {
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
        let out = passthrough(&def, &h);
        assert_eq!(out.len(), 1);
        assert_eq!(out["x-tenant"], "t1");
    }
}
