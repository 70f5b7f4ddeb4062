//! What the xtask's host tests share.

use std::fs;
use std::path::PathBuf;

/// A fresh, empty directory under the system's temporary directory, named for the test and
/// this process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("manul-xtask-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
