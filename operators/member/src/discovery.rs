//! A member cluster's discovery cache: group version → served resources.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::core::{ApiResource, GroupVersion, GroupVersionKind};
use kube::discovery::{self, ApiCapabilities};

use crate::MemberError;

type Resources = Arc<Vec<(ApiResource, ApiCapabilities)>>;

/// Resolves a [`GroupVersionKind`] to the [`ApiResource`] (plural, for URLs) and
/// [`ApiCapabilities`] (scope, subresources, verbs) the member cluster serves.
///
/// One `GET /api/v1` or `GET /apis/{group}/{version}` per group version, cached. A kind
/// missing from the cache refreshes its group version once (a CRD may have been added
/// since), then is a [`MemberError::UnknownKind`]; misses are not cached, so a kind that
/// appears later resolves on the next call. [`DiscoveryCache::invalidate`] (called when
/// the cluster's CRDs change) drops everything, so that a deleted CRD's kind is not
/// resolved from stale data.
///
/// Never derives a plural from a kind name: only what the server says counts.
pub struct DiscoveryCache {
    client: kube::Client,
    groups: Mutex<HashMap<String, Resources>>,
}

impl fmt::Debug for DiscoveryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cached: Vec<String> = self.groups().keys().cloned().collect();
        cached.sort();
        f.debug_struct("DiscoveryCache")
            .field("group_versions", &cached)
            .finish_non_exhaustive()
    }
}

impl DiscoveryCache {
    /// An empty cache querying through `client`.
    pub fn new(client: kube::Client) -> Self {
        DiscoveryCache {
            client,
            groups: Mutex::default(),
        }
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Resources>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The resource and capabilities of `gvk`, from the cache or, on a miss, from the
    /// cluster.
    pub async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), MemberError> {
        let gv = GroupVersion::gv(&gvk.group, &gvk.version);
        let key = gv.api_version();
        let cached = self.groups().get(&key).cloned();
        if let Some(found) = cached.as_deref().and_then(|r| find(r, &gvk.kind)) {
            return Ok(found);
        }
        let resources = self.refresh(&gv).await?;
        find(&resources, &gvk.kind).ok_or_else(|| MemberError::UnknownKind {
            group_version: key,
            kind: gvk.kind.clone(),
        })
    }

    /// Query the resources of `gv` and cache them; a group version the cluster does not
    /// serve (404) yields no resources and leaves nothing cached.
    #[tracing::instrument(level = "debug", skip(self), fields(group_version = %gv.api_version()))]
    async fn refresh(&self, gv: &GroupVersion) -> Result<Resources, MemberError> {
        let key = gv.api_version();
        match discovery::pinned_group(&self.client, gv).await {
            Ok(group) => {
                let resources: Resources = Arc::new(group.versioned_resources(&gv.version));
                tracing::debug!(kinds = resources.len(), "discovery refreshed");
                self.groups().insert(key, resources.clone());
                Ok(resources)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.groups().remove(&key);
                Ok(Arc::default())
            }
            Err(source) => Err(MemberError::Discovery {
                group_version: key,
                source,
            }),
        }
    }

    /// Drop everything cached (the cluster's CRDs changed).
    pub fn invalidate(&self) {
        self.groups().clear();
    }

    /// Drop what is cached of API group `group` (`""` for the core group), e.g. when a
    /// CRD of that group was created, changed or deleted.
    pub fn invalidate_group(&self, group: &str) {
        self.groups().retain(|key, _| match key.split_once('/') {
            Some((g, _)) => g != group,
            None => !group.is_empty(),
        });
    }

    /// Group versions currently cached (`v1` for the core group, else `group/version`).
    pub fn cached_group_versions(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.groups().keys().cloned().collect();
        keys.sort();
        keys
    }
}

fn find(
    resources: &[(ApiResource, ApiCapabilities)],
    kind: &str,
) -> Option<(ApiResource, ApiCapabilities)> {
    resources.iter().find(|(ar, _)| ar.kind == kind).cloned()
}
