//! Archives the xtask writes on the host (the LWK's initrd, the Linux guest's initramfs): their
//! entries, built from host files, written as cpio "newc" only when what goes into them changed
//! (a manifest of the entries is recorded next to the archive), or packed from a directory.

use std::collections::BTreeMap;
use std::env;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail, ensure};

use crate::artifacts::cpio::{self, Attributes, CpioWriter};

pub const EXECUTABLE: u32 = 0o755;
pub const READABLE: u32 = 0o644;

#[derive(Debug)]
pub enum Content {
    Directory,
    /// A regular file with the contents of this host file.
    File(PathBuf),
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// An entry of an archive to write.
#[derive(Debug)]
pub struct Entry {
    /// The path in the archive (relative: `bin/sh`).
    pub name: String,
    pub permissions: u32,
    pub mtime: u32,
    pub content: Content,
}

impl Entry {
    /// A regular file with the contents and modification time of `source`.
    pub fn file(name: &str, source: &Path, permissions: u32) -> Result<Self> {
        let mtime = mtime(&fs::metadata(source).with_context(|| format!("cannot read {}", source.display()))?);
        Ok(Self { name: name.to_owned(), permissions, mtime, content: Content::File(source.to_owned()) })
    }

    pub fn symlink(name: &str, target: &str) -> Self {
        Self { name: name.to_owned(), permissions: 0o777, mtime: 0, content: Content::Symlink(target.to_owned()) }
    }

    pub fn char_device(name: &str, permissions: u32, major: u32, minor: u32) -> Self {
        Self { name: name.to_owned(), permissions, mtime: 0, content: Content::CharDevice { major, minor } }
    }

