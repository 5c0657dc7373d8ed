//! Writes the JSON Schema of every persisted kind to `crds/schemas/<api>.<Kind>.json` and its
//! CustomResourceDefinition to `crds/manifests/<group>_<plural>.yaml`.
//!
//! Usage: `cargo run -p krake-crds --bin krake-crds-schemas [OUTPUT_DIR]`; with `OUTPUT_DIR`,
//! the two sets go to its `schemas/` and `manifests/` subdirectories.

use std::path::{Path, PathBuf};

fn write_all(dir: &Path, files: impl IntoIterator<Item = (String, String)>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, content) in files {
        let path = dir.join(&name);
        std::fs::write(&path, content)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    write_all(
        &root.join("schemas"),
        krake_crds::schema::schemas()
            .into_iter()
            .map(|(name, schema)| (name, krake_crds::schema::render(&schema))),
    )?;
    write_all(
        &root.join("manifests"),
        krake_crds::crd::definitions()
            .into_iter()
            .map(|(name, crd)| (name, krake_crds::crd::render(&crd))),
    )
}
