//! The host programs `run` and `test` need, and installing them on Debian when we may.

use std::fs;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::process;
use crate::qemu::QEMU;

struct Prerequisite {
    /// A program that must answer `--version`.
    command: &'static str,
    /// The Debian package that provides it.
    debian_package: &'static str,
}

const PREREQUISITES: &[Prerequisite] = &[Prerequisite { command: QEMU, debian_package: "qemu-system-x86" }];

/// Makes sure every prerequisite runs: as root, missing ones are installed with apt-get;
/// otherwise the error says what to install.
pub fn ensure() -> Result<()> {
    let absent = missing();
    if absent.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = absent.iter().map(|p| p.debian_package).collect();
    let commands: Vec<&str> = absent.iter().map(|p| p.command).collect();
    if !running_as_root() {
        bail!("missing {}: install with `sudo apt-get install {}`", commands.join(", "), packages.join(" "));
    }
    eprintln!("missing {}: installing {} with apt-get", commands.join(", "), packages.join(" "));
    if !apt_get(&["install", "-y"], &packages)? {
        eprintln!("apt-get install failed; updating the package lists and retrying");
        if !apt_get(&["update"], &[])? || !apt_get(&["install", "-y"], &packages)? {
            bail!("could not install {} with apt-get (missing {})", packages.join(" "), commands.join(", "));
        }
    }
    let still_missing: Vec<&str> = missing().iter().map(|p| p.command).collect();
    if !still_missing.is_empty() {
        bail!("{} still does not run after installing {}", still_missing.join(", "), packages.join(" "));
    }
    Ok(())
}

fn missing() -> Vec<&'static Prerequisite> {
    PREREQUISITES.iter().filter(|p| !runs(p.command)).collect()
}

fn runs(command: &str) -> bool {
    Command::new(command)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Runs apt-get with its output on the terminal; returns whether it succeeded.
fn apt_get(args: &[&str], packages: &[&str]) -> Result<bool> {
    let mut command = Command::new("apt-get");
    command.args(args).args(packages).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null());
    eprintln!("$ {}", process::describe(&command));
    match command.status() {
        Ok(status) => Ok(status.success()),
        Err(error) => bail!("cannot run apt-get: {error}"),
    }
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").ok().and_then(|status| effective_uid(&status)) == Some(0)
}

/// The effective user id from the text of `/proc/self/status`, whose `Uid:` line lists the
/// real, effective, saved and filesystem ids.
fn effective_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|line| line.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_comes_from_the_uid_line() {
        let status = "Name:\tcat\nUmask:\t0022\nUid:\t1000\t0\t1000\t1000\nGid:\t5\t5\t5\t5\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t1000\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tcat\n"), None);
        assert_eq!(effective_uid("Uid:\tx\ty\n"), None);
    }
}
