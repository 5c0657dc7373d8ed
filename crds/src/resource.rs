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

    /// Split a storage key of this kind into namespace and name: the inverse of
    /// [`Resource::key`]. `None` when the key does not match the kind's key template
    /// (another kind's key, a missing or extra segment, characters no name may hold);
    /// such keys are skipped, as upstream does.
    fn parse_key(key: &str) -> Option<(Option<&str>, &str)> {
        let rest = key.strip_prefix(&Self::prefix(None))?;
        if Self::NAMESPACED {
            let (ns, name) = rest.split_once('/')?;
            (key_segment_ok(ns) && key_segment_ok(name)).then_some((Some(ns), name))
        } else {
            key_segment_ok(rest).then_some((None, rest))
        }
    }
}

/// Whether a key segment can be a namespace or name that `key` produced.
fn key_segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::Resource;
    use crate::core::Role;
    use crate::kubernetes::Application;
    use proptest::prelude::*;

    #[test]
    fn keys_of_other_templates_are_rejected() {
        assert_eq!(
            Application::parse_key("/kubernetes/applications/ns/app"),
            Some((Some("ns"), "app"))
        );
        assert_eq!(Role::parse_key("/core/roles/admin"), Some((None, "admin")));
        assert_eq!(Application::parse_key("/kubernetes/applications/ns"), None);
        assert_eq!(
            Application::parse_key("/kubernetes/applications/a/b/c"),
            None
        );
        assert_eq!(
            Application::parse_key("/kubernetes/applications//app"),
            None
        );
        assert_eq!(Role::parse_key("/core/roles/a/b"), None);
        assert_eq!(Role::parse_key("/core/rolebindings/a"), None);
        assert_eq!(Role::parse_key("/core/roles/"), None);
    }

    proptest! {
        #[test]
        fn parse_key_inverts_key(ns in "[a-z0-9][a-z0-9.:_-]{0,20}", name in "[a-z0-9][a-z0-9.:_-]{0,20}") {
            let key = Application::key(Some(&ns), &name);
            prop_assert_eq!(Application::parse_key(&key), Some((Some(ns.as_str()), name.as_str())));
            let key = Role::key(None, &name);
            prop_assert_eq!(Role::parse_key(&key), Some((None, name.as_str())));
        }
    }
}
