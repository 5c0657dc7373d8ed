//! `krake-api bootstrap`: load core objects (RBAC roles and bindings, metrics, metrics
//! providers) from YAML files straight into the storage, with the semantics of upstream's
//! `krake_bootstrap_db`:
//!
//! * only the `core` kinds Role, RoleBinding, GlobalMetric, GlobalMetricsProvider, Metric
//!   and MetricsProvider are accepted; anything else is an error;
//! * every document is validated like a create first (read-only metadata and status are
//!   ignored; `uid`, `created` and `modified` are generated; namespaced kinds need a valid
//!   `metadata.namespace`, global kinds are stored without one) — one invalid document
//!   and nothing is written;
//! * then each object is written only if its key is absent; an existing key is an error
//!   unless `force`, which replaces the stored object;
//! * on any write error everything written so far is rolled back (inserted keys deleted,
//!   replaced objects restored).

use std::collections::HashMap;
use std::path::PathBuf;

use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use krake_crds::validation::is_valid_resource_name;
use krake_crds::{Resource, decode_create};
use serde_json::Value;

use crate::error::Error;
use crate::storage::codec::{encode_for_storage, initialize_new};
use crate::storage::{KeyValue, Store, WriteOutcome};

/// Why a bootstrap failed. Nothing is left written when any of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// An input cannot be read.
    #[error("cannot read {origin}: {error}")]
    Read {
        /// The input (file name, or `standard input`).
        origin: String,
        /// The cause (in the message, not a `source`, so that it is shown once).
        error: std::io::Error,
    },
    /// An input is not valid YAML.
    #[error("{origin}: not valid YAML: {reason}")]
    Yaml {
        /// The input (file name, or `-` for standard input).
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// Documents failed validation; nothing was written.
    #[error("{} invalid document(s), nothing written:\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// A write failed; what had been written was rolled back.
    #[error("{reason}; {}{}", undone_report(*.undone), rollback_report(.rollback_failures))]
    Write {
        /// What went wrong.
        reason: String,
        /// How many earlier writes were undone.
        undone: usize,
        /// Writes that could not be undone (concurrent changes, storage errors).
        rollback_failures: Vec<String>,
    },
}

fn undone_report(undone: usize) -> String {
    match undone {
        0 => "nothing written".into(),
        n => format!("rolled back the {n} earlier write(s)"),
    }
}

fn rollback_report(failures: &[String]) -> String {
    if failures.is_empty() {
        String::new()
    } else {
        format!(
            "; ROLLBACK INCOMPLETE, check these keys: {}",
            failures.join("; ")
        )
    }
}

/// One YAML document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// `file, document N` for messages.
    pub origin: String,
    /// The document.
    pub value: Value,
}

/// Split a (multi-document) YAML text into documents; empty documents are skipped.
pub fn parse_documents(origin: &str, text: &str) -> Result<Vec<Document>, BootstrapError> {
    let values: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| BootstrapError::Yaml {
            origin: origin.to_string(),
            reason: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, value)| Document {
            origin: format!("{origin}, document {}", i + 1),
            value,
        })
        .collect())
}

/// Read and split every file (`-` is standard input), in order.
pub async fn load_files(files: &[PathBuf]) -> Result<Vec<Document>, BootstrapError> {
    use tokio::io::AsyncReadExt;

    let mut documents = Vec::new();
    for file in files {
        let (origin, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            tokio::io::stdin()
                .read_to_string(&mut text)
                .await
                .map_err(|error| BootstrapError::Read {
                    origin: "standard input".into(),
                    error,
                })?;
            ("-".to_string(), text)
        } else {
            let origin = file.display().to_string();
            match tokio::fs::read_to_string(file).await {
                Ok(text) => (origin, text),
                Err(error) => return Err(BootstrapError::Read { origin, error }),
            }
        };
        documents.extend(parse_documents(&origin, &text)?);
    }
    Ok(documents)
}

/// A validated object ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Kind name.
    pub kind: &'static str,
    /// Object name.
    pub name: String,
    /// Namespace (`None` for global kinds).
    pub namespace: Option<String>,
    /// Storage key.
    pub key: String,
    value: Vec<u8>,
}

impl Prepared {
    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} '{}' in namespace '{ns}'", self.kind, self.name),
            None => format!("{} '{}'", self.kind, self.name),
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The key was absent and has been written.
    Created,
    /// The key existed and has been replaced (`force`).
    Replaced,
}

