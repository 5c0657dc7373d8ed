//! RBAC authorization (upstream's `RBAC` mode) answered from memory.
//!
//! Upstream scans every RoleBinding and reads every bound Role on each request. Here an
//! [`RbacIndex`] lists Roles and RoleBindings once, then follows the watch caches of both
//! kinds, so a decision is a lookup (users → role names → rules) under a read lock. Role
//! changes take effect as soon as the watch cache delivers them; after a lost
//! subscription (lagging, or a restarted cache) the index re-lists and swaps in the new
//! contents.
//!
//! The rule semantics are upstream's, with one deliberate fix (upstream shows every object): a
//! list or watch across all namespaces only returns objects of the namespaces the user
//! may `list` the resource in ([`RbacIndex::visible_namespaces`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use krake_crds::Resource;
use krake_crds::core::{Role, RoleBinding, RoleRule, Verb as RuleVerb};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{ANONYMOUS, Access, Authorizer, Caller, NamespaceScope, Verb};
use crate::error::Error;
use crate::storage::Store;
use crate::storage::codec::decode_listing;
use crate::watch_cache::{CachedEvent, EventType, Subscription, WatchCache};

/// The role-related contents of the store, as the index holds them.
#[derive(Debug, Default)]
struct Snapshot {
    /// Role name → rules.
    roles: HashMap<String, Vec<RoleRule>>,
    /// RoleBinding name → (users, role names); ordered like a storage listing.
    bindings: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// User → role names of every binding naming the user, in binding order, unique.
    user_roles: HashMap<String, Vec<String>>,
}

impl Snapshot {
    fn rebuild_user_roles(&mut self) {
        let mut user_roles: HashMap<String, Vec<String>> = HashMap::new();
        for (users, roles) in self.bindings.values() {
            for user in users {
                let entry = user_roles.entry(user.clone()).or_default();
                for role in roles {
                    if !entry.contains(role) {
                        entry.push(role.clone());
                    }
                }
            }
        }
        self.user_roles = user_roles;
    }

    /// Sorted unique names of the roles of every binding naming `user`.
    fn sorted_roles_of(&self, user: &str) -> Vec<String> {
        let mut roles = self.user_roles.get(user).cloned().unwrap_or_default();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Every rule of every (existing) role bound to `user`.
    fn rules_of<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a RoleRule> + 'a {
        self.user_roles
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|role| self.roles.get(role))
            .flatten()
    }

    fn put_role(&mut self, role: Role) {
        self.roles.insert(role.metadata.name, role.rules);
    }

    fn put_binding(&mut self, binding: RoleBinding) {
        self.bindings
            .insert(binding.metadata.name, (binding.users, binding.roles));
        self.rebuild_user_roles();
    }
}

fn rule_verb(verb: Verb) -> RuleVerb {
    match verb {
        Verb::Create => RuleVerb::Create,
        Verb::List => RuleVerb::List,
        Verb::Get => RuleVerb::Get,
        Verb::Update => RuleVerb::Update,
        Verb::Delete => RuleVerb::Delete,
    }
}

/// Whether `rule` matches api, resource and verb (`""` is the wildcard of api and
/// resources; resources include the subresource path, so `applications` does not match
/// `applications/status`).
fn rule_matches(rule: &RoleRule, api: &str, resource: &str, verb: Verb) -> bool {
    (rule.api == api || rule.api.is_empty())
        && rule.verbs.contains(&rule_verb(verb))
        && rule.resources.iter().any(|r| r == resource || r.is_empty())
}

/// Upstream's decision for one rule: a request without a namespace (global kinds, lists
/// across all namespaces) is granted whatever the rule's namespaces are.
fn rule_allows(rule: &RoleRule, access: &Access<'_>) -> bool {
    rule_matches(rule, access.api, access.resource, access.verb)
        && match access.namespace {
            None => true,
            Some(ns) => rule.namespaces.iter().any(|n| n == ns || n.is_empty()),
        }
}

/// Users → role names → rules, kept current from the watch caches of Roles and
/// RoleBindings.
#[derive(Debug)]
pub struct RbacIndex {
    snapshot: RwLock<Snapshot>,
    loaded: tokio::sync::watch::Sender<bool>,
}

impl RbacIndex {
    /// An index built from these objects, marked loaded and never updated.
    #[cfg(test)]
    fn from_objects(roles: Vec<Role>, bindings: Vec<RoleBinding>) -> Arc<Self> {
        let index = RbacIndex::empty();
        index.replace(roles, bindings);
        index
    }

