//! The non-apply patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch (merge patch whose known lists merge by key, with `$patch:
//! delete` items and `$setElementOrder` directives ignored).

use serde_json::{Map, Value};

use crate::error::{Error, Reason, Result};

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge key of a list field in strategic merge patches, for the built-in schemas.
fn merge_key(field: &str, parent_is_container: bool) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "ports" if parent_is_container => Some("containerPort"),
        "ports" => Some("port"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

fn strategic(target: &mut Value, patch: &Value, in_container: bool) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) =
                (t.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let child_in_container = matches!(
            k.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        );
        match (merge_key(k, in_container), v.as_array(), t.get_mut(k)) {
            (Some(key), Some(items), Some(Value::Array(live))) => {
                for item in items {
                    let id = item.get(key);
                    let position =
                        id.and_then(|id| live.iter().position(|l| l.get(key) == Some(id)));
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (position, delete) {
                        (Some(i), true) => {
                            live.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic(&mut live[i], item, child_in_container),
                        (None, false) => {
                            let mut fresh = Value::Object(Map::new());
                            strategic(&mut fresh, item, child_in_container);
                            live.push(fresh);
                        }
                    }
                }
            }
            (_, _, Some(existing)) if v.is_object() => strategic(existing, v, child_in_container),
            _ => {
                let mut fresh = if v.is_object() {
                    Value::Object(Map::new())
                } else {
                    Value::Null
                };
                strategic(&mut fresh, v, child_in_container);
                t.insert(k.clone(), fresh);
            }
        }
    }
}

/// Strategic merge patch for the common cases kubectl sends.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    strategic(target, patch, false);
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String)> {
    let bad = || Error::bad_request(format!("invalid JSON pointer: \"{path}\""));
    if !path.starts_with('/') {
        return Err(bad());
    }
    let (parent, last) = path.rsplit_once('/').ok_or_else(bad)?;
    Ok((parent.to_string(), unescape(last)))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<()> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let target = doc.pointer_mut(&parent).ok_or_else(|| {
        Error::status(Reason::Invalid, format!("doc is missing path: \"{path}\""))
    })?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let index = if last == "-" {
                a.len()
            } else {
                last.parse()
                    .map_err(|_| Error::bad_request(format!("invalid index in \"{path}\"")))?
            };
            if index > a.len() {
                return Err(Error::status(
                    Reason::Invalid,
                    format!("index out of range in \"{path}\""),
                ));
            }
            a.insert(index, value);
            Ok(())
        }
        _ => Err(Error::status(
            Reason::Invalid,
            format!("doc is missing path: \"{path}\""),
        )),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value> {
    let (parent, last) = split_pointer(path)?;
    let missing = || Error::status(Reason::Invalid, format!("doc is missing path: \"{path}\""));
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<()> {
    let ops = ops
        .as_array()
        .ok_or_else(|| Error::bad_request("a JSON patch must be a list of operations"))?;
    for op in ops {
        let text = |f: &str| op.get(f).and_then(Value::as_str);
        let path = text("path")
            .ok_or_else(|| Error::bad_request("a JSON patch operation needs a path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| Error::bad_request(format!("operation on \"{path}\" needs a value")))
        };
        match text("op") {
            Some("add") => add(doc, path, value()?)?,
            Some("remove") => {
                remove(doc, path)?;
            }
            Some("replace") => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            Some("move") | Some("copy") => {
                let from =
                    text("from").ok_or_else(|| Error::bad_request("move and copy need from"))?;
                let v = if text("op") == Some("move") {
                    remove(doc, from)?
                } else {
                    doc.pointer(from).cloned().ok_or_else(|| {
                        Error::status(Reason::Invalid, format!("doc is missing path: \"{from}\""))
                    })?
                };
                add(doc, path, v)?;
            }
            Some("test") => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(Error::status(
                        Reason::Invalid,
                        format!("testing value {path} failed"),
                    ));
                }
            }
            other => {
                return Err(Error::bad_request(format!(
                    "unknown JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut live = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        strategic_merge_patch(
            &mut live,
            &json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}}),
        );
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut doc = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(&mut doc, &json!([{"op": "add", "path": "/a/-", "value": 3}, {"op": "replace", "path": "/b/c", "value": 2}, {"op": "remove", "path": "/a/0"}])).unwrap();
        assert_eq!(doc, json!({"a": [2, 3], "b": {"c": 2}}));
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/b/c", "value": 9}])
            )
            .is_err()
        );
    }
}
