//! The CustomResourceDefinitions under `crds/manifests/`: up to date with the types,
//! structural as Kubernetes requires, valid Kubernetes manifests, and declaring every field
//! of real objects.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{meta, ok};
use krake_crds::Resource;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use krake_crds::crd::{self, admits};
use krake_crds::infrastructure::{
    Cloud, GlobalCloud, GlobalInfrastructureProvider, InfrastructureProvider,
};
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::openstack::{MagnumCluster, Project};
use serde_json::{Map, Value, json};

fn manifests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

fn schema_of(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

// ---------------------------------------------------------------------------------
// Drift
// ---------------------------------------------------------------------------------

#[test]
fn checked_in_manifests_match_the_types() {
    let dir = manifests_dir();
    let definitions = crd::definitions();
    assert_eq!(definitions.len(), 14, "one CRD per persisted kind");
    assert_eq!(
        definitions.len(),
        krake_crds::schema::schemas().len(),
        "a CRD for every kind that has a JSON Schema"
    );
    let mut stale = Vec::new();
    for (name, crd) in &definitions {
        let expected = crd::render(crd);
        let actual = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if actual != expected {
            stale.push(name.clone());
        }
    }
    let mut unknown: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    unknown.retain(|f| !definitions.iter().any(|(n, _)| n == f));
    assert!(
        stale.is_empty() && unknown.is_empty(),
        "CRD manifests out of date (stale: {stale:?}, unknown files: {unknown:?}); \
         run `cargo run -p krake-crds --bin krake-crds-schemas`"
    );
}

#[test]
fn rendered_yaml_reads_back_as_the_same_value() {
    for (name, crd) in crd::definitions() {
        let back: Value = serde_saphyr::from_str(&crd::render(&crd))
            .unwrap_or_else(|e| panic!("{name}: rendered YAML does not parse: {e}"));
        assert_eq!(back, crd, "{name}: YAML rendering changes the value");
    }
}

#[test]
fn names_group_scope_and_subresources_follow_the_resource_trait() {
    fn check<R: Resource>() {
        let crd = crd::custom_resource_definition::<R>();
        let group = format!("{}.krake.io", R::API);
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["metadata"]["name"], format!("{}.{group}", R::PLURAL));
        assert_eq!(crd["spec"]["group"], group);
        let names = &crd["spec"]["names"];
        assert_eq!(names["kind"], R::KIND);
        assert_eq!(names["plural"], R::PLURAL);
        assert_eq!(names["singular"], R::KIND.to_lowercase());
        assert_eq!(names["listKind"], format!("{}List", R::KIND));
        let scope = if R::NAMESPACED {
            "Namespaced"
        } else {
            "Cluster"
        };
        assert_eq!(crd["spec"]["scope"], scope);
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1");
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[0]["storage"], true);
        assert_eq!(
            versions[0]["subresources"]["status"].is_object(),
            R::HAS_STATUS,
            "{}: status subresource iff the kind has a status",
            R::KIND
        );
        let props = schema_of(&crd)["properties"].as_object().unwrap();
        for field in ["apiVersion", "kind", "metadata"] {
            assert!(props.contains_key(field), "{}: no {field}", R::KIND);
        }
        assert_eq!(props["metadata"], json!({"type": "object"}));
        assert!(
            !props.contains_key("api"),
            "{}: Krake's `api` left",
            R::KIND
        );
        assert_eq!(props.contains_key("status"), R::HAS_STATUS, "{}", R::KIND);
        let columns: Vec<&Value> = versions[0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["jsonPath"])
            .collect();
        let has_state = props
            .get("status")
            .is_some_and(|s| s["properties"]["state"].is_object());
        assert_eq!(
            columns.contains(&&json!(".status.state")),
            has_state,
            "{}: a State column iff the status has a state",
            R::KIND
        );
        assert!(columns.contains(&&json!(".metadata.creationTimestamp")));
    }
    macro_rules! check_all {
        ($($kind:ty),*) => { $( check::<$kind>(); )* };
    }
    krake_crds::for_each_kind!(check_all);

    let role = schema_of(&crd::custom_resource_definition::<Role>())["properties"].clone();
    assert!(role["rules"]["items"]["properties"]["verbs"].is_object());
    let binding =
        schema_of(&crd::custom_resource_definition::<RoleBinding>())["properties"].clone();
    assert_eq!(binding["users"]["items"]["type"], "string");
    assert_eq!(binding["roles"]["items"]["type"], "string");
}

