//! The node's file tree: one file system in memory, built at boot from the initrd and shared by
//! every job (the kernel keeps it behind a lock; nothing here locks).
//!
//! What it owns:
//! - the nodes: directories, regular files, symbolic links, and the kernel's device and synthetic
//!   files, each named by an [`Ino`] (an index into a table whose free slots are reused);
//! - the read-only part: the built-in `/dev`, `/proc` and `/sys` nodes and everything loaded
//!   from the initrd ([`FileSystem::load_initrd`]), whose files borrow the archive's bytes;
//! - the writable part: `/tmp` and everything created under it, with files held in owned memory;
//! - path resolution ([`FileSystem::resolve`], [`FileSystem::resolve_parent`]) with Linux's
//!   rules and error numbers: `.`, `..`, symbolic links (at most [`MAX_SYMLINK_HOPS`]), trailing
//!   slashes, length limits.
//!
//! Everything runs as root: permission bits, owners and times are kept and reported but never
//! checked. Changes outside the writable part fail with `EROFS`. The file system knows what a
//! device or synthetic file is but not its contents: the kernel produces those (and the target
//! of the magic link `/proc/self/exe`, passed in [`Lookup::exe`]).
//!
//! Node lifetime: a node lives while it has a name (its link count, 0 or 1 since there are no
//! hard links) or while the kernel holds it ([`FileSystem::hold`] for each open file, working
//! directory or mapping, [`FileSystem::release`] when that goes). An unlinked node that is still
//! held stays readable and writable through its `Ino`, and is freed by the last release.
//! Every method taking an `Ino` expects a live node; a stale one is a kernel bug and panics.

use crate::cpio::{
    self, CpioError, CpioErrorKind, Entry, EntryKind, MAX_COMPONENT_LEN, MAX_PATH_LEN, S_IFCHR, S_IFDIR, S_IFLNK,
    S_IFREG,
};
use crate::errno::Errno;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

/// A node's number: an index into the file system's node table. Slots of freed nodes are reused.
pub type Ino = usize;

/// The root directory.
pub const ROOT: Ino = 0;

/// The largest size of a file in the writable part; writing or truncating beyond it fails with
/// `EFBIG` (a write that would cross it is cut short, as Linux does at a file size limit).
/// Growing a file takes memory from the kernel heap; when that fails the error is `ENOSPC`.
pub const MAX_FILE_SIZE: u64 = 1 << 30;

/// How many symbolic links one resolution may follow before failing with `ELOOP` (Linux's).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File,
    Symlink,
    /// A character device the kernel implements.
    Device(DeviceKind),
    /// A file whose contents the kernel generates when it is opened.
    Synthetic(SyntheticKind),
}

/// The character devices of `/dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Null,
    Zero,
    Urandom,
    Console,
}

/// The synthetic files of `/proc` and `/sys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntheticKind {
    /// `/proc/cpuinfo`
    CpuInfo,
    /// `/proc/meminfo`
    MemInfo,
    /// `/sys/devices/system/cpu/online`
    CpuOnline,
    /// `/proc/self/maps`
    SelfMaps,
    /// `/proc/self/exe`: a symbolic link to the running program, [`Lookup::exe`].
    SelfExe,
}

/// Who is resolving a path: the working directory and the running program's path (the target of
/// `/proc/self/exe`, normally absolute).
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    pub cwd: Ino,
    pub exe: &'a str,
}

/// A node's attributes, with Linux's values (for `stat` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The user-visible inode number, [`st_ino`] of the node.
    pub ino: u64,
    /// File type bits (`S_IFMT`) and permission bits.
    pub mode: u32,
    /// 0 for an unlinked node; a directory counts `.`, its name and its subdirectories' `..`.
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of a file, or of a symbolic link's target; 0 for the others.
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: u64,
    /// Device number of a device node, encoded like glibc's `makedev`; 0 for the others.
    pub rdev: u64,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub ino: Ino,
    pub kind: NodeKind,
    /// The cursor of the entry after this one (what `getdents64` stores in `d_off`).
    pub next: u64,
}

/// The inode number user space sees for a node (never 0, which some programs take for a deleted
/// directory entry).
pub const fn st_ino(ino: Ino) -> u64 {
    ino as u64 + 1
}

/// The file system. `'a` is the lifetime of the initrd archive, whose bytes its files borrow
/// (`'static` in the kernel, which keeps the archive for ever).
#[derive(Clone)]
pub struct FileSystem<'a> {
    nodes: Vec<Option<Node<'a>>>,
    free: Vec<Ino>,
    /// The cursor the next directory entry gets (cursors 0 and 1 are `.` and `..`).
    next_cookie: u64,
    clock: fn() -> u64,
}

#[derive(Clone)]
struct Node<'a> {
    body: Body<'a>,
    /// Permission bits only (the type is in `body`).
    mode: u32,
    uid: u32,
    gid: u32,
    /// 1 while the node has a name, 0 once unlinked (the root always has 1).
    nlink: u32,
    mtime: u64,
    /// The directory holding the node's name (the root is its own parent). Meaningless once
    /// unlinked: that directory may be gone.
    parent: Ino,
    name: String,
    /// The node's position in its directory's listing.
    cookie: u64,
    /// How many references the kernel holds ([`FileSystem::hold`]).
    holds: u64,
    /// Created by [`FileSystem::new`]: the initrd may not replace it.
    builtin: bool,
}

#[derive(Clone)]
enum Body<'a> {
    Directory(Dir),
    File(FileData<'a>),
    Symlink(String),
    Device(DeviceKind),
    Synthetic(SyntheticKind),
}

#[derive(Clone)]
struct Dir {
    children: BTreeMap<String, Ino>,
    /// The children by cookie: the listing order, which unlinking does not shift.
    by_cookie: BTreeMap<u64, Ino>,
    /// In the writable part: entries may be added, removed and renamed.
    writable: bool,
}

/// A file's contents: borrowed from the initrd (read-only), or owned (in the writable part).
#[derive(Clone)]
enum FileData<'a> {
    Static(&'a [u8]),
    Owned(Vec<u8>),
}

const FIRST_COOKIE: u64 = 2;

const fn directory<'a>(writable: bool) -> Body<'a> {
    Body::Directory(Dir { children: BTreeMap::new(), by_cookie: BTreeMap::new(), writable })
}

/// The nodes [`FileSystem::new`] creates besides the root, parents first.
const BUILT_IN: [(&str, Body<'static>, u32); 17] = [
    ("tmp", directory(true), 0o1777),
    ("dev", directory(false), 0o755),
    ("dev/null", Body::Device(DeviceKind::Null), 0o666),
    ("dev/zero", Body::Device(DeviceKind::Zero), 0o666),
    ("dev/urandom", Body::Device(DeviceKind::Urandom), 0o666),
    ("dev/console", Body::Device(DeviceKind::Console), 0o600),
    ("proc", directory(false), 0o555),
    ("proc/cpuinfo", Body::Synthetic(SyntheticKind::CpuInfo), 0o444),
    ("proc/meminfo", Body::Synthetic(SyntheticKind::MemInfo), 0o444),
    ("proc/self", directory(false), 0o555),
    ("proc/self/exe", Body::Synthetic(SyntheticKind::SelfExe), 0o777),
    ("proc/self/maps", Body::Synthetic(SyntheticKind::SelfMaps), 0o444),
    ("sys", directory(false), 0o555),
    ("sys/devices", directory(false), 0o755),
    ("sys/devices/system", directory(false), 0o755),
    ("sys/devices/system/cpu", directory(false), 0o755),
    ("sys/devices/system/cpu/online", Body::Synthetic(SyntheticKind::CpuOnline), 0o444),
];

impl DeviceKind {
    /// `(major, minor)`, as Linux numbers these devices.
    fn numbers(self) -> (u64, u64) {
        match self {
            DeviceKind::Null => (1, 3),
            DeviceKind::Zero => (1, 5),
            DeviceKind::Urandom => (1, 9),
            DeviceKind::Console => (5, 1),
        }
    }
}

/// glibc's `makedev`.
fn makedev((major, minor): (u64, u64)) -> u64 {
    ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
}

impl FileData<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            FileData::Static(bytes) => bytes,
            FileData::Owned(bytes) => bytes,
        }
    }
}

impl<'a> Body<'a> {
    fn kind(&self) -> NodeKind {
        match self {
            Body::Directory(_) => NodeKind::Directory,
            Body::File(_) => NodeKind::File,
            Body::Symlink(_) => NodeKind::Symlink,
            Body::Device(device) => NodeKind::Device(*device),
            Body::Synthetic(synthetic) => NodeKind::Synthetic(*synthetic),
        }
    }

    /// The error for reading or writing something that is not a regular file.
    fn not_a_file(&self) -> Errno {
        match self {
            Body::Directory(_) => Errno::EISDIR,
            _ => Errno::EINVAL,
        }
    }

    fn file(&self) -> Result<&[u8], Errno> {
        match self {
            Body::File(data) => Ok(data.bytes()),
            other => Err(other.not_a_file()),
        }
    }

    /// A file's bytes for changing them: only files of the writable part have owned bytes.
    fn file_mut(&mut self) -> Result<&mut Vec<u8>, Errno> {
        match self {
            Body::File(FileData::Owned(bytes)) => Ok(bytes),
            Body::File(FileData::Static(_)) => Err(Errno::EROFS),
            other => Err(other.not_a_file()),
        }
    }
}

