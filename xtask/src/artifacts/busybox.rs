//! Debian's statically linked busybox for the initrd and the Linux guest's initramfs: downloaded
//! once into `target/manul/cache/busybox-static/` (see [`debian_package`]), and its applets as
//! listed by the host running it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::artifacts::debian_package;
use crate::host::process;
use crate::host::workspace::Workspace;

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
        debian_package::fetch(PACKAGE, &dir, log)?;
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
}