// ---------------------------------------------------------------------------------
// Structural schema checker
// ---------------------------------------------------------------------------------

/// Keywords Kubernetes' `JSONSchemaProps` has (minus `$ref`, `$schema`, `definitions`,
/// `patternProperties`, `dependencies`, `additionalItems`, `id`, `title`, `example`,
/// `externalDocs`, which a CRD schema must not use).
const ALLOWED_KEYWORDS: &[&str] = &[
    "description",
    "type",
    "format",
    "nullable",
    "default",
    "enum",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

const JUNCTORS: &[&str] = &["allOf", "anyOf", "oneOf", "not"];

/// Every violation of the structural-schema rules in a CRD's `openAPIV3Schema`, as
/// `path: rule` lines.
fn structural_violations(root: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if root["type"] != "object" {
        out.push("<root>: the root must be `type: object`".into());
    }
    if root.get("nullable").is_some() {
        out.push("<root>: the root must not be nullable".into());
    }
    if let Some(metadata) = root["properties"].get("metadata") {
        let allowed = metadata.as_object().is_some_and(|m| {
            m.get("type") == Some(&json!("object"))
                && m.keys()
                    .all(|k| matches!(k.as_str(), "type" | "properties"))
                && m.get("properties").is_none_or(|p| {
                    p.as_object()
                        .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName"))
                })
        });
        if !allowed {
            out.push(
                "metadata: only `type: object` (and name/generateName restrictions) allowed".into(),
            );
        }
    }
    check_node(root, "", false, &mut out);
    out
}

fn check_node(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let Some(obj) = node.as_object() else {
        out.push(format!("{at}: a schema must be an object, not {node}"));
        return;
    };
    for key in obj.keys() {
        if !ALLOWED_KEYWORDS.contains(&key.as_str()) {
            out.push(format!("{at}: keyword `{key}` is not allowed"));
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
        Some(other) => out.push(format!("{at}: `type` must be one type name, not {other}")),
        None if !in_junctor && !preserve && !int_or_string => out.push(format!(
            "{at}: no `type` (nor preserve-unknown-fields/int-or-string)"
        )),
        None => {}
    }
    if in_junctor {
        for key in [
            "description",
            "type",
            "default",
            "additionalProperties",
            "nullable",
        ] {
            if obj.contains_key(key) {
                out.push(format!("{at}: `{key}` inside allOf/anyOf/oneOf/not"));
            }
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!(
            "{at}: `properties` together with `additionalProperties`"
        ));
    }
    if obj.get("default") == Some(&Value::Null) {
        out.push(format!("{at}: `default: null`"));
    }
    if let Some(default) = obj.get("default")
        && !default.is_null()
        && !in_junctor
        && !admits(node, default)
    {
        out.push(format!("{at}: default {default} is not valid for the node"));
    }
    if obj.get("uniqueItems") == Some(&json!(true)) {
        out.push(format!("{at}: `uniqueItems: true`"));
    }
    if let Some(Value::Array(members)) = obj.get("enum")
        && members.iter().any(Value::is_null)
    {
        out.push(format!("{at}: null among the enum members"));
    }
    if obj.get("type") == Some(&json!("array")) && !obj.contains_key("items") {
        out.push(format!("{at}: an array without `items`"));
    }
    match obj.get("properties") {
        Some(Value::Object(properties)) => {
            for (name, child) in properties {
                check_node(child, &format!("{path}.{name}"), in_junctor, out);
            }
        }
        Some(other) => out.push(format!("{at}: `properties` must be an object, not {other}")),
        None => {}
    }
    match obj.get("additionalProperties") {
        Some(child @ Value::Object(_)) => {
            check_node(child, &format!("{path}.*"), in_junctor, out);
        }
        Some(other) => out.push(format!(
            "{at}: `additionalProperties` must be a schema, not {other}"
        )),
        None => {}
    }
    match obj.get("items") {
        Some(child @ Value::Object(_)) => check_node(child, &format!("{path}[]"), in_junctor, out),
        Some(other) => out.push(format!("{at}: `items` must be one schema, not {other}")),
        None => {}
    }
    for junctor in JUNCTORS {
        let Some(value) = obj.get(*junctor) else {
            continue;
        };
        let branches: Vec<&Value> = match value {
            Value::Array(branches) => branches.iter().collect(),
            single => vec![single],
        };
        for (i, branch) in branches.into_iter().enumerate() {
            let branch_path = format!("{path}.{junctor}[{i}]");
            check_node(branch, &branch_path, true, out);
            check_mirrored(branch, node, &branch_path, out);
        }
    }
}

/// Every field or item a junctor branch specifies must be specified outside it too.
fn check_mirrored(branch: &Value, outside: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(properties) = branch.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            match outside["properties"].get(name) {
                Some(outer) => check_mirrored(child, outer, &format!("{path}.{name}"), out),
                None => out.push(format!(
                    "{path}.{name}: specified in a junctor but not outside it"
                )),
            }
        }
    }
    if let Some(items) = branch.get("items") {
        match outside.get("items") {
            Some(outer) => check_mirrored(items, outer, &format!("{path}[]"), out),
            None => out.push(format!("{path}[]: items specified in a junctor only")),
        }
    }
}