impl<'a> Node<'a> {
    /// An unlinked node owned by root.
    fn new(body: Body<'a>, mode: u32, mtime: u64) -> Self {
        Node {
            body,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            nlink: 0,
            mtime,
            parent: ROOT,
            name: String::new(),
            cookie: 0,
            holds: 0,
            builtin: false,
        }
    }
}

/// Checks a whole path's length (and that there is one).
fn check_path(path: &str) -> Result<(), Errno> {
    match path.len() {
        0 => Err(Errno::ENOENT),
        len if len > MAX_PATH_LEN => Err(Errno::ENAMETOOLONG),
        _ => Ok(()),
    }
}

/// Checks a name given for a directory entry to create, remove or rename.
fn check_name(name: &str) -> Result<(), Errno> {
    match name {
        "" => Err(Errno::ENOENT),
        "." | ".." => Err(Errno::EINVAL),
        _ if name.contains('/') => Err(Errno::EINVAL),
        _ if name.len() > MAX_COMPONENT_LEN => Err(Errno::ENAMETOOLONG),
        _ => Ok(()),
    }
}

/// Pushes `path`'s components on the stack of components to walk (the first on top), a trailing
/// slash as a final `.` (so that the last node must be a directory); returns the directory the
/// walk starts from: the root for an absolute path, else `base`.
fn push_components<'p>(pending: &mut Vec<&'p str>, path: &'p str, base: Ino) -> Ino {
    if path.ends_with('/') {
        pending.push(".");
    }
    pending.extend(path.rsplit('/').filter(|component| !component.is_empty()));
    if path.starts_with('/') { ROOT } else { base }
}

/// Where a write of `len` bytes at `offset` lands: cut short at [`MAX_FILE_SIZE`], `EFBIG` if it
/// starts there or beyond.
fn write_range(offset: u64, len: usize) -> Result<Range<usize>, Errno> {
    let room = MAX_FILE_SIZE.checked_sub(offset).filter(|&room| room > 0).ok_or(Errno::EFBIG)?;
    let len = len.min(usize::try_from(room).unwrap_or(usize::MAX));
    let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
    let end = start.checked_add(len).ok_or(Errno::EFBIG)?;
    Ok(start..end)
}

/// Grows `bytes` to `len` with zeros (no-op if already that long).
fn grow(bytes: &mut Vec<u8>, len: usize) -> Result<(), Errno> {
    if let Some(more) = len.checked_sub(bytes.len())
        && more > 0
    {
        bytes.try_reserve(more).map_err(|_| Errno::ENOSPC)?;
        bytes.resize(len, 0);
    }
    Ok(())
}

