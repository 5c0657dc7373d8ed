//! The persisted kinds, named in one place.
//!
//! To add a kind: define its types (a struct implementing [`Resource`], usually through
//! `spec_kind!` or `status_kind!`), add one line to [`for_each_kind!`]. Everything that
//! handles "all kinds" (schemas, API routes, watch caches, the garbage collector) is fed
//! from that list, through one of three views:
//!
//! * [`for_each_kind!`]: a callback macro receiving the kind types, for code that needs
//!   trait bounds of its own (`kind_routes::<R: ApiKind>`);
//! * [`visit_kinds`] with a [`KindVisitor`]: generic code over `R: Resource`;
//! * [`KINDS`]: the names and flags of each kind, for code that needs no types.
//!
//! [`Resource`]: crate::Resource

use crate::resource::Resource;

/// Calls `$callback! { Role, RoleBinding, ... }` with the type path of every persisted
/// kind, comma separated, in a fixed order (core, kubernetes, openstack,
/// infrastructure; each Global kind before its namespaced twin).
///
/// The callback matches the list with `$($kind:ty),*`:
///
/// ```
/// macro_rules! count {
///     ($($kind:ty),*) => { [$(<$kind as krake_crds::Resource>::KIND),*].len() };
/// }
/// assert_eq!(krake_crds::for_each_kind!(count), krake_crds::kinds::KINDS.len());
/// ```
#[macro_export]
macro_rules! for_each_kind {
    ($($callback:ident)::+) => {
        $($callback)::+! {
            $crate::core::Role,
            $crate::core::RoleBinding,
            $crate::core::GlobalMetric,
            $crate::core::Metric,
            $crate::core::GlobalMetricsProvider,
            $crate::core::MetricsProvider,
            $crate::kubernetes::Application,
            $crate::kubernetes::Cluster,
            $crate::openstack::Project,
            $crate::openstack::MagnumCluster,
            $crate::infrastructure::GlobalInfrastructureProvider,
            $crate::infrastructure::InfrastructureProvider,
            $crate::infrastructure::GlobalCloud,
            $crate::infrastructure::Cloud
        }
    };
}

/// Generic code run once per persisted kind by [`visit_kinds`].
pub trait KindVisitor {
    /// Called with each kind, in the order of [`for_each_kind!`].
    fn visit<R: Resource>(&mut self);
}

/// Calls `visitor.visit::<R>()` for every persisted kind, in the order of
/// [`for_each_kind!`].
pub fn visit_kinds(visitor: &mut impl KindVisitor) {
    macro_rules! visit {
        ($($kind:ty),*) => { $( visitor.visit::<$kind>(); )* };
    }
    for_each_kind!(visit);
}

/// The names and flags of a persisted kind: [`Resource`]'s constants as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindInfo {
    /// API group (`kubernetes`).
    pub api: &'static str,
    /// Kind (`Application`).
    pub kind: &'static str,
    /// URL collection segment and RBAC resource name (`applications`).
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the kind has a `status` with a `/status` subresource.
    pub has_status: bool,
}

impl KindInfo {
    /// The facts of kind `R`.
    pub const fn of<R: Resource>() -> Self {
        KindInfo {
            api: R::API,
            kind: R::KIND,
            plural: R::PLURAL,
            namespaced: R::NAMESPACED,
            has_status: R::HAS_STATUS,
        }
    }

    /// The persisted kind named `api`/`kind`, if any.
    pub fn find(api: &str, kind: &str) -> Option<KindInfo> {
        KINDS
            .iter()
            .copied()
            .find(|k| k.api == api && k.kind == kind)
    }
}

macro_rules! kind_infos {
    ($($kind:ty),*) => { &[$(KindInfo::of::<$kind>()),*] };
}

/// Every persisted kind, in the order of [`for_each_kind!`].
pub const KINDS: &[KindInfo] = for_each_kind!(kind_infos);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn no_kind_is_listed_twice() {
        let names: HashSet<_> = KINDS.iter().map(|k| (k.api, k.kind)).collect();
        assert_eq!(names.len(), KINDS.len());
        let plurals: HashSet<_> = KINDS.iter().map(|k| (k.api, k.plural)).collect();
        assert_eq!(
            plurals.len(),
            KINDS.len(),
            "etcd keys and URLs would collide"
        );
    }

    #[test]
    fn the_visitor_sees_the_table() {
        struct Collect(Vec<KindInfo>);
        impl KindVisitor for Collect {
            fn visit<R: Resource>(&mut self) {
                self.0.push(KindInfo::of::<R>());
            }
        }
        let mut seen = Collect(Vec::new());
        visit_kinds(&mut seen);
        assert_eq!(seen.0, KINDS);
    }

    #[test]
    fn find_looks_up_by_api_and_kind() {
        let app = KindInfo::find("kubernetes", "Application").expect("listed");
        assert_eq!(app.plural, "applications");
        assert_eq!(KindInfo::find("core", "Application"), None);
    }
}
