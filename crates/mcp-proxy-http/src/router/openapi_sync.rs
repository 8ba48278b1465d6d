//! `docs/openapi.yaml` and the router agree: every documented operation is routed, and every
//! route and method is documented.

use std::collections::BTreeSet;

use http::Method;
use serde_yaml_ng::Value;

use super::{Route, resolve};

const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");

/// HTTP methods an OpenAPI path item can hold.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(path template, lowercase method)` of every documented operation.
fn documented() -> BTreeSet<(String, String)> {
    let doc: Value = serde_yaml_ng::from_str(OPENAPI).expect("docs/openapi.yaml is YAML");
    let paths = doc["paths"].as_mapping().expect("the document has paths");
    let mut ops = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("paths are strings");
        let item = item.as_mapping().expect("a path item is a mapping");
        for key in item.keys().filter_map(Value::as_str) {
            if METHODS.contains(&key) {
                ops.insert((path.to_owned(), key.to_owned()));
            }
        }
    }
    ops
}

/// `(path template, lowercase method)` of every route the router serves (`HEAD` follows
/// `GET` implicitly and is not documented separately).
fn routed() -> BTreeSet<(String, String)> {
    Route::all()
        .iter()
        .flat_map(|r| {
            r.methods()
                .iter()
                .map(|m| (r.template().to_owned(), m.as_str().to_ascii_lowercase()))
        })
        .collect()
}

#[test]
fn every_documented_operation_is_routed() {
    for (path, method) in documented() {
        let concrete = path.replace("{name}", "sample-mcp");
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let route = resolve(&m, &concrete)
            .unwrap_or_else(|e| panic!("documented {method} {path} is not routed: {e}"));
        assert_eq!(route.template(), path, "{method} {path} routes elsewhere");
    }
}

#[test]
fn every_route_is_documented() {
    let documented = documented();
    let missing: Vec<_> = routed().difference(&documented).cloned().collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routed()).cloned().collect();
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
}

#[test]
fn the_route_listing_matches_the_parser() {
    for route in Route::all() {
        let concrete = route.template().replace("{name}", "sample-mcp");
        assert_eq!(Route::parse(&concrete), Some(route.clone()), "{concrete}");
    }
}
