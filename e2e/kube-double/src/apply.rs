//! Field ownership and server-side apply: field sets in the `FieldsV1` format, one entry
//! per (manager, operation, subresource) in `metadata.managedFields`, conflicts between
//! managers, removal of fields a manager stops applying, and associative lists merged by
//! their keys.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::kinds::Kind;
use crate::store::{WriteCtx, now};

/// A field path: `f:<field>`, `k:<key json>` (associative list item) or `v:<value json>`
/// (set item) elements.
pub type Path = Vec<String>;

/// A set of owned fields.
pub type FieldSet = BTreeSet<Path>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq)]
enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// Items identified by these key fields.
    Map(&'static [&'static str]),
}

fn under_containers(path: &[String]) -> bool {
    path.iter().any(|p| {
        matches!(
            p.as_str(),
            "f:containers" | "f:initContainers" | "f:ephemeralContainers"
        )
    })
}

/// The list type of the list at `path` (the last element names the field), after the
/// schemas of the built-in kinds.
fn list_type(path: &[String]) -> ListType {
    let Some(field) = path.last() else {
        return ListType::Atomic;
    };
    match field.as_str() {
        "f:containers"
        | "f:initContainers"
        | "f:ephemeralContainers"
        | "f:env"
        | "f:volumes"
        | "f:imagePullSecrets"
        | "f:resourceClaims" => ListType::Map(&["name"]),
        "f:ports" if under_containers(path) => ListType::Map(&["containerPort", "protocol"]),
        "f:ports" => ListType::Map(&["port", "protocol"]),
        "f:volumeMounts" => ListType::Map(&["mountPath"]),
        "f:volumeDevices" => ListType::Map(&["devicePath"]),
        "f:conditions" => ListType::Map(&["type"]),
        "f:ownerReferences" => ListType::Map(&["uid"]),
        "f:hostAliases" => ListType::Map(&["ip"]),
        "f:topologySpreadConstraints" => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        "f:finalizers" => ListType::Set,
        _ => ListType::Atomic,
    }
}

fn key_value(item: &Value, field: &str) -> Value {
    match item.get(field) {
        Some(v) => v.clone(),
        // Defaulted key fields count with their default.
        None if field == "protocol" => json!("TCP"),
        None => Value::Null,
    }
}

fn item_key(item: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    let mut sorted: Vec<&&str> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        let v = key_value(item, k);
        if !v.is_null() {
            m.insert((*k).to_string(), v);
        }
    }
    format!("k:{}", Value::Object(m))
}

fn walk(value: &Value, path: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(format!("f:{k}"));
                walk(child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match list_type(path) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
                if items.is_empty() {
                    out.insert(path.clone());
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    path.push(item_key(item, keys));
                    out.insert(path.clone());
                    walk(item, path, out);
                    path.pop();
                }
                if items.is_empty() {
                    out.insert(path.clone());
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The fields an object sets, for the main resource (`status == false`: everything but
/// status when status is a subresource) or the status subresource.
pub fn owned_fields(object: &Value, kind_has_status: bool, status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = object.as_object() else {
        return out;
    };
    for (k, v) in m {
        let include = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => status || !kind_has_status,
            _ => !status,
        };
        if !include {
            continue;
        }
        if k == "metadata" {
            let mut md = v.as_object().cloned().unwrap_or_default();
            for s in SERVER_METADATA {
                md.remove(*s);
            }
            if md.is_empty() {
                continue;
            }
            walk(&Value::Object(md), &mut vec!["f:metadata".into()], &mut out);
        } else {
            walk(v, &mut vec![format!("f:{k}")], &mut out);
        }
    }
    out
}

/// The value at `path`, if present.
pub fn get_at<'a>(mut value: &'a Value, path: &[String]) -> Option<&'a Value> {
    for (i, element) in path.iter().enumerate() {
        value = step(value, &path[..i], element)?;
    }
    Some(value)
}

fn step<'a>(value: &'a Value, parent: &[String], element: &str) -> Option<&'a Value> {
    if let Some(field) = element.strip_prefix("f:") {
        return value.get(field);
    }
    let items = value.as_array()?;
    if let Some(v) = element.strip_prefix("v:") {
        let wanted: Value = serde_json::from_str(v).ok()?;
        return items.iter().find(|i| **i == wanted);
    }
    let ListType::Map(keys) = list_type(parent) else {
        return None;
    };
    items.iter().find(|i| item_key(i, keys) == element)
}