/// One written object.
#[derive(Debug, Clone)]
pub struct Written {
    /// What was written.
    pub object: Prepared,
    /// Created or replaced.
    pub action: Action,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.action {
            Action::Created => "created",
            Action::Replaced => "replaced",
        };
        write!(f, "{verb} {}", self.object.describe())
    }
}

/// The kinds the bootstrap accepts.
pub const SUPPORTED_KINDS: [&str; 6] = [
    "Role",
    "RoleBinding",
    "GlobalMetric",
    "GlobalMetricsProvider",
    "Metric",
    "MetricsProvider",
];

fn prepare_kind<R: Resource>(value: Value) -> Result<Prepared, String> {
    let mut object = decode_create::<R>(value).map_err(|e| e.to_string())?;
    let namespace = if R::NAMESPACED {
        match object.metadata().namespace.clone() {
            Some(ns) if is_valid_resource_name(&ns) => Some(ns),
            Some(ns) => return Err(format!("invalid metadata.namespace '{ns}'")),
            None => {
                return Err(format!(
                    "{} is namespaced: metadata.namespace is required",
                    R::KIND
                ));
            }
        }
    } else {
        None
    };
    initialize_new(&mut object, namespace.clone());
    let name = object.metadata().name.clone();
    Ok(Prepared {
        kind: R::KIND,
        key: R::key(namespace.as_deref(), &name),
        name,
        namespace,
        value: encode_for_storage(&mut object),
    })
}

/// Validate one document like a create of its kind.
pub fn prepare(document: &Document) -> Result<Prepared, String> {
    let value = document.value.clone();
    let Some(map) = value.as_object() else {
        return Err("the document is not a mapping".into());
    };
    let api = map.get("api").and_then(Value::as_str);
    let kind = map.get("kind").and_then(Value::as_str);
    let (Some(api), Some(kind)) = (api, kind) else {
        return Err("the document needs string `api` and `kind` fields".into());
    };
    if api != "core" || !SUPPORTED_KINDS.contains(&kind) {
        return Err(format!(
            "{api}/{kind} cannot be bootstrapped: only core {}",
            SUPPORTED_KINDS.join(", ")
        ));
    }
    match kind {
        "Role" => prepare_kind::<Role>(value),
        "RoleBinding" => prepare_kind::<RoleBinding>(value),
        "GlobalMetric" => prepare_kind::<GlobalMetric>(value),
        "GlobalMetricsProvider" => prepare_kind::<GlobalMetricsProvider>(value),
        "Metric" => prepare_kind::<Metric>(value),
        "MetricsProvider" => prepare_kind::<MetricsProvider>(value),
        _ => unreachable!("checked against SUPPORTED_KINDS"),
    }
}

/// Validate every document; all failures are reported together.
pub fn prepare_all(documents: &[Document]) -> Result<Vec<Prepared>, BootstrapError> {
    let mut prepared = Vec::with_capacity(documents.len());
    let mut failures = Vec::new();
    for document in documents {
        match prepare(document) {
            Ok(p) => prepared.push(p),
            Err(reason) => failures.push(format!("{}: {reason}", document.origin)),
        }
    }
    if failures.is_empty() {
        Ok(prepared)
    } else {
        Err(BootstrapError::Invalid(failures))
    }
}

/// How to undo one write.
enum Undo {
    /// The key was absent: delete it.
    Delete(String),
    /// The key held this value: put it back.
    Restore(KeyValue),
}

/// Validate every document, then write them all or nothing.
pub async fn bootstrap(
    store: &dyn Store,
    documents: &[Document],
    force: bool,
) -> Result<Vec<Written>, BootstrapError> {
    let prepared = prepare_all(documents)?;
    write_all(store, prepared, force).await
}

