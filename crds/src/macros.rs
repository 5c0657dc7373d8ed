//! Internal macros: enums serialized by member name, polymorphic containers, the
//! `api`/`kind` default functions, and the `Resource` implementations shared by kinds
//! of the same shape (`spec_kind!` for spec-only kinds, `status_kind!` for spec+status).

/// An enum serialized by member NAME, as upstream's marshmallow enum fields do:
/// case-sensitive, unknown names
/// are `Invalid enum member <x>`, non-strings are `Enum name must be string`.
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The member name as used on the wire.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $wire => Ok($name::$variant), )+
                    other => Err(format!("Invalid enum member {other}")),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an enum member name")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_unit<E: serde::de::Error>(self) -> Result<$name, E> {
                        Err(E::custom($crate::coercion::NULL_MSG))
                    }
                    fn visit_none<E: serde::de::Error>(self) -> Result<$name, E> {
                        Err(E::custom($crate::coercion::NULL_MSG))
                    }
                    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$name, E> {
                        Err(E::custom("Enum name must be string"))
                    }
                    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$name, E> {
                        Err(E::custom("Enum name must be string"))
                    }
                    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$name, E> {
                        Err(E::custom("Enum name must be string"))
                    }
                    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$name, E> {
                        Err(E::custom("Enum name must be string"))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<$name, A::Error> {
                        Err(serde::de::Error::custom("Enum name must be string"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<$name, A::Error> {
                        Err(serde::de::Error::custom("Enum name must be string"))
                    }
                }
                deserializer.deserialize_any(V)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "enum": [$($wire),+]})
            }
        }
    };
}

/// A polymorphic container `{"type": T, T: {...}}` (metrics provider and cloud specs),
/// as an enum with one
/// variant per registered type.
///
/// Deserialization: `type` is required (`Missing data for required field.`) and must be
/// registered (`Unknown type 'x'`); the object under the key `T` is required (`Field is
/// required`) and validated with the sub-schema; any other key is dropped.
/// Serialization: exactly `{"type": T, T: {...}}`.
macro_rules! polymorphic {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $tag:literal => $variant:ident($ty:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )+
        }

        impl $name {
            /// The registered type names.
            pub const TYPES: &'static [&'static str] = &[$($tag),+];

            /// The `type` of this value.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( $name::$variant(_) => $tag, )+
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", self.type_name())?;
                match self {
                    $( $name::$variant(inner) => map.serialize_entry($tag, inner)?, )+
                }
                map.end()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($name)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<$name, A::Error> {
                        let mut entries = serde_json::Map::new();
                        while let Some(key) = access.next_key::<String>()? {
                            let value: serde_json::Value = access.next_value()?;
                            entries.insert(key, value);
                        }
                        let ty = match entries.remove("type") {
                            None => return Err($crate::decode::nested_error(&["type"], "Missing data for required field.")),
                            Some(serde_json::Value::Null) => return Err($crate::decode::nested_error(&["type"], $crate::coercion::NULL_MSG)),
                            Some(serde_json::Value::String(s)) => s,
                            Some(_) => return Err($crate::decode::nested_error(&["type"], "Not a valid string.")),
                        };
                        match ty.as_str() {
                            $(
                                $tag => {
                                    let sub = entries
                                        .remove($tag)
                                        .ok_or_else(|| $crate::decode::nested_error(&[$tag], "Field is required"))?;
                                    $crate::decode::from_value_nested::<$ty, A::Error>(sub, $tag).map($name::$variant)
                                }
                            )+
                            other => Err($crate::decode::nested_error(
                                &["type"],
                                &format!("Unknown type {}", $crate::python::py_repr(other)),
                            )),
                        }
                    }
                }
                deserializer.deserialize_map(V)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let variants: Vec<serde_json::Value> = vec![
                    $(
                        {
                            let sub = generator.subschema_for::<$ty>();
                            serde_json::json!({
                                "type": "object",
                                "properties": {"type": {"const": $tag}, $tag: sub},
                                "required": ["type", $tag],
                            })
                        }
                    ),+
                ];
                schemars::json_schema!({
                    "description": "Polymorphic container: `type` names the key holding the sub-object.",
                    "oneOf": variants,
                })
            }
        }
    };
}

