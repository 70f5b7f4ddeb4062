//! The node's file systems: the *template*, built at boot from the initrd and never changed
//! afterwards, and each job enclave's own copy of it ([`EnclaveFiles`]). A copy shares the
//! initrd's files read-only (their bytes are borrowed from the archive, never copied) and has a
//! private writable `/tmp`, charged to the enclave's kernel-memory account and bounded by its
//! `tmp_size`: one enclave can neither read nor fill another's `/tmp`. Files are shared between
//! enclaves only through a grant: a segment of files ([`Share`]) is mounted at `/shared/NAME` in
//! the jobs granted it, read-only or read-write as the grant says; paths cross into it and back
//! out ([`EnclaveFiles::resolve`]).

use crate::fs::ram_fs::{FileSystem, Ino, Lookup, NodeKind, ROOT, SHARED_DIR, Walked, WritableUsage, split_parent};
use crate::hal::kernel_memory;
use crate::util::errno::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use enclave::Account;

static TEMPLATE: spin::Once<FileSystem<'static>> = spin::Once::new();

/// Builds the template from the boot modules (QEMU `-initrd`). Returns the number of archive
/// entries loaded; a malformed archive is refused whole with the reason (the template then holds
/// only the built-in nodes).
pub fn init() -> Result<usize, String> {
    let mut fs = FileSystem::new();
    fs.set_clock(|| crate::time::clock::realtime_ns() / 1_000_000_000);
    let mut loaded = Ok(0);
    for archive in kernel_memory::boot_modules() {
        let archive = match archive {
            Ok(archive) => archive,
            Err(e) => {
                loaded = Err(alloc::format!("{e:?}"));
                break;
            }
        };
        match fs.load_initrd(archive) {
            Ok(n) => loaded = loaded.map(|total| total + n),
            Err(e) => {
                loaded = Err(alloc::format!("initrd: {e}"));
                break;
            }
        }
    }
    TEMPLATE.call_once(|| fs);
    loaded
}

fn template() -> &'static FileSystem<'static> {
    TEMPLATE.call_once(FileSystem::new)
}

/// An initrd file's bytes as the archive holds them (no copy), for what the kernel itself reads:
/// the manifest, a VM's kernel and initrd. `EISDIR`/`EINVAL` for what is not a file, `EROFS` for
/// a file of the template's writable part (it has no bytes in the archive to lend).
pub fn initrd_file(path: &str) -> Result<&'static [u8], Errno> {
    let fs = template();
    let ino = fs.resolve(&Lookup { cwd: ROOT, exe: "" }, path, true)?;
    fs.initrd_bytes(ino)?.ok_or(Errno::EROFS)
}

/// A segment of files (`kind = files`): a file system of its own, created at boot for the
/// node's lifetime, mounted at `/shared/NAME` in the jobs granted it. What it holds is charged to
/// its own account, whose limit is its `size`.
pub struct Share {
    fs: Arc<spin::Mutex<FileSystem<'static>>>,
}

impl Share {
    /// An empty share of at most `size` bytes. `ENOSPC` if even its root does not fit.
    pub fn new(size: u64) -> Result<Share, Errno> {
        let account = Arc::new(Account::new(size));
        let fs = FileSystem::share(&account, size, || crate::time::clock::realtime_ns() / 1_000_000_000)?;
        Ok(Share { fs: Arc::new(spin::Mutex::new(fs)) })
    }

    /// Removes every file (granted anew, nobody else holding it: nothing of its earlier
    /// holders' files may show). Returns the bytes it held.
    pub fn clear(&self) -> Result<u64, Errno> {
        self.fs.lock().clear(ROOT)
    }
}

/// A share as one job mounts it: its name, and whether the grant lets it write.
pub struct Mount<'a> {
    pub name: &'a str,
    pub share: &'a Share,
    pub writable: bool,
}

/// A node of one of an enclave's file systems (its tree, or a share mounted in it): where a path
/// resolves, a working directory.
#[derive(Clone)]
pub struct Place {
    pub files: Arc<EnclaveFiles>,
    pub ino: Ino,
}

/// Most mount points one resolution crosses (in and out of shares) before it gives up (`ELOOP`).
const MAX_CROSSINGS: usize = 40;

/// One of an enclave's file systems behind its lock: its tree (a copy of the template, with the
/// shares granted to it mounted at `/shared/NAME`), or a share as the enclave sees it.
pub struct EnclaveFiles {
    fs: Arc<spin::Mutex<FileSystem<'static>>>,
    /// A share granted read-only: nothing may change through it (`EROFS`).
    read_only: bool,
    /// A share's name (its paths begin with `/shared/NAME`); `None` for the tree.
    share: Option<String>,
    /// The tree's mounts, by index (a share has none).
    mounts: Vec<Arc<EnclaveFiles>>,
    /// The tree's `/shared`, where a walk above a share's root goes on.
    shared_dir: Ino,
}

