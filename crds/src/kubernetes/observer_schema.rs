//! Validation of an Application's observer schema: the fields of its manifest that the
//! Kubernetes observer watches.

use serde_json::{Map, Value};

use super::ApplicationSpec;
use crate::validation::ValidationErrors;

fn validate_observer_schema_dict(
    partial: &Map<String, Value>,
    first_level: bool,
    is_metadata: bool,
) -> Result<(), String> {
    if first_level {
        for key in ["apiVersion", "kind"] {
            if partial.get(key).is_none_or(Value::is_null) {
                return Err(format!("{key} is not defined"));
            }
        }
        let metadata = match partial.get("metadata") {
            None | Some(Value::Null) => return Err("metadata dictionary is not defined".into()),
            Some(Value::Object(m)) => m,
            Some(_) => return Err("metadata must be a dictionary".into()),
        };
        if metadata.get("name").is_none_or(Value::is_null) {
            return Err("name is not defined in the metadata dictionary".into());
        }
        validate_observer_schema_dict(metadata, false, true)?;
    }
    for (key, value) in partial {
        if (first_level && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
            || (is_metadata && key == "name")
        {
            continue;
        }
        match value {
            Value::Object(m) => validate_observer_schema_dict(m, false, false)?,
            Value::Array(l) => validate_observer_schema_list(l)?,
            Value::Null => {}
            _ => return Err(format!("Value of '{key}' is not 'None'")),
        }
    }
    Ok(())
}

fn validate_observer_schema_list(partial: &[Value]) -> Result<(), String> {
    let Some(Value::Object(control)) = partial.last() else {
        return Err("Special list control dictionary not found".into());
    };
    let (Some(min), Some(max)) = (
        control.get("observer_schema_list_min_length"),
        control.get("observer_schema_list_max_length"),
    ) else {
        return Err("Special list control dictionary malformed".into());
    };
    let min = min
        .as_i64()
        .ok_or("observer_schema_list_min_length should be an integer")?;
    let max = max
        .as_i64()
        .ok_or("observer_schema_list_max_length should be an integer")?;
    if min < 0 {
        return Err("Invalid value for observer_schema_list_min_length".into());
    }
    if max < 0 {
        return Err("Invalid value for observer_schema_list_max_length".into());
    }
    let elements = &partial[..partial.len() - 1];
    if max != 0 {
        if max < min {
            return Err(
                "observer_schema_list_max_length is inferior to observer_schema_list_min_length"
                    .into(),
            );
        }
        if (max as u64) < elements.len() as u64 {
            return Err(
                "observer_schema_list_max_length is inferior to the number of observed elements"
                    .into(),
            );
        }
    }
    for value in elements {
        match value {
            Value::Object(m) => validate_observer_schema_dict(m, false, false)?,
            Value::Array(l) => validate_observer_schema_list(l)?,
            Value::Null => {}
            _ => return Err("Element of a list is not 'None'".into()),
        }
    }
    Ok(())
}

fn observed_resource_in_manifest(
    manifest: &[Map<String, Value>],
    observed: &Map<String, Value>,
) -> bool {
    let name = |r: &Map<String, Value>| r.get("metadata").and_then(|m| m.get("name")).cloned();
    manifest.iter().any(|r| {
        r.get("apiVersion") == observed.get("apiVersion")
            && r.get("kind") == observed.get("kind")
            && name(r).is_some()
            && name(r) == name(observed)
    })
}

/// Validate an observer schema against its manifest. Upstream answers 500
/// for violations; this returns one error per offending entry at
/// `spec.observer_schema.<index>`.
pub(super) fn validate_observer_schema(spec: &ApplicationSpec, errors: &mut ValidationErrors) {
    for (i, entry) in spec.observer_schema.iter().enumerate() {
        let result = validate_observer_schema_dict(entry, true, false).and_then(|()| {
            if observed_resource_in_manifest(&spec.manifest, entry) {
                Ok(())
            } else {
                Err("Observed resource must be in manifest".to_string())
            }
        });
        if let Err(msg) = result {
            errors.add(format!("spec.observer_schema.{i}").as_str(), msg);
        }
    }
}
