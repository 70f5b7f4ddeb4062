//! A file tree in memory. The kernel builds one at boot from the initrd (the *template*) and
//! gives every enclave its own copy ([`FileSystem::instance`]): the initrd's files are shared
//! read-only (every copy borrows the same archive bytes), while each copy's writable part (`/tmp`)
//! is private to its enclave, held in memory charged to the enclave's kernel-memory account and
//! bounded by its size limit (as tmpfs `size=`). The kernel keeps each copy behind a lock;
//! nothing here locks.
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
//! held stays readable and writable through its `Ino`, and is freed by the last release. An
//! [`Ino`] names a slot *and* the generation of the node in it, so an `Ino` kept past its node's
//! end (a path resolved by one thread while another removes it) is stale: every method answers it
//! with `ENOENT` rather than reaching the slot's next node, and nothing panics.
//!
//! Memory: a writable file's data is a table of 4 KiB pages, each allocated on first write
//! (holes read as zeros and cost only their table entry), fallibly: a page that cannot be
//! charged, or that would take the writable part past its limit, or that the allocator cannot
//! give, makes the write short or fail with `ENOSPC`. Nodes are charged [`NODE_BYTES`] each.

use crate::fs::cpio::{
    self, CpioError, CpioErrorKind, Entry, EntryKind, MAX_COMPONENT_LEN, MAX_PATH_LEN, S_IFCHR, S_IFDIR, S_IFLNK,
    S_IFREG,
};
use crate::util::errno::Errno;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use enclave::kernel_budget::{Account, Charge};

/// A node's name in the file system: the slot of the node table it lives in, and which of the
/// slot's successive nodes it is. Slots of freed nodes are reused under a new generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ino {
    index: u32,
    generation: u32,
}

impl fmt::Display for Ino {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index, self.generation)
    }
}

/// The root directory.
pub const ROOT: Ino = Ino { index: 0, generation: 0 };

/// The largest size of a file in the writable part; writing or truncating beyond it fails with
/// `EFBIG` (a write that would cross it is cut short, as Linux does at a file size limit).
pub const MAX_FILE_SIZE: u64 = 1 << 30;

/// A file's data comes in pages of this size.
pub const PAGE_SIZE: usize = embedded_vmm::paging::PAGE_4K as usize;

/// What one node is charged besides its data: its slot, its directory entry and its name
/// (an upper bound: names are at most 255 bytes).
pub const NODE_BYTES: u64 = 1024;

/// What one entry of a file's page table is charged (a hole costs only this).
const PAGE_ENTRY_BYTES: u64 = core::mem::size_of::<Option<Box<[u8]>>>() as u64;

/// Most nodes one file system holds (the slot number is 32 bits).
const MAX_NODES: usize = u32::MAX as usize;

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

/// Where the mount points of an enclave's shares are: `/shared/NAME`.
pub const SHARED_DIR: &str = "shared";

/// Where a walk ([`FileSystem::walk`]) ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Walked {
    /// At a node of this file system.
    Node(Ino),
    /// At the mount point of the enclave's mount `mount`, with `rest` (a relative path, `.` when
    /// nothing is left) to walk from the mounted file system's root.
    Mount { mount: u32, rest: String },
    /// Above the root of this mounted file system, with `rest` to walk from the directory that
    /// holds its mount point.
    Above { rest: String },
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
/// directory entry). Like Linux's, it may be reused once the node is gone.
pub const fn st_ino(ino: Ino) -> u64 {
    ino.index as u64 + 1
}

/// The file system. `'a` is the lifetime of the initrd archive, whose bytes its files borrow
/// (`'static` in the kernel, which keeps the archive for ever).
pub struct FileSystem<'a> {
    slots: Vec<Slot<'a>>,
    /// Indices of empty slots.
    free: Vec<u32>,
    /// The cursor the next directory entry gets (cursors 0 and 1 are `.` and `..`).
    next_cookie: u64,
    clock: fn() -> u64,
    usage: Usage,
    /// Mounted in enclaves' trees ([`FileSystem::share`]): `..` at its root leaves it.
    mounted: bool,
}

/// One entry of the node table.
#[derive(Clone)]
struct Slot<'a> {
    /// Counts the nodes the slot has held; an [`Ino`] of an earlier one is stale.
    generation: u32,
    node: Option<Node<'a>>,
}

/// What a file system holds: everything on its account, and what of it its writable part takes
/// against its limit.
struct Usage {
    charge: Charge,
    /// Bytes of the writable part: its nodes at [`NODE_BYTES`], its files' pages and page tables.
    writable_bytes: u64,
    writable_nodes: u64,
    /// Most bytes the writable part may take.
    limit: u64,
}

/// Disk-space words for `statfs`: what the writable part holds and may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritableUsage {
    pub nodes: u64,
    pub bytes: u64,
    pub limit: u64,
}

impl Usage {
    /// Takes `bytes` for the file system (`writable`: for its writable part, within the limit):
    /// `ENOSPC` when the limit or the account refuses.
    fn take(&mut self, bytes: u64, writable: bool) -> Result<(), Errno> {
        if writable && self.writable_bytes.saturating_add(bytes) > self.limit {
            return Err(Errno::ENOSPC);
        }
        self.charge.grow(bytes).map_err(|_| Errno::ENOSPC)?;
        if writable {
            self.writable_bytes += bytes;
        }
        Ok(())
    }

    /// Gives back what [`Usage::take`] took.
    fn give(&mut self, bytes: u64, writable: bool) {
        self.charge.shrink(bytes);
        if writable {
            self.writable_bytes = self.writable_bytes.saturating_sub(bytes);
        }
    }
}

#[derive(Clone)]
struct Node<'a> {
    body: Body<'a>,
    /// Counted in the writable part's usage (created there, or copied from the initrd there).
    writable: bool,
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
    /// Where another file system is mounted: its index in the enclave's mounts. A walk never
    /// stops here, it goes on in the mounted file system ([`Walked::Mount`]).
    Mount(u32),
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
    Owned(Pages),
}

/// A writable file's bytes: `len` bytes in pages of [`PAGE_SIZE`], `None` for a page never
/// written (it reads as zeros). Pages past `len` are never kept; the bytes of the last page past
/// `len` are zero.
#[derive(Clone, Default)]
struct Pages {
    pages: Vec<Option<Box<[u8]>>>,
    len: u64,
}

/// One zeroed page, or `None` when the allocator has none.
fn new_page() -> Option<Box<[u8]>> {
    let mut page = Vec::new();
    page.try_reserve_exact(PAGE_SIZE).ok()?;
    page.resize(PAGE_SIZE, 0);
    Some(page.into_boxed_slice())
}