impl Default for FileSystem<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> FileSystem<'a> {
    /// The built-in tree: `/`, `/tmp` (mode 1777, the writable part), `/dev/{null,zero,urandom,
    /// console}`, `/proc/{cpuinfo,meminfo,self/exe,self/maps}`, `/sys/devices/system/cpu/online`.
    /// Times are 0 until [`FileSystem::set_clock`].
    pub fn new() -> Self {
        let root = Node { nlink: 1, builtin: true, ..Node::new(directory(false), 0o755, 0) };
        let mut fs =
            FileSystem { nodes: Vec::from([Some(root)]), free: Vec::new(), next_cookie: FIRST_COOKIE, clock: || 0 };
        let at = Lookup { cwd: ROOT, exe: "" };
        for (path, body, mode) in BUILT_IN {
            let (parent, name) = match path.rsplit_once('/') {
                Some((dir, name)) => (fs.resolve(&at, dir, false), name),
                None => (Ok(ROOT), path),
            };
            let node = Node { builtin: true, ..Node::new(body, mode, 0) };
            parent.and_then(|parent| fs.attach(parent, name, node)).expect("BUILT_IN lists parents first");
        }
        fs
    }

    /// Sets the clock that dates changes (seconds since the Unix epoch).
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = clock;
    }

    /// Adds the initrd's entries (see [`cpio::parse`]) and returns how many there were. Missing
    /// parent directories are created (mode 755); a later entry replaces an earlier one of the
    /// same path, except that a directory entry merges with an existing directory (taking its
    /// attributes, unless that directory is built in). Entries may add to the built-in
    /// directories but not replace a built-in node, replace a directory that is not empty, or go
    /// through a non-directory. Entries under `/tmp` become writable copies; all others stay
    /// read-only and borrow `archive`. Hard-linked names become separate nodes sharing the same
    /// bytes. On any error nothing is added.
    pub fn load_initrd(&mut self, archive: &'a [u8]) -> Result<usize, CpioError> {
        let entries = cpio::parse(archive)?;
        let mut staged = self.clone();
        for entry in &entries {
            staged.add_entry(entry).map_err(|kind| CpioError {
                offset: entry.offset,
                name: Some(entry.name.to_string()),
                kind,
            })?;
        }
        *self = staged;
        Ok(entries.len())
    }

    fn add_entry(&mut self, entry: &Entry<'a>) -> Result<(), CpioErrorKind> {
        if entry.name.is_empty() {
            return Ok(()); // The root: built in, keeps its attributes.
        }
        let (parents, last) = entry.name.rsplit_once('/').unwrap_or(("", entry.name));
        let not_dir = |_| CpioErrorKind::ParentNotDirectory;
        let mut dir = ROOT;
        for component in parents.split('/').filter(|c| !c.is_empty()) {
            let existing = self.dir(dir).map_err(not_dir)?.children.get(component).copied();
            dir = match existing {
                Some(ino) if self.node(ino).body.kind() == NodeKind::Directory => ino,
                Some(_) => return Err(CpioErrorKind::ParentNotDirectory),
                None => {
                    let writable = self.dir(dir).map_err(not_dir)?.writable;
                    let node = Node::new(directory(writable), 0o755, self.now());
                    self.attach(dir, component, node).map_err(not_dir)?
                }
            };
        }
        let writable = self.dir(dir).map_err(not_dir)?.writable;
        let body = match entry.kind {
            EntryKind::Directory => directory(writable),
            EntryKind::File if writable => Body::File(FileData::Owned(entry.data.to_vec())),
            EntryKind::File => Body::File(FileData::Static(entry.data)),
            EntryKind::Symlink(target) => Body::Symlink(target.to_string()),
        };
        if let Some(old) = self.dir(dir).map_err(not_dir)?.children.get(last).copied() {
            let old_node = self.node_mut(old);
            match (&old_node.body, entry.kind) {
                (Body::Directory(_), EntryKind::Directory) => {
                    if !old_node.builtin {
                        old_node.mode = entry.mode & 0o7777;
                        (old_node.uid, old_node.gid, old_node.mtime) = (entry.uid, entry.gid, entry.mtime);
                    }
                    return Ok(());
                }
                _ if old_node.builtin => return Err(CpioErrorKind::ReplacesBuiltin),
                (Body::Directory(d), _) if !d.children.is_empty() => {
                    return Err(CpioErrorKind::ReplacesNonEmptyDirectory);
                }
                _ => {
                    self.unlink_entry(dir, last).map_err(not_dir)?;
                    self.drop_link(old);
                }
            }
        }
        let node = Node { uid: entry.uid, gid: entry.gid, ..Node::new(body, entry.mode, entry.mtime) };
        self.attach(dir, last, node).map_err(not_dir)?;
        Ok(())
    }

    /// Resolves `path` (absolute, or relative to `at.cwd`) to a node. Symbolic links are followed
    /// in every component, and in the last one if `follow_last` or if the path ends with a slash;
    /// a relative target is relative to the link's directory. Errors as Linux: `ENOENT` (missing
    /// component, empty path or link target), `ENOTDIR` (a non-directory followed by a component
    /// or a trailing slash), `ENAMETOOLONG` (path over 4095 bytes or a component over 255),
    /// `ELOOP` (more than [`MAX_SYMLINK_HOPS`] links).
    pub fn resolve(&self, at: &Lookup, path: &str, follow_last: bool) -> Result<Ino, Errno> {
        check_path(path)?;
        let mut pending = Vec::new();
        let mut current = push_components(&mut pending, path, at.cwd);
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            let dir = self.dir(current)?;
            let next = match component {
                "." => current,
                // An unlinked directory's parent may be gone.
                ".." if self.node(current).nlink == 0 => return Err(Errno::ENOENT),
                ".." => self.node(current).parent,
                name if name.len() > MAX_COMPONENT_LEN => return Err(Errno::ENAMETOOLONG),
                name => *dir.children.get(name).ok_or(Errno::ENOENT)?,
            };
            match self.link_target(next, at.exe) {
                Some(target) if follow_last || !pending.is_empty() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::ELOOP);
                    }
                    check_path(target)?;
                    current = push_components(&mut pending, target, current);
                }
                _ => current = next,
            }
        }
        Ok(current)
    }

    /// For calls that create or remove a name: the directory that holds (or would hold) the last
    /// component of `path`, and that component. Trailing slashes are dropped (callers for which
    /// they matter check `path.ends_with('/')`). `/` itself and a last component `.` or `..` are
    /// `EEXIST`, Linux's answer for creating them (`rmdir` and `unlink` answer differently there:
    /// callers wanting that exactness check the component first).
    pub fn resolve_parent<'p>(&self, at: &Lookup, path: &'p str) -> Result<(Ino, &'p str), Errno> {
        check_path(path)?;
        let trimmed = path.trim_end_matches('/');
        let (dir, name) = match trimmed.rfind('/') {
            // `trimmed[..=slash]` ends with a slash: it resolves to a directory or fails.
            Some(slash) => (self.resolve(at, &trimmed[..=slash], true)?, &trimmed[slash + 1..]),
            None => (at.cwd, trimmed),
        };
        match name {
            "" | "." | ".." => Err(Errno::EEXIST),
            _ if name.len() > MAX_COMPONENT_LEN => Err(Errno::ENAMETOOLONG),
            _ => self.dir(dir).map(|_| (dir, name)),
        }
    }

    /// Creates an empty regular file `name` in `dir` with permission bits `mode`.
    pub fn create(&mut self, dir: Ino, name: &str, mode: u32) -> Result<Ino, Errno> {
        self.new_entry(dir, name, Body::File(FileData::Owned(Vec::new())), mode)
    }

    /// Creates an empty directory `name` in `dir`.
    pub fn mkdir(&mut self, dir: Ino, name: &str, mode: u32) -> Result<Ino, Errno> {
        self.new_entry(dir, name, directory(true), mode)
    }

    /// Creates a symbolic link `name` in `dir` pointing to `target` (not checked: it may dangle).
    pub fn symlink(&mut self, dir: Ino, name: &str, target: &str) -> Result<Ino, Errno> {
        check_path(target)?;
        self.new_entry(dir, name, Body::Symlink(target.to_string()), 0o777)
    }

    /// The checks and errors shared by the calls that create a name: `ENOTDIR`, `EEXIST` (before
    /// `EROFS`, as Linux), `ENOENT` for a directory that was removed, `EROFS`.
    fn new_entry(&mut self, dir: Ino, name: &str, body: Body<'a>, mode: u32) -> Result<Ino, Errno> {
        check_name(name)?;
        if self.dir(dir)?.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.writable_dir(dir)?;
        let node = Node::new(body, mode, self.now());
        self.attach(dir, name, node)
    }

    /// Removes the name of a non-directory (`EISDIR` for a directory).
    pub fn unlink(&mut self, dir: Ino, name: &str) -> Result<(), Errno> {
        self.remove(dir, name, false)
    }

    /// Removes an empty directory (`ENOTEMPTY`, `ENOTDIR`).
    pub fn rmdir(&mut self, dir: Ino, name: &str) -> Result<(), Errno> {
        self.remove(dir, name, true)
    }

    fn remove(&mut self, dir: Ino, name: &str, is_dir: bool) -> Result<(), Errno> {
        check_name(name)?;
        self.writable_dir(dir)?;
        let ino = self.lookup(dir, name)?;
        self.check_replaceable(ino, is_dir)?;
        self.unlink_entry(dir, name)?;
        self.drop_link(ino);
        Ok(())
    }

    /// Moves `old_dir/old_name` to `new_dir/new_name` with POSIX semantics: an existing target is
    /// replaced if it is a non-directory and the source too, or an empty directory and the source
    /// a directory (else `EISDIR`, `ENOTDIR`, `ENOTEMPTY`); a directory cannot move under itself
    /// (`EINVAL`); renaming a name to itself does nothing. Both directories must be writable.
    pub fn rename(&mut self, old_dir: Ino, old_name: &str, new_dir: Ino, new_name: &str) -> Result<(), Errno> {
        check_name(old_name)?;
        check_name(new_name)?;
        self.writable_dir(old_dir)?;
        self.writable_dir(new_dir)?;
        let source = self.lookup(old_dir, old_name)?;
        let target = self.dir(new_dir)?.children.get(new_name).copied();
        if target == Some(source) {
            return Ok(());
        }
        let source_is_dir = self.node(source).body.kind() == NodeKind::Directory;
        if source_is_dir && self.is_within(new_dir, source) {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = target {
            self.check_replaceable(target, source_is_dir)?;
            self.unlink_entry(new_dir, new_name)?;
            self.drop_link(target);
        }
        self.unlink_entry(old_dir, old_name)?;
        self.link_entry(new_dir, new_name, source)
    }

    /// Reads from a file at `offset` (0 bytes at or past the end).
    pub fn read(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let bytes = self.file_data(ino)?;
        let rest = usize::try_from(offset).ok().and_then(|start| bytes.get(start..)).unwrap_or_default();
        let len = rest.len().min(buf.len());
        buf[..len].copy_from_slice(&rest[..len]);
        Ok(len)
    }

    /// Writes to a file of the writable part at `offset`, growing it (a gap reads as zeros) up to
    /// [`MAX_FILE_SIZE`]. Errors: `EISDIR`, `EINVAL` (not a file), `EROFS`, `EFBIG`, `ENOSPC`.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let now = self.now();
        let node = self.node_mut(ino);
        let bytes = node.body.file_mut()?;
        if data.is_empty() {
            return Ok(0);
        }
        let range = write_range(offset, data.len())?;
        let len = range.len();
        grow(bytes, range.end)?;
        bytes[range].copy_from_slice(&data[..len]);
        node.mtime = now;
        Ok(len)
    }

    /// Sets a file's size (zeros when growing). Errors as [`FileSystem::write`].
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let now = self.now();
        let node = self.node_mut(ino);
        let bytes = node.body.file_mut()?;
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        if len == 0 {
            *bytes = Vec::new(); // Gives the memory back.
        } else if len < bytes.len() {
            bytes.truncate(len);
        } else {
            grow(bytes, len)?;
        }
        node.mtime = now;
        Ok(())
    }

    /// Whether a node may be opened for writing: `EROFS` for a file of the read-only part (the
    /// initrd), `EISDIR` for a directory; devices and the others are for their drivers to judge.
    pub fn check_writable(&self, ino: Ino) -> Result<(), Errno> {
        match &self.node(ino).body {
            Body::File(FileData::Static(_)) => Err(Errno::EROFS),
            Body::Directory(_) => Err(Errno::EISDIR),
            _ => Ok(()),
        }
    }

    /// Whether a node belongs to the writable part (`/tmp` and what was created under it): an
    /// owned file, a writable directory, or another node named in one. An unlinked node lost its
    /// name in the writable part (the read-only part never loses names).
    pub fn in_writable_part(&self, ino: Ino) -> bool {
        let node = self.node(ino);
        match &node.body {
            Body::File(FileData::Static(_)) => false,
            Body::File(FileData::Owned(_)) => true,
            Body::Directory(dir) => dir.writable,
            _ if node.nlink == 0 => true,
            _ => matches!(&self.node(node.parent).body, Body::Directory(dir) if dir.writable),
        }
    }

    /// Sets a node's permission bits (`chmod`; the type bits of `mode` are ignored). `EROFS`
    /// outside the writable part.
    pub fn chmod(&mut self, ino: Ino, mode: u32) -> Result<(), Errno> {
        if !self.in_writable_part(ino) {
            return Err(Errno::EROFS);
        }
        self.node_mut(ino).mode = mode & 0o7777;
        Ok(())
    }

    /// Sets a node's modification time (`utimensat`): `Some(seconds)`, or `None` for now.
    /// `EROFS` outside the writable part.
    pub fn set_mtime(&mut self, ino: Ino, mtime: Option<u64>) -> Result<(), Errno> {
        if !self.in_writable_part(ino) {
            return Err(Errno::EROFS);
        }
        let mtime = mtime.unwrap_or_else(|| self.now());
        self.node_mut(ino).mtime = mtime;
        Ok(())
    }

    /// What the writable part holds (for `statfs`): its nodes, and its files' bytes with each
    /// file rounded up to whole 4 KiB blocks.
    pub fn writable_usage(&self) -> (u64, u64) {
        let mut nodes = 0u64;
        let mut bytes = 0u64;
        for (ino, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            if !self.in_writable_part(ino) {
                continue;
            }
            nodes += 1;
            if let Body::File(data) = &node.body {
                bytes = bytes.saturating_add((data.bytes().len() as u64).next_multiple_of(4096));
            }
        }
        (nodes, bytes)
    }

    /// A file's whole contents (for loading programs and mapping files).
    pub fn file_data(&self, ino: Ino) -> Result<&[u8], Errno> {
        self.node(ino).body.file()
    }

    /// A node's attributes.
    pub fn stat(&self, ino: Ino) -> Stat {
        let node = self.node(ino);
        let (type_bits, size, rdev) = match &node.body {
            Body::Directory(_) => (S_IFDIR, 0, 0),
            Body::File(data) => (S_IFREG, data.bytes().len(), 0),
            Body::Symlink(target) => (S_IFLNK, target.len(), 0),
            Body::Device(device) => (S_IFCHR, 0, makedev(device.numbers())),
            Body::Synthetic(SyntheticKind::SelfExe) => (S_IFLNK, 0, 0),
            Body::Synthetic(_) => (S_IFREG, 0, 0),
        };
        let nlink = match &node.body {
            Body::Directory(dir) if node.nlink > 0 => {
                let subdirs = dir.children.values().filter(|&&child| self.kind(child) == NodeKind::Directory).count();
                u32::try_from(subdirs).unwrap_or(u32::MAX).saturating_add(2)
            }
            _ => node.nlink,
        };
        Stat {
            ino: st_ino(ino),
            mode: type_bits | node.mode,
            nlink,
            uid: node.uid,
            gid: node.gid,
            size: size as u64,
            mtime: node.mtime,
            rdev,
        }
    }

    /// What a node is.
    pub fn kind(&self, ino: Ino) -> NodeKind {
        self.node(ino).body.kind()
    }

    /// A symbolic link's target (`at.exe` for `/proc/self/exe`); `EINVAL` for anything else.
    pub fn readlink(&self, ino: Ino, at: &Lookup) -> Result<String, Errno> {
        self.link_target(ino, at.exe).map(str::to_string).ok_or(Errno::EINVAL)
    }

    /// The directory entry at `cursor`, or `None` past the last: cursor 0 is `.`, 1 is `..`, then
    /// the children in the order they were added; each entry gives the cursor of the next. The
    /// cursors are stable: removing or adding entries does not make a listing in progress skip
    /// or repeat the others. `ENOTDIR` for a non-directory.
    pub fn read_dir(&self, ino: Ino, cursor: u64) -> Result<Option<DirEntry>, Errno> {
        let dir = self.dir(ino)?;
        let entry = |name: &str, ino, next| Some(DirEntry { name: name.to_string(), ino, kind: self.kind(ino), next });
        Ok(match cursor {
            0 => entry(".", ino, 1),
            1 if self.node(ino).nlink == 0 => entry("..", ino, FIRST_COOKIE),
            1 => entry("..", self.node(ino).parent, FIRST_COOKIE),
            _ => dir
                .by_cookie
                .range(cursor..)
                .next()
                .and_then(|(&cookie, &child)| entry(&self.node(child).name, child, cookie.saturating_add(1))),
        })
    }

    /// A node's absolute path (for `getcwd`); `ENOENT` once it is unlinked.
    pub fn path_of(&self, ino: Ino) -> Result<String, Errno> {
        if self.node(ino).nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let mut names = Vec::new();
        let mut current = ino;
        while current != ROOT {
            let node = self.node(current);
            names.push(node.name.as_str());
            current = node.parent;
        }
        if names.is_empty() {
            return Ok("/".to_string());
        }
        Ok(names.iter().rev().fold(String::new(), |mut path, name| {
            path.push('/');
            path.push_str(name);
            path
        }))
    }

    /// Takes a reference to a node (an open file, a working directory, a mapping): it stays
    /// allocated, even unlinked, until the matching [`FileSystem::release`].
    pub fn hold(&mut self, ino: Ino) {
        self.node_mut(ino).holds += 1;
    }

    /// Drops a reference taken with [`FileSystem::hold`]; frees the node if it was the last and
    /// the node has no name any more.
    pub fn release(&mut self, ino: Ino) {
        let node = self.node_mut(ino);
        node.holds = node.holds.checked_sub(1).expect("ram_fs: release without hold");
        self.free_if_unused(ino);
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    fn node(&self, ino: Ino) -> &Node<'a> {
        self.nodes.get(ino).and_then(Option::as_ref).expect("ram_fs: stale Ino")
    }

    fn node_mut(&mut self, ino: Ino) -> &mut Node<'a> {
        self.nodes.get_mut(ino).and_then(Option::as_mut).expect("ram_fs: stale Ino")
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.node(ino).body {
            Body::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match &mut self.node_mut(ino).body {
            Body::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// A directory whose entries may change: `ENOTDIR`, `ENOENT` if it was removed, `EROFS`.
    fn writable_dir(&self, ino: Ino) -> Result<(), Errno> {
        let dir = self.dir(ino)?;
        if self.node(ino).nlink == 0 {
            return Err(Errno::ENOENT);
        }
        if !dir.writable {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    fn lookup(&self, dir: Ino, name: &str) -> Result<Ino, Errno> {
        self.dir(dir)?.children.get(name).copied().ok_or(Errno::ENOENT)
    }

    /// Whether `ino` may lose its name to `rmdir` (`as_dir`) or `unlink`, or be replaced by a
    /// directory (`as_dir`) or a non-directory in a rename.
    fn check_replaceable(&self, ino: Ino, as_dir: bool) -> Result<(), Errno> {
        match (&self.node(ino).body, as_dir) {
            (Body::Directory(dir), true) if !dir.children.is_empty() => Err(Errno::ENOTEMPTY),
            (Body::Directory(_), false) => Err(Errno::EISDIR),
            (Body::Directory(_), true) | (_, false) => Ok(()),
            (_, true) => Err(Errno::ENOTDIR),
        }
    }

    /// Whether `ino` (linked) is `ancestor` or lies under it.
    fn is_within(&self, ino: Ino, ancestor: Ino) -> bool {
        let mut current = ino;
        loop {
            if current == ancestor {
                return true;
            }
            if current == ROOT {
                return false;
            }
            current = self.node(current).parent;
        }
    }

    /// A symbolic link's target, magic ones included.
    fn link_target<'s>(&'s self, ino: Ino, exe: &'s str) -> Option<&'s str> {
        match &self.node(ino).body {
            Body::Symlink(target) => Some(target),
            Body::Synthetic(SyntheticKind::SelfExe) => Some(exe),
            _ => None,
        }
    }

    /// Stores a new node and gives it the name `name` in `dir`.
    fn attach(&mut self, dir: Ino, name: &str, node: Node<'a>) -> Result<Ino, Errno> {
        let ino = match self.free.pop() {
            Some(ino) => {
                self.nodes[ino] = Some(node);
                ino
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.link_entry(dir, name, ino)?;
        Ok(ino)
    }

    /// Gives the existing node `ino` the name `name` in `dir` (which must not have it).
    fn link_entry(&mut self, dir: Ino, name: &str, ino: Ino) -> Result<(), Errno> {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let now = self.now();
        let parent = self.dir_mut(dir)?;
        parent.children.insert(name.to_string(), ino);
        parent.by_cookie.insert(cookie, ino);
        self.node_mut(dir).mtime = now;
        let node = self.node_mut(ino);
        (node.parent, node.name, node.cookie, node.nlink) = (dir, name.to_string(), cookie, 1);
        Ok(())
    }

    /// Takes the name `name` out of `dir`; the node keeps its link count (see `drop_link`).
    fn unlink_entry(&mut self, dir: Ino, name: &str) -> Result<Ino, Errno> {
        let now = self.now();
        let ino = self.dir_mut(dir)?.children.remove(name).ok_or(Errno::ENOENT)?;
        let cookie = self.node(ino).cookie;
        self.dir_mut(dir)?.by_cookie.remove(&cookie);
        self.node_mut(dir).mtime = now;
        Ok(ino)
    }

    /// Marks a node whose name was taken as unlinked, and frees it unless held.
    fn drop_link(&mut self, ino: Ino) {
        self.node_mut(ino).nlink = 0;
        self.free_if_unused(ino);
    }

    fn free_if_unused(&mut self, ino: Ino) {
        let node = self.node(ino);
        if node.nlink == 0 && node.holds == 0 {
            self.nodes[ino] = None;
            self.free.push(ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::S_IFMT;
    use crate::cpio::tests::{Archive, Fields};

    const EXE: &str = "/bin/prog";
    const AT: Lookup = Lookup { cwd: ROOT, exe: EXE };
    const PROG: &[u8] = b"\x7fELF program";

    fn get(fs: &FileSystem, path: &str) -> Result<Ino, Errno> {
        fs.resolve(&AT, path, true)
    }

    fn lget(fs: &FileSystem, path: &str) -> Result<Ino, Errno> {
        fs.resolve(&AT, path, false)
    }

    /// A small root file system; `lib` is a link to `usr/lib`, `usr` comes only as a parent.
    fn sample() -> Vec<u8> {
        Archive::new()
            .dir(".")
            .dir("bin")
            .file("bin/prog", PROG)
            .symlink("bin/sh", "prog")
            .symlink("bin/abs", "/etc/passwd")
            .dir("etc")
            .file("etc/passwd", b"root:x:0:0::/:/bin/sh\n")
            .file("usr/lib/libc.so", b"libc")
            .symlink("lib", "usr/lib")
            .symlink("dangling", "nowhere")
            .symlink("loop1", "loop2")
            .symlink("loop2", "loop1")
            .symlink("self", "self")
            .dir("dev")
            .dir("tmp")
            .trailer()
            .build()
    }

    fn loaded(archive: &[u8]) -> FileSystem<'_> {
        let mut fs = FileSystem::new();
        fs.load_initrd(archive).expect("valid initrd");
        fs
    }

    /// Creates a file in /tmp's tree with contents, returns it.
    fn tmp_file(fs: &mut FileSystem, path: &str, data: &[u8]) -> Ino {
        let (dir, name) = fs.resolve_parent(&AT, path).unwrap();
        let ino = fs.create(dir, name, 0o644).unwrap();
        assert_eq!(fs.write(ino, 0, data), Ok(data.len()));
        ino
    }

    fn tmp_dir(fs: &mut FileSystem, path: &str) -> Ino {
        let (dir, name) = fs.resolve_parent(&AT, path).unwrap();
        fs.mkdir(dir, name, 0o755).unwrap()
    }

    fn listing(fs: &FileSystem, dir: Ino) -> Vec<String> {
        let mut names = Vec::new();
        let mut cursor = 0;
        while let Some(entry) = fs.read_dir(dir, cursor).unwrap() {
            names.push(entry.name);
            cursor = entry.next;
        }
        names
    }

    fn contents(fs: &FileSystem, path: &str) -> Vec<u8> {
        fs.file_data(get(fs, path).unwrap()).unwrap().to_vec()
    }

    #[test]
    fn built_in_tree() {
        let fs = FileSystem::new();
        let expected = [
            ("/", NodeKind::Directory, S_IFDIR | 0o755, 0),
            ("/tmp", NodeKind::Directory, S_IFDIR | 0o1777, 0),
            ("/dev/null", NodeKind::Device(DeviceKind::Null), S_IFCHR | 0o666, 0x103),
            ("/dev/zero", NodeKind::Device(DeviceKind::Zero), S_IFCHR | 0o666, 0x105),
            ("/dev/urandom", NodeKind::Device(DeviceKind::Urandom), S_IFCHR | 0o666, 0x109),
            ("/dev/console", NodeKind::Device(DeviceKind::Console), S_IFCHR | 0o600, 0x501),
            ("/proc/cpuinfo", NodeKind::Synthetic(SyntheticKind::CpuInfo), S_IFREG | 0o444, 0),
            ("/proc/meminfo", NodeKind::Synthetic(SyntheticKind::MemInfo), S_IFREG | 0o444, 0),
            ("/proc/self/maps", NodeKind::Synthetic(SyntheticKind::SelfMaps), S_IFREG | 0o444, 0),
            ("/proc/self/exe", NodeKind::Synthetic(SyntheticKind::SelfExe), S_IFLNK | 0o777, 0),
            ("/sys/devices/system/cpu/online", NodeKind::Synthetic(SyntheticKind::CpuOnline), S_IFREG | 0o444, 0),
        ];
        for (path, kind, mode, rdev) in expected {
            let ino = lget(&fs, path).unwrap();
            let stat = fs.stat(ino);
            assert_eq!((fs.kind(ino), stat.mode, stat.rdev, stat.uid, stat.size), (kind, mode, rdev, 0, 0), "{path}");
        }
        assert_eq!(fs.stat(ROOT).ino, 1);
        assert_eq!(fs.stat(ROOT).nlink, 6); // ., .., and tmp, dev, proc, sys
        assert_eq!(listing(&fs, ROOT), [".", "..", "tmp", "dev", "proc", "sys"]);
        assert_eq!(
            fs.path_of(get(&fs, "/sys/devices/system/cpu/online").unwrap()).unwrap(),
            "/sys/devices/system/cpu/online"
        );
        assert_eq!(FileSystem::default().stat(ROOT), fs.stat(ROOT));
    }

    #[test]
    fn read_only_outside_tmp() {
        let archive = sample();
        let mut fs = loaded(&archive);
        let dev = get(&fs, "/dev").unwrap();
        let bin = get(&fs, "/bin").unwrap();
        let tmp = get(&fs, "/tmp").unwrap();
        let prog = get(&fs, "/bin/prog").unwrap();
        assert_eq!(fs.create(ROOT, "x", 0o644), Err(Errno::EROFS));
        assert_eq!(fs.create(ROOT, "tmp", 0o644), Err(Errno::EEXIST));
        assert_eq!(fs.mkdir(dev, "shm", 0o755), Err(Errno::EROFS));
        assert_eq!(fs.symlink(bin, "ln", "prog"), Err(Errno::EROFS));
        assert_eq!(fs.unlink(dev, "null"), Err(Errno::EROFS));
        assert_eq!(fs.unlink(bin, "missing"), Err(Errno::EROFS));
        assert_eq!(fs.rmdir(ROOT, "tmp"), Err(Errno::EROFS));
        assert_eq!(fs.rename(bin, "prog", tmp, "prog"), Err(Errno::EROFS));
        assert_eq!(fs.rename(tmp, "x", bin, "x"), Err(Errno::EROFS));
        assert_eq!(fs.write(prog, 0, b"x"), Err(Errno::EROFS));
        assert_eq!(fs.truncate(prog, 0), Err(Errno::EROFS));
        assert_eq!(fs.write(get(&fs, "/dev/null").unwrap(), 0, b"x"), Err(Errno::EINVAL));
        assert_eq!(fs.write(get(&fs, "/proc/cpuinfo").unwrap(), 0, b"x"), Err(Errno::EINVAL));
        assert_eq!(fs.truncate(tmp, 0), Err(Errno::EISDIR));
        assert_eq!(contents(&fs, "/bin/prog"), PROG);
        // What may be opened for writing.
        assert_eq!(fs.check_writable(prog), Err(Errno::EROFS));
        assert_eq!(fs.check_writable(tmp), Err(Errno::EISDIR));
        assert_eq!(fs.check_writable(get(&fs, "/dev/null").unwrap()), Ok(()));
        let new = fs.create(tmp, "new", 0o644).unwrap();
        assert_eq!(fs.check_writable(new), Ok(()));
    }

    #[test]
    fn initrd_contents() {
        let archive = sample();
        let mut fs = FileSystem::new();
        assert_eq!(fs.load_initrd(&archive), Ok(15));
        let prog = get(&fs, "/bin/prog").unwrap();
        let data = fs.file_data(prog).unwrap();
        assert_eq!(data, PROG);
        // Borrowed from the archive, not copied.
        assert!(archive.as_ptr_range().contains(&data.as_ptr()));
        assert_eq!(fs.stat(prog).mode, S_IFREG | 0o644);
        assert_eq!(fs.stat(prog).size, PROG.len() as u64);
        assert_eq!(fs.readlink(lget(&fs, "/bin/sh").unwrap(), &AT).unwrap(), "prog");
        assert_eq!(fs.stat(lget(&fs, "/bin/sh").unwrap()).mode, S_IFLNK | 0o777);
        // `usr` and `usr/lib` came as parents only.
        let usr = get(&fs, "/usr").unwrap();
        assert_eq!(fs.stat(usr).mode, S_IFDIR | 0o755);
        assert_eq!(contents(&fs, "/usr/lib/libc.so"), b"libc");
        assert_eq!(listing(&fs, get(&fs, "/bin").unwrap()), [".", "..", "prog", "sh", "abs"]);
        // The archive's `dev` and `tmp` merged with the built-in ones.
        assert_eq!(fs.stat(get(&fs, "/tmp").unwrap()).mode, S_IFDIR | 0o1777);
        assert!(get(&fs, "/dev/null").is_ok());
        // Attributes come from the archive.
        let f = Fields { ino: 1, mode: S_IFREG | 0o4750, uid: 1000, gid: 50, nlink: 1, mtime: 77, ..Fields::default() };
        let archive = Archive::new().raw(b"070701", f, b"suid\0", b"").trailer().build();
        let fs = loaded(&archive);
        let stat = fs.stat(get(&fs, "/suid").unwrap());
        assert_eq!((stat.mode, stat.uid, stat.gid, stat.mtime, stat.nlink), (S_IFREG | 0o4750, 1000, 50, 77, 1));
    }

    #[test]
    fn initrd_hard_links() {
        let link = Fields { ino: 9, mode: S_IFREG | 0o755, nlink: 2, ..Fields::default() };
        let archive =
            Archive::new().raw(b"070701", link, b"a\0", b"").raw(b"070701", link, b"b\0", b"data").trailer().build();
        let fs = loaded(&archive);
        assert_eq!(contents(&fs, "/a"), b"data");
        assert_eq!(contents(&fs, "/b"), b"data");
    }

    #[test]
    fn initrd_later_entries_win() {
        let dir = |mode| Fields { ino: 1, mode: S_IFDIR | mode, nlink: 2, uid: mode, ..Fields::default() };
        let archive = Archive::new()
            .file("f", b"old")
            .file("f", b"new")
            .raw(b"070701", dir(0o700), b"d\0", b"")
            .file("d/kept", b"")
            .raw(b"070701", dir(0o750), b"d\0", b"")
            .raw(b"070701", dir(0o700), b"dev\0", b"")
            .dir("dev/shm")
            .file("was_file", b"")
            .dir("was_file")
            .dir("was_dir")
            .symlink("was_dir", "f")
            .trailer()
            .build();
        let fs = loaded(&archive);
        assert_eq!(contents(&fs, "/f"), b"new");
        let d = get(&fs, "/d").unwrap();
        assert_eq!((fs.stat(d).mode, fs.stat(d).uid), (S_IFDIR | 0o750, 0o750));
        assert!(get(&fs, "/d/kept").is_ok());
        // A built-in directory keeps its attributes but takes new entries.
        assert_eq!(fs.stat(get(&fs, "/dev").unwrap()).mode, S_IFDIR | 0o755);
        assert_eq!(fs.kind(get(&fs, "/dev/shm").unwrap()), NodeKind::Directory);
        assert_eq!(fs.kind(get(&fs, "/was_file").unwrap()), NodeKind::Directory);
        assert_eq!(fs.kind(lget(&fs, "/was_dir").unwrap()), NodeKind::Symlink);
        assert_eq!(listing(&fs, ROOT).iter().filter(|n| *n == "f").count(), 1);
    }

    #[test]
    fn initrd_conflicts_add_nothing() {
        let cases = [
            (Archive::new().file("dev/null", b""), "dev/null", CpioErrorKind::ReplacesBuiltin),
            (Archive::new().file("tmp", b""), "tmp", CpioErrorKind::ReplacesBuiltin),
            (Archive::new().symlink("proc/self/exe", "/x"), "proc/self/exe", CpioErrorKind::ReplacesBuiltin),
            (Archive::new().dir("proc/cpuinfo"), "proc/cpuinfo", CpioErrorKind::ReplacesBuiltin),
            (Archive::new().file("dev/null/x", b""), "dev/null/x", CpioErrorKind::ParentNotDirectory),
            (Archive::new().file("f", b"").file("f/x", b""), "f/x", CpioErrorKind::ParentNotDirectory),
            (Archive::new().symlink("l", "bin").file("l/x", b""), "l/x", CpioErrorKind::ParentNotDirectory),
            (Archive::new().file("d/x", b"").file("d", b""), "d", CpioErrorKind::ReplacesNonEmptyDirectory),
        ];
        for (archive, name, kind) in cases {
            let archive = Archive::new()
                .file("first", b"1")
                .build()
                .into_iter()
                .chain(archive.trailer().build())
                .collect::<Vec<u8>>();
            let mut fs = FileSystem::new();
            let error = fs.load_initrd(&archive).unwrap_err();
            assert_eq!((error.name.as_deref(), &error.kind), (Some(name), &kind));
            assert!(error.offset > 0);
            assert_eq!(get(&fs, "/first"), Err(Errno::ENOENT), "{name}: nothing added");
            assert_eq!(listing(&fs, ROOT).len(), 6);
        }
        // Parse errors too.
        let mut fs = FileSystem::new();
        assert!(matches!(fs.load_initrd(b"garbage!").unwrap_err().kind, CpioErrorKind::BadMagic(_)));
        assert_eq!(listing(&fs, ROOT).len(), 6);
    }

    #[test]
    fn initrd_files_under_tmp_are_writable() {
        let archive = Archive::new().dir("tmp/work").file("tmp/work/seed", b"abc").trailer().build();
        let mut fs = loaded(&archive);
        let seed = get(&fs, "/tmp/work/seed").unwrap();
        assert_eq!(fs.write(seed, 3, b"def"), Ok(3));
        assert_eq!(contents(&fs, "/tmp/work/seed"), b"abcdef");
        tmp_file(&mut fs, "/tmp/work/new", b"");
    }

    #[test]
    fn resolve_paths() {
        let archive = sample();
        let fs = loaded(&archive);
        let bin = get(&fs, "/bin").unwrap();
        let prog = get(&fs, "/bin/prog").unwrap();
        let in_bin = Lookup { cwd: bin, exe: EXE };
        for path in [
            "/bin/prog",
            "//bin///prog",
            "/bin/./prog",
            "/../bin/prog",
            "/bin/../bin/prog",
            "/bin/sh",
            "/lib/../../bin/prog",
        ] {
            assert_eq!(get(&fs, path), Ok(prog), "{path}");
        }
        for path in ["prog", "./prog", "sh", "../bin/prog", "../../../bin/prog"] {
            assert_eq!(fs.resolve(&in_bin, path, true), Ok(prog), "{path}");
        }
        assert_eq!(fs.resolve(&in_bin, ".", true), Ok(bin));
        assert_eq!(fs.resolve(&in_bin, "..", true), Ok(ROOT));
        assert_eq!(get(&fs, "/"), Ok(ROOT));
        assert_eq!(get(&fs, "/.."), Ok(ROOT));
        // Many `..` stay at the root.
        assert_eq!(fs.resolve(&in_bin, &("../".repeat(1300) + "bin/prog"), true), Ok(prog));
        // Links: the last one only if asked; in the middle always; absolute targets.
        let sh = lget(&fs, "/bin/sh").unwrap();
        assert_ne!(sh, prog);
        assert_eq!(fs.kind(sh), NodeKind::Symlink);
        assert_eq!(get(&fs, "/bin/abs"), get(&fs, "/etc/passwd"));
        assert_eq!(lget(&fs, "/lib/libc.so"), get(&fs, "/usr/lib/libc.so"));
        assert_eq!(get(&fs, "/lib"), get(&fs, "/usr/lib"));
        // Missing things.
        assert_eq!(get(&fs, ""), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/nope"), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/nope/x"), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/dangling"), Err(Errno::ENOENT));
        assert_eq!(fs.kind(lget(&fs, "/dangling").unwrap()), NodeKind::Symlink);
        // Not directories.
        assert_eq!(get(&fs, "/etc/passwd/x"), Err(Errno::ENOTDIR));
        assert_eq!(get(&fs, "/bin/sh/x"), Err(Errno::ENOTDIR));
        assert_eq!(fs.resolve(&Lookup { cwd: prog, exe: EXE }, "x", true), Err(Errno::ENOTDIR));
        // Loops.
        assert_eq!(get(&fs, "/loop1"), Err(Errno::ELOOP));
        assert_eq!(get(&fs, "/self/x"), Err(Errno::ELOOP));
        assert_eq!(lget(&fs, "/self").map(|ino| fs.kind(ino)), Ok(NodeKind::Symlink));
    }

    #[test]
    fn trailing_slashes() {
        let archive = sample();
        let fs = loaded(&archive);
        assert_eq!(get(&fs, "/bin/"), get(&fs, "/bin"));
        assert_eq!(get(&fs, "/bin//"), get(&fs, "/bin"));
        assert_eq!(get(&fs, "/etc/passwd/"), Err(Errno::ENOTDIR));
        assert_eq!(lget(&fs, "/bin/sh/"), Err(Errno::ENOTDIR));
        assert_eq!(get(&fs, "/nope/"), Err(Errno::ENOENT));
        // A trailing slash follows a last link even without follow_last.
        assert_eq!(lget(&fs, "/lib/"), get(&fs, "/usr/lib"));
        assert_eq!(lget(&fs, "/proc/self/exe/"), Err(Errno::ENOTDIR));
    }

    #[test]
    fn hostile_lengths() {
        let fs = FileSystem::new();
        assert_eq!(get(&fs, &"a".repeat(256)), Err(Errno::ENAMETOOLONG));
        assert_eq!(get(&fs, &"a".repeat(255)), Err(Errno::ENOENT));
        assert_eq!(get(&fs, &("/tmp/".to_string() + &"b".repeat(256))), Err(Errno::ENAMETOOLONG));
        let long = "/".repeat(4096);
        assert_eq!(get(&fs, &long), Err(Errno::ENAMETOOLONG));
        assert_eq!(get(&fs, &long[1..]), Ok(ROOT));
        assert_eq!(get(&fs, &"./".repeat(2047)), Ok(ROOT));
        assert_eq!(fs.resolve_parent(&AT, &long), Err(Errno::ENAMETOOLONG));
        assert_eq!(fs.resolve_parent(&AT, &("/tmp/".to_string() + &"b".repeat(256))), Err(Errno::ENAMETOOLONG));
    }

    #[test]
    fn symlink_hop_limit() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        // l0 -> l1 -> ... -> l40 -> target: 41 links to the file.
        let target = tmp_file(&mut fs, "/tmp/target", b"");
        fs.symlink(tmp, "l40", "target").unwrap();
        for i in 0..40 {
            fs.symlink(tmp, &format!("l{i}"), &format!("l{}", i + 1)).unwrap();
        }
        assert_eq!(get(&fs, "/tmp/l1"), Ok(target)); // 40 hops
        assert_eq!(get(&fs, "/tmp/l0"), Err(Errno::ELOOP)); // 41
        assert_eq!(lget(&fs, "/tmp/l0").map(|ino| fs.kind(ino)), Ok(NodeKind::Symlink));
        // Long targets made of links: each hop counts.
        fs.symlink(tmp, "here", ".").unwrap();
        fs.symlink(tmp, "wide", &"here/".repeat(500)).unwrap();
        assert_eq!(get(&fs, "/tmp/wide"), Err(Errno::ELOOP));
        fs.symlink(tmp, "root", "/").unwrap();
        assert_eq!(get(&fs, "/tmp/root/tmp/root/dev"), get(&fs, "/dev"));
    }

    #[test]
    fn proc_self_exe() {
        let archive = sample();
        let fs = loaded(&archive);
        let exe = lget(&fs, "/proc/self/exe").unwrap();
        assert_eq!(get(&fs, "/proc/self/exe"), get(&fs, EXE));
        assert_eq!(fs.readlink(exe, &AT).unwrap(), EXE);
        let relative = Lookup { cwd: ROOT, exe: "../../bin/sh" };
        assert_eq!(fs.resolve(&relative, "/proc/self/exe", true), get(&fs, EXE));
        let none = Lookup { cwd: ROOT, exe: "" };
        assert_eq!(fs.resolve(&none, "/proc/self/exe", true), Err(Errno::ENOENT));
        assert_eq!(fs.readlink(get(&fs, "/bin/prog").unwrap(), &AT), Err(Errno::EINVAL));
        assert_eq!(fs.readlink(ROOT, &AT), Err(Errno::EINVAL));
    }

    #[test]
    fn resolve_parent_cases() {
        let archive = sample();
        let fs = loaded(&archive);
        let tmp = get(&fs, "/tmp").unwrap();
        let bin = get(&fs, "/bin").unwrap();
        assert_eq!(fs.resolve_parent(&AT, "/tmp/x"), Ok((tmp, "x")));
        assert_eq!(fs.resolve_parent(&AT, "/tmp/x//"), Ok((tmp, "x")));
        assert_eq!(fs.resolve_parent(&AT, "//tmp//x"), Ok((tmp, "x")));
        assert_eq!(fs.resolve_parent(&AT, "/x"), Ok((ROOT, "x")));
        assert_eq!(fs.resolve_parent(&AT, "x"), Ok((ROOT, "x")));
        assert_eq!(fs.resolve_parent(&Lookup { cwd: tmp, exe: EXE }, "y/"), Ok((tmp, "y")));
        assert_eq!(fs.resolve_parent(&AT, "/lib/x"), Ok((get(&fs, "/usr/lib").unwrap(), "x")));
        // The last component is not followed.
        assert_eq!(fs.resolve_parent(&AT, "/bin/sh"), Ok((bin, "sh")));
        for path in ["/", "///", "/tmp/.", "/tmp/..", ".", "..", "/tmp/./"] {
            assert_eq!(fs.resolve_parent(&AT, path), Err(Errno::EEXIST), "{path}");
        }
        assert_eq!(fs.resolve_parent(&AT, ""), Err(Errno::ENOENT));
        assert_eq!(fs.resolve_parent(&AT, "/nope/x"), Err(Errno::ENOENT));
        assert_eq!(fs.resolve_parent(&AT, "/etc/passwd/x"), Err(Errno::ENOTDIR));
        let prog = get(&fs, "/bin/prog").unwrap();
        assert_eq!(fs.resolve_parent(&Lookup { cwd: prog, exe: EXE }, "x"), Err(Errno::ENOTDIR));
    }

    #[test]
    fn create_mkdir_symlink() {
        let mut fs = FileSystem::new();
        fs.set_clock(|| 1234);
        let tmp = get(&fs, "/tmp").unwrap();
        let f = fs.create(tmp, "f", 0o100_640).unwrap();
        let stat = fs.stat(f);
        assert_eq!((stat.mode, stat.nlink, stat.size, stat.mtime, stat.uid), (S_IFREG | 0o640, 1, 0, 1234, 0));
        assert_eq!(fs.stat(tmp).mtime, 1234);
        assert_eq!(fs.create(tmp, "f", 0o644), Err(Errno::EEXIST));
        assert_eq!(fs.mkdir(tmp, "f", 0o755), Err(Errno::EEXIST));
        assert_eq!(fs.create(f, "x", 0o644), Err(Errno::ENOTDIR));
        assert_eq!(fs.create(tmp, "", 0o644), Err(Errno::ENOENT));
        assert_eq!(fs.create(tmp, "a/b", 0o644), Err(Errno::EINVAL));
        assert_eq!(fs.create(tmp, ".", 0o644), Err(Errno::EINVAL));
        assert_eq!(fs.mkdir(tmp, "..", 0o755), Err(Errno::EINVAL));
        assert_eq!(fs.create(tmp, &"n".repeat(256), 0o644), Err(Errno::ENAMETOOLONG));
        assert!(fs.create(tmp, &"n".repeat(255), 0o644).is_ok());
        let d = fs.mkdir(tmp, "d", 0o700).unwrap();
        assert_eq!((fs.stat(d).mode, fs.stat(d).nlink), (S_IFDIR | 0o700, 2));
        assert_eq!(fs.stat(tmp).nlink, 3);
        let nested = fs.mkdir(d, "e", 0o755).unwrap();
        assert_eq!(fs.stat(d).nlink, 3);
        assert_eq!(fs.path_of(nested).unwrap(), "/tmp/d/e");
        let l = fs.symlink(d, "l", "../f").unwrap();
        assert_eq!((fs.stat(l).mode, fs.stat(l).size), (S_IFLNK | 0o777, 4));
        assert_eq!(get(&fs, "/tmp/d/l"), Ok(f));
        assert_eq!(fs.symlink(d, "empty", ""), Err(Errno::ENOENT));
        assert_eq!(fs.symlink(d, "long", &"x".repeat(4096)), Err(Errno::ENAMETOOLONG));
        assert_eq!(fs.symlink(d, "l", "x"), Err(Errno::EEXIST));
    }

    #[test]
    fn unlink_and_rmdir() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let f = tmp_file(&mut fs, "/tmp/f", b"x");
        let d = tmp_dir(&mut fs, "/tmp/d");
        tmp_file(&mut fs, "/tmp/d/inner", b"");
        fs.symlink(tmp, "l", "d").unwrap();
        assert_eq!(fs.unlink(tmp, "d"), Err(Errno::EISDIR));
        assert_eq!(fs.rmdir(tmp, "f"), Err(Errno::ENOTDIR));
        assert_eq!(fs.rmdir(tmp, "l"), Err(Errno::ENOTDIR));
        assert_eq!(fs.rmdir(tmp, "d"), Err(Errno::ENOTEMPTY));
        assert_eq!(fs.unlink(tmp, "missing"), Err(Errno::ENOENT));
        assert_eq!(fs.unlink(f, "x"), Err(Errno::ENOTDIR));
        assert_eq!(fs.unlink(tmp, ".."), Err(Errno::EINVAL));
        fs.unlink(tmp, "l").unwrap(); // the link, not the directory
        assert_eq!(fs.kind(d), NodeKind::Directory);
        fs.unlink(d, "inner").unwrap();
        fs.rmdir(tmp, "d").unwrap();
        fs.unlink(tmp, "f").unwrap();
        assert_eq!(listing(&fs, tmp), [".", ".."]);
        // The slots are reused.
        let again = tmp_file(&mut fs, "/tmp/g", b"");
        assert!([f, d].contains(&again));
    }

    #[test]
    fn held_nodes_outlive_their_names() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let f = tmp_file(&mut fs, "/tmp/f", b"data");
        fs.hold(f);
        fs.hold(f);
        fs.unlink(tmp, "f").unwrap();
        assert_eq!(get(&fs, "/tmp/f"), Err(Errno::ENOENT));
        assert_eq!(fs.stat(f).nlink, 0);
        assert_eq!(fs.write(f, 4, b"!"), Ok(1));
        assert_eq!(fs.file_data(f), Ok(&b"data!"[..]));
        assert_eq!(fs.path_of(f), Err(Errno::ENOENT));
        fs.release(f);
        let other = tmp_file(&mut fs, "/tmp/other", b"");
        assert_ne!(other, f, "still held once");
        fs.release(f);
        assert_eq!(tmp_file(&mut fs, "/tmp/new", b""), f, "freed by the last release");
        // Held and linked: release does not free.
        fs.hold(other);
        fs.release(other);
        assert_eq!(get(&fs, "/tmp/other"), Ok(other));
    }

    #[test]
    fn removed_working_directory() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let d = tmp_dir(&mut fs, "/tmp/d");
        fs.hold(d);
        fs.rmdir(tmp, "d").unwrap();
        let at = Lookup { cwd: d, exe: EXE };
        assert_eq!(fs.resolve(&at, ".", true), Ok(d));
        assert_eq!(fs.resolve(&at, "..", true), Err(Errno::ENOENT));
        assert_eq!(fs.resolve(&at, "x", true), Err(Errno::ENOENT));
        assert_eq!(fs.resolve(&at, "/tmp", true), Ok(tmp));
        assert_eq!(fs.create(d, "x", 0o644), Err(Errno::ENOENT));
        assert_eq!(fs.path_of(d), Err(Errno::ENOENT));
        assert_eq!(fs.stat(d).nlink, 0);
        assert_eq!(listing(&fs, d), [".", ".."]);
        assert_eq!(fs.read_dir(d, 1).unwrap().unwrap().ino, d);
        fs.release(d);
        assert_eq!(tmp_dir(&mut fs, "/tmp/e"), d);
    }

    #[test]
    fn rename_files_and_directories() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let a = tmp_file(&mut fs, "/tmp/a", b"A");
        let b = tmp_file(&mut fs, "/tmp/b", b"B");
        let d = tmp_dir(&mut fs, "/tmp/d");
        let e = tmp_dir(&mut fs, "/tmp/e");
        let sub = tmp_dir(&mut fs, "/tmp/d/sub");
        tmp_file(&mut fs, "/tmp/e/full", b"");
        // Same name: nothing happens.
        fs.rename(tmp, "a", tmp, "a").unwrap();
        assert_eq!(get(&fs, "/tmp/a"), Ok(a));
        // Replacing a file; the replaced one is freed when not held.
        fs.hold(b);
        fs.rename(tmp, "a", tmp, "b").unwrap();
        assert_eq!((get(&fs, "/tmp/a"), get(&fs, "/tmp/b")), (Err(Errno::ENOENT), Ok(a)));
        assert_eq!((fs.stat(b).nlink, fs.file_data(b)), (0, Ok(&b"B"[..])));
        fs.release(b);
        // Errors.
        assert_eq!(fs.rename(tmp, "b", tmp, "d"), Err(Errno::EISDIR));
        assert_eq!(fs.rename(tmp, "d", tmp, "b"), Err(Errno::ENOTDIR));
        assert_eq!(fs.rename(tmp, "d", tmp, "e"), Err(Errno::ENOTEMPTY));
        assert_eq!(fs.rename(tmp, "d", sub, "x"), Err(Errno::EINVAL));
        assert_eq!(fs.rename(tmp, "d", d, "x"), Err(Errno::EINVAL));
        assert_eq!(fs.rename(tmp, "missing", tmp, "x"), Err(Errno::ENOENT));
        assert_eq!(fs.rename(tmp, "b", a, "x"), Err(Errno::ENOTDIR));
        assert_eq!(fs.rename(tmp, "b", tmp, "."), Err(Errno::EINVAL));
        // Moving a directory between parents, replacing an empty one.
        fs.unlink(e, "full").unwrap();
        fs.rename(d, "sub", tmp, "e").unwrap();
        assert_eq!(get(&fs, "/tmp/e"), Ok(sub));
        assert_eq!(fs.path_of(sub).unwrap(), "/tmp/e");
        assert_eq!(get(&fs, "/tmp/e/.."), Ok(tmp));
        assert_eq!((fs.stat(d).nlink, fs.stat(tmp).nlink), (2, 4));
        // A file into a subdirectory, under a new name.
        fs.rename(tmp, "b", sub, "moved").unwrap();
        assert_eq!(get(&fs, "/tmp/e/moved"), Ok(a));
        assert_eq!(listing(&fs, tmp), [".", "..", "d", "e"]);
    }

    #[test]
    fn read_write_truncate() {
        let archive = sample();
        let mut fs = loaded(&archive);
        fs.set_clock(|| 99);
        let f = tmp_file(&mut fs, "/tmp/f", b"hello");
        let mut buf = [0u8; 8];
        assert_eq!(fs.read(f, 1, &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"ello");
        assert_eq!(fs.read(f, 5, &mut buf), Ok(0));
        assert_eq!(fs.read(f, u64::MAX, &mut buf), Ok(0));
        assert_eq!(fs.read(f, 0, &mut buf[..2]), Ok(2));
        // A gap reads as zeros.
        assert_eq!(fs.write(f, 8, b"!"), Ok(1));
        assert_eq!(fs.file_data(f), Ok(&b"hello\0\0\0!"[..]));
        assert_eq!(fs.write(f, 1, b"EL"), Ok(2));
        assert_eq!(fs.file_data(f), Ok(&b"hELlo\0\0\0!"[..]));
        assert_eq!(fs.write(f, 1 << 40, b""), Ok(0));
        assert_eq!(fs.stat(f).mtime, 99);
        fs.truncate(f, 2).unwrap();
        assert_eq!(fs.file_data(f), Ok(&b"hE"[..]));
        fs.truncate(f, 4).unwrap();
        assert_eq!(fs.file_data(f), Ok(&b"hE\0\0"[..]));
        fs.truncate(f, 0).unwrap();
        assert_eq!(fs.stat(f).size, 0);
        // The size limit.
        assert_eq!(fs.write(f, MAX_FILE_SIZE, b"x"), Err(Errno::EFBIG));
        assert_eq!(fs.write(f, u64::MAX, b"x"), Err(Errno::EFBIG));
        assert_eq!(fs.truncate(f, MAX_FILE_SIZE + 1), Err(Errno::EFBIG));
        let max = MAX_FILE_SIZE as usize;
        assert_eq!(write_range(MAX_FILE_SIZE - 2, 4), Ok(max - 2..max));
        assert_eq!(write_range(MAX_FILE_SIZE - 4, 4), Ok(max - 4..max));
        assert_eq!(write_range(3, usize::MAX), Ok(3..max));
        // Not files.
        let tmp = get(&fs, "/tmp").unwrap();
        assert_eq!(fs.read(tmp, 0, &mut buf), Err(Errno::EISDIR));
        assert_eq!(fs.file_data(tmp), Err(Errno::EISDIR));
        assert_eq!(fs.write(tmp, 0, b"x"), Err(Errno::EISDIR));
        let null = get(&fs, "/dev/null").unwrap();
        assert_eq!(fs.read(null, 0, &mut buf), Err(Errno::EINVAL));
        assert_eq!(fs.file_data(lget(&fs, "/bin/sh").unwrap()), Err(Errno::EINVAL));
        assert_eq!(fs.truncate(lget(&fs, "/proc/self/exe").unwrap(), 0), Err(Errno::EINVAL));
        // Initrd files read normally.
        assert_eq!(fs.read(get(&fs, "/etc/passwd").unwrap(), 5, &mut buf), Ok(8));
        assert_eq!(&buf, b"x:0:0::/");
    }

    #[test]
    fn listing_cursors_are_stable() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        for name in ["c", "a", "e", "b", "d"] {
            tmp_file(&mut fs, &format!("/tmp/{name}"), b"");
        }
        let dot = fs.read_dir(tmp, 0).unwrap().unwrap();
        assert_eq!((dot.name.as_str(), dot.ino, dot.kind, dot.next), (".", tmp, NodeKind::Directory, 1));
        let dotdot = fs.read_dir(tmp, 1).unwrap().unwrap();
        assert_eq!((dotdot.name.as_str(), dotdot.ino), ("..", ROOT));
        // Removing each entry right after reading it (what `rm -r` does) skips none.
        let mut seen = Vec::new();
        let mut cursor = dotdot.next;
        while let Some(entry) = fs.read_dir(tmp, cursor).unwrap() {
            assert_eq!(entry.kind, NodeKind::File);
            fs.unlink(tmp, &entry.name).unwrap();
            seen.push(entry.name);
            cursor = entry.next;
        }
        assert_eq!(seen, ["c", "a", "e", "b", "d"]);
        assert_eq!(fs.read_dir(tmp, cursor), Ok(None));
        assert_eq!(fs.read_dir(tmp, u64::MAX), Ok(None));
        let file = tmp_file(&mut fs, "/tmp/f", b"");
        assert_eq!(fs.read_dir(file, 0), Err(Errno::ENOTDIR));
        let link = fs.symlink(tmp, "l", "f").unwrap();
        assert_eq!(fs.read_dir(tmp, 2).unwrap().unwrap().ino, file);
        assert_eq!(fs.read_dir(tmp, fs.read_dir(tmp, 2).unwrap().unwrap().next).unwrap().unwrap().ino, link);
        assert_eq!(
            fs.read_dir(get(&fs, "/proc/self").unwrap(), 2).unwrap().unwrap().kind,
            NodeKind::Synthetic(SyntheticKind::SelfExe)
        );
    }

    #[test]
    fn stat_numbers() {
        let archive = sample();
        let fs = loaded(&archive);
        let passwd = get(&fs, "/etc/passwd").unwrap();
        let stat = fs.stat(passwd);
        assert_eq!(stat.ino, st_ino(passwd));
        assert_eq!(stat.mode & S_IFMT, S_IFREG);
        assert_eq!(stat.size, 22);
        assert_eq!(fs.stat(lget(&fs, "/bin/abs").unwrap()).size, "/etc/passwd".len() as u64);
        // ., .., tmp, dev, proc, sys, bin, etc, usr.
        assert_eq!(fs.stat(ROOT).nlink, 9);
        assert_eq!(fs.stat(get(&fs, "/bin").unwrap()).nlink, 2);
        assert_eq!(fs.path_of(ROOT).unwrap(), "/");
        assert_eq!(fs.path_of(lget(&fs, "/bin/sh").unwrap()).unwrap(), "/bin/sh");
        assert_eq!(fs.path_of(get(&fs, "/bin/sh").unwrap()).unwrap(), "/bin/prog");
    }

    #[test]
    fn chmod_and_mtime_only_in_the_writable_part() {
        let archive = sample();
        let mut fs = loaded(&archive);
        fs.set_clock(|| 500);
        let tmp = get(&fs, "/tmp").unwrap();
        let f = tmp_file(&mut fs, "/tmp/f", b"data");
        let d = tmp_dir(&mut fs, "/tmp/d");
        let l = fs.symlink(tmp, "l", "f").unwrap();
        for ino in [tmp, f, d, l] {
            assert!(fs.in_writable_part(ino), "{ino}");
        }
        let (prog, bin, null, maps) = (
            get(&fs, "/bin/prog").unwrap(),
            get(&fs, "/bin").unwrap(),
            get(&fs, "/dev/null").unwrap(),
            get(&fs, "/proc/self/maps").unwrap(),
        );
        for ino in [ROOT, prog, bin, null, maps, lget(&fs, "/bin/sh").unwrap()] {
            assert!(!fs.in_writable_part(ino), "{ino}");
            assert_eq!(fs.chmod(ino, 0o777), Err(Errno::EROFS), "{ino}");
            assert_eq!(fs.set_mtime(ino, Some(1)), Err(Errno::EROFS), "{ino}");
        }
        assert_eq!(fs.stat(prog).mode, S_IFREG | 0o644);
        // Only the permission bits change; the type stays.
        fs.chmod(f, S_IFDIR | 0o4751).unwrap();
        assert_eq!(fs.stat(f).mode, S_IFREG | 0o4751);
        fs.chmod(d, 0o700).unwrap();
        assert_eq!(fs.stat(d).mode, S_IFDIR | 0o700);
        fs.chmod(tmp, 0o1777).unwrap();
        fs.set_mtime(f, Some(1_000_000)).unwrap();
        assert_eq!(fs.stat(f).mtime, 1_000_000);
        fs.set_mtime(f, None).unwrap();
        assert_eq!(fs.stat(f).mtime, 500);
        // An unlinked file that is still held keeps working.
        fs.hold(f);
        fs.unlink(tmp, "f").unwrap();
        assert!(fs.in_writable_part(f));
        fs.chmod(f, 0o600).unwrap();
        assert_eq!(fs.stat(f).mode, S_IFREG | 0o600);
        fs.release(f);
    }

    #[test]
    fn writable_usage_counts_tmp_only() {
        let archive = sample();
        let mut fs = loaded(&archive);
        let (nodes, bytes) = fs.writable_usage();
        assert_eq!((nodes, bytes), (1, 0)); // /tmp itself
        tmp_file(&mut fs, "/tmp/a", &[1; 5000]);
        tmp_file(&mut fs, "/tmp/b", b"x");
        tmp_dir(&mut fs, "/tmp/d");
        assert_eq!(fs.writable_usage(), (4, 8192 + 4096));
        let tmp = get(&fs, "/tmp").unwrap();
        fs.unlink(tmp, "a").unwrap();
        assert_eq!(fs.writable_usage(), (3, 4096));
    }
}
