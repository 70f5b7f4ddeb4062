//! The initrd QEMU hands the kernel with `-initrd`: a cpio archive of busybox, the test
//! programs of `tests/jobs/`, deliberately bad files, known data and a Linux guest, rewritten
//! only when what goes into it changed. `run --initrd-dir` packs a directory of the user's
//! instead.
//!
//! Layout of `target/manul/initrd.cpio`:
//! - `bin/busybox`, and `bin/APPLET -> busybox` for each of its applets;
//! - `bin/hello`, `bin/hello-pie`, `bin/hello-musl`, `bin/null_deref`, ... (the test programs);
//! - `guests/hello.elf`, `guests/triple_fault.elf`, ...: the VMM's test guests (`tests/guests/`);
//! - `bad/corrupt-elf`, `bad/dynamic`, `bad/elf32`: files the kernel must refuse to run;
//! - `data/`: the files of `tests/jobs/data/` (`known.txt`, whose checksum `tests/jobs/README.md`
//!   records); `scripts/`: the shell scripts of `tests/jobs/scripts/`, executable;
//! - `etc/manul/tests/`: the node manifests of `tests/manifests/`, which scenarios choose with
//!   `manifest=/etc/manul/tests/NAME.conf` (the default `/etc/manul/node.conf` is absent, so
//!   other scenarios compose only their command line);
//! - `boot/vmlinux`, `boot/vmlinuz`, `boot/guest-initrd.cpio`: Debian's Linux kernel as a PVH ELF
//!   and as a bzImage, and the guest's initramfs (see [`linux_guest`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use crate::artifacts::archive::{EXECUTABLE, Entry, READABLE, Summary, with_directories, write_if_changed};
use crate::artifacts::busybox;
use crate::artifacts::linux_guest;
use crate::artifacts::test_programs;
use crate::host::workspace::Workspace;

/// Directories of `tests/jobs/` copied into the initrd as they are: source, initrd directory,
/// permissions of the files (data files readable, scripts executable).
const COPIED_DIRECTORIES: [(&str, &str, u32); 3] = [
    ("tests/jobs/data", "data", READABLE),
    ("tests/jobs/scripts", "scripts", EXECUTABLE),
    ("tests/manifests", "etc/manul/tests", READABLE),
];
/// Builds the test programs, fetches busybox, makes the Linux guest and writes
/// `target/manul/initrd.cpio` if its contents changed; progress goes to `log`.
pub fn build(workspace: &Workspace, log: &mut dyn Write) -> Result<Summary> {
    let programs = test_programs::build(workspace, log)?;
    let busybox = busybox::fetch(workspace, log)?;
    let mut guest_programs = Vec::new();
    for (in_guest, built) in linux_guest::GUEST_PROGRAMS {
        let path = programs.files.iter().find(|(name, _)| name == built).map(|(_, path)| path.clone());
        guest_programs.push((in_guest, path.with_context(|| format!("the test programs lack {built}"))?));
    }
    let guest = linux_guest::build(workspace, &busybox, &guest_programs, log).context("cannot make the Linux guest")?;
    let mut copied = Vec::new();
    for (source, target, permissions) in COPIED_DIRECTORIES {
        copied.extend(files_of(&workspace.root().join(source), target, permissions)?);
    }
    copied.extend(guest.files.iter().map(|(name, source)| (name.clone(), source.clone(), READABLE)));
    let entries = layout(&programs.files, &busybox, &copied)?;
    let summary = write_if_changed(&workspace.initrd(), &entries, log)?;
    let notes = programs.notes.into_iter().chain(busybox.notes).chain(guest.notes).collect();
    Ok(Summary { notes, ..summary })
}

/// The regular files directly in `dir` (none if it does not exist), as (initrd name, source,
/// permissions), sorted by name.
fn files_of(dir: &Path, target: &str, permissions: u32) -> Result<Vec<(String, PathBuf, u32)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name =
            entry.file_name().into_string().map_err(|n| anyhow::anyhow!("{n:?} in {} is not UTF-8", dir.display()))?;
        if entry.file_type().with_context(|| format!("cannot read {name}"))?.is_file() {
            out.push((format!("{target}/{name}"), entry.path(), permissions));
        }
    }
    out.sort();
    Ok(out)
}

/// The entries of the initrd, every directory before its contents.
fn layout(
    programs: &[(String, PathBuf)],
    busybox: &busybox::Busybox,
    copied: &[(String, PathBuf, u32)],
) -> Result<Vec<Entry>> {
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut add_file = |name: &str, source: &Path, permissions: u32| -> Result<()> {
        let entry = Entry::file(name, source, permissions)?;
        ensure!(files.insert(name.to_owned(), entry).is_none(), "{name} would be in the initrd twice");
        Ok(())
    };
    add_file("bin/busybox", &busybox.binary, EXECUTABLE)?;
    for (name, binary) in programs {
        add_file(name, binary, EXECUTABLE)?;
    }
    for (name, source, permissions) in copied {
        add_file(name, source, *permissions)?;
    }
    // A test program of the same name wins over an applet.
    for applet in &busybox.applets {
        let name = format!("bin/{applet}");
        files.entry(name.clone()).or_insert_with(|| Entry::symlink(&name, "busybox"));
    }
    Ok(with_directories(files.into_values().collect(), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::archive::{Content, manifest, names};
    use crate::test_support::temp_dir;

    #[test]
    fn the_layout_puts_directories_first_and_programs_over_applets() {
        let dir = temp_dir("layout");
        let file = |name: &str| {
            let path = dir.join(name);
            fs::write(&path, name).unwrap();
            path
        };
        let busybox = busybox::Busybox {
            binary: file("busybox"),
            applets: vec!["[".into(), "hello".into(), "sh".into()],
            notes: Vec::new(),
        };
        let programs = [("bin/hello".to_owned(), file("hello")), ("bad/corrupt-elf".to_owned(), file("corrupt"))];
        let copied = [("data/known.txt".to_owned(), file("known.txt"), READABLE)];
        let entries = layout(&programs, &busybox, &copied).unwrap();
        assert_eq!(
            names(&entries),
            ["bad", "bad/corrupt-elf", "bin", "bin/[", "bin/busybox", "bin/hello", "bin/sh", "data", "data/known.txt"]
        );
        let hello = &entries[5];
        assert!(matches!(&hello.content, Content::File(path) if path == &dir.join("hello")));
        assert!(matches!(&entries[6].content, Content::Symlink(target) if target == "busybox"));
        assert_eq!((entries[2].permissions, entries[4].permissions, entries[8].permissions), (0o755, 0o755, 0o644));

        let manifest = manifest(&entries).unwrap();
        assert!(manifest.starts_with("xtask "), "{manifest}");
        assert!(manifest.contains("\ndir bad 755\n"), "{manifest}");
        assert!(manifest.contains("\nlink bin/sh busybox\n"), "{manifest}");
        assert!(manifest.contains("\nfile data/known.txt 644 9 "), "{manifest}");

        let twice = [("bin/busybox".to_owned(), file("hello"))];
        let error = layout(&twice, &busybox, &copied).unwrap_err();
        assert_eq!(error.to_string(), "bin/busybox would be in the initrd twice");
        fs::remove_dir_all(&dir).unwrap();
    }
}
