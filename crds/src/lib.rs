//! Krake resource types: the fourteen persisted kinds of the `core`, `kubernetes`,
//! `infrastructure` and `openstack` APIs, their validation rules, and the wire encoding
//! shared with upstream Krake (Python-compatible JSON). The same types give each kind's JSON
//! Schema ([`schema`]) and its Kubernetes CustomResourceDefinition ([`crd`]).

#[macro_use]
mod macros;

pub mod coercion;
pub mod constraints;
pub mod core;
pub mod crd;
pub mod decode;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod infrastructure;
pub mod json;
pub mod kinds;
pub mod kubernetes;
pub mod metadata;
pub mod openstack;
pub mod ordered_map;
pub mod python;
pub mod resource;
pub mod schema;
pub mod stored;
pub mod strict;
pub mod validation;

pub use decode::{RequestKind, decode, decode_create, decode_request};
pub use kinds::{KINDS, KindInfo, KindVisitor, visit_kinds};
pub use metadata::{Metadata, ResourceRef, Timestamp};
pub use ordered_map::OrderedMap;
pub use resource::{ImmutableField, Resource};
pub use stored::decode_stored;
pub use validation::{PathSegment, ValidationErrors};
