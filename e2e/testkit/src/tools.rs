//! Locating the external programs the tests run (etcd, helm).

use std::path::{Path, PathBuf};

/// The program `name`: the file `$env` names if set, else the first executable `name` on
/// `PATH`, else the first executable of `fallbacks`.
///
/// # Panics
/// When `$env` names something that is not a file, or nothing is found (`install_hint`
/// says how to get it): tests that need the program fail, they never skip.
pub fn find_program(name: &str, env: &str, fallbacks: &[PathBuf], install_hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env}={} is not a file", path.display());
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(name))
        .chain(fallbacks.iter().cloned())
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| panic!("{name} not found: {install_hint}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
