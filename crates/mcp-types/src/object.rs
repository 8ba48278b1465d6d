//! Reading nested configuration objects as objects only.
//!
//! A derived `Deserialize` also reads a struct from a JSON array, field by field in
//! order (`"toolFilter": ["allow", ["x"]]`). Definitions and groups are documented, and
//! validated, as objects all the way down, so the nested structs are read through
//! [`Object`], which accepts a JSON object and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `T`, read from a JSON object only.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Only(PhantomData)).map(Object)
    }
}

/// For `#[serde(deserialize_with)]` on an `Option` of a struct: null, or an object.
pub(crate) fn option<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|o| o.0))
}

/// For `#[serde(deserialize_with)]` on a map of structs: each value an object.
pub(crate) fn map_values<'de, D, T>(deserializer: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let map = BTreeMap::<String, Object<T>>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
mod tests {
    use crate::{GroupDefinition, McpDefinition};

    #[test]
    fn nested_structs_are_read_from_objects_only() {
        let err = serde_json::from_str::<McpDefinition>(
            r#"{"name":"a","transport":"stdio","command":"x","toolFilter":["allow",["t"]]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
        let ok = serde_json::from_str::<McpDefinition>(
            r#"{"name":"a","transport":"stdio","command":"x","toolFilter":{"mode":"allow","list":["t"]}}"#,
        )
        .unwrap();
        assert!(ok.permits_tool("t") && !ok.permits_tool("u"));
        let none = serde_json::from_str::<McpDefinition>(
            r#"{"name":"a","transport":"stdio","command":"x","toolFilter":null}"#,
        )
        .unwrap();
        assert!(none.tool_filter.is_none());
        let err = serde_json::from_str::<GroupDefinition>(
            r#"{"name":"g","overrides":{"a.b":[null,null]}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
        let g = serde_json::from_str::<GroupDefinition>(
            r#"{"name":"g","overrides":{"a.b":{"hidden":true}},"toolFilter":{"mode":"block"}}"#,
        )
        .unwrap();
        assert!(g.overrides["a.b"].hidden && g.tool_filter.is_some());
        let err = serde_json::from_str::<GroupDefinition>(
            r#"{"name":"g","overrides":{"a.b":{"hidden":true,"colour":1}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
