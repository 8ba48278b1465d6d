//! What `use_proxy` makes of the `mcps:` entries, and applying that to a proxy.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use mcp_types::{McpDefinition, Secret, TransportKind};
use url::{Host, Url};

use super::{McpSource, WorkflowMcps};
use crate::client::ProxyClient;
use crate::error::Error;
use crate::model::McpEntry;
use crate::register::RegisterService;

/// How an engine reaches one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Through the proxy: connect an MCP client to `url` (`…/{name}/sse` or
    /// `…/{name}/stream`).
    Proxy {
        /// The MCP's name on the proxy.
        name: String,
        /// The proxy endpoint.
        url: Url,
        /// `sse` or `streamable-http`: what to speak to `url`.
        transport: TransportKind,
    },
    /// `use_proxy: false`, stdio: spawn it yourself.
    Stdio {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its extra environment, placeholders resolved.
        env: BTreeMap<String, Secret>,
    },
    /// `use_proxy: false`, HTTP: connect to it yourself.
    Http {
        /// The server's URL.
        url: Url,
        /// `sse` or `streamable-http`.
        transport: TransportKind,
        /// Headers to send, placeholders resolved.
        headers: BTreeMap<String, Secret>,
    },
}

/// One entry with `use_proxy` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMcp {
    /// The entry's id.
    pub id: String,
    /// How the engine reaches it.
    pub endpoint: Endpoint,
    /// The definition to register under `id`: for `use_proxy` entries whose `url` does not
    /// already point at the proxy.
    pub register: Option<McpDefinition>,
    /// How long it may take to connect (proxied entries).
    pub start_timeout: Duration,
}

/// Applies `use_proxy` to every entry, resolving placeholders from `vars`:
///
/// - `use_proxy: false`: the engine reaches the server itself ([`Endpoint::Stdio`] or
///   [`Endpoint::Http`]).
/// - `use_proxy: true` and `url` is a proxy endpoint of `client`'s proxy
///   (`{proxy}/{name}/sse|stream|mcp`): the entry names an MCP registered there; nothing
///   is registered.
/// - otherwise: the entry is registered under its `id`, and the engine gets
///   `{proxy}/{id}/sse` for an `sse` server, `{proxy}/{id}/stream` for the others.
pub fn plan(
    mcps: &WorkflowMcps,
    client: &ProxyClient,
    vars: &HashMap<String, String>,
) -> Result<Vec<PlannedMcp>, Error> {
    let mut out = Vec::with_capacity(mcps.mcps().len());
    for spec in mcps.mcps() {
        let id = spec.id.as_str().to_owned();
        let (endpoint, register) = match (&spec.source, spec.use_proxy) {
            (McpSource::Stdio { program, args }, false) => (
                Endpoint::Stdio {
                    program: program.clone(),
                    args: args.clone(),
                    env: spec.resolved_env(vars)?,
                },
                None,
            ),
            (McpSource::Http { url, transport }, false) => (
                Endpoint::Http {
                    url: url.clone(),
                    transport: *transport,
                    headers: spec.resolved_headers(vars)?,
                },
                None,
            ),
            (McpSource::Http { url, .. }, true)
                if let Some((name, transport)) = proxy_target(client.base_url(), url) =>
            {
                let endpoint = Endpoint::Proxy {
                    name,
                    url: url.clone(),
                    transport,
                };
                (endpoint, None)
            }
            (_, true) => {
                let def = spec.definition(vars)?;
                let transport = match spec.transport() {
                    TransportKind::Sse => TransportKind::Sse,
                    _ => TransportKind::StreamableHttp,
                };
                let endpoint = Endpoint::Proxy {
                    name: id.clone(),
                    url: client.endpoint_url(&id, spec.transport()),
                    transport,
                };
                (endpoint, Some(def))
            }
        };
        out.push(PlannedMcp {
            id,
            endpoint,
            register,
            start_timeout: spec.start_timeout,
        });
    }
    Ok(out)
}

/// When `url` is a proxy endpoint under `base`, the MCP name and the transport its path
/// speaks.
fn proxy_target(base: &Url, url: &Url) -> Option<(String, TransportKind)> {
    if base.scheme() != url.scheme()
        || base.port_or_known_default() != url.port_or_known_default()
        || !same_host(base.host()?, url.host()?)
    {
        return None;
    }
    let base_path = base.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(base_path)?.strip_prefix('/')?;
    let mut segments = rest.split('/');
    let name = segments
        .next()
        .filter(|n| mcp_types::name::check(n).is_ok())?;
    let transport = match segments.next()? {
        "sse" => TransportKind::Sse,
        "stream" | "mcp" => TransportKind::StreamableHttp,
        _ => return None,
    };
    Some((name.to_owned(), transport))
}

fn same_host(a: Host<&str>, b: Host<&str>) -> bool {
    let loopback = |h: &Host<&str>| match h {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    };
    a == b || (loopback(&a) && loopback(&b))
}

impl RegisterService {
    /// Makes the proxy serve every proxied entry of `planned`: registers (or updates) the
    /// entries to register, checks that the ones naming an MCP already on the proxy exist,
    /// then waits until all of them are connected (at most the longest `start_timeout`).
    /// Returns their entries in plan order.
    pub async fn apply(&self, planned: &[PlannedMcp]) -> Result<Vec<McpEntry>, Error> {
        let defs: Vec<McpDefinition> = planned.iter().filter_map(|p| p.register.clone()).collect();
        self.ensure_many(&defs).await?;
        let mut names = Vec::new();
        let mut referenced = 0;
        let mut missing = Vec::new();
        for p in planned {
            let Endpoint::Proxy { name, .. } = &p.endpoint else {
                continue;
            };
            if p.register.is_none() {
                referenced += 1;
                if let Err(e) = self.client().get(name).await {
                    missing.push((p.id.clone(), e));
                }
            }
            names.push(name.clone());
        }
        if !missing.is_empty() {
            return Err(Error::Batch {
                op: "verify mcps already on the proxy",
                total: referenced,
                failures: missing,
            });
        }
        let deadline = planned
            .iter()
            .filter(|p| matches!(p.endpoint, Endpoint::Proxy { .. }))
            .map(|p| p.start_timeout)
            .max()
            .unwrap_or_default();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.client().wait_for_connections(&names, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_proxy_endpoints() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        let at = |u: &str| proxy_target(&base, &Url::parse(u).unwrap());
        assert_eq!(
            at("http://localhost:8080/fs/sse"),
            Some(("fs".into(), TransportKind::Sse))
        );
        assert_eq!(
            at("http://127.0.0.1:8080/fs/mcp"),
            Some(("fs".into(), TransportKind::StreamableHttp))
        );
        assert_eq!(at("http://127.0.0.1:9090/fs/sse"), None, "other port");
        assert_eq!(at("http://example.com:8080/fs/sse"), None, "other host");
        assert_eq!(
            at("http://127.0.0.1:8080/fs/other"),
            None,
            "not an endpoint"
        );
        assert_eq!(at("http://127.0.0.1:8080/admin/sse"), None, "reserved name");
        let base = Url::parse("https://gw.example.com/mcp-proxy/").unwrap();
        assert_eq!(
            proxy_target(
                &base,
                &Url::parse("https://gw.example.com/mcp-proxy/t/stream").unwrap()
            ),
            Some(("t".into(), TransportKind::StreamableHttp))
        );
    }
}
