//! The in-memory cache a reflector fills: a map from [`ObjectRef`] to the latest known
//! version of every object of one kind.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use krake_client::WatchEvent;
use krake_crds::Resource;
use tokio::sync::watch;

/// A typed reference to an object of kind `R`: its namespace (`None` for global kinds)
/// and name, the kind being the type (kube-runtime's `ObjectRef`). The keys of stores,
/// controller queues and watch mappings.
pub struct ObjectRef<R> {
    /// Namespace; `None` for global kinds.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    kind: PhantomData<fn() -> R>,
}

impl<R: Resource> ObjectRef<R> {
    /// A reference to the object named `name` (in no namespace until [`ObjectRef::within`]).
    pub fn new(name: &str) -> Self {
        ObjectRef {
            namespace: None,
            name: name.to_string(),
            kind: PhantomData,
        }
    }

    /// The same reference in `namespace`; ignored for global kinds (their objects have
    /// no namespace), and an empty namespace is none.
    pub fn within(mut self, namespace: Option<&str>) -> Self {
        self.namespace = namespace
            .filter(|ns| R::NAMESPACED && !ns.is_empty())
            .map(str::to_string);
        self
    }

    /// The reference of `obj`.
    pub fn from_obj(obj: &R) -> Self {
        let meta = obj.metadata();
        Self::new(&meta.name).within(meta.namespace.as_deref())
    }
}

impl<R> Clone for ObjectRef<R> {
    fn clone(&self) -> Self {
        ObjectRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            kind: PhantomData,
        }
    }
}

impl<R> PartialEq for ObjectRef<R> {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

impl<R> Eq for ObjectRef<R> {}

impl<R> Hash for ObjectRef<R> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

impl<R> PartialOrd for ObjectRef<R> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<R> Ord for ObjectRef<R> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.namespace, &self.name).cmp(&(&other.namespace, &other.name))
    }
}

impl<R: Resource> fmt::Debug for ObjectRef<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef<{}/{}>({self})", R::API, R::KIND)
    }
}

impl<R> fmt::Display for ObjectRef<R> {
    /// `namespace/name`, or `name` for global kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A change of the store, delivered to reflector subscribers after the store was
/// updated.
#[derive(Debug, Clone)]
pub enum Change<R> {
    /// An object appeared.
    Added(Arc<R>),
    /// An object changed.
    Modified {
        /// The version the store held before.
        old: Arc<R>,
        /// The version it holds now.
        new: Arc<R>,
    },
    /// An object disappeared (removed from storage, or absent from a re-list); carries
    /// its last known version.
    Deleted(Arc<R>),
}

impl<R: Resource> Change<R> {
    /// The object concerned (the new version for [`Change::Modified`]).
    pub fn object(&self) -> &Arc<R> {
        match self {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Modified { new, .. } => new,
        }
    }

    /// The reference of the object concerned.
    pub fn object_ref(&self) -> ObjectRef<R> {
        ObjectRef::from_obj(self.object().as_ref())
    }
}

struct Shared<R> {
    objects: RwLock<HashMap<ObjectRef<R>, Arc<R>>>,
    synced: watch::Sender<bool>,
    /// Incremented (under the write lock) by every change of `objects`.
    generation: AtomicU64,
}

impl<R> Shared<R> {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<ObjectRef<R>, Arc<R>>> {
        // A panic while holding the lock cannot leave the map half-updated (single
        // insert/remove calls), so a poisoned lock is still usable.
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Record a change of `objects`; called with the write lock held, so that a reader
    /// that saw the new generation also sees the new content.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<ObjectRef<R>, Arc<R>>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cheaply clonable, read-only view of the objects of one kind.
///
/// Objects are shared (`Arc`); reads never wait for the network.
pub struct Store<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Store<R> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

impl<R> fmt::Debug for Store<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.shared.read().len())
            .field("synced", &*self.shared.synced.borrow())
            .finish()
    }
}

impl<R: Resource> Store<R> {
    /// The object `key` refers to.
    pub fn get(&self, key: &ObjectRef<R>) -> Option<Arc<R>> {
        self.shared.read().get(key).cloned()
    }

    /// The object named `name` in `namespace` (`None` for global kinds).
    pub fn get_named(&self, namespace: Option<&str>, name: &str) -> Option<Arc<R>> {
        self.get(&ObjectRef::new(name).within(namespace))
    }

