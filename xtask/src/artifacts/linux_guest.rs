//! The Linux guest the LWK's initrd carries for the VMM: Debian's kernel (see [`debian_kernel`])
//! and an initramfs for it, `target/manul/guest/guest-initrd.cpio`, rewritten only when what goes
//! into it changed. Layout of the initramfs:
//! - `init`: the script `tests/guests/linux-init.sh`, executable;
//! - `bin/busybox` (Debian's static busybox) and `bin/APPLET -> busybox` for each of its applets;
//! - `lib/modules/pvpanic.ko`, `lib/modules/pvpanic-mmio.ko`: Debian's guest-panic driver, from
//!   the same kernel package, which `/init` loads;
//! - `bin/segment`: the static test program `tests/jobs/segment.c`, the same binary the LWK runs
//!   as a job, which reads a shared segment through its PCI BAR (`manul.action=consume`);
//! - `bin/heartbeat`: the heartbeat helper `tests/guests/heartbeat.c` (`manul.heartbeat_ms=N`);
//! - `dev/console` (character device 5:1, where Linux opens init's standard streams), and the
//!   empty mount points `proc`, `sys`, `tmp`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::artifacts::archive::{self, EXECUTABLE, Entry};
use crate::artifacts::busybox::Busybox;
use crate::artifacts::debian_kernel;
use crate::host::workspace::Workspace;

/// The guest's `/init`, relative to the workspace root.
pub const INIT_SCRIPT: &str = "tests/guests/linux-init.sh";
/// The applets the init script runs: linked even when busybox could not list its applets.
const INIT_APPLETS: &[&str] = &["cat", "insmod", "mount", "nproc", "poweroff", "sh", "uname"];
/// Programs the guest carries: (path in the guest, the test program's path in the LWK initrd).
pub const GUEST_PROGRAMS: [(&str, &str); 2] = [("bin/segment", "bin/segment"), ("bin/heartbeat", "guests/heartbeat")];
/// Where the guest-panic modules are in the initramfs.
const MODULES_DIR: &str = "lib/modules";
/// Where the kernel (PVH ELF, bzImage) and the initramfs are in the LWK's initrd.
pub const BOOT_FILES: [&str; 3] = ["boot/vmlinux", "boot/vmlinuz", "boot/guest-initrd.cpio"];
/// Directories the guest mounts file systems on.
const MOUNT_POINTS: &[&str] = &["dev", "proc", "sys", "tmp"];

/// What [`build`] made.
pub struct LinuxGuest {
    /// (path in the LWK's initrd, file on the host): `boot/vmlinux`, `boot/vmlinuz`,
    /// `boot/guest-initrd.cpio`.
    pub files: Vec<(String, PathBuf)>,
    /// What is wrong without stopping the build, for the user.
    pub notes: Vec<String>,
}

/// Fetches the kernel and writes the initramfs if its contents changed; progress goes to `log`.
pub fn build(
    workspace: &Workspace,
    busybox: &Busybox,
    programs: &[(&str, PathBuf)],
    log: &mut dyn Write,
) -> Result<LinuxGuest> {
    let kernel = debian_kernel::fetch(workspace, log).context("cannot get Debian's Linux kernel")?;
    match kernel.pvh_entry {
        Some(entry) => writeln!(log, "Linux guest: {}, vmlinux boots through PVH at {entry:#x}", kernel.package)?,
        None => writeln!(log, "Linux guest: {}, vmlinux has no PVH entry", kernel.package)?,
    }
    let init = workspace.root().join(INIT_SCRIPT);
    ensure!(init.is_file(), "{} does not exist (it is the Linux guest's /init)", init.display());
    let entries = layout(&init, busybox, &kernel.panic_modules, programs)?;
    let archive = workspace.guest_dir().join("guest-initrd.cpio");
    archive::write_if_changed(&archive, &entries, log).context("cannot write the Linux guest's initramfs")?;
    let files = BOOT_FILES.iter().map(|&name| name.to_owned()).zip([kernel.vmlinux, kernel.bzimage, archive]).collect();
    Ok(LinuxGuest { files, notes: kernel.notes })
}

/// The entries of the initramfs, every directory before its contents.
fn layout(init: &Path, busybox: &Busybox, modules: &[PathBuf], programs: &[(&str, PathBuf)]) -> Result<Vec<Entry>> {
    let mut extra = Vec::new();
    for (name, path) in programs {
        extra.push(Entry::file(name, path, EXECUTABLE)?);
    }
    for module in modules {
        let name = module.file_name().and_then(|n| n.to_str()).context("a module path without a UTF-8 file name")?;
        extra.push(Entry::file(&format!("{MODULES_DIR}/{name}"), module, archive::READABLE)?);
    }
    initramfs(init, busybox, INIT_APPLETS, extra)
}