    fn directory(name: &str) -> Self {
        Self { name: name.to_owned(), permissions: EXECUTABLE, mtime: 0, content: Content::Directory }
    }
}

/// A written (or already current) archive.
#[derive(Debug)]
pub struct Summary {
    pub path: PathBuf,
    pub entries: usize,
    pub bytes: u64,
    /// False when the archive was already up to date.
    pub written: bool,
    /// What was left out and why, for the user.
    pub notes: Vec<String>,
}

/// Writes `entries` as the archive at `path` unless the manifest recorded next to it
/// (`NAME.manifest`) shows it holds them already.
pub fn write_if_changed(path: &Path, entries: &[Entry], log: &mut dyn Write) -> Result<Summary> {
    let manifest = manifest(entries)?;
    let manifest_path = path.with_extension("manifest");
    let current = path.is_file() && fs::read_to_string(&manifest_path).is_ok_and(|recorded| recorded == manifest);
    let written = !current;
    if written {
        write_archive(path, entries)?;
        fs::write(&manifest_path, &manifest).with_context(|| format!("cannot write {}", manifest_path.display()))?;
        writeln!(log, "wrote {} ({} entries)", path.display(), entries.len())?;
    } else {
        writeln!(log, "{} is up to date ({} entries)", path.display(), entries.len())?;
    }
    let bytes = fs::metadata(path).with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    Ok(Summary { path: path.to_owned(), entries: entries.len(), bytes, written, notes: Vec::new() })
}

/// Packs `dir` (recursively, keeping symbolic links as links, permissions and modification
/// times; every entry belongs to root) into the archive at `archive`.
pub fn pack_directory(dir: &Path, archive: &Path) -> Result<Summary> {
    ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let mut entries = Vec::new();
    walk(dir, "", &mut entries)?;
    write_archive(archive, &entries)?;
    let bytes = fs::metadata(archive).with_context(|| format!("cannot read the size of {}", archive.display()))?.len();
    Ok(Summary { path: archive.to_owned(), entries: entries.len(), bytes, written: true, notes: Vec::new() })
}

/// `entries` (no directories among them) sorted by name, with the directories `empty` and every
/// directory they are in, each before its contents.
pub fn with_directories(entries: Vec<Entry>, empty: &[&str]) -> Vec<Entry> {
    let mut directories: BTreeMap<String, Entry> = BTreeMap::new();
    let paths = entries.iter().filter_map(|entry| Some(entry.name.rsplit_once('/')?.0)).chain(empty.iter().copied());
    for path in paths {
        let mut rest = Some(path);
        while let Some(directory) = rest {
            directories.entry(directory.to_owned()).or_insert_with(|| Entry::directory(directory));
            rest = directory.rsplit_once('/').map(|(parent, _)| parent);
        }
    }
    let mut entries: Vec<Entry> = directories.into_values().chain(entries).collect();
    // A name sorts after its directory's, which is a prefix of it.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// A text describing everything the archive is made of: when it equals the one recorded at the
/// last write, the archive is current. It names xtask's own binary, so a changed writer
/// rewrites the archive too.
pub fn manifest(entries: &[Entry]) -> Result<String> {
    let xtask = env::current_exe().ok().and_then(|exe| fs::metadata(exe).ok()).map(|metadata| describe_file(&metadata));
    let mut text = format!("xtask {}\n", xtask.unwrap_or_default());
    for entry in entries {
        let line = match &entry.content {
            Content::Directory => format!("dir {} {:o}", entry.name, entry.permissions),
            Content::Symlink(target) => format!("link {} {target}", entry.name),
            Content::CharDevice { major, minor } => {
                format!("chr {} {:o} {major}:{minor}", entry.name, entry.permissions)
            }
            Content::File(source) => {
                let metadata = fs::metadata(source).with_context(|| format!("cannot read {}", source.display()))?;
                format!("file {} {:o} {} {}", entry.name, entry.permissions, describe_file(&metadata), source.display())
            }
        };
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// A file's size and modification time to the nanosecond.
fn describe_file(metadata: &fs::Metadata) -> String {
    format!("{} {}.{:09}", metadata.len(), metadata.mtime(), metadata.mtime_nsec())
}

/// Appends the entries of `dir`, named under `prefix`, sorted by name, each directory followed
/// by its contents.
fn walk(dir: &Path, prefix: &str, entries: &mut Vec<Entry>) -> Result<()> {
    let mut children = Vec::new();
    for child in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        children.push(child.with_context(|| format!("cannot list {}", dir.display()))?.path());
    }
    children.sort();
    for path in children {
        let Some(file_name) = path.file_name().and_then(|name| name.to_str()) else {
            bail!("{}: the initrd takes only UTF-8 file names", path.display());
        };
        let name = if prefix.is_empty() { file_name.to_owned() } else { format!("{prefix}/{file_name}") };
        let metadata = fs::symlink_metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let permissions = metadata.permissions().mode() & cpio::PERMISSION_BITS;
        let mtime = mtime(&metadata);
        let file_type = metadata.file_type();
        if file_type.is_dir() {
            entries.push(Entry { name: name.clone(), permissions, mtime, content: Content::Directory });
            walk(&path, &name, entries)?;
        } else if file_type.is_file() {
            entries.push(Entry { name, permissions, mtime, content: Content::File(path) });
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).with_context(|| format!("cannot read the link {}", path.display()))?;
            let Some(target) = target.to_str() else {
                bail!("{}: the initrd takes only UTF-8 link targets", path.display());
            };
            entries.push(Entry { name, permissions, mtime, content: Content::Symlink(target.to_owned()) });
        } else {
            bail!(
                "{}: only directories, regular files and symbolic links can go into the initrd, not {file_type:?}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Seconds since the epoch, as cpio stores them (0 before 1970, saturating in 2106).
fn mtime(metadata: &fs::Metadata) -> u32 {
    metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |age| u32::try_from(age.as_secs()).unwrap_or(u32::MAX))
}

/// Writes `entries` to a temporary file renamed to `path` once complete.
fn write_archive(path: &Path, entries: &[Entry]) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let partial = path.with_extension("partial");
    let file = File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = CpioWriter::new(BufWriter::new(file));
    for entry in entries {
        let attributes = Attributes { permissions: entry.permissions, mtime: entry.mtime };
        match &entry.content {
            Content::Directory => writer.directory(&entry.name, attributes)?,
            Content::Symlink(target) => writer.symlink(&entry.name, target, entry.mtime)?,
            Content::CharDevice { major, minor } => writer.char_device(&entry.name, attributes, *major, *minor)?,
            Content::File(source) => {
                let mut file = File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
                let size = file.metadata().with_context(|| format!("cannot read {}", source.display()))?.len();
                writer.file(&entry.name, attributes, size, &mut file)?;
            }
        }
    }
    writer
        .finish()?
        .into_inner()
        .map_err(|error| error.into_error())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    fs::rename(&partial, path).with_context(|| format!("cannot rename {} to {}", partial.display(), path.display()))
}

/// The entries' names, in order (for tests).
#[cfg(test)]
pub fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|entry| entry.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::test_support::temp_dir;

    #[test]
    fn directories_come_from_the_entries_and_the_empty_ones() {
        let entries = vec![
            Entry::symlink("a/b/link", "x"),
            Entry::char_device("dev/console", 0o600, 5, 1),
            Entry::symlink("top", "a"),
        ];
        let entries = with_directories(entries, &["proc", "a/b/c/d", "dev"]);
        assert_eq!(names(&entries), ["a", "a/b", "a/b/c", "a/b/c/d", "a/b/link", "dev", "dev/console", "proc", "top"]);
        assert!(
            entries
                .iter()
                .filter(|entry| matches!(entry.content, Content::Directory))
                .all(|entry| entry.permissions == EXECUTABLE && entry.mtime == 0)
        );
        let manifest = manifest(&entries).unwrap();
        assert!(manifest.contains("\nchr dev/console 600 5:1\n"), "{manifest}");
        assert!(manifest.contains("\ndir a/b/c/d 755\n"), "{manifest}");
    }

    #[test]
    fn a_directory_is_packed_with_links_and_modes() {
        let dir = temp_dir("pack");
        let tree = dir.join("tree");
        fs::create_dir_all(tree.join("bin")).unwrap();
        fs::create_dir_all(tree.join("empty")).unwrap();
        fs::write(tree.join("bin").join("app"), "binary").unwrap();
        fs::set_permissions(tree.join("bin").join("app"), fs::Permissions::from_mode(0o4750)).unwrap();
        fs::write(tree.join("readme"), "text").unwrap();
        fs::set_permissions(tree.join("readme"), fs::Permissions::from_mode(0o600)).unwrap();
        symlink("bin/app", tree.join("app")).unwrap();
        symlink("/nowhere", tree.join("dangling")).unwrap();

        let archive = dir.join("out").join("user.cpio");
        let summary = pack_directory(&tree, &archive).unwrap();
        assert_eq!(summary.entries, 6);
        assert!(!dir.join("out").join("user.partial").exists());
        let bytes = fs::read(&archive).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);

        let mut entries = Vec::new();
        walk(&tree, "", &mut entries).unwrap();
        assert_eq!(names(&entries), ["app", "bin", "bin/app", "dangling", "empty", "readme"]);
        let permissions: Vec<u32> = entries.iter().map(|entry| entry.permissions).collect();
        assert_eq!(permissions[2], 0o4750);
        assert_eq!(permissions[5], 0o600);
        assert!(matches!(&entries[0].content, Content::Symlink(target) if target == "bin/app"));
        assert!(matches!(&entries[3].content, Content::Symlink(target) if target == "/nowhere"));
        // The archive's headers are in the same order: each ends with the name's size, the
        // check field and the name.
        let text = String::from_utf8_lossy(&bytes);
        let mut position = 0;
        for name in ["app", "bin", "bin/app", "dangling", "empty", "readme", "TRAILER!!!"] {
            let header_end = format!("{:08X}00000000{name}\0", name.len() + 1);
            position += text[position..].find(&header_end).unwrap_or_else(|| panic!("{name:?} missing or misplaced"));
        }
        assert!(text.contains("000089E8"), "mode 0o104750 of bin/app");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn packing_refuses_what_cpio_cannot_hold() {
        let dir = temp_dir("refuse");
        let error = pack_directory(&dir.join("missing"), &dir.join("a.cpio")).unwrap_err();
        assert!(error.to_string().ends_with("missing is not a directory"), "{error}");
        let socket_dir = dir.join("tree");
        fs::create_dir_all(&socket_dir).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(socket_dir.join("socket")).unwrap();
        let error = pack_directory(&socket_dir, &dir.join("a.cpio")).unwrap_err();
        assert!(error.to_string().contains("only directories, regular files and symbolic links"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