#[test]
fn every_schema_is_structural() {
    let mut failures = Vec::new();
    for (name, crd) in crd::definitions() {
        for violation in structural_violations(schema_of(&crd)) {
            failures.push(format!("{name}: {violation}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_checker_finds_every_rule_broken() {
    let bad = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Bad",
        "type": "object",
        "nullable": true,
        "properties": {
            "metadata": {"type": "object", "properties": {"owners": {"type": "array"}}},
            "untyped": {"description": "no type"},
            "reference": {"$ref": "#/$defs/X"},
            "either": {"type": ["string", "null"]},
            "constant": {"type": "string", "const": "a"},
            "both": {"type": "object", "properties": {"a": {"type": "string"}},
                     "additionalProperties": {"type": "string"}},
            "open": {"type": "object", "additionalProperties": true},
            "poly": {"type": "object", "properties": {"a": {"type": "string"}},
                     "oneOf": [{"type": "object", "properties": {"b": {"type": "string"}}}]},
            "nulldefault": {"type": "string", "nullable": true, "default": null},
            "baddefault": {"type": "integer", "default": "one"},
            "list": {"type": "array"},
            "tuple": {"type": "array", "items": [{"type": "string"}]},
            "set": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
        },
        "$defs": {"X": {"type": "string"}},
    });
    let violations = structural_violations(&bad).join("\n");
    for expected in [
        "<root>: keyword `$schema` is not allowed",
        "<root>: keyword `title` is not allowed",
        "<root>: keyword `$defs` is not allowed",
        "<root>: the root must not be nullable",
        "metadata: only `type: object`",
        ".untyped: no `type`",
        ".reference: keyword `$ref` is not allowed",
        ".reference: no `type`",
        ".either: `type` must be one type name",
        ".constant: keyword `const` is not allowed",
        ".both: `properties` together with `additionalProperties`",
        ".open: `additionalProperties` must be a schema, not true",
        ".poly.oneOf[0]: `type` inside allOf/anyOf/oneOf/not",
        ".poly.oneOf[0].b: specified in a junctor but not outside it",
        ".nulldefault: `default: null`",
        ".baddefault: default \"one\" is not valid for the node",
        ".list: an array without `items`",
        ".tuple: `items` must be one schema",
        ".set: `uniqueItems: true`",
    ] {
        assert!(
            violations.contains(expected),
            "the checker misses {expected:?}; it found:\n{violations}"
        );
    }
    // And it accepts the forms the generator uses.
    let good = json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "any": {"x-kubernetes-preserve-unknown-fields": true},
            "map": {"type": "object", "additionalProperties": {"type": "number"}},
            "poly": {"type": "object", "properties": {"type": {"type": "string", "enum": ["a"]}},
                     "oneOf": [{"properties": {"type": {"enum": ["a"]}}, "required": ["type"]}]},
            "n": {"type": "integer", "nullable": true, "default": 1},
        },
    });
    assert_eq!(structural_violations(&good), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------
// Validation as Kubernetes manifests
// ---------------------------------------------------------------------------------

#[test]
fn manifests_validate_with_kubernetes_validate() {
    let mut files: Vec<PathBuf> = crd::definitions()
        .into_iter()
        .map(|(name, _)| manifests_dir().join(name))
        .collect();
    files.sort();
    let output = match Command::new("kubernetes-validate")
        .arg("--strict")
        .arg("--quiet")
        .args(&files)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run `kubernetes-validate` ({e}); `hack/install-tools.sh` installs it \
             (PyPI package kubernetes-validate)"
        ),
    };
    assert!(
        output.status.success(),
        "kubernetes-validate rejects the CRD manifests:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------
// Pruning: real objects keep all their fields
// ---------------------------------------------------------------------------------

/// The paths of the fields Kubernetes would prune from `value` under `schema`.
fn pruned(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true && schema.get("type").is_none() {
        return;
    }
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let field_path = format!("{path}.{name}");
                match (
                    schema["properties"].get(name),
                    schema.get("additionalProperties"),
                ) {
                    (Some(child), _) | (None, Some(child)) => {
                        pruned(child, field, &field_path, out)
                    }
                    (None, None) if schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                    (None, None) => out.push(field_path),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pruned(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks the custom-resource form of an object of kind `R`, decoded from `input`.
fn check_example<R: Resource>(input: Value) {
    let object: R = ok(input);
    let resource = crd::custom_resource(&object);
    let definition = crd::custom_resource_definition::<R>();
    let schema = schema_of(&definition);
    assert_eq!(resource["apiVersion"], format!("{}.krake.io/v1", R::API));
    assert_eq!(resource["kind"], R::KIND);
    assert_eq!(resource["metadata"]["name"], object.metadata().name);
    assert_eq!(
        resource["metadata"]["namespace"].as_str(),
        object
            .metadata()
            .namespace
            .as_deref()
            .filter(|_| R::NAMESPACED)
    );
    // Kubernetes validates `metadata` as its own ObjectMeta, never by the CRD schema.
    let object_meta = ["name", "namespace", "labels", "finalizers"];
    for key in resource["metadata"].as_object().unwrap().keys() {
        assert!(
            object_meta.contains(&key.as_str()),
            "{}: metadata.{key}",
            R::KIND
        );
    }
    let mut body = resource.clone();
    body.as_object_mut().unwrap().remove("metadata");
    let mut lost = Vec::new();
    pruned(schema, &body, "", &mut lost);
    assert!(
        lost.is_empty(),
        "{}: fields the CRD would prune: {lost:?}",
        R::KIND
    );
    assert!(
        admits(schema, &body),
        "{}: the CRD schema rejects {body:#}",
        R::KIND
    );
    // Everything outside metadata is the object's own JSON.
    let mut own = serde_json::to_value(&object).unwrap();
    let own = own.as_object_mut().unwrap();
    for key in ["api", "kind", "metadata"] {
        own.remove(key);
    }
    let mut rest: Map<String, Value> = resource.as_object().unwrap().clone();
    for key in ["apiVersion", "kind", "metadata"] {
        rest.remove(key);
    }
    assert_eq!(&rest, own, "{}", R::KIND);
}

#[test]
fn the_pruning_check_sees_undeclared_fields() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "map": {"type": "object", "additionalProperties": {"type": "object",
                                                           "properties": {"x": {"type": "integer"}}}},
    }});
    let value = json!({"spec": {"a": "x", "b": 1}, "free": {"anything": [1]},
                       "map": {"k": {"x": 1, "y": 2}}, "extra": true});
    let mut lost = Vec::new();
    pruned(&schema, &value, "", &mut lost);
    assert_eq!(lost, vec![".spec.b", ".map.k.y", ".extra"]);
}