    fn empty() -> Arc<Self> {
        Arc::new(RbacIndex {
            snapshot: RwLock::new(Snapshot::default()),
            loaded: tokio::sync::watch::channel(false).0,
        })
    }

    /// Start an index that lists Roles and RoleBindings from `store` and then follows the
    /// `roles` and `role_bindings` watch caches until `shutdown`. It answers once the first
    /// listing is in ([`RbacIndex::is_loaded`]).
    pub fn start(
        store: Arc<dyn Store>,
        roles: Arc<WatchCache>,
        role_bindings: Arc<WatchCache>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let index = RbacIndex::empty();
        tokio::spawn(index.clone().follow(store, roles, role_bindings, shutdown));
        index
    }

    /// Whether the first listing has been loaded.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sorted unique names of the roles of every binding naming `user` (whether or not
    /// the roles exist), as `/me` reports them.
    pub fn roles_of(&self, user: &str) -> Vec<String> {
        self.read().sorted_roles_of(user)
    }

    /// Whether any rule of any role bound to `user` grants `access` (anonymous users are
    /// handled by the authorizer, not here).
    pub fn allows(&self, user: &str, access: &Access<'_>) -> bool {
        self.read().rules_of(user).any(|r| rule_allows(r, access))
    }

    /// The namespaces in which `user` may `list` `resource` of `api`: every namespace if
    /// a matching rule has the `""` wildcard, else the union of the matching rules'
    /// namespaces.
    pub fn visible_namespaces(&self, user: &str, api: &str, resource: &str) -> NamespaceScope {
        let snapshot = self.read();
        let mut namespaces = BTreeSet::new();
        for rule in snapshot
            .rules_of(user)
            .filter(|r| rule_matches(r, api, resource, Verb::List))
        {
            for ns in &rule.namespaces {
                if ns.is_empty() {
                    return NamespaceScope::All;
                }
                namespaces.insert(ns.clone());
            }
        }
        NamespaceScope::Only(namespaces)
    }

    fn replace(&self, roles: Vec<Role>, bindings: Vec<RoleBinding>) {
        let mut snapshot = Snapshot::default();
        for role in roles {
            snapshot.put_role(role);
        }
        for binding in bindings {
            snapshot
                .bindings
                .insert(binding.metadata.name, (binding.users, binding.roles));
        }
        snapshot.rebuild_user_roles();
        *self.write() = snapshot;
        self.loaded.send_replace(true);
    }

    /// List and follow until shutdown; every lost subscription leads to a fresh listing.
    async fn follow(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        roles: Arc<WatchCache>,
        role_bindings: Arc<WatchCache>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.sync(&*store, &roles, &role_bindings, &mut backoff) => r,
            };
            match outcome {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "RBAC index lost its subscription; re-listing roles and bindings");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One listing followed by events until the subscriptions end (an error: re-list).
    async fn sync(
        &self,
        store: &dyn Store,
        roles: &WatchCache,
        role_bindings: &WatchCache,
        backoff: &mut Duration,
    ) -> Result<(), Error> {
        roles.wait_established(Duration::from_secs(5)).await?;
        role_bindings
            .wait_established(Duration::from_secs(5))
            .await?;
        // Listing after the caches are established, then subscribing from the listing's
        // revision, leaves neither a gap nor a duplicate between listing and events.
        let (role_kvs, role_rev) = store.list(&Role::prefix(None)).await?;
        let mut role_events = Follower::subscribe(roles, role_rev)?;
        let (binding_kvs, binding_rev) = store.list(&RoleBinding::prefix(None)).await?;
        let mut binding_events = Follower::subscribe(role_bindings, binding_rev)?;

        let listed_roles = decode_listing::<Role>(&role_kvs)
            .filter_map(|(key, role)| decoded(role, key))
            .collect();
        let listed_bindings = decode_listing::<RoleBinding>(&binding_kvs)
            .filter_map(|(key, binding)| decoded(binding, key))
            .collect();
        self.replace(listed_roles, listed_bindings);
        *backoff = Duration::from_millis(100);
        tracing::debug!(role_rev, binding_rev, "RBAC index loaded");

        loop {
            tokio::select! {
                event = role_events.next() => {
                    let event = event?;
                    self.apply_role(&event);
                }
                event = binding_events.next() => {
                    let event = event?;
                    self.apply_binding(&event);
                }
            }
        }
    }

    fn apply_role(&self, event: &CachedEvent) {
        let Some((_, name)) = Role::parse_key(&event.key) else {
            return;
        };
        match event.event_type {
            EventType::Deleted => {
                self.write().roles.remove(name);
            }
            EventType::Added | EventType::Modified => {
                if let Some(role) =
                    decoded(serde_json::from_slice::<Role>(&event.object), &event.key)
                {
                    self.write().put_role(role);
                }
            }
        }
    }

