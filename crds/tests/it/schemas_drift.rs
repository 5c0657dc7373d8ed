//! The checked-in JSON Schemas must match the types.

use std::path::PathBuf;

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schemas = krake_crds::schema::schemas();
    assert_eq!(schemas.len(), 14, "one schema per persisted kind");
    let mut stale = Vec::new();
    for (name, schema) in &schemas {
        let expected = krake_crds::schema::render(schema);
        let actual = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if actual != expected {
            stale.push(name.clone());
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    on_disk.retain(|f| f.ends_with(".json") && !schemas.iter().any(|(n, _)| n == f));
    assert!(
        stale.is_empty() && on_disk.is_empty(),
        "JSON Schemas out of date (stale: {stale:?}, unknown files: {on_disk:?}); \
         run `cargo run -p krake-crds --bin krake-crds-schemas`"
    );
}

#[test]
fn schemas_describe_the_wire_shape() {
    let schemas = krake_crds::schema::schemas();
    let (name, app) = schemas
        .iter()
        .find(|(n, _)| n == "kubernetes.Application.json")
        .expect("Application schema");
    assert_eq!(name, "kubernetes.Application.json");
    let props = app["properties"].as_object().expect("properties");
    let keys: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["api", "kind", "metadata", "spec", "status"]);
    let required: Vec<&str> = app["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, vec!["metadata", "spec"]);
    let state = &app["$defs"]["ApplicationState"];
    assert_eq!(state["enum"][0], "PENDING");
}
