//! Ready-made predicates for [`crate::Controller::with_predicate`].

use krake_crds::Resource;

/// Whether something besides the status changed between `old` and `new` (`false` for
/// a status-only write): so that a controller's own status writes do not requeue it.
///
/// Krake's `/status` writes change only `status` and `metadata.resource_version`
/// (`metadata.modified` is kept), so both are left out of the comparison.
pub fn ignore_status_changes<R: Resource>(old: &R, new: &R) -> bool {
    let without_status = |obj: &R| {
        let mut obj = obj.clone();
        obj.reset_status();
        obj.metadata_mut().resource_version = None;
        obj
    };
    without_status(old) != without_status(new)
}