impl Pages {
    /// The number of pages `len` bytes span.
    fn pages_for(len: u64) -> usize {
        usize::try_from(len.div_ceil(PAGE_SIZE as u64)).unwrap_or(usize::MAX)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> usize {
        let Some(rest) = self.len.checked_sub(offset) else { return 0 };
        let len = buf.len().min(usize::try_from(rest).unwrap_or(usize::MAX));
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let (page, within) = ((at / PAGE_SIZE as u64) as usize, (at % PAGE_SIZE as u64) as usize);
            let n = (PAGE_SIZE - within).min(len - done);
            match self.pages.get(page).and_then(Option::as_ref) {
                Some(bytes) => buf[done..done + n].copy_from_slice(&bytes[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        len
    }

    /// Makes the page table span `len` bytes (new pages are holes), charging its entries.
    fn grow_table(&mut self, len: u64, usage: &mut Usage, writable: bool) -> Result<(), Errno> {
        let want = Self::pages_for(len);
        let Some(more) = want.checked_sub(self.pages.len()).filter(|&more| more > 0) else { return Ok(()) };
        usage.take(more as u64 * PAGE_ENTRY_BYTES, writable)?;
        if self.pages.try_reserve_exact(more).is_err() {
            usage.give(more as u64 * PAGE_ENTRY_BYTES, writable);
            return Err(Errno::ENOSPC);
        }
        self.pages.resize(want, None);
        Ok(())
    }

    /// Writes `data` at `range.start` (the file grows to `range.end`); returns how many bytes
    /// were written: fewer than asked when a page could not be had, `ENOSPC` when none was.
    fn write(&mut self, range: Range<usize>, data: &[u8], usage: &mut Usage, writable: bool) -> Result<usize, Errno> {
        self.grow_table(range.end as u64, usage, writable)?;
        let mut done = 0;
        let mut failure = None;
        while done < range.len() {
            let at = range.start + done;
            let (page, within) = (at / PAGE_SIZE, at % PAGE_SIZE);
            let n = (PAGE_SIZE - within).min(range.len() - done);
            if self.pages[page].is_none() {
                if let Err(e) = usage.take(PAGE_SIZE as u64, writable) {
                    failure = Some(e);
                    break;
                }
                let Some(fresh) = new_page() else {
                    usage.give(PAGE_SIZE as u64, writable);
                    failure = Some(Errno::ENOSPC);
                    break;
                };
                self.pages[page] = Some(fresh);
            }
            if let Some(bytes) = self.pages[page].as_mut() {
                bytes[within..within + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        self.len = self.len.max((range.start + done) as u64);
        // A table grown for bytes that were not written goes back to the file's length.
        self.shrink_table(usage, writable);
        match failure {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Sets the length: pages past it are freed, the tail of the last one zeroed; a longer
    /// file gets holes.
    fn set_len(&mut self, len: u64, usage: &mut Usage, writable: bool) -> Result<(), Errno> {
        if len >= self.len {
            self.grow_table(len, usage, writable)?;
            self.len = len;
            return Ok(());
        }
        self.len = len;
        let within = (len % PAGE_SIZE as u64) as usize;
        if within != 0
            && let Some(Some(last)) = self.pages.get_mut((len / PAGE_SIZE as u64) as usize)
        {
            last[within..].fill(0);
        }
        self.shrink_table(usage, writable);
        Ok(())
    }

    /// Frees the pages and table entries past the length.
    fn shrink_table(&mut self, usage: &mut Usage, writable: bool) {
        let keep = Self::pages_for(self.len);
        if keep >= self.pages.len() {
            return;
        }
        let dropped = self.pages.len() - keep;
        let present = self.pages[keep..].iter().filter(|p| p.is_some()).count();
        self.pages.truncate(keep);
        self.pages.shrink_to_fit();
        usage.give(dropped as u64 * PAGE_ENTRY_BYTES + present as u64 * PAGE_SIZE as u64, writable);
    }

    /// What the file holds on its account: its pages and its table.
    fn bytes(&self) -> u64 {
        let present = self.pages.iter().filter(|p| p.is_some()).count() as u64;
        present * PAGE_SIZE as u64 + self.pages.len() as u64 * PAGE_ENTRY_BYTES
    }

    /// A copy, or `None` when the allocator cannot give its pages.
    fn try_clone(&self) -> Option<Pages> {
        let mut pages = Vec::new();
        pages.try_reserve_exact(self.pages.len()).ok()?;
        for page in &self.pages {
            pages.push(match page {
                None => None,
                Some(bytes) => {
                    let mut copy = new_page()?;
                    copy.copy_from_slice(bytes);
                    Some(copy)
                }
            });
        }
        Some(Pages { pages, len: self.len })
    }
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
    fn len(&self) -> u64 {
        match self {
            FileData::Static(bytes) => bytes.len() as u64,
            FileData::Owned(pages) => pages.len,
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> usize {
        match self {
            FileData::Static(bytes) => {
                let rest = usize::try_from(offset).ok().and_then(|start| bytes.get(start..)).unwrap_or_default();
                let len = rest.len().min(buf.len());
                buf[..len].copy_from_slice(&rest[..len]);
                len
            }
            FileData::Owned(pages) => pages.read(offset, buf),
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
            Body::Mount(_) => NodeKind::Directory,
        }
    }

    /// The error for reading or writing something that is not a regular file.
    fn not_a_file(&self) -> Errno {
        match self {
            Body::Directory(_) => Errno::EISDIR,
            _ => Errno::EINVAL,
        }
    }

    fn file(&self) -> Result<&FileData<'a>, Errno> {
        match self {
            Body::File(data) => Ok(data),
            other => Err(other.not_a_file()),
        }
    }

    /// A file's bytes for changing them: only files of the writable part have owned bytes.
    fn file_mut(&mut self) -> Result<&mut Pages, Errno> {
        match self {
            Body::File(FileData::Owned(pages)) => Ok(pages),
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
            writable: false,
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

/// For calls that create or remove a name: `path` cut into the path of the directory that holds
/// (or would hold) its last component (`None`: the working directory; it ends with a slash, so
/// it resolves to a directory or fails) and that component. Trailing slashes are dropped
/// (callers for which they matter check `path.ends_with('/')`). `/` itself and a last component
/// `.` or `..` are `EEXIST`, Linux's answer for creating them (`rmdir` and `unlink` answer
/// differently there: callers wanting that exactness check the component first).
pub fn split_parent(path: &str) -> Result<(Option<&str>, &str), Errno> {
    check_path(path)?;
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rfind('/') {
        Some(slash) => (Some(&trimmed[..=slash]), &trimmed[slash + 1..]),
        None => (None, trimmed),
    };
    match name {
        "" | "." | ".." => Err(Errno::EEXIST),
        _ if name.len() > MAX_COMPONENT_LEN => Err(Errno::ENAMETOOLONG),
        _ => Ok((dir, name)),
    }
}

/// The components still to walk (the next on top of the stack) as a relative path; `.` when
/// none are left.
fn rest_of(pending: &[&str]) -> String {
    if pending.is_empty() {
        return ".".to_string();
    }
    let mut rest = String::new();
    for component in pending.iter().rev() {
        if !rest.is_empty() {
            rest.push('/');
        }
        rest.push_str(component);
    }
    rest
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

impl Default for FileSystem<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> FileSystem<'a> {
    /// The built-in tree: `/`, `/tmp` (mode 1777, the writable part), `/dev/{null,zero,urandom,
    /// console}`, `/proc/{cpuinfo,meminfo,self/exe,self/maps}`, `/sys/devices/system/cpu/online`.
    /// Times are 0 until [`FileSystem::set_clock`]. Its memory is counted on an account of its
    /// own without limit (the kernel's template); [`FileSystem::instance`] makes bounded copies.
    pub fn new() -> Self {
        let root = Node { nlink: 1, builtin: true, ..Node::new(directory(false), 0o755, 0) };
        let usage = Usage {
            charge: Charge::empty(&Arc::new(Account::unlimited())),
            writable_bytes: 0,
            writable_nodes: 0,
            limit: u64::MAX,
        };
        let mut fs = FileSystem {
            slots: Vec::from([Slot { generation: 0, node: Some(root) }]),
            free: Vec::new(),
            next_cookie: FIRST_COOKIE,
            clock: || 0,
            usage,
            mounted: false,
        };
        let at = Lookup { cwd: ROOT, exe: "" };
        for (path, body, mode) in BUILT_IN {
            let (parent, name) = match path.rsplit_once('/') {
                Some((dir, name)) => (fs.resolve(&at, dir, false), name),
                None => (Ok(ROOT), path),
            };
            let node = Node { builtin: true, ..Node::new(body, mode, 0) };
            // Cannot fail: the account has no limit, the parents come first, the names are new.
            let _ = parent.and_then(|parent| fs.attach(parent, name, node));
        }
        fs
    }

    /// A copy of this tree for one enclave: what it holds is charged to `account` (`ENOSPC` if
    /// that refuses, or if the allocator cannot give it), and its writable part may grow to
    /// `limit` bytes. The read-only files keep borrowing the same bytes; the writable part's
    /// files are copied.
    pub fn instance(&self, account: &Arc<Account>, limit: u64) -> Result<FileSystem<'a>, Errno> {
        if self.usage.writable_bytes > limit {
            return Err(Errno::ENOSPC);
        }
        let charge = Charge::new(account, self.usage.charge.bytes()).map_err(|_| Errno::ENOSPC)?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(self.slots.len()).map_err(|_| Errno::ENOSPC)?;
        for slot in &self.slots {
            let node = match &slot.node {
                Some(Node { body: Body::File(FileData::Owned(pages)), .. }) => {
                    let pages = pages.try_clone().ok_or(Errno::ENOSPC)?;
                    slot.node.clone().map(|node| Node { body: Body::File(FileData::Owned(pages)), ..node })
                }
                other => other.clone(),
            };
            slots.push(Slot { generation: slot.generation, node });
        }
        let mut free = Vec::new();
        free.try_reserve_exact(self.free.len()).map_err(|_| Errno::ENOSPC)?;
        free.extend_from_slice(&self.free);
        Ok(FileSystem {
            slots,
            free,
            next_cookie: self.next_cookie,
            clock: self.clock,
            usage: Usage {
                charge,
                writable_bytes: self.usage.writable_bytes,
                writable_nodes: self.usage.writable_nodes,
                limit,
            },
            mounted: false,
        })
    }

    /// An empty file system to mount in enclaves' trees (a share): its root (mode 1777) and
    /// everything created in it are writable, charged to `account` and bounded by `limit` bytes
    /// (`ENOSPC` if the account cannot hold the root). It holds no symbolic links (`EPERM`): an
    /// absolute target would mean a different tree to each enclave that mounts it.
    pub fn share(account: &Arc<Account>, limit: u64, clock: fn() -> u64) -> Result<FileSystem<'a>, Errno> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(1).map_err(|_| Errno::ENOSPC)?;
        slots.push(Slot {
            generation: 0,
            node: Some(Node { nlink: 1, writable: true, ..Node::new(directory(true), 0o1777, clock()) }),
        });
        let mut usage = Usage { charge: Charge::empty(account), writable_bytes: 0, writable_nodes: 0, limit };
        usage.take(NODE_BYTES, true)?;
        Ok(FileSystem { slots, free: Vec::new(), next_cookie: FIRST_COOKIE, clock, usage, mounted: true })
    }

    /// Makes `/shared/NAME` the mount point of the enclave's mount `mount` (creating `/shared`,
    /// read-only, if needed). `EEXIST` if the name is taken.
    pub fn mount_at(&mut self, name: &str, mount: u32) -> Result<(), Errno> {
        check_name(name)?;
        let shared = match self.dir(ROOT)?.children.get(SHARED_DIR) {
            Some(&ino) => ino,
            None => self.attach(ROOT, SHARED_DIR, Node::new(directory(false), 0o755, self.now()))?,
        };
        if self.dir(shared)?.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.attach(shared, name, Node::new(Body::Mount(mount), 0o755, self.now())).map(|_| ())
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
        let no_space = |_| CpioError { offset: 0, name: None, kind: CpioErrorKind::NoSpace };
        let mut staged = self.instance(&self.usage.charge.account().clone(), self.usage.limit).map_err(no_space)?;
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
        let no_space = |e| if e == Errno::ENOSPC { CpioErrorKind::NoSpace } else { CpioErrorKind::ParentNotDirectory };
        let mut dir = ROOT;
        for component in parents.split('/').filter(|c| !c.is_empty()) {
            let existing = self.dir(dir).map_err(not_dir)?.children.get(component).copied();
            dir = match existing {
                Some(ino) if self.kind(ino) == Ok(NodeKind::Directory) => ino,
                Some(_) => return Err(CpioErrorKind::ParentNotDirectory),
                None => {
                    let writable = self.dir(dir).map_err(not_dir)?.writable;
                    let node = Node::new(directory(writable), 0o755, self.now());
                    self.attach(dir, component, node).map_err(no_space)?
                }
            };
        }
        let writable = self.dir(dir).map_err(not_dir)?.writable;
        let body = match entry.kind {
            EntryKind::Directory => directory(writable),
            EntryKind::File if writable => Body::File(FileData::Owned(Pages::default())),
            EntryKind::File => Body::File(FileData::Static(entry.data)),
            EntryKind::Symlink(target) => Body::Symlink(target.to_string()),
        };
        if let Some(old) = self.dir(dir).map_err(not_dir)?.children.get(last).copied() {
            let old_node = self.node_mut(old).map_err(not_dir)?;
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
        let ino = self.attach(dir, last, node).map_err(no_space)?;
        if writable && entry.kind == EntryKind::File && !entry.data.is_empty() {
            let mtime = entry.mtime;
            match self.write(ino, 0, entry.data) {
                Ok(n) if n == entry.data.len() => self.node_mut(ino).map_err(not_dir)?.mtime = mtime,
                _ => return Err(CpioErrorKind::NoSpace),
            }
        }
        Ok(())
    }

    /// Resolves `path` (absolute, or relative to `at.cwd`) to a node. Symbolic links are followed
    /// in every component, and in the last one if `follow_last` or if the path ends with a slash;
    /// a relative target is relative to the link's directory. Errors as Linux: `ENOENT` (missing
    /// component, empty path or link target, a working directory that is gone), `ENOTDIR` (a
    /// non-directory followed by a component or a trailing slash), `ENAMETOOLONG` (path over 4095
    /// bytes or a component over 255), `ELOOP` (more than [`MAX_SYMLINK_HOPS`] links).
    ///
    /// Mount points are not crossed: `EXDEV` (see [`FileSystem::walk`]).
    pub fn resolve(&self, at: &Lookup, path: &str, follow_last: bool) -> Result<Ino, Errno> {
        match self.walk(at, path, follow_last)? {
            Walked::Node(ino) => Ok(ino),
            Walked::Mount { .. } | Walked::Above { .. } => Err(Errno::EXDEV),
        }
    }

    /// Like [`FileSystem::resolve`], but a walk that reaches a mount point, or goes above the root
    /// of a mounted file system, stops there and says what is left of the path, for the caller
    /// to go on in the other file system.
    pub fn walk(&self, at: &Lookup, path: &str, follow_last: bool) -> Result<Walked, Errno> {
        check_path(path)?;
        let mut pending = Vec::new();
        let mut current = push_components(&mut pending, path, at.cwd);
        self.node(current)?;
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            let dir = self.dir(current)?;
            let next = match component {
                "." => current,
                ".." if current == ROOT && self.mounted => return Ok(Walked::Above { rest: rest_of(&pending) }),
                // An unlinked directory's parent may be gone.
                ".." if self.node(current)?.nlink == 0 => return Err(Errno::ENOENT),
                ".." => self.node(current)?.parent,
                name if name.len() > MAX_COMPONENT_LEN => return Err(Errno::ENAMETOOLONG),
                name => *dir.children.get(name).ok_or(Errno::ENOENT)?,
            };
            if let Body::Mount(mount) = self.node(next)?.body {
                return Ok(Walked::Mount { mount, rest: rest_of(&pending) });
            }
            match self.link_target(next, at.exe)? {
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
        Ok(Walked::Node(current))
    }

    /// For calls that create or remove a name: the directory that holds (or would hold) the last
    /// component of `path`, and that component (see [`split_parent`]).
    pub fn resolve_parent<'p>(&self, at: &Lookup, path: &'p str) -> Result<(Ino, &'p str), Errno> {
        let (dir_path, name) = split_parent(path)?;
        let dir = match dir_path {
            Some(dir_path) => self.resolve(at, dir_path, true)?,
            None => at.cwd,
        };
        self.dir(dir).map(|_| (dir, name))
    }

    /// Creates an empty regular file `name` in `dir` with permission bits `mode`.
    pub fn create(&mut self, dir: Ino, name: &str, mode: u32) -> Result<Ino, Errno> {
        self.new_entry(dir, name, Body::File(FileData::Owned(Pages::default())), mode)
    }

    /// Creates an empty directory `name` in `dir`.
    pub fn mkdir(&mut self, dir: Ino, name: &str, mode: u32) -> Result<Ino, Errno> {
        self.new_entry(dir, name, directory(true), mode)
    }

    /// Creates a symbolic link `name` in `dir` pointing to `target` (not checked: it may dangle).
    pub fn symlink(&mut self, dir: Ino, name: &str, target: &str) -> Result<Ino, Errno> {
        check_path(target)?;
        if self.mounted {
            return Err(Errno::EPERM);
        }
        self.new_entry(dir, name, Body::Symlink(target.to_string()), 0o777)
    }

    /// The checks and errors shared by the calls that create a name: `ENOTDIR`, `EEXIST` (before
    /// `EROFS`, as Linux), `ENOENT` for a directory that was removed, `EROFS`, `ENOSPC` when the
    /// writable part is full.
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

    /// Removes everything in directory `dir`, depth first (a node something holds stays until
    /// released, as after `unlink`). Returns the bytes the writable part held before. The walk
    /// keeps its path in a list, not on the stack: a job decides how deep its directories go.
    pub fn clear(&mut self, dir: Ino) -> Result<u64, Errno> {
        let held = self.usage.writable_bytes;
        let mut path = Vec::new();
        path.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        path.push(dir);
        while let Some(&current) = path.last() {
            let Some((name, child)) = self.dir(current)?.children.iter().next().map(|(n, &i)| (n.clone(), i)) else {
                path.pop();
                continue;
            };
            match self.dir(child) {
                Ok(inner) if !inner.children.is_empty() => {
                    path.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                    path.push(child);
                }
                Ok(_) => self.remove(current, &name, true)?,
                Err(_) => self.remove(current, &name, false)?,
            }
        }
        Ok(held)
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
        let source_is_dir = self.kind(source)? == NodeKind::Directory;
        if source_is_dir && self.is_within(new_dir, source)? {
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
        Ok(self.node(ino)?.body.file()?.read(offset, buf))
    }

    /// Writes to a file of the writable part at `offset`, growing it (a gap reads as zeros) up to
    /// [`MAX_FILE_SIZE`]. Errors: `EISDIR`, `EINVAL` (not a file), `EROFS`, `EFBIG`, `ENOSPC`
    /// (the writable part's limit, the account or the allocator; a write that gets some pages but
    /// not all is cut short).
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        let now = self.now();
        let (node, usage) = self.node_and_usage(ino)?;
        let writable = node.writable;
        let pages = node.body.file_mut()?;
        if data.is_empty() {
            return Ok(0);
        }
        let range = write_range(offset, data.len())?;
        let len = range.len();
        let written = pages.write(range, &data[..len], usage, writable)?;
        node.mtime = now;
        Ok(written)
    }

    /// Sets a file's size (zeros when growing). Errors as [`FileSystem::write`].
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let now = self.now();
        let (node, usage) = self.node_and_usage(ino)?;
        let writable = node.writable;
        let pages = node.body.file_mut()?;
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        pages.set_len(len, usage, writable)?;
        node.mtime = now;
        Ok(())
    }

    /// Whether a node may be opened for writing: `EROFS` for a file of the read-only part (the
    /// initrd), `EISDIR` for a directory; devices and the others are for their drivers to judge.
    pub fn check_writable(&self, ino: Ino) -> Result<(), Errno> {
        match &self.node(ino)?.body {
            Body::File(FileData::Static(_)) => Err(Errno::EROFS),
            Body::Directory(_) => Err(Errno::EISDIR),
            _ => Ok(()),
        }
    }

    /// Whether a node belongs to the writable part (`/tmp` and what was created under it): an
    /// owned file, a writable directory, or another node named in one (false for a stale `Ino`).
    pub fn in_writable_part(&self, ino: Ino) -> bool {
        self.node(ino).is_ok_and(|node| node.writable)
    }

    /// Sets a node's permission bits (`chmod`; the type bits of `mode` are ignored). `EROFS`
    /// outside the writable part.
    pub fn chmod(&mut self, ino: Ino, mode: u32) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        if !node.writable {
            return Err(Errno::EROFS);
        }
        node.mode = mode & 0o7777;
        Ok(())
    }

    /// Sets a node's modification time (`utimensat`): `Some(seconds)`, or `None` for now.
    /// `EROFS` outside the writable part.
    pub fn set_mtime(&mut self, ino: Ino, mtime: Option<u64>) -> Result<(), Errno> {
        let now = self.now();
        let node = self.node_mut(ino)?;
        if !node.writable {
            return Err(Errno::EROFS);
        }
        node.mtime = mtime.unwrap_or(now);
        Ok(())
    }

    /// What the writable part holds and may hold (for `statfs`, `stats` and events): its nodes,
    /// and its bytes (nodes at [`NODE_BYTES`], pages, page tables) against its limit.
    pub fn writable_usage(&self) -> WritableUsage {
        WritableUsage { nodes: self.usage.writable_nodes, bytes: self.usage.writable_bytes, limit: self.usage.limit }
    }

    /// Bytes this file system holds on its account (all of it: the copy of the read-only tree
    /// too).
    pub fn charged_bytes(&self) -> u64 {
        self.usage.charge.bytes()
    }

    /// A read-only file's bytes, borrowed from the initrd, without copying: `Ok(None)` for a file
    /// of the writable part (read it with [`FileSystem::read`]), `EISDIR`/`EINVAL` for other nodes.
    pub fn initrd_bytes(&self, ino: Ino) -> Result<Option<&'a [u8]>, Errno> {
        match self.node(ino)?.body.file()? {
            FileData::Static(bytes) => Ok(Some(bytes)),
            FileData::Owned(_) => Ok(None),
        }
    }

    /// A node's attributes.
    pub fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        let node = self.node(ino)?;
        let (type_bits, size, rdev) = match &node.body {
            Body::Directory(_) => (S_IFDIR, 0, 0),
            Body::File(data) => (S_IFREG, data.len(), 0),
            Body::Symlink(target) => (S_IFLNK, target.len() as u64, 0),
            Body::Device(device) => (S_IFCHR, 0, makedev(device.numbers())),
            Body::Synthetic(SyntheticKind::SelfExe) => (S_IFLNK, 0, 0),
            Body::Synthetic(_) => (S_IFREG, 0, 0),
            Body::Mount(_) => (S_IFDIR, 0, 0),
        };
        let nlink = match &node.body {
            Body::Directory(dir) if node.nlink > 0 => {
                let subdirs =
                    dir.children.values().filter(|&&child| self.kind(child) == Ok(NodeKind::Directory)).count();
                u32::try_from(subdirs).unwrap_or(u32::MAX).saturating_add(2)
            }
            _ => node.nlink,
        };
        Ok(Stat {
            ino: st_ino(ino),
            mode: type_bits | node.mode,
            nlink,
            uid: node.uid,
            gid: node.gid,
            size,
            mtime: node.mtime,
            rdev,
        })
    }

    /// What a node is.
    pub fn kind(&self, ino: Ino) -> Result<NodeKind, Errno> {
        Ok(self.node(ino)?.body.kind())
    }

    /// A symbolic link's target (`at.exe` for `/proc/self/exe`); `EINVAL` for anything else.
    pub fn readlink(&self, ino: Ino, at: &Lookup) -> Result<String, Errno> {
        self.link_target(ino, at.exe)?.map(str::to_string).ok_or(Errno::EINVAL)
    }

    /// The directory entry at `cursor`, or `None` past the last: cursor 0 is `.`, 1 is `..`, then
    /// the children in the order they were added; each entry gives the cursor of the next. The
    /// cursors are stable: removing or adding entries does not make a listing in progress skip
    /// or repeat the others. `ENOTDIR` for a non-directory.
    pub fn read_dir(&self, ino: Ino, cursor: u64) -> Result<Option<DirEntry>, Errno> {
        let dir = self.dir(ino)?;
        let node = self.node(ino)?;
        let entry = |name: &str, ino, next| -> Result<Option<DirEntry>, Errno> {
            Ok(Some(DirEntry { name: name.to_string(), ino, kind: self.kind(ino)?, next }))
        };
        match cursor {
            0 => entry(".", ino, 1),
            1 if node.nlink == 0 => entry("..", ino, FIRST_COOKIE),
            1 => entry("..", node.parent, FIRST_COOKIE),
            _ => match dir.by_cookie.range(cursor..).next() {
                Some((&cookie, &child)) => entry(&self.node(child)?.name, child, cookie.saturating_add(1)),
                None => Ok(None),
            },
        }
    }

    /// A node's absolute path (for `getcwd`); `ENOENT` once it is unlinked.
    pub fn path_of(&self, ino: Ino) -> Result<String, Errno> {
        if self.node(ino)?.nlink == 0 {
            return Err(Errno::ENOENT);
        }
        let mut names = Vec::new();
        let mut current = ino;
        while current != ROOT {
            let node = self.node(current)?;
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
    /// allocated, even unlinked, until the matching [`FileSystem::release`]. `ENOENT` when the
    /// node is already gone (a path resolved before another thread removed it).
    pub fn hold(&mut self, ino: Ino) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        node.holds += 1;
        Ok(())
    }

    /// Drops a reference taken with [`FileSystem::hold`]; frees the node if it was the last and
    /// the node has no name any more. A release without a hold changes nothing.
    pub fn release(&mut self, ino: Ino) {
        if let Ok(node) = self.node_mut(ino) {
            node.holds = node.holds.saturating_sub(1);
            self.free_if_unused(ino);
        }
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// The live node `ino` names: `ENOENT` for a slot that is empty or holds a later node.
    fn node(&self, ino: Ino) -> Result<&Node<'a>, Errno> {
        self.slots
            .get(ino.index as usize)
            .filter(|slot| slot.generation == ino.generation)
            .and_then(|slot| slot.node.as_ref())
            .ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node<'a>, Errno> {
        self.node_and_usage(ino).map(|(node, _)| node)
    }

    /// A live node and the file system's usage, to change both.
    fn node_and_usage(&mut self, ino: Ino) -> Result<(&mut Node<'a>, &mut Usage), Errno> {
        let node = self
            .slots
            .get_mut(ino.index as usize)
            .filter(|slot| slot.generation == ino.generation)
            .and_then(|slot| slot.node.as_mut())
            .ok_or(Errno::ENOENT)?;
        Ok((node, &mut self.usage))
    }

    fn dir(&self, ino: Ino) -> Result<&Dir, Errno> {
        match &self.node(ino)?.body {
            Body::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut Dir, Errno> {
        match &mut self.node_mut(ino)?.body {
            Body::Directory(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// A directory whose entries may change: `ENOTDIR`, `ENOENT` if it was removed, `EROFS`.
    fn writable_dir(&self, ino: Ino) -> Result<(), Errno> {
        let dir = self.dir(ino)?;
        if self.node(ino)?.nlink == 0 {
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
        match (&self.node(ino)?.body, as_dir) {
            (Body::Directory(dir), true) if !dir.children.is_empty() => Err(Errno::ENOTEMPTY),
            (Body::Directory(_), false) => Err(Errno::EISDIR),
            (Body::Directory(_), true) | (_, false) => Ok(()),
            (_, true) => Err(Errno::ENOTDIR),
        }
    }

    /// Whether `ino` (linked) is `ancestor` or lies under it.
    fn is_within(&self, ino: Ino, ancestor: Ino) -> Result<bool, Errno> {
        let mut current = ino;
        loop {
            if current == ancestor {
                return Ok(true);
            }
            if current == ROOT {
                return Ok(false);
            }
            current = self.node(current)?.parent;
        }
    }

    /// A symbolic link's target, magic ones included; `None` for other nodes.
    fn link_target<'s>(&'s self, ino: Ino, exe: &'s str) -> Result<Option<&'s str>, Errno> {
        Ok(match &self.node(ino)?.body {
            Body::Symlink(target) => Some(target),
            Body::Synthetic(SyntheticKind::SelfExe) => Some(exe),
            _ => None,
        })
    }

    /// Stores a new node and gives it the name `name` in `dir`; the node is charged
    /// [`NODE_BYTES`] (`ENOSPC` when the account, the writable part's limit or the allocator
    /// refuses).
    fn attach(&mut self, dir: Ino, name: &str, mut node: Node<'a>) -> Result<Ino, Errno> {
        let parent_writable = self.dir(dir)?.writable;
        node.writable = match &node.body {
            Body::Directory(d) => d.writable,
            Body::File(FileData::Static(_)) => false,
            Body::File(FileData::Owned(_)) => true,
            _ => parent_writable,
        };
        let writable = node.writable;
        self.usage.take(NODE_BYTES, writable)?;
        let ino = match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.node = Some(node);
                Ino { index, generation: slot.generation }
            }
            None if self.slots.len() < MAX_NODES && self.slots.try_reserve(1).is_ok() => {
                self.slots.push(Slot { generation: 0, node: Some(node) });
                Ino { index: (self.slots.len() - 1) as u32, generation: 0 }
            }
            None => {
                self.usage.give(NODE_BYTES, writable);
                return Err(Errno::ENOSPC);
            }
        };
        if writable {
            self.usage.writable_nodes += 1;
        }
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
        self.node_mut(dir)?.mtime = now;
        let node = self.node_mut(ino)?;
        (node.parent, node.name, node.cookie, node.nlink) = (dir, name.to_string(), cookie, 1);
        Ok(())
    }

    /// Takes the name `name` out of `dir`; the node keeps its link count (see `drop_link`).
    fn unlink_entry(&mut self, dir: Ino, name: &str) -> Result<Ino, Errno> {
        let now = self.now();
        let ino = self.dir_mut(dir)?.children.remove(name).ok_or(Errno::ENOENT)?;
        let cookie = self.node(ino)?.cookie;
        self.dir_mut(dir)?.by_cookie.remove(&cookie);
        self.node_mut(dir)?.mtime = now;
        Ok(ino)
    }

    /// Marks a node whose name was taken as unlinked, and frees it unless held.
    fn drop_link(&mut self, ino: Ino) {
        if let Ok(node) = self.node_mut(ino) {
            node.nlink = 0;
            self.free_if_unused(ino);
        }
    }

    /// Frees a node that has neither a name nor a holder, giving back what it was charged; its
    /// slot's next node gets a new generation, so `ino` becomes stale.
    fn free_if_unused(&mut self, ino: Ino) {
        let Some(slot) = self.slots.get_mut(ino.index as usize).filter(|slot| slot.generation == ino.generation) else {
            return;
        };
        let Some(node) = slot.node.take_if(|node| node.nlink == 0 && node.holds == 0) else { return };
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(ino.index);
        let data = match &node.body {
            Body::File(FileData::Owned(pages)) => pages.bytes(),
            _ => 0,
        };
        self.usage.give(NODE_BYTES + data, node.writable);
        if node.writable {
            self.usage.writable_nodes = self.usage.writable_nodes.saturating_sub(1);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::cpio::S_IFMT;
    use crate::fs::cpio::tests::{Archive, Fields};
    use enclave::kernel_budget::Account;

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

    /// A file's whole contents, read through `read`.
    fn data(fs: &FileSystem, ino: Ino) -> Result<Vec<u8>, Errno> {
        let mut bytes = vec![0u8; fs.stat(ino)?.size as usize];
        let n = fs.read(ino, 0, &mut bytes)?;
        assert_eq!(n, bytes.len());
        Ok(bytes)
    }

    fn contents(fs: &FileSystem, path: &str) -> Vec<u8> {
        data(fs, get(fs, path).unwrap()).unwrap()
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
            let stat = fs.stat(ino).unwrap();
            assert_eq!(
                (fs.kind(ino), stat.mode, stat.rdev, stat.uid, stat.size),
                (Ok(kind), mode, rdev, 0, 0),
                "{path}"
            );
        }
        assert_eq!(fs.stat(ROOT).unwrap().ino, 1);
        assert_eq!(fs.stat(ROOT).unwrap().nlink, 6); // ., .., and tmp, dev, proc, sys
        assert_eq!(listing(&fs, ROOT), [".", "..", "tmp", "dev", "proc", "sys"]);
        assert_eq!(
            fs.path_of(get(&fs, "/sys/devices/system/cpu/online").unwrap()).unwrap(),
            "/sys/devices/system/cpu/online"
        );
        assert_eq!(FileSystem::default().stat(ROOT).unwrap(), fs.stat(ROOT).unwrap());
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
        assert_eq!(data(&fs, prog).unwrap(), PROG);
        // Borrowed from the archive, not copied.
        let bytes = fs.initrd_bytes(prog).unwrap().unwrap();
        assert!(archive.as_ptr_range().contains(&bytes.as_ptr()));
        assert_eq!(fs.initrd_bytes(get(&fs, "/bin").unwrap()), Err(Errno::EISDIR));
        assert_eq!(fs.stat(prog).unwrap().mode, S_IFREG | 0o644);
        assert_eq!(fs.stat(prog).unwrap().size, PROG.len() as u64);
        assert_eq!(fs.readlink(lget(&fs, "/bin/sh").unwrap(), &AT).unwrap(), "prog");
        assert_eq!(fs.stat(lget(&fs, "/bin/sh").unwrap()).unwrap().mode, S_IFLNK | 0o777);
        // `usr` and `usr/lib` came as parents only.
        let usr = get(&fs, "/usr").unwrap();
        assert_eq!(fs.stat(usr).unwrap().mode, S_IFDIR | 0o755);
        assert_eq!(contents(&fs, "/usr/lib/libc.so"), b"libc");
        assert_eq!(listing(&fs, get(&fs, "/bin").unwrap()), [".", "..", "prog", "sh", "abs"]);
        // The archive's `dev` and `tmp` merged with the built-in ones.
        assert_eq!(fs.stat(get(&fs, "/tmp").unwrap()).unwrap().mode, S_IFDIR | 0o1777);
        assert!(get(&fs, "/dev/null").is_ok());
        // Attributes come from the archive.
        let f = Fields { ino: 1, mode: S_IFREG | 0o4750, uid: 1000, gid: 50, nlink: 1, mtime: 77, ..Fields::default() };
        let archive = Archive::new().raw(b"070701", f, b"suid\0", b"").trailer().build();
        let fs = loaded(&archive);
        let stat = fs.stat(get(&fs, "/suid").unwrap()).unwrap();
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
        assert_eq!((fs.stat(d).unwrap().mode, fs.stat(d).unwrap().uid), (S_IFDIR | 0o750, 0o750));
        assert!(get(&fs, "/d/kept").is_ok());
        // A built-in directory keeps its attributes but takes new entries.
        assert_eq!(fs.stat(get(&fs, "/dev").unwrap()).unwrap().mode, S_IFDIR | 0o755);
        assert_eq!(fs.kind(get(&fs, "/dev/shm").unwrap()), Ok(NodeKind::Directory));
        assert_eq!(fs.kind(get(&fs, "/was_file").unwrap()), Ok(NodeKind::Directory));
        assert_eq!(fs.kind(lget(&fs, "/was_dir").unwrap()), Ok(NodeKind::Symlink));
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
        assert_eq!(fs.kind(sh), Ok(NodeKind::Symlink));
        assert_eq!(get(&fs, "/bin/abs"), get(&fs, "/etc/passwd"));
        assert_eq!(lget(&fs, "/lib/libc.so"), get(&fs, "/usr/lib/libc.so"));
        assert_eq!(get(&fs, "/lib"), get(&fs, "/usr/lib"));
        // Missing things.
        assert_eq!(get(&fs, ""), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/nope"), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/nope/x"), Err(Errno::ENOENT));
        assert_eq!(get(&fs, "/dangling"), Err(Errno::ENOENT));
        assert_eq!(fs.kind(lget(&fs, "/dangling").unwrap()), Ok(NodeKind::Symlink));
        // Not directories.
        assert_eq!(get(&fs, "/etc/passwd/x"), Err(Errno::ENOTDIR));
        assert_eq!(get(&fs, "/bin/sh/x"), Err(Errno::ENOTDIR));
        assert_eq!(fs.resolve(&Lookup { cwd: prog, exe: EXE }, "x", true), Err(Errno::ENOTDIR));
        // Loops.
        assert_eq!(get(&fs, "/loop1"), Err(Errno::ELOOP));
        assert_eq!(get(&fs, "/self/x"), Err(Errno::ELOOP));
        assert_eq!(lget(&fs, "/self").and_then(|ino| fs.kind(ino)), Ok(NodeKind::Symlink));
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
        assert_eq!(lget(&fs, "/tmp/l0").and_then(|ino| fs.kind(ino)), Ok(NodeKind::Symlink));
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

    /// An enclave's tree with a share mounted at `/shared/results` (mount 0), and the share.
    fn mounted_share() -> (FileSystem<'static>, FileSystem<'static>) {
        let account = Arc::new(Account::new(1 << 20));
        let mut tree = FileSystem::new().instance(&account, 1 << 20).unwrap();
        tree.mount_at("results", 0).unwrap();
        let share = FileSystem::share(&account, 64 << 10, || 7).unwrap();
        (tree, share)
    }

    #[test]
    fn walks_stop_at_mount_points_and_above_a_mounted_root() {
        let (mut tree, mut share) = mounted_share();
        let shared = tree.resolve(&AT, "/shared", true).unwrap();
        let rest = |path: &str| Walked::Mount { mount: 0, rest: path.to_string() };
        assert_eq!(tree.walk(&AT, "/shared/results/a/b", true), Ok(rest("a/b")));
        assert_eq!(tree.walk(&AT, "/shared/results", false), Ok(rest(".")));
        assert_eq!(tree.walk(&AT, "/shared/results/", true), Ok(rest(".")));
        assert_eq!(tree.walk(&Lookup { cwd: shared, exe: EXE }, "results/../x", true), Ok(rest("../x")));
        assert_eq!(tree.resolve(&AT, "/shared/results/a", true), Err(Errno::EXDEV), "resolve does not cross");
        // A symbolic link of the tree leads into the share like a path does.
        tree.symlink(tree.resolve(&AT, "/tmp", true).unwrap(), "out", "/shared/results/data").unwrap();
        assert_eq!(tree.walk(&AT, "/tmp/out", true), Ok(rest("data")));
        // The mount point is the tree's, and read-only there.
        assert_eq!(tree.rmdir(shared, "results"), Err(Errno::EROFS));
        assert_eq!(tree.mkdir(shared, "other", 0o755), Err(Errno::EROFS));
        assert_eq!(tree.mount_at("results", 1), Err(Errno::EEXIST));
        assert_eq!(
            tree.read_dir(shared, FIRST_COOKIE).unwrap().map(|e| (e.name, e.kind)),
            Some(("results".to_string(), NodeKind::Directory))
        );
        // In the share: `..` at its root leaves it; inside, paths resolve as anywhere.
        let at_root = Lookup { cwd: ROOT, exe: "" };
        let dir = share.mkdir(ROOT, "a", 0o755).unwrap();
        assert_eq!(share.walk(&at_root, "..", true), Ok(Walked::Above { rest: ".".to_string() }));
        assert_eq!(share.walk(&at_root, "a/../../tmp/x", true), Ok(Walked::Above { rest: "tmp/x".to_string() }));
        assert_eq!(share.walk(&at_root, "a/..", true), Ok(Walked::Node(ROOT)));
        assert_eq!(share.walk(&Lookup { cwd: dir, exe: "" }, "../a", true), Ok(Walked::Node(dir)));
        assert_eq!(share.symlink(dir, "link", "/etc/passwd"), Err(Errno::EPERM));
    }

    #[test]
    fn a_share_is_cleared_whole_and_held_nodes_stay_readable() {
        let (_, mut share) = mounted_share();
        let dir = share.mkdir(ROOT, "a", 0o755).unwrap();
        let deep = share.mkdir(dir, "b", 0o755).unwrap();
        let file = share.create(deep, "f", 0o644).unwrap();
        share.write(file, 0, b"kept while held").unwrap();
        share.hold(file).unwrap();
        let before = share.writable_usage().bytes;
        assert_eq!(share.clear(ROOT), Ok(before));
        assert_eq!(share.read_dir(ROOT, FIRST_COOKIE).unwrap().map(|e| e.name), None);
        let mut buf = [0u8; 15];
        assert_eq!(share.read(file, 0, &mut buf), Ok(15), "a held file stays readable");
        share.release(file);
        assert_eq!(share.stat(file).unwrap_err(), Errno::ENOENT);
        assert_eq!(share.writable_usage().bytes, NODE_BYTES, "only the root is left");
    }

    /// A tree deeper than any stack could walk by recursion (each level a directory a job made)
    /// is cleared all the same.
    #[test]
    fn a_deep_share_is_cleared_without_recursion() {
        let account = Arc::new(Account::new(64 << 20));
        let mut share = FileSystem::share(&account, 64 << 20, || 0).unwrap();
        let mut dir = ROOT;
        for _ in 0..50_000 {
            dir = share.mkdir(dir, "d", 0o755).unwrap();
        }
        share.create(dir, "f", 0o644).unwrap();
        share.clear(ROOT).unwrap();
        assert_eq!(share.read_dir(ROOT, FIRST_COOKIE).unwrap().map(|e| e.name), None);
        assert_eq!(share.writable_usage().bytes, NODE_BYTES, "only the root is left");
    }

    #[test]
    fn a_share_is_writable_and_bounded() {
        let (_, mut share) = mounted_share();
        let file = share.create(ROOT, "data", 0o644).unwrap();
        assert_eq!(share.stat(ROOT).unwrap().mtime, 7);
        assert_eq!(share.write(file, 0, &[1; 32 << 10]), Ok(32 << 10));
        // 64 KiB in all: nodes, page tables and pages count.
        let written = share.write(file, 32 << 10, &[2; 64 << 10]).unwrap();
        assert!(written < 32 << 10, "{written} bytes past the limit");
        assert_eq!(share.write(file, 96 << 10, &[3; 4096]), Err(Errno::ENOSPC));
        assert!(share.writable_usage().bytes <= 64 << 10);
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
        let stat = fs.stat(f).unwrap();
        assert_eq!((stat.mode, stat.nlink, stat.size, stat.mtime, stat.uid), (S_IFREG | 0o640, 1, 0, 1234, 0));
        assert_eq!(fs.stat(tmp).unwrap().mtime, 1234);
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
        assert_eq!((fs.stat(d).unwrap().mode, fs.stat(d).unwrap().nlink), (S_IFDIR | 0o700, 2));
        assert_eq!(fs.stat(tmp).unwrap().nlink, 3);
        let nested = fs.mkdir(d, "e", 0o755).unwrap();
        assert_eq!(fs.stat(d).unwrap().nlink, 3);
        assert_eq!(fs.path_of(nested).unwrap(), "/tmp/d/e");
        let l = fs.symlink(d, "l", "../f").unwrap();
        assert_eq!((fs.stat(l).unwrap().mode, fs.stat(l).unwrap().size), (S_IFLNK | 0o777, 4));
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
        assert_eq!(fs.kind(d), Ok(NodeKind::Directory));
        fs.unlink(d, "inner").unwrap();
        fs.rmdir(tmp, "d").unwrap();
        fs.unlink(tmp, "f").unwrap();
        assert_eq!(listing(&fs, tmp), [".", ".."]);
        // The slots are reused.
        let again = tmp_file(&mut fs, "/tmp/g", b"");
        assert!([st_ino(f), st_ino(d)].contains(&st_ino(again)));
        // The old names are stale: every use is ENOENT, none reaches the new node.
        for stale in [f, d] {
            assert_eq!(fs.stat(stale), Err(Errno::ENOENT));
            assert_eq!(fs.kind(stale), Err(Errno::ENOENT));
            assert_eq!(fs.hold(stale), Err(Errno::ENOENT));
            assert_eq!(fs.write(stale, 0, b"x"), Err(Errno::ENOENT));
            assert_eq!(fs.resolve(&Lookup { cwd: stale, exe: EXE }, "x", true), Err(Errno::ENOENT));
            fs.release(stale);
        }
        assert_eq!(fs.stat(again).unwrap().size, 0);
    }

    #[test]
    fn held_nodes_outlive_their_names() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let f = tmp_file(&mut fs, "/tmp/f", b"data");
        fs.hold(f).unwrap();
        fs.hold(f).unwrap();
        fs.unlink(tmp, "f").unwrap();
        assert_eq!(get(&fs, "/tmp/f"), Err(Errno::ENOENT));
        assert_eq!(fs.stat(f).unwrap().nlink, 0);
        assert_eq!(fs.write(f, 4, b"!"), Ok(1));
        assert_eq!(data(&fs, f), Ok(b"data!".to_vec()));
        assert_eq!(fs.path_of(f), Err(Errno::ENOENT));
        fs.release(f);
        let other = tmp_file(&mut fs, "/tmp/other", b"");
        assert_ne!(other, f, "still held once");
        fs.release(f);
        let new = tmp_file(&mut fs, "/tmp/new", b"");
        assert_eq!(st_ino(new), st_ino(f), "freed by the last release");
        assert_eq!(fs.stat(f), Err(Errno::ENOENT));
        // Held and linked: release does not free.
        fs.hold(other).unwrap();
        fs.release(other);
        assert_eq!(get(&fs, "/tmp/other"), Ok(other));
    }

    #[test]
    fn removed_working_directory() {
        let mut fs = FileSystem::new();
        let tmp = get(&fs, "/tmp").unwrap();
        let d = tmp_dir(&mut fs, "/tmp/d");
        fs.hold(d).unwrap();
        fs.rmdir(tmp, "d").unwrap();
        let at = Lookup { cwd: d, exe: EXE };
        assert_eq!(fs.resolve(&at, ".", true), Ok(d));
        assert_eq!(fs.resolve(&at, "..", true), Err(Errno::ENOENT));
        assert_eq!(fs.resolve(&at, "x", true), Err(Errno::ENOENT));
        assert_eq!(fs.resolve(&at, "/tmp", true), Ok(tmp));
        assert_eq!(fs.create(d, "x", 0o644), Err(Errno::ENOENT));
        assert_eq!(fs.path_of(d), Err(Errno::ENOENT));
        assert_eq!(fs.stat(d).unwrap().nlink, 0);
        assert_eq!(listing(&fs, d), [".", ".."]);
        assert_eq!(fs.read_dir(d, 1).unwrap().unwrap().ino, d);
        fs.release(d);
        assert_eq!(st_ino(tmp_dir(&mut fs, "/tmp/e")), st_ino(d));
        assert_eq!(fs.path_of(d), Err(Errno::ENOENT));
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
        fs.hold(b).unwrap();
        fs.rename(tmp, "a", tmp, "b").unwrap();
        assert_eq!((get(&fs, "/tmp/a"), get(&fs, "/tmp/b")), (Err(Errno::ENOENT), Ok(a)));
        assert_eq!((fs.stat(b).unwrap().nlink, data(&fs, b)), (0, Ok(b"B".to_vec())));
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
        assert_eq!((fs.stat(d).unwrap().nlink, fs.stat(tmp).unwrap().nlink), (2, 4));
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
        assert_eq!(data(&fs, f), Ok(b"hello\0\0\0!".to_vec()));
        assert_eq!(fs.write(f, 1, b"EL"), Ok(2));
        assert_eq!(data(&fs, f), Ok(b"hELlo\0\0\0!".to_vec()));
        assert_eq!(fs.write(f, 1 << 40, b""), Ok(0));
        assert_eq!(fs.stat(f).unwrap().mtime, 99);
        fs.truncate(f, 2).unwrap();
        assert_eq!(data(&fs, f), Ok(b"hE".to_vec()));
        fs.truncate(f, 4).unwrap();
        assert_eq!(data(&fs, f), Ok(b"hE\0\0".to_vec()));
        fs.truncate(f, 0).unwrap();
        assert_eq!(fs.stat(f).unwrap().size, 0);
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
        assert_eq!(data(&fs, tmp), Err(Errno::EISDIR));
        assert_eq!(fs.write(tmp, 0, b"x"), Err(Errno::EISDIR));
        let null = get(&fs, "/dev/null").unwrap();
        assert_eq!(fs.read(null, 0, &mut buf), Err(Errno::EINVAL));
        assert_eq!(data(&fs, lget(&fs, "/bin/sh").unwrap()), Err(Errno::EINVAL));
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
        let stat = fs.stat(passwd).unwrap();
        assert_eq!(stat.ino, st_ino(passwd));
        assert_eq!(stat.mode & S_IFMT, S_IFREG);
        assert_eq!(stat.size, 22);
        assert_eq!(fs.stat(lget(&fs, "/bin/abs").unwrap()).unwrap().size, "/etc/passwd".len() as u64);
        // ., .., tmp, dev, proc, sys, bin, etc, usr.
        assert_eq!(fs.stat(ROOT).unwrap().nlink, 9);
        assert_eq!(fs.stat(get(&fs, "/bin").unwrap()).unwrap().nlink, 2);
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
        assert_eq!(fs.stat(prog).unwrap().mode, S_IFREG | 0o644);
        // Only the permission bits change; the type stays.
        fs.chmod(f, S_IFDIR | 0o4751).unwrap();
        assert_eq!(fs.stat(f).unwrap().mode, S_IFREG | 0o4751);
        fs.chmod(d, 0o700).unwrap();
        assert_eq!(fs.stat(d).unwrap().mode, S_IFDIR | 0o700);
        fs.chmod(tmp, 0o1777).unwrap();
        fs.set_mtime(f, Some(1_000_000)).unwrap();
        assert_eq!(fs.stat(f).unwrap().mtime, 1_000_000);
        fs.set_mtime(f, None).unwrap();
        assert_eq!(fs.stat(f).unwrap().mtime, 500);
        // An unlinked file that is still held keeps working.
        fs.hold(f).unwrap();
        fs.unlink(tmp, "f").unwrap();
        assert!(fs.in_writable_part(f));
        fs.chmod(f, 0o600).unwrap();
        assert_eq!(fs.stat(f).unwrap().mode, S_IFREG | 0o600);
        fs.release(f);
    }

    #[test]
    fn writable_usage_counts_tmp_only() {
        let archive = sample();
        let mut fs = loaded(&archive);
        let usage = |fs: &FileSystem| {
            let u = fs.writable_usage();
            (u.nodes, u.bytes)
        };
        assert_eq!(usage(&fs), (1, NODE_BYTES)); // /tmp itself
        tmp_file(&mut fs, "/tmp/a", &[1; 5000]);
        tmp_file(&mut fs, "/tmp/b", b"x");
        tmp_dir(&mut fs, "/tmp/d");
        let pages = 3 * (PAGE_SIZE as u64 + PAGE_ENTRY_BYTES);
        assert_eq!(usage(&fs), (4, 4 * NODE_BYTES + pages));
        let tmp = get(&fs, "/tmp").unwrap();
        fs.unlink(tmp, "a").unwrap();
        assert_eq!(usage(&fs), (3, 3 * NODE_BYTES + pages / 3));
        assert_eq!(fs.writable_usage().limit, u64::MAX);
    }

    /// An enclave's copy: the writable part bounded by its limit and its account, every byte
    /// given back when files go, short writes at the edge.
    #[test]
    fn an_instance_is_bounded_by_its_limit_and_its_account() {
        let archive = Archive::new().dir("tmp/seed").file("tmp/seed/s", &[7; 5000]).file("ro", b"r").trailer().build();
        let template = loaded(&archive);
        let account = Arc::new(Account::new(1 << 20));
        let limit = 64 * 1024;
        let mut fs = template.instance(&account, limit).unwrap();
        let base = account.used();
        assert_eq!(base, template.charged_bytes(), "the copy is charged what the template holds");
        assert_eq!(contents(&fs, "/tmp/seed/s"), [7; 5000], "the writable part is copied");
        let seed = get(&fs, "/tmp/seed/s").unwrap();
        fs.write(seed, 0, b"x").unwrap();
        assert_eq!(contents(&template, "/tmp/seed/s")[0], 7, "and private");
        let before = fs.writable_usage().bytes;
        // Fill /tmp until the limit: the last write is short, the next fails.
        let f = tmp_file(&mut fs, "/tmp/f", b"");
        let chunk = [0x5a_u8; 10_000];
        let mut written = 0u64;
        let error = loop {
            match fs.write(f, written, &chunk) {
                Ok(n) => {
                    assert!(n <= chunk.len());
                    written += n as u64;
                }
                Err(e) => break e,
            }
        };
        assert_eq!(error, Errno::ENOSPC);
        let usage = fs.writable_usage();
        assert!(usage.bytes <= limit && usage.bytes + PAGE_SIZE as u64 + PAGE_ENTRY_BYTES > limit, "{usage:?}");
        assert_eq!(written % PAGE_SIZE as u64, 0, "short writes end at a page");
        assert_eq!(fs.stat(f).unwrap().size, written);
        // What is left is less than a page: a few names fit, then none.
        let tmp = get(&fs, "/tmp").unwrap();
        let made = (0..5).take_while(|i| fs.create(tmp, &format!("n{i}"), 0o644).is_ok()).count();
        assert!(made < 4, "{made}");
        assert_eq!(fs.mkdir(tmp, "dir", 0o755), Err(Errno::ENOSPC));
        for i in 0..made {
            fs.unlink(tmp, &format!("n{i}")).unwrap();
        }
        let mut back = vec![0u8; written as usize];
        assert_eq!(fs.read(f, 0, &mut back), Ok(written as usize));
        assert!(back.iter().all(|&b| b == 0x5a));
        // Everything comes back when the file goes.
        fs.unlink(get(&fs, "/tmp").unwrap(), "f").unwrap();
        assert_eq!(fs.writable_usage().bytes, before);
        assert_eq!(account.used(), base + (before - template.writable_usage().bytes));
        drop(fs);
        assert_eq!(account.used(), 0, "dropping the copy gives back all of it");
        // The account refuses: the copy is refused, or the write fails.
        let small = Arc::new(Account::new(template.charged_bytes() - 1));
        assert_eq!(template.instance(&small, u64::MAX).err(), Some(Errno::ENOSPC));
        let tight = Arc::new(Account::new(template.charged_bytes() + NODE_BYTES + 100));
        let mut fs = template.instance(&tight, u64::MAX).unwrap();
        let g = tmp_file(&mut fs, "/tmp/g", b"");
        assert_eq!(fs.write(g, 0, b"no page for this"), Err(Errno::ENOSPC));
        assert_eq!(template.instance(&account, 10).err(), Some(Errno::ENOSPC), "the seed does not fit");
    }

    #[test]
    fn holes_truncation_and_tails() {
        let mut fs = FileSystem::new();
        let f = tmp_file(&mut fs, "/tmp/f", b"hello world");
        fs.truncate(f, 2).unwrap();
        fs.truncate(f, 9000).unwrap();
        let bytes = data(&fs, f).unwrap();
        assert_eq!(&bytes[..2], b"he");
        assert!(bytes[2..].iter().all(|&b| b == 0), "the truncated tail reads as zeros");
        // A hole costs its table entries, not pages.
        let before = fs.writable_usage().bytes;
        fs.truncate(f, MAX_FILE_SIZE).unwrap();
        let entries = (MAX_FILE_SIZE / PAGE_SIZE as u64 - 3) * PAGE_ENTRY_BYTES;
        assert_eq!(fs.writable_usage().bytes, before + entries);
        let mut buf = [1u8; 16];
        assert_eq!(fs.read(f, MAX_FILE_SIZE - 16, &mut buf), Ok(16));
        assert_eq!(buf, [0; 16]);
        assert_eq!(fs.write(f, MAX_FILE_SIZE - 1, b"xy"), Ok(1));
        fs.truncate(f, 0).unwrap();
        assert_eq!(fs.writable_usage().bytes, 2 * NODE_BYTES);
        // Writing far out leaves a hole before it.
        assert_eq!(fs.write(f, 3 * PAGE_SIZE as u64 + 10, b"z"), Ok(1));
        assert_eq!(fs.writable_usage().bytes, 2 * NODE_BYTES + PAGE_SIZE as u64 + 4 * PAGE_ENTRY_BYTES);
    }

    /// Operations on names and on kept `Ino`s interleaved at random (what threads racing
    /// unlink, rmdir and rename against chdir, stat, open and mmap do): nothing panics, a stale
    /// `Ino` is always ENOENT, and once everything is released the memory is all back.
    #[test]
    fn random_interleavings_never_panic_and_leak_nothing() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let template = FileSystem::new();
        let account = Arc::new(Account::new(8 << 20));
        for seed in 0..20 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut fs = template.instance(&account, 1 << 20).unwrap();
            let base = fs.charged_bytes();
            let names = ["/tmp/a", "/tmp/a/b", "/tmp/c", "/tmp/a/b/d", "/tmp/e"];
            let mut kept: Vec<Ino> = Vec::new();
            let mut held: Vec<Ino> = Vec::new();
            for _ in 0..3000 {
                let path = names[rng.gen_range(0..names.len())];
                let at =
                    Lookup { cwd: kept.get(rng.gen_range(0..kept.len().max(1))).copied().unwrap_or(ROOT), exe: EXE };
                match rng.gen_range(0..12) {
                    0 => {
                        if let Ok((dir, name)) = fs.resolve_parent(&at, path) {
                            let _ = fs.mkdir(dir, name, 0o755);
                        }
                    }
                    1 => {
                        if let Ok((dir, name)) = fs.resolve_parent(&at, path) {
                            let _ = fs.create(dir, name, 0o644);
                        }
                    }
                    2 => {
                        if let Ok((dir, name)) = fs.resolve_parent(&at, path) {
                            let _ = fs.unlink(dir, name);
                        }
                    }
                    3 => {
                        if let Ok((dir, name)) = fs.resolve_parent(&at, path) {
                            let _ = fs.rmdir(dir, name);
                        }
                    }
                    4 => {
                        let other = names[rng.gen_range(0..names.len())];
                        if let (Ok((a, x)), Ok((b, y))) = (fs.resolve_parent(&at, path), fs.resolve_parent(&at, other))
                        {
                            let _ = fs.rename(a, x, b, y);
                        }
                    }
                    5 => {
                        if let Ok(ino) = fs.resolve(&at, path, true) {
                            kept.push(ino);
                        }
                    }
                    6 => {
                        // Use a kept Ino, maybe stale by now.
                        if let Some(&ino) = kept.get(rng.gen_range(0..kept.len().max(1))) {
                            let _ = fs.stat(ino);
                            let _ = fs.write(ino, rng.gen_range(0..20_000), &[1; 3000]);
                            let _ = fs.truncate(ino, rng.gen_range(0..10_000));
                            let _ = fs.read_dir(ino, rng.gen_range(0..5));
                            let _ = fs.path_of(ino);
                            let mut buf = [0u8; 100];
                            let _ = fs.read(ino, 0, &mut buf);
                            if fs.hold(ino).is_ok() {
                                held.push(ino);
                            } else {
                                assert_eq!(fs.stat(ino), Err(Errno::ENOENT));
                            }
                        }
                    }
                    7 => {
                        if !held.is_empty() {
                            let ino = held.swap_remove(rng.gen_range(0..held.len()));
                            fs.release(ino);
                        }
                    }
                    8 => {
                        if let Ok(ino) = fs.resolve(&at, path, true) {
                            let _ = fs.write(ino, 0, &[2; 5000]);
                        }
                    }
                    9 => {
                        let _ = fs.resolve(&at, "..", true);
                        let _ = fs.resolve(&at, "./b/../d", false);
                    }
                    10 => {
                        if let Some(&ino) = kept.get(rng.gen_range(0..kept.len().max(1))) {
                            let _ = fs.create(ino, "x", 0o600);
                            let _ = fs.mkdir(ino, "y", 0o700);
                            let _ = fs.rmdir(ino, "y");
                            let _ = fs.unlink(ino, "x");
                        }
                    }
                    _ => kept.retain(|_| rng.gen_bool(0.9)),
                }
                let usage = fs.writable_usage();
                assert!(usage.bytes <= usage.limit);
            }
            for ino in held.drain(..) {
                fs.release(ino);
            }
            // Remove what is left, deepest first.
            for path in [
                "/tmp/a/b/d",
                "/tmp/a/b/x",
                "/tmp/a/b/y",
                "/tmp/a/b",
                "/tmp/a/x",
                "/tmp/a/y",
                "/tmp/a",
                "/tmp/c",
                "/tmp/e",
                "/tmp/x",
                "/tmp/y",
            ] {
                if let Ok((dir, name)) = fs.resolve_parent(&AT, path) {
                    let _ = fs.unlink(dir, name);
                    let _ = fs.rmdir(dir, name);
                }
            }
            // Directories may nest under renamed names: empty /tmp entirely.
            loop {
                let tmp = get(&fs, "/tmp").unwrap();
                let Some(entry) = fs.read_dir(tmp, 2).unwrap() else { break };
                let mut stack = vec![(tmp, entry.name)];
                while let Some((dir, name)) = stack.pop() {
                    let ino = fs.lookup(dir, &name).unwrap();
                    match fs.read_dir(ino, 2) {
                        Ok(Some(child)) => {
                            stack.push((dir, name));
                            stack.push((ino, child.name));
                        }
                        _ => {
                            let _ = fs.unlink(dir, &name);
                            let _ = fs.rmdir(dir, &name);
                        }
                    }
                }
            }
            assert_eq!(fs.charged_bytes(), base, "seed {seed}: everything given back");
            assert_eq!(fs.writable_usage().nodes, 1, "seed {seed}: only /tmp is left");
        }
        assert_eq!(account.used(), 0);
    }
}