    fn apply_binding(&self, event: &CachedEvent) {
        let Some((_, name)) = RoleBinding::parse_key(&event.key) else {
            return;
        };
        match event.event_type {
            EventType::Deleted => {
                let mut snapshot = self.write();
                snapshot.bindings.remove(name);
                snapshot.rebuild_user_roles();
            }
            EventType::Added | EventType::Modified => {
                if let Some(binding) = decoded(
                    serde_json::from_slice::<RoleBinding>(&event.object),
                    &event.key,
                ) {
                    self.write().put_binding(binding);
                }
            }
        }
    }
}

/// Sorted unique names of the roles of every RoleBinding in `store` naming `user`
/// (whether or not the roles exist): what `/me` reports when no RBAC index is running.
/// Unlike the index, an undecodable binding is an error here, not skipped.
pub async fn bound_roles(store: &dyn Store, user: &str) -> Result<Vec<String>, Error> {
    let (kvs, _) = store.list(&RoleBinding::prefix(None)).await?;
    let mut snapshot = Snapshot::default();
    for (_, binding) in decode_listing::<RoleBinding>(&kvs) {
        let binding = binding?;
        snapshot
            .bindings
            .insert(binding.metadata.name, (binding.users, binding.roles));
    }
    snapshot.rebuild_user_roles();
    Ok(snapshot.sorted_roles_of(user))
}

fn decoded<T, E: std::fmt::Display>(result: Result<T, E>, key: &str) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(key, error = %e, "RBAC index skips an undecodable stored object");
            None
        }
    }
}

/// Events of one watch cache after a listing's revision.
struct Follower {
    replay: std::vec::IntoIter<Arc<CachedEvent>>,
    live: broadcast::Receiver<Arc<CachedEvent>>,
    after: i64,
}

impl Follower {
    fn subscribe(cache: &WatchCache, after: i64) -> Result<Self, Error> {
        match cache.subscribe(Some(after)) {
            Subscription::Cached { replay, live } => Ok(Follower {
                replay: replay.into_iter(),
                live,
                after,
            }),
            Subscription::TooOld => Err(Error::StorageUnavailable(format!(
                "the watch cache of {} no longer holds revision {after}",
                cache.prefix()
            ))),
        }
    }

    /// The next event; an error when the subscription ended or fell behind.
    async fn next(&mut self) -> Result<Arc<CachedEvent>, Error> {
        if let Some(event) = self.replay.next() {
            return Ok(event);
        }
        loop {
            match self.live.recv().await {
                // The cache may lag behind the store the listing came from.
                Ok(event) if event.revision <= self.after => continue,
                Ok(event) => {
                    self.after = event.revision;
                    return Ok(event);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(Error::StorageUnavailable(format!("missed {n} role events")));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(Error::StorageUnavailable("watch cache restarted".into()));
                }
            }
        }
    }
}

/// The `RBAC` authorization mode.
pub struct RbacAuthorizer {
    index: Arc<RbacIndex>,
}

impl RbacAuthorizer {
    /// An authorizer answering from `index`.
    pub fn new(index: Arc<RbacIndex>) -> Self {
        RbacAuthorizer { index }
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, caller: &Caller, access: &Access<'_>) -> Result<(), Error> {
        if caller.user == ANONYMOUS {
            return Err(Error::Unauthorized("Unauthorized".into()));
        }
        if !self.index.is_loaded() {
            return Err(Error::StorageUnavailable(
                "RBAC roles are not loaded yet".into(),
            ));
        }
        if self.index.allows(&caller.user, access) {
            Ok(())
        } else {
            tracing::debug!(user = %caller.user, api = access.api, resource = access.resource, verb = ?access.verb, namespace = ?access.namespace, "RBAC denied");
            Err(Error::Forbidden)
        }
    }

    fn visible_namespaces(&self, caller: &Caller, api: &str, resource: &str) -> NamespaceScope {
        self.index.visible_namespaces(&caller.user, api, resource)
    }

    fn is_ready(&self) -> bool {
        self.index.is_loaded()
    }

