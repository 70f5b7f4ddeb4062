//! Debian packages as build material: which concrete package a metapackage stands for
//! (`apt-cache depends`), downloading a `.deb` with `apt-get download` (no root needed) and
//! unpacking it with `dpkg -x`. Busybox and the guest kernel are fetched this way into
//! `target/manul/cache/`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::host::prerequisites;
use crate::host::process;

/// A downloaded and unpacked package.
pub struct Unpacked {
    /// The `.deb` file, in `DIR/download/`.
    pub deb: PathBuf,
    /// Where its files are, `DIR/root/`.
    pub root: PathBuf,
}

/// Downloads `package` into `dir/download/` and unpacks it at `dir/root/`, which appears only
/// once complete; progress goes to `log`. A failure names the package and what to check.
pub fn fetch(package: &str, dir: &Path, log: &mut dyn Write) -> Result<Unpacked> {
    let downloads = dir.join("download");
    remove_dir_if_present(&downloads)?;
    fs::create_dir_all(&downloads).with_context(|| format!("cannot create {}", downloads.display()))?;
    writeln!(log, "downloading the Debian package {package} with apt-get")?;
    let started = Instant::now();
    let mut command = Command::new("apt-get");
    command.args(["download", package]).current_dir(&downloads);
    apt(&mut command, log).with_context(|| {
        format!(
            "cannot download the Debian package {package}: check the network connection to the Debian mirror and the \
             package lists (`apt-get update`)"
        )
    })?;
    let deb = downloaded_package(&downloads)?;
    writeln!(
        log,
        "downloaded {} ({} bytes) in {:.1} s",
        deb.display(),
        file_size(&deb)?,
        started.elapsed().as_secs_f64()
    )?;

    let root = dir.join("root");
    let partial = dir.join("root.partial");
    remove_dir_if_present(&partial)?;
    process::run_captured(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))
        .with_context(|| format!("cannot unpack the Debian package {package}"))?;
    remove_dir_if_present(&root)?;
    fs::rename(&partial, &root)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), root.display()))?;
    writeln!(log, "unpacked it at {}", root.display())?;
    Ok(Unpacked { deb, root })
}

/// The package `metapackage` depends on whose name starts with `prefix` (for
/// `linux-image-amd64`, the concrete `linux-image-VERSION-amd64` of the candidate version).
pub fn resolve_dependency(metapackage: &str, prefix: &str, log: &mut dyn Write) -> Result<String> {
    let mut command = Command::new("apt-cache");
    command.args(["depends", metapackage]);
    let output = apt(&mut command, log).with_context(|| format!("cannot resolve the Debian package {metapackage}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_dependency(&text, prefix).with_context(|| {
        format!("`{}` names no dependency starting with {prefix}:\n{text}", process::describe(&command))
    })
}

/// Runs an apt command; when it fails, updates the package lists (as root) and retries once.
fn apt(command: &mut Command, log: &mut dyn Write) -> Result<Output> {
    let output = process::captured(command)?;
    if output.status.success() {
        return Ok(output);
    }
    let report = process::failure_report(command, &output);
    if !prerequisites::running_as_root() {
        bail!("{report}\n(the package lists may be missing or out of date: run `sudo apt-get update`)");
    }
    writeln!(log, "{report}\nupdating the package lists and retrying")?;
    process::run_captured(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
    process::run_captured(command)
}

/// The first `Depends:` of `apt-cache depends` output naming a package that starts with
/// `prefix` (alternatives, marked `|`, count; virtual packages, `<name>`, do not).
fn parse_dependency(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim_start().trim_start_matches('|').strip_prefix("Depends:"))
        .map(str::trim)
        .find(|name| name.starts_with(prefix) && !name.contains(|c: char| c.is_whitespace() || c == '<'))
        .map(str::to_owned)
}

/// The one `.deb` file apt-get left in `downloads`.
fn downloaded_package(downloads: &Path) -> Result<PathBuf> {
    let mut packages = Vec::new();
    for entry in fs::read_dir(downloads).with_context(|| format!("cannot list {}", downloads.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", downloads.display()))?.path();
        if path.extension().is_some_and(|extension| extension == "deb") {
            packages.push(path);
        }
    }
    match <[PathBuf; 1]>::try_from(packages) {
        Ok([package]) => Ok(package),
        Err(packages) => {
            bail!("expected one .deb file in {} after apt-get download, found {}", downloads.display(), packages.len())
        }
    }
}

/// `Package` and `Version` of a `.deb`, as `NAME VERSION`.
pub fn describe(deb: &Path) -> Result<String> {
    let output = process::run_captured(Command::new("dpkg-deb").arg("--field").arg(deb).args(["Package", "Version"]))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .with_context(|| format!("{} has no {name} field", deb.display()))
    };
    Ok(format!("{} {}", field("Package")?, field("Version")?))
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path).with_context(|| format!("cannot read the size of {}", path.display()))?.len())
}

pub fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_concrete_kernel_package_comes_from_apt_cache_depends() {
        let output = "linux-image-amd64\n  Depends: linux-image-6.1.0-48-amd64\n";
        assert_eq!(parse_dependency(output, "linux-image-").as_deref(), Some("linux-image-6.1.0-48-amd64"));
        let output = concat!(
            "linux-image-amd64\n",
            "  PreDepends: linux-image-base\n",
            "  Depends: <linux-image-virtual>\n",
            "  Depends: initramfs-tools\n",
            " |Depends: linux-image-6.1.0-49-amd64\n",
            "  Depends: linux-image-6.1.0-48-amd64\n",
            "  Recommends: firmware-linux-free\n",
        );
        assert_eq!(parse_dependency(output, "linux-image-").as_deref(), Some("linux-image-6.1.0-49-amd64"));
        assert_eq!(parse_dependency(output, "initramfs").as_deref(), Some("initramfs-tools"));
        assert_eq!(parse_dependency("busybox-static\n  Conflicts: busybox\n", "busybox"), None);
        assert_eq!(parse_dependency("", "linux-image-"), None);
    }

    #[test]
    fn exactly_one_package_must_be_downloaded() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-deb-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let error = downloaded_package(&dir).unwrap_err();
        assert!(error.to_string().ends_with("found 0"), "{error}");
        fs::write(dir.join("busybox-static_1%3a1.35.0-4_amd64.deb"), "").unwrap();
        fs::write(dir.join("notes.txt"), "").unwrap();
        assert_eq!(downloaded_package(&dir).unwrap(), dir.join("busybox-static_1%3a1.35.0-4_amd64.deb"));
        fs::write(dir.join("other.deb"), "").unwrap();
        assert!(downloaded_package(&dir).unwrap_err().to_string().ends_with("found 2"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