/// Remove the value at `path` (a field, a list item or a set member).
fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut parent = value;
    for (i, element) in parent_path.iter().enumerate() {
        let next = if let Some(field) = element.strip_prefix("f:") {
            parent.get_mut(field)
        } else {
            let keys = match list_type(&parent_path[..i]) {
                ListType::Map(keys) => keys,
                _ => return,
            };
            parent
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|it| item_key(it, keys) == *element))
        };
        match next {
            Some(n) => parent = n,
            None => return,
        }
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(field);
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        if let (Some(items), Ok(wanted)) = (parent.as_array_mut(), serde_json::from_str::<Value>(v))
        {
            items.retain(|i| *i != wanted);
        }
    } else if let ListType::Map(keys) = list_type(parent_path)
        && let Some(items) = parent.as_array_mut()
    {
        items.retain(|i| item_key(i, keys) != *last);
    }
}

/// Merge `applied` into `live` (maps by field, associative lists by key, sets by value,
/// anything else replaced).
fn merge(live: &mut Value, applied: &Value, path: &mut Path) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                path.push(format!("f:{k}"));
                match l.get_mut(k) {
                    Some(lv)
                        if (lv.is_object() && av.is_object())
                            || (lv.is_array() && av.is_array()) =>
                    {
                        merge(lv, av, path)
                    }
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(path) {
            ListType::Atomic => *l = a.clone(),
            ListType::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for item in a {
                    let key = item_key(item, keys);
                    match l.iter_mut().find(|i| item_key(i, keys) == key) {
                        Some(existing) => {
                            path.push(key);
                            merge(existing, item, path);
                            path.pop();
                        }
                        None => l.push(item.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// Render a path as Kubernetes prints field paths in conflicts
/// (`.spec.containers[name="web"].image`).
pub fn render(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(f) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = element.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = element.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        }
    }
    out
}

/// FieldsV1: a tree of path elements, `{}` for a leaf, `".": {}` for an inner member.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = node
            .entry(first.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("field set nodes are objects");
        if !rest.is_empty() {
            insert(child, rest);
        }
    }
    let mut root = Map::new();
    for path in set {
        insert(&mut root, path);
    }
    // A member that later gained children needs its "." marker.
    for path in set {
        let mut node = &mut root;
        for (i, element) in path.iter().enumerate() {
            let Some(child) = node.get_mut(element).and_then(Value::as_object_mut) else {
                break;
            };
            if i == path.len() - 1 && !child.is_empty() && !child.contains_key(".") {
                child.insert(".".into(), json!({}));
            }
            node = child;
        }
    }
    Value::Object(root)
}

/// The field set of a FieldsV1 tree.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk_tree(node: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
        for (k, child) in node {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            match child.as_object() {
                Some(c) if !c.is_empty() => walk_tree(c, path, out),
                _ => {
                    out.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    if let Some(m) = value.as_object() {
        walk_tree(m, &mut Vec::new(), &mut out);
    }
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The apiVersion of the write.
    pub api_version: String,
    /// When the set last changed.
    pub time: String,
    /// `status` for status-subresource writes.
    pub subresource: Option<String>,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

/// The entries of an object's `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |f: &str| {
                e.get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Entry {
                manager: text("manager"),
                operation: text("operation"),
                api_version: text("apiVersion"),
                time: text("time"),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

fn set_entries(object: &mut Value, entries: &[Entry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if rendered.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(rendered));
    }
}

fn upsert_entry(entries: &mut Vec<Entry>, ctx: &WriteCtx, operation: &str, fields: FieldSet) {
    let sub = ctx.subresource.as_deref();
    match entries
        .iter_mut()
        .find(|e| e.is(&ctx.manager, operation, sub))
    {
        Some(e) => {
            if e.fields != fields || e.api_version != ctx.api_version {
                e.fields = fields;
                e.api_version = ctx.api_version.clone();
                e.time = now();
            }
        }
        None => entries.push(Entry {
            manager: ctx.manager.clone(),
            operation: operation.into(),
            api_version: ctx.api_version.clone(),
            time: now(),
            subresource: ctx.subresource.clone(),
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Record an ordinary write (create, update, patch): the writer takes ownership of every
/// field it changed, silently, and fields that disappeared leave every set.
pub fn track_update(old: Option<&Value>, new: &mut Value, ctx: &WriteCtx, kind_has_status: bool) {
    let status = ctx.subresource.as_deref() == Some("status");
    let new_set = owned_fields(new, kind_has_status, status);
    let old_set = old
        .map(|o| owned_fields(o, kind_has_status, status))
        .unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| !old_set.contains(*p) || old.and_then(|o| get_at(o, p)) != get_at(new, p))
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    let mut list = old.map(entries).unwrap_or_default();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, &list);
        return;
    }
    let sub = ctx.subresource.as_deref();
    for e in list.iter_mut() {
        if !e.is(&ctx.manager, "Update", sub) {
            e.fields
                .retain(|p| !changed.contains(p) && !removed.contains(p));
        }
    }
    let mine = list
        .iter()
        .find(|e| e.is(&ctx.manager, "Update", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let fields: FieldSet = mine
        .union(&changed)
        .filter(|p| !removed.contains(*p))
        .cloned()
        .collect();
    upsert_entry(&mut list, ctx, "Update", fields);
    set_entries(new, &list);
}

/// Server-side apply of `applied` by `ctx.manager` over `current` (absent: create).
/// Returns the object to store, `managedFields` included.
pub fn apply(
    kind: &Kind,
    current: Option<&Value>,
    applied: &Value,
    ctx: &WriteCtx,
    force: bool,
) -> Result<Value> {
    let name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = ctx.subresource.as_deref() == Some("status");
    let applied_set = owned_fields(applied, kind.status, status);
    let mut list = current.map(entries).unwrap_or_default();
    let sub = ctx.subresource.as_deref();
    let empty = json!({});
    let live = current.unwrap_or(&empty);

    // Conflicts: fields another manager owns that this apply would change.
    let mut conflicts = Vec::new();
    for e in list.iter_mut() {
        if e.is(&ctx.manager, "Apply", sub) {
            continue;
        }
        let clashing: Vec<Path> = e
            .fields
            .intersection(&applied_set)
            .filter(|p| {
                let is_leaf = !applied_set
                    .iter()
                    .any(|q| q.len() > p.len() && q.starts_with(p));
                is_leaf && get_at(applied, p) != get_at(live, p)
            })
            .cloned()
            .collect();
        for p in clashing {
            if force {
                e.fields.remove(&p);
            } else {
                conflicts.push((e.manager.clone(), render(&p)));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Error::apply_conflict(
            &kind.group,
            &kind.plural,
            name,
            &conflicts,
        ));
    }
    let previous = list
        .iter()
        .find(|e| e.is(&ctx.manager, "Apply", sub))
        .map(|e| e.fields.clone())
        .unwrap_or_default();

    let mut merged = match current {
        Some(c) => c.clone(),
        None => {
            json!({"apiVersion": applied.get("apiVersion"), "kind": applied.get("kind"), "metadata": {"name": name}})
        }
    };
    let mut part = applied.clone();
    if let Some(m) = part.as_object_mut() {
        if status {
            m.retain(|k, _| k == "status");
        } else if kind.status {
            m.remove("status");
        }
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for s in SERVER_METADATA {
                md.remove(*s);
            }
        }
        m.remove("apiVersion");
        m.remove("kind");
    }
    merge(&mut merged, &part, &mut Vec::new());

    // Fields this manager applied before and no longer does, that nobody else owns, go.
    let others: Vec<&FieldSet> = list
        .iter()
        .filter(|e| !e.is(&ctx.manager, "Apply", sub))
        .map(|e| &e.fields)
        .collect();
    let owned_by_other = |p: &Path| others.iter().any(|s| s.iter().any(|q| q.starts_with(p)));
    let dropped: Vec<Path> = previous.difference(&applied_set).cloned().collect();
    // Ancestors first (sorted order): a removed list item takes its fields with it, and
    // its key must still be readable when it is looked up.
    let mut removed: Vec<&Path> = Vec::new();
    for p in &dropped {
        if removed.iter().any(|q| p.starts_with(q))
            || applied_set.iter().any(|q| q.starts_with(p))
            || owned_by_other(p)
        {
            continue;
        }
        remove_at(&mut merged, p);
        removed.push(p);
        // Containers left empty by the removal go too, unless someone owns them.
        for depth in (2..p.len()).rev() {
            let prefix = &p[..depth];
            if prefix.last().is_some_and(|e| !e.starts_with("f:")) {
                break;
            }
            let empty_container = get_at(&merged, prefix).is_some_and(|v| {
                v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
            });
            let prefix_vec = prefix.to_vec();
            if empty_container && !owned_by_other(&prefix_vec) && !applied_set.contains(&prefix_vec)
            {
                remove_at(&mut merged, prefix);
            } else {
                break;
            }
        }
    }
    upsert_entry(&mut list, ctx, "Apply", applied_set);
    set_entries(&mut merged, &list);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_v1_round_trips_with_item_markers() {
        let obj = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let set = owned_fields(&obj, true, false);
        let v1 = to_fields_v1(&set);
        let item = &v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
        assert_eq!(item["."], json!({}));
        assert_eq!(item["f:image"], json!({}));
        assert!(item["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"].is_object());
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn render_paths_like_kubernetes() {
        let p: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(render(&p), ".spec.containers[name=\"web\"].image");
    }
}