    fn user_roles(&self, user: &str) -> Option<Vec<String>> {
        // Until the index is loaded, `/me` reads the bindings from storage.
        self.index.is_loaded().then(|| self.index.roles_of(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_crds::Metadata;

    fn rule(api: &str, resources: &[&str], namespaces: &[&str], verbs: &[RuleVerb]) -> RoleRule {
        RoleRule {
            api: api.into(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            verbs: verbs.to_vec(),
        }
    }

    fn role(name: &str, rules: Vec<RoleRule>) -> Role {
        Role::new(Metadata::named(name), rules)
    }

    fn binding(name: &str, users: &[&str], roles: &[&str]) -> RoleBinding {
        RoleBinding::new(
            Metadata::named(name),
            users.iter().map(|s| s.to_string()).collect(),
            roles.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn access<'a>(
        api: &'a str,
        resource: &'a str,
        verb: Verb,
        namespace: Option<&'a str>,
    ) -> Access<'a> {
        Access {
            api,
            resource,
            verb,
            namespace,
        }
    }

    fn caller(user: &str) -> Caller {
        Caller { user: user.into() }
    }

    #[test]
    fn upstream_rule_semantics() {
        let index = RbacIndex::from_objects(
            vec![
                role(
                    "dev-reader",
                    vec![rule(
                        "kubernetes",
                        &["applications"],
                        &["dev"],
                        &[RuleVerb::Get, RuleVerb::List],
                    )],
                ),
                role("nothing", vec![rule("", &[""], &[], &[RuleVerb::Get])]),
            ],
            vec![
                binding("b1", &["alice"], &["dev-reader", "missing"]),
                binding("b2", &["bob"], &["nothing"]),
            ],
        );
        let rbac = RbacAuthorizer::new(index.clone());
        let alice = caller("alice");
        let ok = |c: &Caller, a: Access<'_>| rbac.authorize(c, &a).is_ok();
        assert!(ok(
            &alice,
            access("kubernetes", "applications", Verb::Get, Some("dev"))
        ));
        assert!(!ok(
            &alice,
            access("kubernetes", "applications", Verb::Get, Some("prod"))
        ));
        assert!(!ok(
            &alice,
            access("kubernetes", "applications", Verb::Update, Some("dev"))
        ));
        assert!(!ok(
            &alice,
            access("kubernetes", "applications/status", Verb::Get, Some("dev"))
        ));
        assert!(!ok(
            &alice,
            access("openstack", "applications", Verb::Get, Some("dev"))
        ));
        // No namespace (all-namespaces list): granted regardless of the rule's namespaces.
        assert!(ok(
            &alice,
            access("kubernetes", "applications", Verb::List, None)
        ));
        // An empty namespaces list still grants global kinds.
        assert!(ok(&caller("bob"), access("core", "roles", Verb::Get, None)));
        assert!(!ok(
            &caller("bob"),
            access("core", "metrics", Verb::Get, Some("dev"))
        ));
        assert!(matches!(
            rbac.authorize(&caller("eve"), &access("core", "roles", Verb::Get, None)),
            Err(Error::Forbidden)
        ));
        assert!(matches!(
            rbac.authorize(
                &caller(ANONYMOUS),
                &access("core", "roles", Verb::Get, None)
            ),
            Err(Error::Unauthorized(_))
        ));
        assert_eq!(index.roles_of("alice"), vec!["dev-reader", "missing"]);
        assert!(index.roles_of("eve").is_empty());
    }

    #[test]
    fn visible_namespaces_union_and_wildcard() {
        let index = RbacIndex::from_objects(
            vec![
                role(
                    "a",
                    vec![
                        rule("kubernetes", &["applications"], &["dev"], &[RuleVerb::List]),
                        rule("", &["applications"], &["qa"], &[RuleVerb::List]),
                        rule("kubernetes", &["applications"], &["prod"], &[RuleVerb::Get]),
                    ],
                ),
                role("all", vec![rule("", &[""], &[""], &[RuleVerb::List])]),
            ],
            vec![
                binding("b1", &["alice"], &["a"]),
                binding("b2", &["root"], &["all"]),
            ],
        );
        assert_eq!(
            index.visible_namespaces("alice", "kubernetes", "applications"),
            NamespaceScope::Only(["dev".to_string(), "qa".to_string()].into())
        );
        assert_eq!(
            index.visible_namespaces("alice", "kubernetes", "clusters"),
            NamespaceScope::Only(Default::default())
        );
        assert_eq!(
            index.visible_namespaces("root", "kubernetes", "clusters"),
            NamespaceScope::All
        );
    }

    #[test]
    fn unloaded_index_answers_unavailable() {
        let rbac = RbacAuthorizer::new(RbacIndex::empty());
        assert!(!rbac.is_ready());
        assert_eq!(rbac.user_roles("alice"), None);
        assert!(matches!(
            rbac.authorize(&caller("alice"), &access("core", "roles", Verb::Get, None)),
            Err(Error::StorageUnavailable(_))
        ));
    }
}
