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
    /// `GET|POST /admin/groups`.
    Groups,
    /// `GET|PUT|DELETE /admin/groups/{name}`.
    Group(String),
    /// `GET /admin/tools[?group=NAME]`.
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
            ["admin", "groups"] => Self::Groups,
            ["admin", "groups", name] if !name.is_empty() => Self::Group(decode(name)?),
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
            Self::Groups => "/admin/groups",
            Self::Group(_) => "/admin/groups/{name}",
            Self::Tools => "/admin/tools",
            Self::ToolsCall => "/admin/tools/call",
            Self::Prompts => "/admin/prompts",
            Self::Resources => "/admin/resources",
        }
    }

    /// Whether the route needs admin credentials (token and allow-listed address). Decided
    /// on the resolved route, so every spelling of a path that reaches it (a trailing
    /// slash, say) is guarded alike.
    pub(crate) fn requires_admin(&self, metrics_public: bool) -> bool {
        match self {
            Self::Healthz | Self::Readyz => false,
            Self::PrometheusMetrics => !metrics_public,
            Self::AdminMetrics
            | Self::Mcps
            | Self::Import
            | Self::Mcp(_)
            | Self::Reconnect(_)
            | Self::Groups
            | Self::Group(_)
            | Self::Tools
            | Self::ToolsCall
            | Self::Prompts
            | Self::Resources => true,
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
            Self::Mcps | Self::Groups => GET_POST,
            Self::Mcp(_) | Self::Group(_) => GET_PUT_DELETE,
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
            Self::Groups,
            Self::Group(name()),
            Self::Tools,
            Self::ToolsCall,
            Self::Prompts,
            Self::Resources,
        ]
    }
}

/// Resolves `method path` to a route, or the 404/405 error.
#[cfg(test)]
pub(crate) fn resolve(method: &Method, path: &str) -> Result<Route, Error> {
    let route = Route::parse(path).ok_or_else(|| Error::RouteNotFound(path.to_owned()))?;
    check_method(route, method, path)
}

/// Whether a path the router does not know lies under `/admin`: such paths are answered
/// only to admins, so that an unauthenticated caller learns nothing of the Admin API.
pub(crate) fn is_under_admin(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    first.eq_ignore_ascii_case("admin")
        || decode(first).is_some_and(|f| f.eq_ignore_ascii_case("admin"))
}

/// The route if it accepts `method` (`HEAD` goes with `GET`), else the 405 error.
pub(crate) fn check_method(route: Route, method: &Method, path: &str) -> Result<Route, Error> {
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
        assert_eq!(
            resolve(&Method::PUT, "/admin/groups/team/").unwrap(),
            Route::Group("team".into())
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/groups").unwrap(),
            Route::Groups
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

    #[test]
    fn every_spelling_of_an_admin_route_needs_admin() {
        for route in Route::all() {
            let path = route.template().replace("{name}", "sample-mcp");
            let needs = route.requires_admin(false);
            assert_eq!(
                needs,
                !matches!(route, Route::Healthz | Route::Readyz),
                "{path}"
            );
            let slashed = format!("{path}/");
            let again = Route::parse(&slashed).expect("a trailing slash resolves");
            assert_eq!(again.requires_admin(false), needs, "{slashed}");
        }
        assert!(!Route::PrometheusMetrics.requires_admin(true));
        for unknown in [
            "/admin",
            "/admin/",
            "//admin/x",
            "/ADMIN/mcps",
            "/%61dmin/mcps",
        ] {
            assert!(Route::parse(unknown).is_none(), "{unknown}");
            assert!(is_under_admin(unknown), "{unknown}");
        }
        assert!(!is_under_admin("/administrator"));
    }
}
