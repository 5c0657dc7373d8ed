//! Writes the JSON Schema of every persisted kind to `crds/schemas/<api>.<Kind>.json`.
//!
//! Usage: `cargo run -p krake-crds --bin krake-crds-schemas [OUTPUT_DIR]`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas"));
    std::fs::create_dir_all(&dir)?;
    for (name, schema) in krake_crds::schema::schemas() {
        let path = dir.join(&name);
        std::fs::write(&path, krake_crds::schema::render(&schema))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
