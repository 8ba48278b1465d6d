//! Properties of the JSON-RPC envelope decoder and re-encoder, over generated messages:
//! whatever the whitespace, escapes and unknown members, a message decodes to what it says
//! and encodes back to the same JSON; duplicate top-level members are refused.
//!
//! Bounded (256 cases each, small values) so they run in a second or two.

use mcp_types::Message;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const ENVELOPE: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];

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

/// Strings with the characters that need escaping or are easy to get wrong.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::char::range('a', 'z'),
            Just('"'),
            Just('\\'),
            Just('\n'),
            Just('\r'),
            Just('\u{2028}'),
            Just('\u{0}'),
            Just('é'),
            Just('😀'),
        ],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Any JSON value, bounded in depth and size.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from)
    ]
}

/// Unknown top-level members, none of them an envelope member.
fn extra() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        text().prop_filter("not an envelope member", |k| {
            !ENVELOPE.contains(&k.as_str())
        }),
        value(),
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
}

/// A valid message as a JSON object: request, notification, result or error response.
fn message() -> impl Strategy<Value = Value> {
    let params = prop::option::of(prop_oneof![
        prop::collection::btree_map(text(), value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        prop::collection::vec(value(), 0..4).prop_map(Value::from),
    ]);
    let request =
        (id(), text(), params.clone(), extra()).prop_map(|(id, method, params, extra)| {
            let mut m = extra;
            m.insert("jsonrpc".into(), json!("2.0"));
            m.insert("id".into(), id);
            m.insert("method".into(), Value::from(method));
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            Value::Object(m)
        });
    let notification = (text(), params, extra()).prop_map(|(method, params, extra)| {
        let mut m = extra;
        m.insert("jsonrpc".into(), json!("2.0"));
        m.insert("method".into(), Value::from(method));
        if let Some(p) = params {
            m.insert("params".into(), p);
        }
        Value::Object(m)
    });
    let result = (id(), value(), extra()).prop_map(|(id, result, extra)| {
        let mut m = extra;
        m.insert("jsonrpc".into(), json!("2.0"));
        m.insert("id".into(), id);
        m.insert("result".into(), result);
        Value::Object(m)
    });
    let error = (
        id(),
        any::<i32>(),
        text(),
        prop::option::of(value()),
        extra(),
    )
        .prop_map(|(id, code, message, data, extra)| {
            let mut e = json!({"code": code, "message": message});
            if let Some(d) = data {
                e["data"] = d;
            }
            let mut m = extra;
            m.insert("jsonrpc".into(), json!("2.0"));
            m.insert("id".into(), id);
            m.insert("error".into(), e);
            Value::Object(m)
        });
    prop_oneof![request, notification, result, error]
}

/// The text of `v` with every string written with `\u` escapes for its ASCII letters, so
/// that keys and values the decoder matches on are spelled unusually.
fn escaped(v: &Value) -> String {
    let compact = serde_json::to_string(v).unwrap();
    let mut out = String::new();
    let mut in_string = false;
    let mut escape = false;
    for c in compact.chars() {
        if in_string && !escape && c.is_ascii_alphabetic() {
            out.push_str(&format!("\\u{:04x}", c as u32));
            continue;
        }
        if in_string && c == '\\' && !escape {
            escape = true;
        } else {
            if c == '"' && !escape {
                in_string = !in_string;
            }
            escape = false;
        }
        out.push(c);
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the spelling (compact, pretty, escaped), a message decodes to what it says
    /// and re-encodes to the same JSON value.
    #[test]
    fn decoding_then_encoding_keeps_the_message(v in message()) {
        for text in [
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
            escaped(&v),
        ] {
            let msg = Message::from_str_exact(&text)
                .unwrap_or_else(|e| panic!("a valid message is refused: {e}: {text}"));
            // Compared as a JSON parser reads both (serde_json rounds some long floats
            // when parsing; the message itself keeps their text).
            let out: Value = serde_json::from_slice(&msg.to_vec()).unwrap();
            let sent: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&out, &sent, "{}", text);
            prop_assert_eq!(msg.method(), v.get("method").and_then(Value::as_str));
            // Encoding is stable: a second round trip gives the same bytes.
            let again = Message::from_slice(&msg.to_vec()).unwrap();
            prop_assert_eq!(again.to_vec(), msg.to_vec());
        }
    }

    /// A member written twice at the top level is refused, whichever member it is and
    /// however its name is spelled: the proxy and the peer would otherwise read different
    /// values.
    #[test]
    fn duplicate_top_level_members_are_refused(v in message(), pick in any::<prop::sample::Index>(), dup in value(), spell_escaped in any::<bool>()) {
        let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        let key = &keys[pick.index(keys.len())];
        let compact = serde_json::to_string(&v).unwrap();
        let name = if spell_escaped {
            let mut s = String::from("\"");
            for c in key.chars() {
                s.push_str(&format!("\\u{:04x}", c as u32 & 0xffff));
            }
            s.push('"');
            if key.chars().any(|c| c as u32 > 0xffff) {
                serde_json::to_string(key).unwrap()
            } else {
                s
            }
        } else {
            serde_json::to_string(key).unwrap()
        };
        let text = format!(
            "{},{}:{}}}",
            &compact[..compact.len() - 1],
            name,
            serde_json::to_string(&dup).unwrap()
        );
        prop_assert!(
            Message::from_str_exact(&text).is_err(),
            "duplicate {:?} accepted: {}",
            key,
            text
        );
    }
}
