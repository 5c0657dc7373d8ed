//! The contract every persisted Krake kind fulfils, so that the API server and the
//! controllers can handle all fourteen kinds with one generic code path.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metadata::Metadata;
use crate::validation::ValidationErrors;

/// A client tried to change a field that cannot change after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableField(pub &'static str);

/// A persisted Krake resource kind (e.g. `kubernetes/Application`).
pub trait Resource:
    Serialize
    + DeserializeOwned
    + schemars::JsonSchema
    + Clone
    + PartialEq
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// API group name as used in URLs, etcd keys and the `api` field (`core`, `kubernetes`, ...).
    const API: &'static str;
    /// Kind name (`Application`).
    const KIND: &'static str;
    /// URL collection segment and RBAC resource name (`applications`).
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// Whether the kind has a `status` field with a `/status` subresource.
    const HAS_STATUS: bool;

    /// The object's metadata.
    fn metadata(&self) -> &Metadata;
    /// Mutable access to the object's metadata.
    fn metadata_mut(&mut self) -> &mut Metadata;

    /// Semantic validation that serde cannot express (names, labels, constraint grammars,
    /// cross-field rules). Errors are added to `errors` at their field path.
    fn validate(&self, errors: &mut ValidationErrors);

    /// Reset the status to the kind's initial value (done on create). No-op for kinds
    /// without status.
    fn reset_status(&mut self) {}

    /// The state name of the status (`"RUNNING"`), for kinds whose status has a `state`.
    fn state_name(&self) -> Option<&'static str> {
        None
    }

    /// Copy the client-writable top-level fields (`spec`, or `rules`, or `users`+`roles`)
    /// from `body` into `self`, rejecting changes of immutable spec fields.
    fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField>;

    /// Replace the status with the one of `body`, rejecting changes of immutable status
    /// fields. No-op for kinds without status.
    fn merge_status_from(&mut self, _body: &Self) -> Result<(), ImmutableField> {
        Ok(())
    }

    /// The etcd key of an object of this kind (`/kubernetes/applications/{ns}/{name}`).
    fn key(namespace: Option<&str>, name: &str) -> String {
        match (Self::NAMESPACED, namespace) {
            (true, Some(ns)) => format!("/{}/{}/{}/{}", Self::API, Self::PLURAL, ns, name),
            _ => format!("/{}/{}/{}", Self::API, Self::PLURAL, name),
        }
    }

    /// The etcd prefix holding all objects of this kind, or of one namespace of it.
    /// The trailing slash keeps namespace `ns` from matching `ns2`.
    fn prefix(namespace: Option<&str>) -> String {
        match (Self::NAMESPACED, namespace) {
            (true, Some(ns)) => format!("/{}/{}/{}/", Self::API, Self::PLURAL, ns),
            _ => format!("/{}/{}/", Self::API, Self::PLURAL),
        }
    }
}
