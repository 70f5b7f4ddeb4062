//! The layer check: in each crate whose `src` is in folders by layer, a file may name (with a
//! `crate::` path, in code or docs) only modules of its own layer or the layers below it. The
//! layers are listed here, bottom first, as `docs/architecture.md` describes them; an import
//! that points up fails the test (and so does an allowance that is no longer needed, should a
//! crate ever need one while an import is being turned around).

use std::fs;
use std::path::Path;

/// The LWK (`lwk/src`): `hal` is the hardware crate (`lwk-hal`), named `crate::hal`.
pub const LWK: &[&[&str]] = &[
    &["hal"],
    &["time"],
    &["util"],
    &["mm"],
    &["task"],
    &["fs"],
    &["exec"],
    &["syscalls"],
    &["vmm_host"],
    &["control"],
    &["boot"],
];

/// The embedded VMM (`embedded-vmm/src`), one layer per row.
pub const VMM: &[&[&str]] = &[
    &["svm", "machine", "host", "paging"],
    &[
        "guest_memory",
        "guest_paging",
        "decoder",
        "cpuid",
        "pv_clock",
        "exit_stats",
        "shared_regions",
        "end",
        "fake_host",
    ],
    &["devices"],
    &["loaders", "acpi_builder"],
    &["irq"],
    &["exits"],
    &["vcpu"],
    &["vm"],
];

/// The xtask (`xtask/src`): `test` and `bench` share a layer and do not use each other; the
/// tests' helpers (`test_support.rs`) are at the bottom.
pub const XTASK: &[&[&str]] = &[&["host", "test_support"], &["artifacts"], &["run"], &["test", "bench"]];

/// The top-level modules a file names with `crate::` paths, with their line numbers: `crate::a::b`
/// gives `a`, `use crate::{a::b, c}` gives `a` and `c`.
pub fn crate_modules(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let line = text[..at].matches('\n').count() + 1;
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut element_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => element_start = true,
                    c if element_start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.push((identifier(&group[i..]), line));
                        element_start = false;
                    }
                    c if !c.is_whitespace() => element_start = false,
                    _ => {}
                }
            }
        } else {
            out.push((identifier(rest), line));
        }
    }
    out.retain(|(name, _)| !name.is_empty());
    out
}

fn identifier(s: &str) -> String {
    s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The imports of `src` (a crate's source folder) that point up `layers`, as
/// "file:line names module", leaving out the `allowed` (file, module) pairs; and the allowed
/// pairs that no file needs any more. A file's layer is that of its top-level module (its
/// folder, or the file itself); `lib.rs` and `main.rs` are above every layer.
pub fn upward_imports(src: &Path, layers: &[&[&str]], allowed: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let layer = |module: &str| layers.iter().position(|l| l.contains(&module));
    let mut files = Vec::new();
    collect(src, src, &mut files);
    let mut upward = Vec::new();
    let mut used = vec![false; allowed.len()];
    for (path, text) in &files {
        let top = path.split('/').next().unwrap_or_default().trim_end_matches(".rs");
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer(top) else {
            upward.push(format!("{path}: its module `{top}` is in no layer"));
            continue;
        };
        for (module, line) in crate_modules(text) {
            if module == top || layer(&module).is_none_or(|theirs| theirs <= own) {
                continue;
            }
            match allowed.iter().position(|&(file, m)| file == path && m == module) {
                Some(i) => used[i] = true,
                None => upward.push(format!("{path}:{line} names {module}")),
            }
        }
    }
    let stale = allowed.iter().zip(used).filter(|(_, used)| !used).map(|((f, m), _)| format!("{f} -> {m}")).collect();
    (upward, stale)
}

/// Every `.rs` file below `dir`, as (path relative to `root`, text).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push((relative, fs::read_to_string(&path).unwrap_or_default()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    fn check(src: &str, layers: &[&[&str]], allowed: &[(&str, &str)]) {
        let (upward, stale) = upward_imports(&workspace().join(src), layers, allowed);
        assert!(upward.is_empty(), "{src}: imports that point up the layers: {upward:#?}");
        assert!(stale.is_empty(), "{src}: allowances no file needs any more: {stale:?}");
    }

    #[test]
    fn the_lwk_imports_point_down() {
        check("lwk/src", LWK, &[]);
    }

    #[test]
    fn the_vmm_imports_point_down() {
        check("embedded-vmm/src", VMM, &[]);
    }

    #[test]
    fn the_xtask_imports_point_down() {
        check("xtask/src", XTASK, &[]);
    }

    #[test]
    fn paths_and_groups_are_read() {
        let text = "use crate::a::b;\nuse crate::{c::d, e, f::{g, h}};\nfn x() { crate::i::j(); }\n// [`crate::k`]\n";
        let names: Vec<_> = crate_modules(text).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "c", "e", "f", "i", "k"]);
    }

    #[test]
    fn an_upward_import_is_found_and_an_unused_allowance_is_stale() {
        let dir = std::env::temp_dir().join(format!("manul-layers-{}", std::process::id()));
        fs::create_dir_all(dir.join("low")).unwrap();
        fs::create_dir_all(dir.join("high")).unwrap();
        fs::write(dir.join("low/a.rs"), "use crate::{high::x, low::y};\n").unwrap();
        fs::write(dir.join("high/b.rs"), "use crate::low::a;\n").unwrap();
        let layers: &[&[&str]] = &[&["low"], &["high"]];
        let (upward, stale) = upward_imports(&dir, layers, &[("high/b.rs", "low")]);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(upward, ["low/a.rs:1 names high"]);
        assert_eq!(stale, ["high/b.rs -> low"]);
    }
}
