//! JSON Schemas of the persisted kinds, generated with `schemars` and checked in under
//! `crds/schemas/<api>.<Kind>.json` (regenerate with
//! `cargo run -p krake-crds --bin krake-crds-schemas`).

use serde_json::Value;

use crate::kinds::{KindVisitor, visit_kinds};
use crate::resource::Resource;

struct Schemas(Vec<(String, Value)>);

impl KindVisitor for Schemas {
    fn visit<R: Resource>(&mut self) {
        let schema = schemars::schema_for!(R);
        let value = serde_json::to_value(&schema).expect("a JSON Schema is JSON");
        self.0.push((format!("{}.{}.json", R::API, R::KIND), value));
    }
}

/// One `(file name, JSON Schema)` pair per persisted kind, e.g.
/// `("kubernetes.Application.json", {...})`, in the order of [`crate::kinds::KINDS`].
pub fn schemas() -> Vec<(String, Value)> {
    let mut schemas = Schemas(Vec::new());
    visit_kinds(&mut schemas);
    schemas.0
}

/// The file content of a schema: pretty JSON with a trailing newline.
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("a JSON Schema is JSON");
    s.push('\n');
    s
}
