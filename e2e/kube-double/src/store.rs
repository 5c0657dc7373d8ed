//! The in-memory store: every object of every kind, one global resourceVersion counter
//! (like etcd's revision), server-set metadata, preconditions, finalizers, garbage
//! collection by owner references, namespace termination, and a bounded history of
//! changes that watches replay from (older versions are "compacted": 410).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::apply;
use crate::error::{Error, Reason, Result};
use crate::kinds::{self, Kind};
use crate::select::Filter;
use crate::validate;

/// The key of a stored object: resource (group, plural), namespace (`""` when
/// cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjKey {
    /// API group.
    pub group: String,
    /// Resource (plural).
    pub plural: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    fn new(kind: &Kind, namespace: Option<&str>, name: &str) -> Self {
        ObjKey {
            group: kind.group.clone(),
            plural: kind.plural.clone(),
            namespace: if kind.namespaced {
                namespace.unwrap_or_default().to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Removed.
    Deleted,
}

/// One write, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the write.
    pub rv: u64,
    /// The object's key.
    pub key: ObjKey,
    /// What happened.
    pub change: ChangeType,
    /// The object after the write (the last state for a deletion).
    pub object: Value,
    /// The object before the write, for updates (selector transitions).
    pub previous: Option<Value>,
}

/// Who writes and how: drives managed fields, subresources and dry runs.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    /// The field manager (`fieldManager`, else derived from the User-Agent).
    pub manager: String,
    /// `Some("status")` for writes through the status subresource.
    pub subresource: Option<String>,
    /// `dryRun=All`: compute and answer, store nothing.
    pub dry_run: bool,
    /// The apiVersion the client used (recorded in managed fields).
    pub api_version: String,
    /// Whether the write is a server-side apply (it sets managed fields itself).
    pub apply: bool,
}

/// How a deletion ended.
#[derive(Debug)]
pub enum Deleted {
    /// Finalizers remain: the object, now with `deletionTimestamp`.
    Pending(Value),
    /// Removed: its last state.
    Gone(Value),
}

/// Options of a deletion (DeleteOptions).
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The matching objects of this page.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub rv: u64,
    /// The continue token, if more remain.
    pub continue_token: Option<String>,
    /// How many objects remain after this page.
    pub remaining: Option<usize>,
}

/// The retained changes after a version, and a receiver of the later ones.
pub type Backlog = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// Why a watch cannot start from a resourceVersion.
#[derive(Debug)]
pub struct TooOld {
    /// The requested version.
    pub requested: u64,
    /// The oldest version still available.
    pub oldest: u64,
}

struct State {
    rv: u64,
    builtin: Vec<Arc<Kind>>,
    crds: BTreeMap<String, Arc<Kind>>,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches must start at or after this version.
    compacted: u64,
}

/// The store. Every operation takes one short lock: writes are atomic and ordered.
pub struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<Change>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Now, in the format of Kubernetes timestamps.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object)?.get(field)?.as_str()
}

