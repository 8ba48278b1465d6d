//! Path and method matching.

use http::Method;

use crate::error::Error;

/// Every route the server knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics` (Prometheus).
    PrometheusMetrics,
    /// `GET /admin/metrics`.
    AdminMetrics,
    /// `GET|POST /admin/mcps`.
    Mcps,
    /// `POST /admin/mcps:import`.
    Import,
    /// `GET|PUT|DELETE /admin/mcps/{name}`.
    Mcp(String),
    /// `POST /admin/mcps/{name}/reconnect`.
    Reconnect(String),
    /// `GET /admin/tools`.
    Tools,
    /// `POST /admin/tools/call`.
    ToolsCall,
    /// `GET /admin/prompts`.
    Prompts,
    /// `GET /admin/resources`.
    Resources,
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];
const GET_POST: &[Method] = &[Method::GET, Method::POST];
const GET_PUT_DELETE: &[Method] = &[Method::GET, Method::PUT, Method::DELETE];

impl Route {
    /// Matches a path (without query) to a route.
    pub(crate) fn parse(path: &str) -> Option<Self> {
        let trimmed = path.strip_prefix('/')?;
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let segs: Vec<&str> = trimmed.split('/').collect();
        Some(match segs.as_slice() {
            ["healthz"] => Self::Healthz,
            ["readyz"] => Self::Readyz,
            ["metrics"] => Self::PrometheusMetrics,
            ["admin", "metrics"] => Self::AdminMetrics,
            ["admin", "mcps"] => Self::Mcps,
            ["admin", "mcps:import"] => Self::Import,
            ["admin", "mcps", name] if !name.is_empty() => Self::Mcp(decode(name)?),
            ["admin", "mcps", name, "reconnect"] if !name.is_empty() => {
                Self::Reconnect(decode(name)?)
            }
            ["admin", "tools"] => Self::Tools,
            ["admin", "tools", "call"] => Self::ToolsCall,
            ["admin", "prompts"] => Self::Prompts,
            ["admin", "resources"] => Self::Resources,
            _ => return None,
        })
    }

    /// The path template, as `docs/openapi.yaml` writes it: the route's label in metrics,
    /// never the raw path.
    pub(crate) fn template(&self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::Readyz => "/readyz",
            Self::PrometheusMetrics => "/metrics",
            Self::AdminMetrics => "/admin/metrics",
            Self::Mcps => "/admin/mcps",
            Self::Import => "/admin/mcps:import",
            Self::Mcp(_) => "/admin/mcps/{name}",
            Self::Reconnect(_) => "/admin/mcps/{name}/reconnect",
            Self::Tools => "/admin/tools",
            Self::ToolsCall => "/admin/tools/call",
            Self::Prompts => "/admin/prompts",
            Self::Resources => "/admin/resources",
        }
    }

    /// The methods this route accepts.
    pub(crate) fn methods(&self) -> &'static [Method] {
        match self {
            Self::Healthz
            | Self::Readyz
            | Self::PrometheusMetrics
            | Self::AdminMetrics
            | Self::Tools
            | Self::Prompts
            | Self::Resources => GET,
            Self::Mcps => GET_POST,
            Self::Mcp(_) => GET_PUT_DELETE,
            Self::Reconnect(_) | Self::ToolsCall | Self::Import => POST,
        }
    }

    /// One route of every kind (a new variant belongs here and in `template`).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Self> {
        let name = || "sample-mcp".to_owned();
        vec![
            Self::Healthz,
            Self::Readyz,
            Self::PrometheusMetrics,
            Self::AdminMetrics,
            Self::Mcps,
            Self::Import,
            Self::Mcp(name()),
            Self::Reconnect(name()),
            Self::Tools,
            Self::ToolsCall,
            Self::Prompts,
            Self::Resources,
        ]
    }
}

/// Resolves `method path` to a route, or the 404/405 error.
pub(crate) fn resolve(method: &Method, path: &str) -> Result<Route, Error> {
    let route = Route::parse(path).ok_or_else(|| Error::RouteNotFound(path.to_owned()))?;
    let allow = route.methods();
    if allow.contains(method) || (method == Method::HEAD && allow.contains(&Method::GET)) {
        Ok(route)
    } else {
        Err(Error::MethodNotAllowed {
            method: method.clone(),
            path: path.to_owned(),
            allow,
        })
    }
}

/// Percent-decodes a path segment; `None` when it is not valid UTF-8.
fn decode(seg: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", seg.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod openapi_sync;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(resolve(&Method::GET, "/healthz").unwrap(), Route::Healthz);
        assert_eq!(
            resolve(&Method::DELETE, "/admin/mcps/fs").unwrap(),
            Route::Mcp("fs".into())
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/mcps/a%20b/reconnect").unwrap(),
            Route::Reconnect("a b".into())
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/mcps:import").unwrap(),
            Route::Import
        );
        assert!(matches!(
            resolve(&Method::GET, "/nope"),
            Err(Error::RouteNotFound(_))
        ));
        match resolve(&Method::PATCH, "/admin/mcps/fs") {
            Err(Error::MethodNotAllowed { allow, .. }) => assert_eq!(allow, GET_PUT_DELETE),
            other => panic!("{other:?}"),
        }
    }
}
