//! The identity of objects in the ownership graph and the cascade-deletion finalizer.

use std::fmt;

use krake_crds::{KindInfo, Resource, ResourceRef};

/// The finalizer the API appends on DELETE and the collector removes.
pub const CASCADE_DELETION: &str = "cascade_deletion";

/// The identity of an object in the ownership graph and the collector's work-queue key:
/// API group, kind, namespace (`None` for global kinds) and name — a normalised
/// [`ResourceRef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// API group.
    pub api: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for global kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl NodeId {
    /// The identity of `obj`.
    pub fn of<R: Resource>(obj: &R) -> Self {
        let meta = obj.metadata();
        NodeId {
            api: R::API.to_string(),
            kind: R::KIND.to_string(),
            namespace: if R::NAMESPACED {
                meta.namespace.clone()
            } else {
                None
            },
            name: meta.name.clone(),
        }
    }

    /// The identity an owner reference points to. References are free strings: the
    /// namespace of a reference to a global kind is ignored, an empty namespace is none.
    pub fn from_ref(r: &ResourceRef) -> Self {
        let global = KindInfo::find(&r.api, &r.kind).is_some_and(|k| !k.namespaced);
        NodeId {
            api: r.api.clone(),
            kind: r.kind.clone(),
            namespace: if global {
                None
            } else {
                r.namespace.clone().filter(|ns| !ns.is_empty())
            },
            name: r.name.clone(),
        }
    }

    /// As an owner reference.
    pub fn to_ref(&self) -> ResourceRef {
        ResourceRef {
            api: self.api.clone(),
            namespace: self.namespace.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for NodeId {
    /// `api/Kind namespace/name`, or `api/Kind name` for global kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} {ns}/{}", self.api, self.kind, self.name),
            None => write!(f, "{}/{} {}", self.api, self.kind, self.name),
        }
    }
}

/// Whether `meta` is in cascade deletion: deleted, with `cascade_deletion` as the last
/// finalizer (finalizers are a stack; only the last one's owner acts).
pub fn is_cascading(meta: &krake_crds::Metadata) -> bool {
    meta.deleted.is_some() && meta.finalizers.last().map(String::as_str) == Some(CASCADE_DELETION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_crds::Metadata;
    use krake_crds::core::Role;

    #[test]
    fn references_are_normalised() {
        let global = ResourceRef {
            api: "infrastructure".into(),
            namespace: Some("whatever".into()),
            kind: "GlobalCloud".into(),
            name: "gc".into(),
        };
        let id = NodeId::from_ref(&global);
        assert_eq!(id.namespace, None);
        assert_eq!(id.to_string(), "infrastructure/GlobalCloud gc");
        let mut role = Role::new(Metadata::named("r"), vec![]);
        role.metadata.namespace = Some("ignored".into());
        assert_eq!(NodeId::of(&role).namespace, None);
        assert_eq!(NodeId::of(&role).to_string(), "core/Role r");

        let namespaced = ResourceRef {
            api: "kubernetes".into(),
            namespace: Some("ns".into()),
            kind: "Cluster".into(),
            name: "c".into(),
        };
        let id = NodeId::from_ref(&namespaced);
        assert_eq!(id.to_string(), "kubernetes/Cluster ns/c");
        assert_eq!(id.to_ref(), namespaced);
        let empty_ns = ResourceRef {
            namespace: Some(String::new()),
            ..namespaced
        };
        assert_eq!(NodeId::from_ref(&empty_ns).namespace, None);
    }

    #[test]
    fn cascading_needs_the_finalizer_last() {
        let mut meta = Metadata::named("x");
        assert!(!is_cascading(&meta));
        meta.finalizers = vec!["cascade_deletion".into()];
        assert!(!is_cascading(&meta));
        meta.deleted = Some(Default::default());
        assert!(is_cascading(&meta));
        meta.finalizers = vec!["cascade_deletion".into(), "other".into()];
        assert!(!is_cascading(&meta));
        meta.finalizers = vec!["other".into(), "cascade_deletion".into()];
        assert!(is_cascading(&meta));
    }
}
