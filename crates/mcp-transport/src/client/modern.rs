//! The modern revision (2026-07-28) on a connection: finding out whether the upstream
//! speaks it (a `server/discover` probe), and once it does, the `_meta` every request
//! carries and the methods the revision removed.
//!
//! The probe follows the revision's backward-compatibility rules: a `DiscoverResult` that
//! lists a version we speak is the only positive evidence; any error, a non-JSON-RPC
//! answer or silence means a 2025 server (the fallback is never keyed on one error
//! code). Only a connection that failed outright is not a verdict at all.

use std::sync::Arc;
use std::time::Duration;

use mcp_types::jsonrpc::{Extra, codes, to_raw};
use mcp_types::mcp::{Implementation, InitializeResult, modern};
use mcp_types::{Era, Message, Outcome, Request, Response};
use serde_json::{Map, Value};

use super::McpClient;
use crate::Result;
use crate::error::Error;

/// What a modern request says about its client, when the request does not say it itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub version: String,
    /// `io.modelcontextprotocol/clientCapabilities`.
    pub capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`.
    pub client_info: Implementation,
}

impl RequestMeta {
    /// The newest modern revision, with these capabilities and this identity.
    pub fn new(capabilities: Value, client_info: Implementation) -> Self {
        Self {
            version: modern::PROTOCOL_VERSION.to_owned(),
            capabilities,
            client_info,
        }
    }

    /// The `_meta` members.
    pub fn to_members(&self) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert(
            modern::META_VERSION.into(),
            Value::from(self.version.clone()),
        );
        meta.insert(modern::META_CAPABILITIES.into(), self.capabilities.clone());
        meta.insert(
            modern::META_CLIENT.into(),
            serde_json::to_value(&self.client_info).unwrap_or(Value::Null),
        );
        meta
    }
}

/// What `server/discover` answered.
#[derive(Debug, Clone)]
pub struct DiscoverResult {
    /// `supportedVersions`.
    pub supported_versions: Vec<String>,
    /// `capabilities`, as sent.
    pub capabilities: Value,
    /// `_meta["io.modelcontextprotocol/serverInfo"]`, when the server names itself.
    pub server_info: Option<Implementation>,
    /// `instructions`.
    pub instructions: Option<String>,
}

impl DiscoverResult {
    fn parse(raw: &str) -> Option<Self> {
        let value: Map<String, Value> = serde_json::from_str(raw).ok()?;
        let supported_versions = value
            .get("supportedVersions")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let capabilities = match value.get("capabilities") {
            Some(c @ Value::Object(_)) => c.clone(),
            _ => return None,
        };
        let server_info = value
            .get("_meta")
            .and_then(|m| m.get(modern::META_SERVER))
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        let instructions = value
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            supported_versions,
            capabilities,
            server_info,
            instructions,
        })
    }

    /// The same facts in the shape a 2025 handshake gives them (the proxy keeps one shape
    /// for both eras): version `version`, the server's name or `fallback_name`.
    pub fn to_initialize_result(&self, version: &str, fallback_name: &str) -> InitializeResult {
        InitializeResult {
            protocol_version: version.to_owned(),
            capabilities: self.capabilities.clone(),
            server_info: self
                .server_info
                .clone()
                .unwrap_or_else(|| Implementation::new(fallback_name, "unknown")),
            instructions: self.instructions.clone(),
            extra: Map::new(),
        }
    }
}

/// The verdict of a `server/discover` probe.
#[derive(Debug)]
pub enum Probe {
    /// A modern server that speaks `version`; the connection now speaks it too.
    Modern {
        /// The revision chosen (one we speak, listed by the server).
        version: String,
        /// What it answered.
        result: Box<DiscoverResult>,
    },
    /// No positive modern evidence: speak a 2025 revision (`initialize`). Why, for logs.
    Legacy(String),
}

impl McpClient {
    /// Probes the upstream with `server/discover` (declaring `meta`), waiting at most
    /// `timeout`. On [`Probe::Modern`] the connection speaks the modern revision from now
    /// on, with `meta` for requests that bring no `_meta` of their own.
    ///
    /// `Err` only when the connection itself failed (refused, closed): that says nothing
    /// about the era. A server that is modern but shares no version with us is an error
    /// too: falling back to `initialize` would be refused as well.
    pub async fn probe(&self, meta: RequestMeta, timeout: Duration) -> Result<Probe> {
        self.shared.transport.set_modern(Some(&meta.version));
        let params = serde_json::json!({ "_meta": meta.to_members() });
        let asked = self
            .request_with_timeout(modern::DISCOVER, Some(to_raw(&params)), timeout)
            .await;
        let verdict = match asked {
            Ok(Response {
                outcome: Outcome::Result(raw),
                ..
            }) => match DiscoverResult::parse(raw.get()) {
                Some(result) if result.supported_versions.contains(&meta.version) => {
                    Probe::Modern {
                        version: meta.version.clone(),
                        result: Box::new(result),
                    }
                }
                Some(result) => Probe::Legacy(format!(
                    "server/discover lists only {:?}",
                    result.supported_versions
                )),
                None => Probe::Legacy("server/discover answered something else".into()),
            },
            Ok(Response {
                outcome: Outcome::Error(e),
                ..
            }) => {
                if e.code == modern::UNSUPPORTED_VERSION
                    && let Some(supported) = supported_versions(e.data.as_deref())
                    && !supported
                        .iter()
                        .any(|v| modern::is_version(v) || mcp_types::mcp::is_supported_version(v))
                {
                    self.shared.transport.set_modern(None);
                    return Err(Error::Protocol {
                        target: self.target().clone(),
                        message: format!(
                            "the server speaks only {supported:?}; the proxy speaks {} and {}",
                            modern::PROTOCOL_VERSIONS.join(", "),
                            mcp_types::mcp::SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                        ),
                    });
                }
                Probe::Legacy(format!(
                    "server/discover failed: json-rpc error {}: {}",
                    e.code, e.message
                ))
            }
            Err(e @ (Error::Timeout { .. } | Error::Status { .. } | Error::Protocol { .. })) => {
                Probe::Legacy(e.to_string())
            }
            Err(e) => {
                self.shared.transport.set_modern(None);
                return Err(e);
            }
        };
        match &verdict {
            Probe::Modern { version, .. } => self.set_modern(RequestMeta {
                version: version.clone(),
                ..meta
            }),
            Probe::Legacy(_) => self.shared.transport.set_modern(None),
        }
        Ok(verdict)
    }

    /// Speaks the modern revision `meta.version` on this connection from now on (no
    /// handshake), filling `meta` into requests that bring no `_meta` of their own.
    pub fn set_modern(&self, meta: RequestMeta) {
        self.shared.transport.set_modern(Some(&meta.version));
        self.shared.router.set_protocol_version(&meta.version);
        *self
            .shared
            .modern
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(meta));
    }

    /// The era this connection speaks: modern once probed so (or told), legacy once
    /// initialized, `None` before either.
    pub fn era(&self) -> Option<Era> {
        if self.modern_meta().is_some() {
            Some(Era::Modern)
        } else if self.protocol_version().is_some() {
            Some(Era::Legacy)
        } else {
            None
        }
    }

    /// Whether the connection speaks the modern revision.
    pub fn is_modern(&self) -> bool {
        self.modern_meta().is_some()
    }

    /// The `_meta` filled into modern requests that bring none.
    pub fn modern_meta(&self) -> Option<Arc<RequestMeta>> {
        self.shared
            .modern
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `server/discover` on a modern connection, within `timeout` (health checks).
    pub async fn discover(&self, timeout: Duration) -> Result<DiscoverResult> {
        let response = self
            .request_with_timeout(modern::DISCOVER, None, timeout)
            .await?;
        match response.outcome {
            Outcome::Result(raw) => {
                DiscoverResult::parse(raw.get()).ok_or_else(|| Error::Protocol {
                    target: self.target().clone(),
                    message: "server/discover answered something else".into(),
                })
            }
            Outcome::Error(error) => Err(Error::Rpc {
                target: self.target().clone(),
                method: modern::DISCOVER.to_owned(),
                error,
            }),
        }
    }

    /// Readies a request for a modern upstream: `_meta` gets the connection's defaults
    /// unless it names a protocol version itself (then it is the client's own and travels
    /// as it is). A method the revision removed is answered here (`Some`), never sent.
    pub(super) fn prepare_modern(&self, request: &mut Request) -> Result<Option<Response>> {
        let Some(meta) = self.modern_meta() else {
            return Ok(None);
        };
        if modern::REMOVED_METHODS.contains(&request.method.as_str()) {
            let message = format!(
                "{} does not exist in protocol {}, which this upstream speaks",
                request.method, meta.version
            );
            return Ok(Some(Response {
                id: request.id.clone(),
                outcome: Outcome::Error(mcp_types::ErrorObject::new(
                    codes::METHOD_NOT_FOUND,
                    message,
                )),
                extra: Extra::new(),
            }));
        }
        let refuse = |message: String| Error::BadRequest {
            target: self.target().clone(),
            message,
        };
        request.params = Some(with_meta(request.params.as_deref(), &meta).map_err(refuse)?);
        Ok(None)
    }

    /// Whether `msg` may go to a modern upstream on its own: the revision has no client
    /// notifications but `notifications/cancelled` on stdio (HTTP cancels by closing the
    /// answer stream), and no client responses at all.
    pub(super) fn modern_allows(&self, msg: &Message) -> bool {
        if !self.is_modern() {
            return true;
        }
        match msg {
            Message::Notification(n) => {
                n.method == mcp_types::mcp::methods::CANCELLED
                    && self.shared.transport.kind() == mcp_types::TransportKind::Stdio
            }
            Message::Response(_) => false,
            Message::Request(_) => true,
        }
    }
}

/// `params` with `meta`'s members in `_meta` unless `_meta` names a version already.
fn with_meta(
    params: Option<&serde_json::value::RawValue>,
    meta: &RequestMeta,
) -> std::result::Result<Box<serde_json::value::RawValue>, String> {
    let Some(params) = params else {
        return Ok(to_raw(&serde_json::json!({ "_meta": meta.to_members() })));
    };
    let members = mcp_types::params::Members::parse(params).map_err(|e| e.to_string())?;
    let mut own = match members.get("_meta") {
        None => Map::new(),
        Some(raw) => serde_json::from_str::<Map<String, Value>>(raw.get())
            .map_err(|_| "params._meta must be an object".to_owned())?,
    };
    if own.contains_key(modern::META_VERSION) {
        return Ok(params.to_owned());
    }
    for (k, v) in meta.to_members() {
        own.entry(k).or_insert(v);
    }
    Ok(members.with("_meta", &to_raw(&own)))
}

/// `data.supported` of an `UnsupportedProtocolVersion` error.
fn supported_versions(data: Option<&serde_json::value::RawValue>) -> Option<Vec<String>> {
    serde_json::from_str::<Value>(data?.get())
        .ok()?
        .get("supported")?
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RequestMeta {
        RequestMeta::new(serde_json::json!({}), Implementation::new("mcp-proxy", "1"))
    }

    #[test]
    fn meta_is_filled_in_unless_the_request_names_a_version() {
        let filled = with_meta(None, &meta()).unwrap();
        let v: Value = serde_json::from_str(filled.get()).unwrap();
        assert_eq!(v["_meta"][modern::META_VERSION], modern::PROTOCOL_VERSION);
        assert_eq!(v["_meta"][modern::META_CLIENT]["name"], "mcp-proxy");

        let with_token = to_raw(&serde_json::json!({"name": "t", "_meta": {"progressToken": 7}}));
        let v: Value =
            serde_json::from_str(with_meta(Some(&with_token), &meta()).unwrap().get()).unwrap();
        assert_eq!(v["_meta"]["progressToken"], 7);
        assert_eq!(v["name"], "t");
        assert!(v["_meta"][modern::META_CAPABILITIES].is_object());

        let own = to_raw(&serde_json::json!({"_meta": {
            modern::META_VERSION: "2026-07-28", modern::META_CAPABILITIES: {"sampling": {}}}}));
        let kept = with_meta(Some(&own), &meta()).unwrap();
        assert_eq!(
            kept.get(),
            own.get(),
            "a client's own _meta travels as it is"
        );

        let bad = to_raw(&serde_json::json!({"_meta": 3}));
        assert!(with_meta(Some(&bad), &meta()).is_err());
    }

    #[test]
    fn discover_results_are_read_and_others_are_not() {
        let ok = DiscoverResult::parse(
            r#"{"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},
               "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"2"}}}"#,
        )
        .unwrap();
        assert_eq!(ok.supported_versions, ["2026-07-28"]);
        assert_eq!(ok.server_info.unwrap().name, "s");
        assert!(DiscoverResult::parse(r#"{"capabilities":{}}"#).is_none());
        assert!(DiscoverResult::parse(r#"{"supportedVersions":[],"capabilities":3}"#).is_none());
        assert!(DiscoverResult::parse("{}").is_none());
    }
}
