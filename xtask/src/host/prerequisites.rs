//! The host programs `build`, `run` and `test` need, and installing them on Debian when we may.

use std::fs;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::host::process;

/// What a prerequisite is needed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Booting the kernel under QEMU.
    Boot,
    /// Building the initrd: compiling the test programs, fetching busybox and Debian's kernel
    /// and decompressing the kernel.
    Initrd,
}

struct Prerequisite {
    /// A program that must answer `--version`.
    command: &'static str,
    /// The Debian package that provides it.
    debian_package: &'static str,
    purpose: Purpose,
    /// Whether the work goes on without it (leaving out what needs it).
    optional: bool,
}

/// The machine emulator the kernel boots on.
pub const QEMU: &str = "qemu-system-x86_64";
/// The compiler of the musl variants of the test programs.
pub const MUSL_GCC: &str = "musl-gcc";

const PREREQUISITES: &[Prerequisite] = &[
    Prerequisite { command: QEMU, debian_package: "qemu-system-x86", purpose: Purpose::Boot, optional: false },
    Prerequisite { command: "gcc", debian_package: "gcc", purpose: Purpose::Initrd, optional: false },
    Prerequisite { command: "dpkg", debian_package: "dpkg", purpose: Purpose::Initrd, optional: false },
    Prerequisite { command: "apt-get", debian_package: "apt", purpose: Purpose::Initrd, optional: false },
    Prerequisite { command: "xz", debian_package: "xz-utils", purpose: Purpose::Initrd, optional: false },
    Prerequisite { command: MUSL_GCC, debian_package: "musl-tools", purpose: Purpose::Initrd, optional: true },
];

/// Makes sure every prerequisite for `purposes` runs: as root, missing ones are installed with
/// apt-get; otherwise the error says what to install. A missing optional prerequisite is
/// installed when we are root, and otherwise left to the code that uses it to report.
pub fn ensure(purposes: &[Purpose]) -> Result<()> {
    let (optional, required): (Vec<_>, Vec<_>) = missing(purposes).into_iter().partition(|p| p.optional);
    let names = |prerequisites: &[&Prerequisite]| -> (String, String) {
        let commands: Vec<&str> = prerequisites.iter().map(|p| p.command).collect();
        let packages: Vec<&str> = prerequisites.iter().map(|p| p.debian_package).collect();
        (commands.join(", "), packages.join(" "))
    };
    if !running_as_root() {
        if !required.is_empty() {
            let (commands, packages) = names(&required);
            bail!("missing {commands}: install with `sudo apt-get install {packages}`");
        }
        return Ok(());
    }
    if !required.is_empty() {
        let (commands, packages) = names(&required);
        eprintln!("missing {commands}: installing {packages} with apt-get");
        if !install(&required)? {
            bail!("could not install {packages} with apt-get, or {commands} still does not run after it");
        }
    }
    if !optional.is_empty() {
        let (commands, packages) = names(&optional);
        eprintln!("missing {commands} (optional): installing {packages} with apt-get");
        if !install(&optional)? {
            eprintln!("could not install {packages}: going on without {commands}");
        }
    }
    Ok(())
}

/// Installs the packages of `prerequisites`, updating the package lists and retrying once if
/// that fails; returns whether every command now runs.
fn install(prerequisites: &[&Prerequisite]) -> Result<bool> {
    let packages: Vec<&str> = prerequisites.iter().map(|p| p.debian_package).collect();
    if !apt_get(&["install", "-y"], &packages)? {
        eprintln!("apt-get install failed; updating the package lists and retrying");
        if !apt_get(&["update"], &[])? || !apt_get(&["install", "-y"], &packages)? {
            return Ok(false);
        }
    }
    Ok(prerequisites.iter().all(|p| runs(p.command)))
}

fn missing(purposes: &[Purpose]) -> Vec<&'static Prerequisite> {
    PREREQUISITES.iter().filter(|p| purposes.contains(&p.purpose) && !runs(p.command)).collect()
}

/// Whether `command --version` runs and succeeds.
pub fn runs(command: &str) -> bool {
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

pub fn running_as_root() -> bool {
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