/// `fn $fname() -> String { $value.into() }`, for `#[serde(default = "...")]`.
macro_rules! string_default {
    ($($fname:ident => $value:expr),+ $(,)?) => {
        $(
            fn $fname() -> String {
                String::from($value)
            }
        )+
    };
}

/// The constants and metadata accessors of a [`crate::Resource`] implementation.
macro_rules! resource_consts {
    ($api:expr, $kind:expr, $plural:expr, namespaced: $ns:expr, status: $status:expr) => {
        const API: &'static str = $api;
        const KIND: &'static str = $kind;
        const PLURAL: &'static str = $plural;
        const NAMESPACED: bool = $ns;
        const HAS_STATUS: bool = $status;

        fn metadata(&self) -> &$crate::metadata::Metadata {
            &self.metadata
        }

        fn metadata_mut(&mut self) -> &mut $crate::metadata::Metadata {
            &mut self.metadata
        }
    };
}

/// A kind made of `api`, `kind`, `metadata` and a client-writable `spec` (no status),
/// with its constructor and `Resource` implementation. The Global/namespaced pairs of
/// metrics, metrics providers and infrastructure providers differ only in these
/// parameters. `$check` validates the spec beyond its structure.
macro_rules! spec_kind {
    (
        $(#[$doc:meta])*
        pub struct $name:ident {
            api: $api:literal,
            kind: $kind:literal,
            kind_default: $kind_default:literal,
            plural: $plural:literal,
            namespaced: $ns:literal,
            spec: $spec:ty,
            spec_doc: $spec_doc:literal,
            check: $check:expr $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        pub struct $name {
            #[doc = concat!("Always `", $api, "`.")]
            #[serde(default = "default_api")]
            pub api: String,
            #[doc = concat!("Always `", $kind, "`.")]
            #[serde(default = $kind_default)]
            pub kind: String,
            /// Object metadata.
            pub metadata: Metadata,
            #[doc = $spec_doc]
            pub spec: $spec,
        }

        impl $name {
            #[doc = concat!("A `", $kind, "` with the given metadata and spec.")]
            pub fn new(metadata: Metadata, spec: $spec) -> Self {
                $name { api: default_api(), kind: $kind.to_string(), metadata, spec }
            }
        }

        impl Resource for $name {
            resource_consts!(API, $kind, $plural, namespaced: $ns, status: false);

            fn validate(&self, errors: &mut ValidationErrors) {
                validate_metadata(&self.metadata, errors);
                let check: fn(&$spec, &mut ValidationErrors) = $check;
                check(&self.spec, errors);
            }

            fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
                self.spec = body.spec.clone();
                Ok(())
            }
        }
    };
}

/// The `Resource` implementation of a kind made of `api`, `kind`, `metadata`, a
/// client-writable `spec` and a controller-written `status` whose `Default` is the
/// initial status and whose `state` is a `name_enum!`.
///
/// `check` (optional) validates the spec beyond its structure, after the metadata; it
/// sees the errors found so far. `immutable_spec` and `immutable_status` (optional) name
/// the fields that an update of the spec, respectively of the status, must not change.
macro_rules! status_kind {
    (
        impl Resource for $name:ident {
            api: $api:expr,
            kind: $kind:literal,
            plural: $plural:literal,
            namespaced: $ns:literal,
            $(check: $check:path,)?
            $(immutable_spec: [$($spec_field:ident),* $(,)?],)?
            $(immutable_status: [$($status_field:ident),* $(,)?],)?
        }
    ) => {
        impl Resource for $name {
            resource_consts!($api, $kind, $plural, namespaced: $ns, status: true);

            fn validate(&self, errors: &mut ValidationErrors) {
                validate_metadata(&self.metadata, errors);
                $($check(&self.spec, errors);)?
            }

            fn reset_status(&mut self) {
                self.status = Default::default();
            }

            fn state_name(&self) -> Option<&'static str> {
                Some(self.status.state.as_str())
            }

            fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
                $($(
                    if self.spec.$spec_field != body.spec.$spec_field {
                        return Err(ImmutableField(stringify!($spec_field)));
                    }
                )*)?
                self.spec = body.spec.clone();
                Ok(())
            }

            fn merge_status_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
                $($(
                    if self.status.$status_field != body.status.$status_field {
                        return Err(ImmutableField(stringify!($status_field)));
                    }
                )*)?
                self.status = body.status.clone();
                Ok(())
            }
        }
    };
}
