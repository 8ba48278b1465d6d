//! Properties of definition reading and validation, over generated definitions: every
//! failing field is reported, whatever else fails with it and whatever the member order;
//! and the lenient reader agrees with the strict parser plus `validate()` on what is valid.

use std::collections::BTreeSet;

use mcp_types::McpDefinition;
use mcp_types::validate::Draft;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Bounded for CI; `PROPTEST_CASES` runs more (proptest's default configuration reads it).
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            256
        },
        failure_persistence: None,
        ..default
    }
}

/// A valid definition as JSON members, with some of the optional fields set.
fn valid() -> impl Strategy<Value = Vec<(String, Value)>> {
    let transport = prop_oneof![
        Just(vec![
            ("transport", json!("stdio")),
            ("command", json!(["npx", "-y", "x"])),
            ("env", json!({"A": "b"})),
        ]),
        Just(vec![
            ("transport", json!("streamable-http")),
            ("url", json!("https://h.example/mcp")),
            ("headers", json!({"X-Key": "v"})),
        ]),
        Just(vec![
            ("transport", json!("sse")),
            ("url", json!("http://127.0.0.1:9/sse"))
        ]),
    ];
    let optional = prop::sample::subsequence(
        vec![
            ("description", json!("an upstream")),
            ("timeout", json!("5s")),
            ("reconnectDelay", json!(500_000_000)),
            ("healthCheckInterval", json!("1m")),
            ("maxSessions", json!(8)),
            ("allowedIPs", json!(["10.0.0.0/8", "::1"])),
            ("tags", json!(["a"])),
            ("requireAuth", json!(true)),
            ("sessionMode", json!("shared")),
            ("authTokens", json!(["a-token-0123"])),
            ("passthroughHeaders", json!(["X-Tenant"])),
            ("toolFilter", json!({"mode": "block", "list": ["rm"]})),
        ],
        0..=12,
    );
    (transport, optional).prop_map(|(t, o)| {
        let mut members = vec![("name".to_owned(), json!("up-1"))];
        members.extend(t.into_iter().map(|(k, v)| (k.to_owned(), v)));
        members.extend(o.into_iter().map(|(k, v)| (k.to_owned(), v)));
        members
    })
}

/// Ways to break one top-level field, each independent of the others: the field and its
/// bad value (a wrong type, an unknown variant or an invalid value).
fn corruptions() -> Vec<(&'static str, Value)> {
    vec![
        ("name", json!("bad one")),
        ("timeout", json!(true)),
        ("reconnectDelay", json!("2h")),
        ("healthCheckInterval", json!("0s")),
        ("maxSessions", json!(0)),
        ("allowedIPs", json!(["nope"])),
        ("tags", json!([""])),
        ("requireAuth", json!("yes")),
        ("autoReconnect", json!(1)),
        ("sessionMode", json!("sometimes")),
        ("passthroughHeaders", json!(["Authorization"])),
        ("description", json!("x".repeat(1025))),
        ("toolFilter", json!({"mode": "maybe"})),
        ("authTokens", json!(["has space"])),
        ("colour", json!("red")),
        ("transport", json!("bogus")),
    ]
}

fn object(members: &[(String, Value)]) -> Vec<u8> {
    // Written by hand so that the generated order is the order on the wire.
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
        .collect();
    format!("{{{}}}", body.join(",")).into_bytes()
}

fn top_level(field: &str) -> String {
    field
        .split(['.', '['])
        .next()
        .unwrap_or_default()
        .to_owned()
}

proptest! {
    #![proptest_config(config())]

    /// Break any set of fields: exactly those fields are reported, all at once.
    #[test]
    fn every_failing_field_is_reported_at_once(
        (members, broken) in (valid(), prop::sample::subsequence(corruptions(), 0..=16))
            .prop_flat_map(|(mut members, broken)| {
                for (field, bad) in &broken {
                    members.retain(|(k, _)| k != field);
                    members.push(((*field).to_owned(), bad.clone()));
                }
                (Just(members).prop_shuffle(), Just(broken))
            })
    ) {
        let bytes = object(&members);
        let result = Draft::from_slice(&bytes).unwrap().finish(|_, _| {});
        let expected: BTreeSet<String> = broken.iter().map(|(f, _)| (*f).to_owned()).collect();
        match result {
            Ok(def) => {
                prop_assert!(expected.is_empty(), "nothing reported for {:?}", expected);
                let strict: McpDefinition = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(def, strict);
            }
            Err(errors) => {
                let reported: BTreeSet<String> =
                    errors.0.iter().map(|e| top_level(&e.field)).collect();
                prop_assert_eq!(
                    &reported, &expected,
                    "{}", String::from_utf8_lossy(&bytes)
                );
            }
        }
    }

    /// On any object of known fields with any values, the lenient reader accepts exactly
    /// what the strict parser and `validate()` accept, and reads it the same; it never
    /// panics.
    #[test]
    fn the_lenient_reader_agrees_with_the_strict_one(
        members in valid(),
        noise in prop::collection::vec(
            (prop::sample::select(vec!["name", "transport", "timeout", "url", "command",
                                       "env", "maxSessions", "tags", "toolFilter"]),
             prop_oneof![Just(json!(null)), Just(json!(1)), Just(json!("s")),
                         Just(json!([])), Just(json!({})), Just(json!(["x"]))]),
            0..3,
        )
    ) {
        let mut members = members;
        for (k, v) in noise {
            members.retain(|(m, _)| m != k);
            members.push((k.to_owned(), v));
        }
        let bytes = object(&members);
        let lenient = Draft::from_slice(&bytes).unwrap().finish(|_, _| {});
        let strict = serde_json::from_slice::<McpDefinition>(&bytes)
            .ok()
            .filter(|d| d.validate().is_ok());
        prop_assert_eq!(lenient.ok(), strict, "{}", String::from_utf8_lossy(&bytes));
    }
}