    /// Every object, in no particular order.
    pub fn list(&self) -> Vec<Arc<R>> {
        self.shared.read().values().cloned().collect()
    }

    /// The objects for which `pred` holds.
    pub fn filter(&self, mut pred: impl FnMut(&R) -> bool) -> Vec<Arc<R>> {
        self.shared
            .read()
            .values()
            .filter(|o| pred(o))
            .cloned()
            .collect()
    }

    /// The reference of every object.
    pub fn keys(&self) -> Vec<ObjectRef<R>> {
        self.shared.read().keys().cloned().collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.shared.read().len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.shared.read().is_empty()
    }

    /// A number that changes whenever the content of the store changes (never the
    /// reverse: equal numbers mean the same content). Lets readers cache what they
    /// derive from the store and notice when it is stale without comparing objects.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Whether a first complete list was loaded. Stays `true` afterwards (during
    /// reconnections the store keeps serving the last known state).
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Wait until [`Store::is_synced`] (kube-runtime's name: the store is ready to be
    /// read once it holds a complete list).
    pub async fn wait_until_ready(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives in `self.shared`, so it cannot be dropped while we wait.
        let _ = rx.wait_for(|synced| *synced).await;
    }
}

/// The single writer of a [`Store`] (normally owned by a [`crate::Reflector`]; public for
/// custom sources and for tests of code that reads stores).
pub struct Writer<R> {
    shared: Arc<Shared<R>>,
}

impl<R> fmt::Debug for Writer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<R: Resource> Default for Writer<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Resource> Writer<R> {
    /// An empty, unsynced store.
    pub fn new() -> Self {
        Writer {
            shared: Arc::new(Shared {
                objects: RwLock::new(HashMap::new()),
                synced: watch::Sender::new(false),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// A reader of the store.
    pub fn store(&self) -> Store<R> {
        Store {
            shared: self.shared.clone(),
        }
    }

    /// Mark the store synced (a complete list was loaded).
    pub fn mark_synced(&mut self) {
        self.shared.synced.send_replace(true);
    }

    /// Apply one watch event; returns the resulting change, or `None` when the store
    /// already reflected it (e.g. an event replayed after a reconnection).
    pub fn apply(&mut self, event: WatchEvent<R>) -> Option<Change<R>> {
        match event {
            WatchEvent::Added(obj) | WatchEvent::Modified(obj) => self.upsert(obj),
            WatchEvent::Deleted(obj) => {
                let key = ObjectRef::from_obj(&obj);
                let mut map = self.shared.write();
                let old = map.remove(&key);
                old.map(|_| {
                    self.shared.changed();
                    Change::Deleted(Arc::new(obj))
                })
            }
        }
    }

    /// Insert or replace one object; `None` when an equal object was already stored.
    pub fn upsert(&mut self, obj: R) -> Option<Change<R>> {
        let key = ObjectRef::from_obj(&obj);
        let mut map = self.shared.write();
        match map.get(&key) {
            Some(old) if **old == obj => None,
            Some(old) => {
                let old = old.clone();
                let new = Arc::new(obj);
                map.insert(key, new.clone());
                self.shared.changed();
                Some(Change::Modified { old, new })
            }
            None => {
                let new = Arc::new(obj);
                map.insert(key, new.clone());
                self.shared.changed();
                Some(Change::Added(new))
            }
        }
    }

    /// Replace the whole content with a fresh list; returns the differences
    /// (additions, modifications, then deletions of objects absent from the list).
    pub fn replace(&mut self, items: Vec<R>) -> Vec<Change<R>> {
        let mut fresh: HashMap<ObjectRef<R>, Arc<R>> = HashMap::with_capacity(items.len());
        let mut changes = Vec::new();
        let mut map = self.shared.write();
        for obj in items {
            let key = ObjectRef::from_obj(&obj);
            match map.remove(&key) {
                Some(old) if *old == obj => {
                    fresh.insert(key, old);
                }
                Some(old) => {
                    let new = Arc::new(obj);
                    fresh.insert(key, new.clone());
                    changes.push(Change::Modified { old, new });
                }
                None => {
                    let new = Arc::new(obj);
                    fresh.insert(key, new.clone());
                    changes.push(Change::Added(new));
                }
            }
        }
        let mut gone: Vec<_> = map.drain().collect();
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        changes.extend(gone.into_iter().map(|(_, obj)| Change::Deleted(obj)));
        *map = fresh;
        if !changes.is_empty() {
            self.shared.changed();
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_crds::Metadata;
    use krake_crds::core::Role;

    fn role(name: &str, rv: &str) -> Role {
        let mut meta = Metadata::named(name);
        meta.resource_version = Some(rv.into());
        Role::new(meta, vec![])
    }

    #[tokio::test]
    async fn apply_and_replace_report_differences() {
        let mut writer = Writer::<Role>::new();
        let store = writer.store();
        assert!(!store.is_synced());

        assert!(matches!(
            writer.apply(WatchEvent::Added(role("a", "1"))),
            Some(Change::Added(_))
        ));
        // Replayed event: no change.
        assert!(writer.apply(WatchEvent::Added(role("a", "1"))).is_none());
        match writer.apply(WatchEvent::Modified(role("a", "2"))) {
            Some(Change::Modified { old, new }) => {
                assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
                assert_eq!(new.metadata.resource_version.as_deref(), Some("2"));
            }
            other => panic!("{other:?}"),
        }
        writer.apply(WatchEvent::Added(role("b", "3")));
        assert_eq!(store.len(), 2);

        // Re-list: a unchanged, b gone, c new.
        let changes = writer.replace(vec![role("a", "2"), role("c", "5")]);
        let summary: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Added(o) => format!("+{}", o.metadata.name),
                Change::Modified { new, .. } => format!("~{}", new.metadata.name),
                Change::Deleted(o) => format!("-{}", o.metadata.name),
            })
            .collect();
        assert_eq!(summary, vec!["+c", "-b"]);
        assert!(store.get_named(None, "b").is_none());
        assert!(store.get_named(Some("ignored"), "c").is_some());

        assert!(matches!(
            writer.apply(WatchEvent::Deleted(role("c", "6"))),
            Some(Change::Deleted(_))
        ));
        // Deleting an unknown object is no change.
        assert!(writer.apply(WatchEvent::Deleted(role("zz", "7"))).is_none());

        let waiter = tokio::spawn({
            let store = store.clone();
            async move { store.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        writer.mark_synced();
        waiter.await.unwrap();
        assert!(store.is_synced());
    }

    #[test]
    fn generation_changes_with_the_content_only() {
        let mut writer = Writer::<Role>::new();
        let store = writer.store();
        let mut seen = vec![store.generation()];
        let mut changed = |store: &Store<Role>, expected: bool| {
            let now = store.generation();
            assert_eq!(
                !seen.contains(&now),
                expected,
                "generations {seen:?}, now {now}"
            );
            seen.push(now);
        };
        writer.upsert(role("a", "1"));
        changed(&store, true);
        writer.upsert(role("a", "1"));
        changed(&store, false);
        writer.apply(WatchEvent::Modified(role("a", "2")));
        changed(&store, true);
        writer.apply(WatchEvent::Deleted(role("zz", "3")));
        changed(&store, false);
        writer.replace(vec![role("a", "2")]);
        changed(&store, false);
        writer.replace(vec![role("a", "2"), role("b", "4")]);
        changed(&store, true);
        writer.apply(WatchEvent::Deleted(role("b", "5")));
        changed(&store, true);
        writer.replace(Vec::new());
        changed(&store, true);
        writer.mark_synced();
        changed(&store, false);
    }

    #[test]
    fn references_display_and_normalise_namespaces() {
        use krake_crds::kubernetes::Application;
        let app = ObjectRef::<Application>::new("a").within(Some("ns"));
        assert_eq!(app.to_string(), "ns/a");
        assert_eq!(
            format!("{app:?}"),
            "ObjectRef<kubernetes/Application>(ns/a)"
        );
        assert_eq!(
            ObjectRef::<Application>::new("a")
                .within(Some(""))
                .namespace,
            None
        );
        // Global kinds have no namespace, whatever the caller passes.
        let global = ObjectRef::<Role>::new("a").within(Some("ns"));
        assert_eq!(global.to_string(), "a");
        assert_eq!(global, ObjectRef::from_obj(&role("a", "1")));
    }
}