/// The entries of a busybox initramfs for Debian's kernel, every directory before its contents:
/// `init` (the script at `init`, executable), `bin/busybox` with a link for each of its applets
/// and for each of `applets` (linked even when busybox could not list its applets), the
/// console, the mount points, and the files `extra` (none of them a directory).
pub fn initramfs(init: &Path, busybox: &Busybox, applets: &[&str], extra: Vec<Entry>) -> Result<Vec<Entry>> {
    let mut entries =
        vec![Entry::file("init", init, EXECUTABLE)?, Entry::file("bin/busybox", &busybox.binary, EXECUTABLE)?];
    let applets: BTreeSet<&str> = busybox.applets.iter().map(String::as_str).chain(applets.iter().copied()).collect();
    entries.extend(applets.into_iter().map(|applet| Entry::symlink(&format!("bin/{applet}"), "busybox")));
    entries.push(Entry::char_device("dev/console", 0o600, 5, 1));
    entries.extend(extra);
    Ok(archive::with_directories(entries, MOUNT_POINTS))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::*;
    use crate::artifacts::archive::Content;

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(INIT_SCRIPT)
    }

    #[test]
    fn the_initramfs_holds_the_init_script_busybox_and_the_console() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-guest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("busybox");
        fs::write(&binary, "busybox").unwrap();
        // "init" is an applet too: /bin/init stays a link, /init the script.
        let busybox = Busybox { binary, applets: vec!["init".into(), "ls".into(), "sh".into()], notes: Vec::new() };
        let modules: Vec<PathBuf> = debian_kernel::PANIC_MODULES.iter().map(|m| dir.join(m)).collect();
        for module in &modules {
            fs::write(module, "\x7fELF module").unwrap();
        }
        let programs: Vec<(&str, PathBuf)> = GUEST_PROGRAMS
            .iter()
            .map(|&(name, built)| {
                let path = dir.join(built.replace('/', "-"));
                fs::write(&path, "\x7fELF program").unwrap();
                (name, path)
            })
            .collect();
        let entries = layout(&script(), &busybox, &modules, &programs).unwrap();
        let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        let expected = [
            "bin",
            "bin/busybox",
            "bin/cat",
            "bin/heartbeat",
            "bin/init",
            "bin/insmod",
            "bin/ls",
            "bin/mount",
            "bin/nproc",
            "bin/poweroff",
            "bin/segment",
            "bin/sh",
            "bin/uname",
            "dev",
            "dev/console",
            "init",
            "lib",
            "lib/modules",
            "lib/modules/pvpanic-mmio.ko",
            "lib/modules/pvpanic.ko",
            "proc",
            "sys",
            "tmp",
        ];
        assert_eq!(names, expected);

        // Written out, the archive holds the script as /init, executable, byte for byte.
        let archive = dir.join("guest-initrd.cpio");
        let summary = archive::write_if_changed(&archive, &entries, &mut Vec::new()).unwrap();
        assert!(summary.written);
        let bytes = fs::read(&archive).unwrap();
        let script_bytes = fs::read(script()).unwrap();
        // The header of "init" ends with its name's size (5 with the NUL) and the check field;
        // its mode (0o100755) is 14 bytes into it, and its data follows the name, padded to 116.
        let end = format!("00000005{}init\0", "0".repeat(8));
        let at = bytes.windows(end.len()).position(|window| window == end.as_bytes()).expect("no init entry");
        let header = at - 94;
        assert_eq!(&bytes[header..header + 6], b"070701");
        assert_eq!(&bytes[header + 14..header + 22], b"000081ED");
        let size = format!("{:08X}", script_bytes.len());
        assert_eq!(&bytes[header + 54..header + 62], size.as_bytes());
        assert_eq!(&bytes[header + 116..header + 116 + script_bytes.len()], &script_bytes[..]);
        assert!(matches!(
            entries.iter().find(|entry| entry.name == "dev/console").map(|entry| &entry.content),
            Some(Content::CharDevice { major: 5, minor: 1 })
        ));
        // Unchanged, it is not written again.
        assert!(!archive::write_if_changed(&archive, &entries, &mut Vec::new()).unwrap().written);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_init_script_does_what_the_guest_needs() {
        let text = fs::read_to_string(script()).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "it runs with busybox's sh");
        let needed = ["MANUL-GUEST-INIT-OK", "/proc/cmdline", "manul.action", "poweroff -f", "/proc/sysrq-trigger"];
        let modules = debian_kernel::PANIC_MODULES.map(|m| format!("insmod /{MODULES_DIR}/{m}"));
        for needed in needed.iter().copied().chain(modules.iter().map(String::as_str)) {
            assert!(text.contains(needed), "{INIT_SCRIPT} lacks {needed}");
        }
        let status = Command::new("sh").arg("-n").arg(script()).status().unwrap();
        assert!(status.success(), "{INIT_SCRIPT} is not valid shell");
    }
}
