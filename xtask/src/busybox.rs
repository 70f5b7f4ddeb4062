//! Debian's statically linked busybox for the initrd: downloaded once with `apt-get download`
//! (no root needed) into `target/manul/cache/`, unpacked with `dpkg -x`, and its applets as
//! listed by the host running it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::prerequisites;
use crate::process;
use crate::workspace::Workspace;

const PACKAGE: &str = "busybox-static";
/// The applets linked when the host cannot run busybox to list them.
const FALLBACK_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "wc", "sort", "seq", "grep", "sed", "awk", "md5sum", "echo", "mkdir", "rm", "test", "true",
    "false", "head", "tail", "tr", "cut", "uniq", "xargs", "env", "sleep", "printf",
];

pub struct Busybox {
    pub binary: PathBuf,
    /// Applet names, sorted.
    pub applets: Vec<String>,
    /// What went wrong without stopping the build, for the user.
    pub notes: Vec<String>,
}

/// The cached busybox (downloading it the first time) and its applets; progress goes to `log`.
pub fn fetch(workspace: &Workspace, log: &mut dyn Write) -> Result<Busybox> {
    let dir = workspace.cache_dir().join(PACKAGE);
    let root = dir.join("root");
    let binary = root.join("bin").join("busybox");
    if !binary.is_file() {
        download(&dir, &root, log).with_context(|| format!("cannot fetch {PACKAGE}"))?;
        ensure!(binary.is_file(), "the {PACKAGE} package has no bin/busybox (looked in {})", root.display());
    }
    let mut notes = Vec::new();
    let applets = match list_applets(&binary) {
        Ok(applets) => applets,
        Err(error) => {
            notes.push(format!(
                "cannot list the busybox applets ({error:#}): linking only {} common ones",
                FALLBACK_APPLETS.len()
            ));
            FALLBACK_APPLETS.iter().map(|&name| name.to_owned()).collect()
        }
    };
    Ok(Busybox { binary, applets, notes })
}

/// Downloads the package into `dir/download/` and unpacks it at `root`, which appears only
/// once complete.
fn download(dir: &Path, root: &Path, log: &mut dyn Write) -> Result<()> {
    let downloads = dir.join("download");
    remove_dir_if_present(&downloads)?;
    fs::create_dir_all(&downloads).with_context(|| format!("cannot create {}", downloads.display()))?;
    let mut command = Command::new("apt-get");
    command.args(["download", PACKAGE]).current_dir(&downloads);
    let output = process::captured(&mut command)?;
    if !output.status.success() {
        let report = process::failure_report(&command, &output);
        if !prerequisites::running_as_root() {
            bail!("{report}\n(the package lists may be missing or out of date: run `sudo apt-get update`)");
        }
        writeln!(log, "{report}\nupdating the package lists and retrying")?;
        process::run_captured(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
        process::run_captured(&mut command)?;
    }
    let package = downloaded_package(&downloads)?;
    writeln!(log, "downloaded {}", package.display())?;

    let partial = dir.join("root.partial");
    remove_dir_if_present(&partial)?;
    process::run_captured(Command::new("dpkg").arg("-x").arg(&package).arg(&partial))?;
    remove_dir_if_present(root)?;
    fs::rename(&partial, root).with_context(|| format!("cannot rename {} to {}", partial.display(), root.display()))?;
    writeln!(log, "unpacked it at {}", root.display())?;
    Ok(())
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

/// `busybox --list`: one applet name a line.
fn list_applets(binary: &Path) -> Result<Vec<String>> {
    let output = process::run_captured(Command::new(binary).arg("--list"))?;
    let text = String::from_utf8(output.stdout).context("busybox --list printed something other than UTF-8")?;
    let applets = parse_applet_list(&text);
    ensure!(!applets.is_empty(), "busybox --list printed no applet names");
    Ok(applets)
}

/// The applet names of `busybox --list` output, sorted and without duplicates; a line that is
/// not a plain file name (`/`, spaces, `.`) is skipped.
fn parse_applet_list(text: &str) -> Vec<String> {
    let mut applets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|name| {
            !matches!(*name, "" | "." | ".." | "busybox")
                && !name.chars().any(|c| c == '/' || c.is_whitespace() || c.is_control())
        })
        .map(str::to_owned)
        .collect();
    applets.sort();
    applets.dedup();
    applets
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
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
    fn applet_lists_are_sorted_and_cleaned() {
        let list = "sh\n[\n[[\nls\n\nbusybox\nsh\n../x\na b\n.\ncat\r\n";
        assert_eq!(parse_applet_list(list), ["[", "[[", "cat", "ls", "sh"]);
        assert!(parse_applet_list("").is_empty());
    }

    #[test]
    fn the_fallback_list_is_valid() {
        let list = FALLBACK_APPLETS.join("\n");
        assert_eq!(parse_applet_list(&list).len(), FALLBACK_APPLETS.len());
    }

    #[test]
    fn exactly_one_package_must_be_downloaded() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-busybox-{}", std::process::id()));
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