/// Write validated objects in order, rolling back on the first failure.
pub async fn write_all(
    store: &dyn Store,
    objects: Vec<Prepared>,
    force: bool,
) -> Result<Vec<Written>, BootstrapError> {
    let mut undo: Vec<Undo> = Vec::new();
    // The revision of our latest write of each key, the condition of its undo.
    let mut latest: HashMap<String, i64> = HashMap::new();
    let mut written = Vec::with_capacity(objects.len());
    for object in objects {
        match write_one(store, &object, force).await {
            Ok((action, revision, step)) => {
                latest.insert(object.key.clone(), revision);
                undo.push(step);
                tracing::debug!(key = %object.key, ?action, "bootstrapped");
                written.push(Written { object, action });
            }
            Err(reason) => {
                let undone = undo.len();
                let rollback_failures = rollback(store, undo, latest).await;
                return Err(BootstrapError::Write {
                    reason,
                    undone,
                    rollback_failures,
                });
            }
        }
    }
    Ok(written)
}

async fn write_one(
    store: &dyn Store,
    object: &Prepared,
    force: bool,
) -> Result<(Action, i64, Undo), String> {
    let storage = |e: Error| format!("{}: {e}", object.describe());
    // A concurrent writer can delete or change the key between our steps; try again a
    // few times before giving up.
    for _ in 0..3 {
        match store
            .create(&object.key, object.value.clone())
            .await
            .map_err(storage)?
        {
            WriteOutcome::Written(rev) => {
                return Ok((Action::Created, rev, Undo::Delete(object.key.clone())));
            }
            WriteOutcome::Conflict if !force => {
                return Err(format!(
                    "{} already exists (use --force to replace it)",
                    object.describe()
                ));
            }
            WriteOutcome::Conflict => {}
        }
        let Some(previous) = store.get(&object.key).await.map_err(storage)? else {
            continue;
        };
        match store
            .update(&object.key, object.value.clone(), previous.mod_revision)
            .await
            .map_err(storage)?
        {
            WriteOutcome::Written(rev) => {
                return Ok((Action::Replaced, rev, Undo::Restore(previous)));
            }
            WriteOutcome::Conflict => continue,
        }
    }
    Err(format!("{} keeps changing concurrently", object.describe()))
}

/// Undo writes in reverse order; the keys that could not be restored.
async fn rollback(
    store: &dyn Store,
    undo: Vec<Undo>,
    mut latest: HashMap<String, i64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for step in undo.into_iter().rev() {
        let key = match &step {
            Undo::Delete(key) => key.clone(),
            Undo::Restore(previous) => previous.key.clone(),
        };
        let Some(&revision) = latest.get(&key) else {
            failures.push(format!("{key}: no revision recorded"));
            continue;
        };
        let outcome = match &step {
            Undo::Delete(key) => store.delete(key, revision).await,
            Undo::Restore(previous) => {
                store
                    .update(&previous.key, previous.value.clone(), revision)
                    .await
            }
        };
        match outcome {
            Ok(WriteOutcome::Written(rev)) => {
                latest.insert(key.clone(), rev);
                tracing::info!(key = %key, "rolled back");
            }
            Ok(WriteOutcome::Conflict) => {
                failures.push(format!("{key}: changed concurrently, left as is"))
            }
            Err(e) => failures.push(format!("{key}: {e}")),
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_validation() {
        let docs = parse_documents(
            "t.yaml",
            "api: core\nkind: Role\nmetadata: {name: r1, namespace: ignored}\nrules: []\n---\n---\napi: core\nkind: Metric\nmetadata: {name: m}\nspec: {allowed_values: [], min: 0, max: 1, provider: {name: p, metric: x}}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let role = prepare(&docs[0]).unwrap();
        assert_eq!(role.key, "/core/roles/r1");
        assert_eq!(role.namespace, None);
        let stored: Value = serde_json::from_slice(&role.value).unwrap();
        assert_eq!(stored["metadata"]["namespace"], Value::Null);
        assert_eq!(stored["metadata"]["uid"].as_str().unwrap().len(), 36);
        let err = prepare(&docs[1]).unwrap_err();
        assert!(err.contains("metadata.namespace is required"), "{err}");
        assert!(matches!(
            prepare_all(&docs),
            Err(BootstrapError::Invalid(f)) if f.len() == 1 && f[0].starts_with("t.yaml, document 2")
        ));
        let app = Document {
            origin: "x".into(),
            value: serde_json::json!({"api": "kubernetes", "kind": "Application", "metadata": {"name": "a"}}),
        };
        assert!(
            prepare(&app)
                .unwrap_err()
                .contains("cannot be bootstrapped")
        );
        assert!(matches!(
            parse_documents("bad.yaml", "a: [\n"),
            Err(BootstrapError::Yaml { .. })
        ));
    }
}