/// The finalizer that holds an owner in foreground deletion until its dependents are gone.
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Keys of the objects with an owner reference to `uid`.
fn dependents_of(state: &State, uid: &str) -> Vec<ObjKey> {
    if uid.is_empty() {
        return Vec::new();
    }
    state
        .objects
        .iter()
        .filter(|(_, v)| {
            meta(v)
                .and_then(|m| m.get("ownerReferences"))
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                })
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn finalizers(object: &Value) -> Vec<String> {
    meta(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without metadata (and status when it is a subresource): what `generation`
/// follows.
fn spec_part(kind: &Kind, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        if kind.status {
            o.remove("status");
        }
    }
    v
}

fn rand_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Store {
    /// A store with the built-in kinds, no objects but the `default`, `kube-system` and
    /// `kube-public` namespaces, and room for `history_limit` changes of history.
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        let store = Store {
            state: Mutex::new(State {
                rv: 0,
                builtin: kinds::builtin(),
                crds: BTreeMap::new(),
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                compacted: 0,
            }),
            events,
        };
        let namespaces = store.kind("", "v1", "namespaces").expect("built-in kind");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store
                .create(
                    &namespaces,
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    &WriteCtx {
                        manager: "kube-apiserver".into(),
                        api_version: "v1".into(),
                        ..WriteCtx::default()
                    },
                )
                .expect("initial namespace");
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written object (writes are
        // single inserts), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every served kind: built-ins, then CRD-defined kinds.
    pub fn kinds(&self) -> Vec<Arc<Kind>> {
        let state = self.lock();
        state
            .builtin
            .iter()
            .chain(state.crds.values())
            .cloned()
            .collect()
    }

    /// The kind served at `group`/`version` under `plural`.
    pub fn kind(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Kind>> {
        self.kinds()
            .into_iter()
            .find(|k| k.group == group && k.plural == plural && k.serves(version))
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Forget the whole change history: watches from any earlier version get 410.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.compacted = state.rv;
    }

    /// One object.
    pub fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Result<Value> {
        let state = self.lock();
        state
            .objects
            .get(&ObjKey::new(kind, namespace, name))
            .cloned()
            .ok_or_else(|| Error::not_found(&kind.group, &kind.plural, name))
    }

    /// A page of the objects of `kind` (in `namespace`, or everywhere) that pass `filter`.
    pub fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        filter: &Filter,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page> {
        let state = self.lock();
        let (list_rv, start_after) = match continue_token.filter(|t| !t.is_empty()) {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                if rv < state.compacted {
                    return Err(Error::status(
                        Reason::Expired,
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (rv, Some(after))
            }
            None => (state.rv, None),
        };
        let low = ObjKey {
            group: kind.group.clone(),
            plural: kind.plural.clone(),
            namespace: String::new(),
            name: String::new(),
        };
        let lower = match &start_after {
            Some((ns, name)) => Bound::Excluded(ObjKey {
                namespace: ns.clone(),
                name: name.clone(),
                ..low.clone()
            }),
            None => Bound::Included(low.clone()),
        };
        let matching = state
            .objects
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.group == kind.group && k.plural == kind.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| !kind.namespaced || k.namespace == ns))
            .filter(|(_, v)| filter.matches(v));
        let mut items = Vec::new();
        let mut last = None;
        let mut remaining = 0usize;
        for (k, v) in matching {
            if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(v.clone());
            last = Some(k);
        }
        let continue_token = (remaining > 0)
            .then(|| last.map(|k| encode_continue(list_rv, &k.namespace, &k.name)))
            .flatten();
        Ok(Page {
            items,
            rv: list_rv,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Create an object (POST).
    pub fn create(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        object: Value,
        ctx: &WriteCtx,
    ) -> Result<Value> {
        let mut state = self.lock();
        self.create_locked(&mut state, kind, namespace, object, ctx)
    }

    /// Replace or patch an object: `change` computes the new object from the current one
    /// (`None` when absent; then the result is created if `upsert`). Returns the stored
    /// object and whether it was created.
    pub fn write(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        upsert: bool,
        ctx: &WriteCtx,
        change: impl FnOnce(Option<&Value>) -> Result<Value>,
    ) -> Result<(Value, bool)> {
        let mut state = self.lock();
        let key = ObjKey::new(kind, namespace, name);
        let current = state.objects.get(&key).cloned();
        match current {
            None if !upsert => Err(Error::not_found(&kind.group, &kind.plural, name)),
            None => {
                let mut new = change(None)?;
                meta_mut(&mut new).insert("name".into(), json!(name));
                let created = self.create_locked(&mut state, kind, namespace, new, ctx)?;
                Ok((created, true))
            }
            Some(old) => {
                let new = change(Some(&old))?;
                let stored = self.update_locked(&mut state, kind, &key, old, new, ctx)?;
                Ok((stored, false))
            }
        }
    }

    /// Delete an object (DELETE).
    pub fn delete(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted> {
        let mut state = self.lock();
        let key = ObjKey::new(kind, namespace, name);
        let Some(current) = state.objects.get(&key).cloned() else {
            return Err(Error::not_found(&kind.group, &kind.plural, name));
        };
        // Delete preconditions, worded as kube-apiserver words them.
        for (label, field, wanted) in [
            ("UID", "uid", &opts.uid),
            ("ResourceVersion", "resourceVersion", &opts.resource_version),
        ] {
            let actual = meta_str(&current, field).unwrap_or_default();
            if let Some(wanted) = wanted
                && wanted != actual
            {
                return Err(Error::conflict(
                    &kind.group,
                    &kind.plural,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
                    ),
                ));
            }
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(current));
        }
        self.delete_locked(&mut state, kind, &key, current, opts.propagation.as_deref())
    }

    /// Subscribe to changes after `rv` (`None`: from now): the retained changes after it
    /// and a receiver of later ones, taken atomically.
    pub fn watch_from(&self, rv: Option<u64>) -> std::result::Result<Backlog, TooOld> {
        let state = self.lock();
        let receiver = self.events.subscribe();
        let Some(rv) = rv else {
            return Ok((Vec::new(), receiver));
        };
        if rv < state.compacted {
            return Err(TooOld {
                requested: rv,
                oldest: state.compacted,
            });
        }
        let backlog = state
            .history
            .iter()
            .filter(|c| c.rv > rv)
            .cloned()
            .collect();
        Ok((backlog, receiver))
    }

    /// Current objects of a kind with the list's resourceVersion, and a receiver of later
    /// changes, taken atomically (a watch from "now" with initial ADDED events).
    pub fn snapshot(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Change>>) {
        let state = self.lock();
        let receiver = self.events.subscribe();
        let items = state
            .objects
            .iter()
            .filter(|(k, _)| k.group == kind.group && k.plural == kind.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| !kind.namespaced || k.namespace == ns))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.rv, receiver)
    }

    fn emit(&self, state: &mut State, change: Change) {
        let change = Arc::new(change);
        state.history.push_back(change.clone());
        while state.history.len() > state.history_limit {
            if let Some(dropped) = state.history.pop_front() {
                state.compacted = dropped.rv;
            }
        }
        // No receiver is fine: nobody watches.
        let _ = self.events.send(change);
    }

    fn check_namespace(&self, state: &State, kind: &Kind, namespace: Option<&str>) -> Result<()> {
        if !kind.namespaced {
            return Ok(());
        }
        let Some(ns) = namespace.filter(|n| !n.is_empty()) else {
            return Err(Error::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        };
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.into(),
        };
        match state.objects.get(&key) {
            None => Err(Error::not_found("", "namespaces", ns)),
            Some(n) if meta(n).is_some_and(|m| m.contains_key("deletionTimestamp")) => {
                Err(Error::Status {
                    reason: Reason::Forbidden,
                    message: format!(
                        "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        crate::error::qualified(&kind.group, &kind.plural)
                    ),
                    details: Some(
                        json!({"name": ns, "kind": "namespaces", "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}),
                    ),
                })
            }
            Some(_) => Ok(()),
        }
    }

    fn check(&self, kind: &Kind, object: &Value, name: &str) -> Result<()> {
        // Validation first: a missing required field is 422 on a real server, while the
        // typed decoding below would call it a decoding error (400).
        let mut causes: Vec<validate::Cause> = validate::name(kind, name).into_iter().collect();
        causes.extend(validate::object(kind, object));
        if !causes.is_empty() {
            return Err(Error::invalid(&kind.group, &kind.kind, name, &causes));
        }
        if kind.builtin
            && let Err(why) = kinds::check_shape(&kind.kind, object)
        {
            return Err(Error::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {why}",
                kind.kind,
                kind.version(),
                kind.kind
            )));
        }
        Ok(())
    }

    fn create_locked(
        &self,
        state: &mut State,
        kind: &Kind,
        namespace: Option<&str>,
        mut object: Value,
        ctx: &WriteCtx,
    ) -> Result<Value> {
        if !object.is_object() {
            return Err(Error::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        self.check_namespace(state, kind, namespace)?;
        let m = meta_mut(&mut object);
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            && let Some(prefix) = m.get("generateName").and_then(Value::as_str)
        {
            name = format!("{prefix}{}", rand_suffix());
        }
        for server_set in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(server_set);
        }
        m.insert("name".into(), json!(name));
        if kind.namespaced {
            m.insert("namespace".into(), json!(namespace.unwrap_or_default()));
        } else {
            m.remove("namespace");
        }
        if !ctx.apply {
            m.remove("managedFields");
        }
        let key = ObjKey::new(kind, namespace, &name);
        // Status is the controllers' to set, except for nodes (kubelets register them
        // with their status) and CRDs' status the double sets itself below.
        if kind.status
            && kind.kind != "Node"
            && let Some(o) = object.as_object_mut()
        {
            o.remove("status");
        }
        match kind.kind.as_str() {
            "Namespace" if kind.builtin => {
                object["status"] = json!({"phase": "Active"});
                object["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            "CustomResourceDefinition" if kind.builtin => {
                let names = object.pointer("/spec/names").cloned().unwrap_or(json!({}));
                let t = now();
                object["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": object.pointer("/spec/versions").and_then(Value::as_array).map(|vs| vs.iter().filter(|v| v.get("storage") == Some(&json!(true))).filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()),
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
                    ],
                });
            }
            _ => {}
        }
        self.check(kind, &object, &name)?;
        if state.objects.contains_key(&key) {
            return Err(Error::already_exists(&kind.group, &kind.plural, &name));
        }
        if kind.builtin && kind.kind == "CustomResourceDefinition" {
            self.check_crd_names(state, &object)?;
        }
        let rv = state.rv + 1;
        let m = meta_mut(&mut object);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.insert("generation".into(), json!(1));
        if !ctx.apply {
            apply::track_update(None, &mut object, ctx, kind.status);
        }
        if ctx.dry_run {
            return Ok(object);
        }
        state.rv = rv;
        state.objects.insert(key.clone(), object.clone());
        if kind.builtin && kind.kind == "CustomResourceDefinition" {
            self.register_crd(state, &object);
        }
        self.emit(
            state,
            Change {
                rv,
                key,
                change: ChangeType::Added,
                object: object.clone(),
                previous: None,
            },
        );
        Ok(object)
    }

    fn check_crd_names(&self, state: &State, crd: &Value) -> Result<()> {
        let Some(kind) = kinds::from_crd(crd) else {
            return Ok(());
        };
        if state
            .builtin
            .iter()
            .any(|b| b.group == kind.group && b.plural == kind.plural)
        {
            return Err(Error::invalid(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                meta_str(crd, "name").unwrap_or_default(),
                &[(
                    "spec.group".into(),
                    "Invalid value: the group and plural of a built-in resource".into(),
                )],
            ));
        }
        Ok(())
    }

    fn register_crd(&self, state: &mut State, crd: &Value) {
        let name = meta_str(crd, "name").unwrap_or_default().to_string();
        match kinds::from_crd(crd) {
            Some(kind) => {
                state.crds.insert(name, Arc::new(kind));
            }
            None => {
                state.crds.remove(&name);
            }
        }
    }

    fn update_locked(
        &self,
        state: &mut State,
        kind: &Kind,
        key: &ObjKey,
        old: Value,
        new: Value,
        ctx: &WriteCtx,
    ) -> Result<Value> {
        if !new.is_object() {
            return Err(Error::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        let old_rv = meta_str(&old, "resourceVersion")
            .unwrap_or_default()
            .to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != old_rv
        {
            return Err(Error::stale(&kind.group, &kind.plural, &key.name));
        }
        let mut result = if ctx.subresource.as_deref() == Some("status") {
            // The status subresource changes status only.
            let mut r = old.clone();
            match new.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            if ctx.apply {
                meta_mut(&mut r).insert(
                    "managedFields".into(),
                    meta(&new)
                        .and_then(|m| m.get("managedFields"))
                        .cloned()
                        .unwrap_or(json!([])),
                );
            }
            r
        } else {
            let mut r = new;
            if kind.status {
                match old.get("status") {
                    Some(s) => r["status"] = s.clone(),
                    None => {
                        if let Some(o) = r.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            r
        };
        // Server-set metadata is the server's.
        let old_meta = meta(&old).cloned().unwrap_or_default();
        let m = meta_mut(&mut result);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        if !ctx.apply {
            match old_meta.get("managedFields") {
                Some(v) => m.insert("managedFields".into(), v.clone()),
                None => m.remove("managedFields"),
            };
        }
        if old_meta.contains_key("deletionTimestamp") {
            let before = finalizers(&old);
            if finalizers(&result).iter().any(|f| !before.contains(f)) {
                return Err(Error::invalid(
                    &kind.group,
                    &kind.kind,
                    &key.name,
                    &[(
                        "metadata.finalizers".into(),
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                    )],
                ));
            }
        }
        if kind.builtin
            && kind.kind == "CustomResourceDefinition"
            && result.pointer("/spec/names") != old.pointer("/spec/names")
        {
            // Keep acceptedNames in step with the (validated) names.
            result["status"]["acceptedNames"] =
                result.pointer("/spec/names").cloned().unwrap_or(json!({}));
        }
        self.check(kind, &result, &key.name)?;
        if spec_part(kind, &result) != spec_part(kind, &old) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut result).insert("generation".into(), json!(generation + 1));
        }
        if !ctx.apply {
            apply::track_update(Some(&old), &mut result, ctx, kind.status);
        }
        if result == old {
            // A no-op write: no new version, no event.
            return Ok(old);
        }
        if ctx.dry_run {
            return Ok(result);
        }
        if meta(&result).is_some_and(|m| m.contains_key("deletionTimestamp"))
            && finalizers(&result).is_empty()
        {
            // The last finalizer is gone: the deletion completes.
            self.remove_locked(state, kind, key, result.clone(), None)?;
            return Ok(result);
        }
        let rv = state.rv + 1;
        state.rv = rv;
        meta_mut(&mut result).insert("resourceVersion".into(), json!(rv.to_string()));
        state.objects.insert(key.clone(), result.clone());
        if kind.builtin && kind.kind == "CustomResourceDefinition" {
            self.register_crd(state, &result);
        }
        self.emit(
            state,
            Change {
                rv,
                key: key.clone(),
                change: ChangeType::Modified,
                object: result.clone(),
                previous: Some(old),
            },
        );
        Ok(result)
    }

    fn delete_locked(
        &self,
        state: &mut State,
        kind: &Kind,
        key: &ObjKey,
        current: Value,
        propagation: Option<&str>,
    ) -> Result<Deleted> {
        let is_namespace = kind.builtin && kind.kind == "Namespace";
        let uid = meta_str(&current, "uid").unwrap_or_default().to_string();
        if propagation == Some("Foreground") && !dependents_of(state, &uid).is_empty() {
            return self.delete_foreground(state, key, current, &uid);
        }
        if !finalizers(&current).is_empty() || is_namespace {
            let mut object = current.clone();
            if !meta(&object).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                let rv = state.rv + 1;
                state.rv = rv;
                let m = meta_mut(&mut object);
                m.insert("deletionTimestamp".into(), json!(now()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                m.insert("resourceVersion".into(), json!(rv.to_string()));
                if is_namespace {
                    object["status"]["phase"] = json!("Terminating");
                }
                state.objects.insert(key.clone(), object.clone());
                self.emit(
                    state,
                    Change {
                        rv,
                        key: key.clone(),
                        change: ChangeType::Modified,
                        object: object.clone(),
                        previous: Some(current),
                    },
                );
            }
            if is_namespace {
                self.empty_namespace(state, &key.name);
                let object = state.objects.get(key).cloned().unwrap_or(object);
                return Ok(Deleted::Pending(object));
            }
            return Ok(Deleted::Pending(object));
        }
        self.remove_locked(state, kind, key, current.clone(), propagation)?;
        Ok(Deleted::Gone(current))
    }

    /// Remove an object for good, with its dependents, and finish what waited for it.
    fn remove_locked(
        &self,
        state: &mut State,
        kind: &Kind,
        key: &ObjKey,
        mut last: Value,
        propagation: Option<&str>,
    ) -> Result<()> {
        let rv = state.rv + 1;
        state.rv = rv;
        state.objects.remove(key);
        meta_mut(&mut last).insert("resourceVersion".into(), json!(rv.to_string()));
        let uid = meta_str(&last, "uid").unwrap_or_default().to_string();
        self.emit(
            state,
            Change {
                rv,
                key: key.clone(),
                change: ChangeType::Deleted,
                object: last.clone(),
                previous: None,
            },
        );
        if kind.builtin && kind.kind == "CustomResourceDefinition" {
            // Its kind stops being served, and its objects go with it.
            let name = key.name.clone();
            if let Some(defined) = state.crds.remove(&name) {
                let doomed: Vec<ObjKey> = state
                    .objects
                    .keys()
                    .filter(|k| k.group == defined.group && k.plural == defined.plural)
                    .cloned()
                    .collect();
                for k in doomed {
                    if let Some(v) = state.objects.get(&k).cloned() {
                        self.remove_locked(state, &defined, &k, v, None)?;
                    }
                }
            }
        }
        self.collect_dependents(state, &uid, propagation == Some("Orphan"));
        self.finish_foreground_owners(state, &last);
        if !key.namespace.is_empty() {
            self.finish_namespace(state, &key.namespace);
        } else if kind.builtin && kind.kind == "Namespace" {
            // Nothing left to do: contents were removed before.
        }
        Ok(())
    }

    fn kind_of(&self, state: &State, key: &ObjKey) -> Option<Arc<Kind>> {
        state
            .builtin
            .iter()
            .chain(state.crds.values())
            .find(|k| k.group == key.group && k.plural == key.plural)
            .cloned()
    }

    /// Foreground deletion, as kube-apiserver and its garbage collector do it: the owner
    /// is marked deleted with the `foregroundDeletion` finalizer, its dependents are
    /// deleted, and the owner goes once the last of them is gone (dependents held by their
    /// own finalizers keep it, visible, until then).
    fn delete_foreground(
        &self,
        state: &mut State,
        key: &ObjKey,
        current: Value,
        uid: &str,
    ) -> Result<Deleted> {
        let mut object = current.clone();
        let m = meta_mut(&mut object);
        if !m.contains_key("deletionTimestamp") {
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        let mut list = finalizers(&current);
        if !list.iter().any(|f| f == FOREGROUND_FINALIZER) {
            list.push(FOREGROUND_FINALIZER.to_string());
        }
        meta_mut(&mut object).insert("finalizers".into(), json!(list));
        if object != current {
            let rv = state.rv + 1;
            state.rv = rv;
            meta_mut(&mut object).insert("resourceVersion".into(), json!(rv.to_string()));
            state.objects.insert(key.clone(), object.clone());
            self.emit(
                state,
                Change {
                    rv,
                    key: key.clone(),
                    change: ChangeType::Modified,
                    object: object.clone(),
                    previous: Some(current.clone()),
                },
            );
        }
        // Each dependent's removal finishes the owner once it was the last one.
        self.collect_dependents(state, uid, false);
        match state.objects.get(key).cloned() {
            Some(pending) => Ok(Deleted::Pending(pending)),
            None => Ok(Deleted::Gone(object)),
        }
    }

    /// After `removed` is gone: owners of it waiting in foreground deletion whose last
    /// dependent it was lose their `foregroundDeletion` finalizer (and go, when it was
    /// their last finalizer).
    fn finish_foreground_owners(&self, state: &mut State, removed: &Value) {
        let owner_uids: Vec<String> = meta(removed)
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for owner_uid in owner_uids {
            if !dependents_of(state, &owner_uid).is_empty() {
                continue;
            }
            let Some((owner_key, owner)) = state
                .objects
                .iter()
                .find(|(_, v)| meta_str(v, "uid") == Some(owner_uid.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
            else {
                continue;
            };
            if !finalizers(&owner).iter().any(|f| f == FOREGROUND_FINALIZER) {
                continue;
            }
            let Some(owner_kind) = self.kind_of(state, &owner_key) else {
                continue;
            };
            let mut new = owner.clone();
            let left: Vec<String> = finalizers(&owner)
                .into_iter()
                .filter(|f| f != FOREGROUND_FINALIZER)
                .collect();
            meta_mut(&mut new).insert("finalizers".into(), json!(left));
            let ctx = WriteCtx {
                manager: "kube-controller-manager".into(),
                api_version: owner_kind.api_version(owner_kind.version()),
                ..WriteCtx::default()
            };
            // With no finalizer left the update completes the deletion.
            let _ = self.update_locked(state, &owner_kind, &owner_key, owner, new, &ctx);
        }
    }

    /// Garbage collection by owner references: dependents of `uid` are deleted, or lose
    /// the reference when orphaned.
    fn collect_dependents(&self, state: &mut State, uid: &str, orphan: bool) {
        for key in dependents_of(state, uid) {
            let Some(current) = state.objects.get(&key).cloned() else {
                continue;
            };
            let Some(kind) = self.kind_of(state, &key) else {
                continue;
            };
            if orphan {
                let mut new = current.clone();
                if let Some(refs) = meta_mut(&mut new)
                    .get_mut("ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                }
                let ctx = WriteCtx {
                    manager: "kube-controller-manager".into(),
                    api_version: kind.api_version(kind.version()),
                    ..WriteCtx::default()
                };
                let _ = self.update_locked(state, &kind, &key, current, new, &ctx);
            } else {
                let _ = self.delete_locked(state, &kind, &key, current, None);
            }
        }
    }

    fn empty_namespace(&self, state: &mut State, namespace: &str) {
        let contents: Vec<ObjKey> = state
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in contents {
            if let (Some(kind), Some(current)) =
                (self.kind_of(state, &key), state.objects.get(&key).cloned())
            {
                let _ = self.delete_locked(state, &kind, &key, current, None);
            }
        }
        self.finish_namespace(state, namespace);
    }

    /// A terminating namespace goes once it is empty.
    fn finish_namespace(&self, state: &mut State, namespace: &str) {
        let key = ObjKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: namespace.into(),
        };
        let Some(ns) = state.objects.get(&key).cloned() else {
            return;
        };
        let terminating = meta(&ns).is_some_and(|m| m.contains_key("deletionTimestamp"));
        let empty = !state.objects.keys().any(|k| k.namespace == namespace);
        if terminating
            && empty
            && finalizers(&ns).is_empty()
            && let Some(kind) = self.kind_of(state, &key)
        {
            let _ = self.remove_locked(state, &kind, &key, ns, None);
        }
    }
}

fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let raw = json!({"rv": rv, "ns": namespace, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(u64, (String, String))> {
    let bad =
        || Error::bad_request("continue key is not valid: the token was not issued by this server");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let text = |f: &str| {
        v.get(f)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(bad)
    };
    Ok((rv, (text("ns")?, text("name")?)))
}