impl EnclaveFiles {
    /// A copy of the template for an enclave whose kernel memory is `account`, its `/tmp`
    /// bounded by `tmp_limit` bytes, with `mounts` at `/shared/NAME`. `ENOSPC` when the account
    /// cannot hold the copy.
    pub fn new(account: &Arc<Account>, tmp_limit: u64, mounts: &[Mount]) -> Result<Arc<EnclaveFiles>, Errno> {
        let mut fs = template().instance(account, tmp_limit)?;
        let mut mounted = Vec::new();
        mounted.try_reserve_exact(mounts.len()).map_err(|_| Errno::ENOMEM)?;
        for (index, m) in mounts.iter().enumerate() {
            fs.mount_at(m.name, index as u32)?;
            mounted.push(Arc::new(EnclaveFiles {
                fs: m.share.fs.clone(),
                read_only: !m.writable,
                share: Some(m.name.into()),
                mounts: Vec::new(),
                shared_dir: ROOT,
            }));
        }
        let shared_dir = fs.resolve(&Lookup { cwd: ROOT, exe: "" }, SHARED_DIR, false).unwrap_or(ROOT);
        Ok(Arc::new(EnclaveFiles {
            fs: Arc::new(spin::Mutex::new(fs)),
            read_only: false,
            share: None,
            mounts: mounted,
            shared_dir,
        }))
    }

    /// Runs `f` on the file system, under its lock (held only for `f`: callers that move much
    /// data do it in pieces).
    pub fn with<R>(&self, f: impl FnOnce(&mut FileSystem<'static>) -> R) -> R {
        f(&mut self.fs.lock())
    }

    /// Like [`EnclaveFiles::with`], for a change: `EROFS` through a read-only grant.
    pub fn change<R>(&self, f: impl FnOnce(&mut FileSystem<'static>) -> Result<R, Errno>) -> Result<R, Errno> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        self.with(f)
    }

    /// Whether a file may be opened for writing: not through a read-only grant, and only in the
    /// writable part.
    pub fn check_writable(&self, ino: Ino) -> Result<(), Errno> {
        self.change(|fs| fs.check_writable(ino))
    }

    /// Whether `self` and `other` are the same file system (a rename between two is `EXDEV`).
    pub fn same_as(&self, other: &EnclaveFiles) -> bool {
        Arc::ptr_eq(&self.fs, &other.fs)
    }

    /// What its writable part (`/tmp`, or a share) holds and may hold.
    pub fn tmp_usage(&self) -> WritableUsage {
        self.fs.lock().writable_usage()
    }

    /// The tree's root.
    pub fn root(self: &Arc<Self>) -> Place {
        Place { files: self.clone(), ino: ROOT }
    }

    /// Resolves `path` in the enclave's tree (`self`), relative ones from `start`, crossing into
    /// the shares mounted there and back out of them. `exe` is the target of `/proc/self/exe`.
    pub fn resolve(self: &Arc<Self>, start: &Place, exe: &str, path: &str, follow: bool) -> Result<Place, Errno> {
        let mut files = if path.starts_with('/') { self.clone() } else { start.files.clone() };
        let mut cwd = if path.starts_with('/') { ROOT } else { start.ino };
        let mut rest: Option<String> = None;
        for _ in 0..MAX_CROSSINGS {
            let walked = files.with(|fs| fs.walk(&Lookup { cwd, exe }, rest.as_deref().unwrap_or(path), follow))?;
            match walked {
                Walked::Node(ino) => return Ok(Place { files, ino }),
                Walked::Mount { mount, rest: more } => {
                    files = self.mounts.get(mount as usize).ok_or(Errno::ENOENT)?.clone();
                    cwd = ROOT;
                    rest = Some(more);
                }
                Walked::Above { rest: more } => {
                    files = self.clone();
                    cwd = self.shared_dir;
                    rest = Some(more);
                }
            }
        }
        Err(Errno::ELOOP)
    }

    /// For calls that create or remove a name: the directory that holds (or would hold) the last
    /// component of `path`, and that component (see [`crate::fs::ram_fs::split_parent`]).
    pub fn resolve_parent<'p>(
        self: &Arc<Self>,
        start: &Place,
        exe: &str,
        path: &'p str,
    ) -> Result<(Place, &'p str), Errno> {
        let (dir_path, name) = split_parent(path)?;
        let dir = match dir_path {
            Some(dir_path) => self.resolve(start, exe, dir_path, true)?,
            None => start.clone(),
        };
        if dir.files.with(|fs| fs.kind(dir.ino))? != NodeKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok((dir, name))
    }

    /// A node's absolute path in the enclave's tree (for `getcwd`).
    pub fn path_of(&self, ino: Ino) -> Result<String, Errno> {
        let path = self.with(|fs| fs.path_of(ino))?;
        Ok(match &self.share {
            None => path,
            Some(name) if path == "/" => alloc::format!("/{SHARED_DIR}/{name}"),
            Some(name) => alloc::format!("/{SHARED_DIR}/{name}{path}"),
        })
    }

    /// Resolves a program's `path` and holds its node, a regular file (`EACCES` otherwise); the
    /// caller releases it.
    pub fn resolve_and_hold(self: &Arc<Self>, start: &Place, exe: &str, path: &str) -> Result<Place, Errno> {
        let place = self.resolve(start, exe, path, true)?;
        place.files.with(|fs| {
            if fs.kind(place.ino)? != NodeKind::File {
                return Err(Errno::EACCES);
            }
            fs.hold(place.ino)
        })?;
        Ok(place)
    }
}
