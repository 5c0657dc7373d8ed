//! Krake resource types: the fourteen persisted kinds of the `core`, `kubernetes`,
//! `infrastructure` and `openstack` APIs, their validation rules, and the wire encoding
//! shared with upstream Krake (Python-compatible JSON).

pub mod coercion;
pub mod constraints;
pub mod core;
pub mod decode;
pub mod infrastructure;
pub mod json;
pub mod kubernetes;
pub mod metadata;
pub mod openstack;
pub mod resource;
pub mod validation;

pub use decode::{decode, decode_request};
pub use metadata::{Metadata, ResourceRef, Timestamp};
pub use resource::{ImmutableField, Resource};
pub use validation::ValidationErrors;
