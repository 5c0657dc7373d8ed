//! Validation a real API server applies before storing: names, labels, and the required
//! fields of the workload kinds. Failures are 422 `Invalid` with one cause per field.

use serde_json::Value;

use crate::kinds::Kind;

/// Field path and message of one validation failure.
pub type Cause = (String, String);

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Whether `s` is a DNS-1123 label (at most 63 characters).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (at most 253 characters).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn invalid_value(value: &str, why: &str) -> String {
    format!("Invalid value: \"{value}\": {why}")
}

/// Check an object name for `kind`.
pub fn name(kind: &Kind, name: &str) -> Option<Cause> {
    let field = "metadata.name".to_string();
    if name.is_empty() {
        return Some((
            field,
            "Required value: name or generateName is required".into(),
        ));
    }
    if kind.name_is_path_segment() {
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            return Some((
                field,
                invalid_value(
                    name,
                    "may not contain '/' or '%' and may not be '.' or '..'",
                ),
            ));
        }
        return None;
    }
    if kind.name_is_label() {
        if !is_dns_label(name) {
            return Some((field, invalid_value(name, LABEL_MSG)));
        }
    } else if !is_dns_subdomain(name) {
        return Some((field, invalid_value(name, SUBDOMAIN_MSG)));
    }
    None
}

fn label_value_ok(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && v.as_bytes()[0].is_ascii_alphanumeric()
                && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()))
}

fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && label_value_ok(name)
}

/// Labels: qualified-name keys and values of at most 63 characters.
pub fn labels(metadata: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(labels) = metadata.get("labels").and_then(Value::as_object) else {
        return causes;
    };
    for (k, v) in labels {
        if !label_key_ok(k) {
            causes.push((
                "metadata.labels".into(),
                invalid_value(k, "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        match v.as_str() {
            Some(s) if label_value_ok(s) => {}
            Some(s) => causes.push((
                "metadata.labels".into(),
                invalid_value(s, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            )),
            None => causes.push(("metadata.labels".into(), "Invalid value: label values must be strings".into())),
        }
    }
    causes
}

fn containers(spec: Option<&Value>, at: &str, causes: &mut Vec<Cause>) {
    let list = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        causes.push((format!("{at}.containers"), "Required value".into()));
        return;
    };
    for (i, c) in list.iter().enumerate() {
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => causes.push((
                format!("{at}.containers[{i}].name"),
                "Required value".into(),
            )),
            Some(n) if !is_dns_label(n) => causes.push((
                format!("{at}.containers[{i}].name"),
                invalid_value(n, LABEL_MSG),
            )),
            Some(_) => {}
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push((
                format!("{at}.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

fn selector_matches_template(spec: &Value, causes: &mut Vec<Cause>) {
    let Some(selector) = spec.get("selector") else {
        causes.push(("spec.selector".into(), "Required value".into()));
        return;
    };
    let template_labels = spec
        .pointer("/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        let ok = match_labels
            .iter()
            .all(|(k, v)| template_labels.and_then(|t| t.get(k)) == Some(v));
        if !ok {
            causes.push((
                "spec.template.metadata.labels".into(),
                "Invalid value: `selector` does not match template `labels`".into(),
            ));
        }
    } else if selector.get("matchExpressions").is_none() {
        causes.push((
            "spec.selector".into(),
            "Invalid value: empty selector is invalid for deployment".into(),
        ));
    }
}

/// The kind-specific checks of built-in objects.
pub fn object(kind: &Kind, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(metadata) = object.get("metadata") {
        causes.extend(labels(metadata));
    }
    if !kind.builtin {
        return causes;
    }
    let spec = object.get("spec");
    match kind.kind.as_str() {
        "Pod" => containers(spec, "spec", &mut causes),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => match spec {
            None => causes.push(("spec".into(), "Required value".into())),
            Some(spec) => {
                selector_matches_template(spec, &mut causes);
                containers(
                    spec.pointer("/template/spec"),
                    "spec.template.spec",
                    &mut causes,
                );
            }
        },
        "Job" => containers(
            spec.and_then(|s| s.pointer("/template/spec")),
            "spec.template.spec",
            &mut causes,
        ),
        "CronJob" => {
            if spec
                .and_then(|s| s.get("schedule"))
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(("spec.schedule".into(), "Required value".into()));
            }
            containers(
                spec.and_then(|s| s.pointer("/jobTemplate/spec/template/spec")),
                "spec.jobTemplate.spec.template.spec",
                &mut causes,
            );
        }
        "Service" => {
            let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
            for (i, p) in ports.into_iter().flatten().enumerate() {
                match p.get("port").and_then(Value::as_i64) {
                    Some(1..=65535) => {}
                    Some(n) => causes.push((
                        format!("spec.ports[{i}].port"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    )),
                    None => causes.push((format!("spec.ports[{i}].port"), "Required value".into())),
                }
            }
        }
        "CustomResourceDefinition" => crd(object, &mut causes),
        _ => {}
    }
    causes
}

fn crd(object: &Value, causes: &mut Vec<Cause>) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (group, plural, kind) = (
        text("/spec/group"),
        text("/spec/names/plural"),
        text("/spec/names/kind"),
    );
    let name = text("/metadata/name");
    if group.is_empty() || !group.contains('.') {
        causes.push((
            "spec.group".into(),
            invalid_value(group, "should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(("spec.names.plural".into(), "Required value".into()));
    }
    if kind.is_empty() {
        causes.push(("spec.names.kind".into(), "Required value".into()));
    }
    if name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".into(),
            invalid_value(name, "must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match text("/spec/scope") {
        "Namespaced" | "Cluster" => {}
        other => causes.push((
            "spec.scope".into(),
            format!(
                "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        )),
    }
    let versions = object.pointer("/spec/versions").and_then(Value::as_array);
    let storage = versions
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if versions.is_none_or(|v| v.is_empty()) {
        causes.push((
            "spec.versions".into(),
            "Required value: must have at least one version".into(),
        ));
    } else if storage != 1 {
        causes.push((
            "spec.versions".into(),
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
}