fn kubeconfig() -> Value {
    json!({"apiVersion": "v1", "kind": "Config", "preferences": {},
           "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "x"}}],
           "users": [{"name": "u1", "user": {"token": "t"}}],
           "contexts": [{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}],
           "current-context": "ctx"})
}

fn labelled(name: &str, namespace: Option<&str>) -> Value {
    let mut m = meta(name, namespace);
    m["labels"] = json!({"location": "DE"});
    m["finalizers"] = json!(["krake.io/cleanup"]);
    m
}

fn reference(api: &str, kind: &str, name: &str) -> Value {
    json!({"api": api, "namespace": "ns1", "kind": kind, "name": name})
}

#[test]
fn example_objects_keep_all_their_fields() {
    // core
    check_example::<Role>(json!({"metadata": labelled("r1", None),
        "rules": [{"api": "kubernetes", "resources": ["applications", "applications/status"],
                   "namespaces": ["dev"], "verbs": ["get", "list"]}]}));
    check_example::<RoleBinding>(
        json!({"metadata": meta("rb", None), "users": ["u"], "roles": ["r"]}),
    );
    let metric_spec = json!({"allowed_values": [1, 2], "min": 0.0, "max": 1.0,
                             "provider": {"name": "prom", "metric": "node_load1"}});
    check_example::<GlobalMetric>(json!({"metadata": meta("m", None), "spec": metric_spec}));
    check_example::<Metric>(json!({"metadata": meta("m", Some("ns1")), "spec": metric_spec}));
    for spec in [
        json!({"type": "prometheus", "prometheus": {"url": "http://prom:9090"}}),
        json!({"type": "influx", "influx": {"url": "http://i", "token": "t", "org": "o", "bucket": "b"}}),
        json!({"type": "kafka", "kafka": {"comparison_column": "c", "value_column": "v",
                                          "table": "t", "url": "http://k"}}),
        json!({"type": "static", "static": {"metrics": {"load": 0.5, "heat": 2}}}),
    ] {
        check_example::<GlobalMetricsProvider>(json!({"metadata": meta("p", None), "spec": spec}));
        check_example::<MetricsProvider>(json!({"metadata": meta("p", Some("ns1")), "spec": spec}));
    }

    // kubernetes
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                     "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let app_spec = json!({"manifest": [pod],
        "constraints": {"cluster": {"labels": ["location is DE"],
                                    "custom_resources": ["crontabs.stable.example.com"],
                                    "metrics": ["load < 5"]}}});
    check_example::<Application>(
        json!({"metadata": labelled("app1", Some("ns1")), "spec": app_spec}),
    );
    let mut app_spec_with_url = app_spec.clone();
    app_spec_with_url["tosca"] = json!("http://example.com/app.yaml");
    let scheduled = json!({"reason": {"code": "NO_SUITABLE_RESOURCE", "message": "none"},
        "state": "FAILED", "scheduled": "2026-11-21T09:02:37.560425+00:00",
        "scheduled_to": reference("kubernetes", "Cluster", "c1"),
        "running_on": reference("kubernetes", "Cluster", "c1"),
        "services": {"web": "10.0.0.1:80"},
        "last_applied_manifest": [{"apiVersion": "v1", "kind": "Service"}]});
    check_example::<Application>(json!({"metadata": meta("app2", Some("ns1")),
                                        "spec": app_spec_with_url, "status": scheduled}));
    check_example::<Cluster>(json!({"metadata": meta("c1", Some("ns1")),
        "spec": {"kubeconfig": kubeconfig(), "custom_resources": ["crontabs.stable.example.com"],
                 "constraints": {"cloud": {"labels": ["location is DE"], "metrics": null}},
                 "metrics": [{"name": "load", "weight": 1.5, "namespaced": false}]},
        "status": {"state": "ONLINE", "metrics_reasons": {"load": {"code": "UNKNOWN_METRIC", "message": "m"}},
                   "running_on": reference("infrastructure", "Cloud", "cl1")}}));

    // openstack
    let project_spec = |auth: Value| {
        json!({"url": "http://keystone:5000/v3", "auth": auth, "template": "magnum-template-uuid",
               "metrics": [{"name": "load", "weight": 1.0, "namespaced": true}]})
    };
    check_example::<Project>(json!({"metadata": meta("p1", Some("ns1")),
        "spec": project_spec(json!({"type": "password",
            "password": {"user": {"id": "uid", "password": "pw"}, "project": {"id": "pid"}}}))}));
    check_example::<Project>(json!({"metadata": meta("p2", Some("ns1")),
        "spec": project_spec(json!({"type": "application_credential",
            "application_credential": {"id": "i", "secret": "s"}}))}));
    check_example::<MagnumCluster>(json!({"metadata": meta("m1", Some("ns1")),
        "spec": {"master_count": 1, "node_count": 2, "metrics": [],
                 "constraints": {"project": {"labels": ["a=b"]}}},
        "status": {"state": "RUNNING", "project": reference("openstack", "Project", "p1"),
                   "node_count": 2, "master_addresses": ["10.0.0.2"], "node_addresses": ["10.0.0.3"]}}));

    // infrastructure
    let im = json!({"type": "im", "im": {"url": "http://im", "username": "u", "password": "p"}});
    check_example::<GlobalInfrastructureProvider>(
        json!({"metadata": meta("im1", None), "spec": im}),
    );
    check_example::<InfrastructureProvider>(
        json!({"metadata": meta("im1", Some("ns1")), "spec": im}),
    );
    let cloud_spec = json!({"type": "openstack",
        "openstack": {"url": "http://keystone:5000/v3",
                      "auth": {"type": "password",
                               "password": {"user": {"username": "u", "password": "p"},
                                            "project": {"name": "proj"}}},
                      "metrics": [{"name": "load", "weight": 2.0}],
                      "infrastructure_provider": {"name": "im1"}}});
    check_example::<GlobalCloud>(json!({"metadata": meta("cl1", None), "spec": cloud_spec}));
    check_example::<Cloud>(json!({"metadata": meta("cl1", Some("ns1")), "spec": cloud_spec}));
}
