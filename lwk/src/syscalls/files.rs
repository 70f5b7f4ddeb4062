//! File system calls: open/openat/close, read/write and their vector and positioned forms,
//! lseek, the stat family, getdents64, access, readlink, cwd, mkdir/rmdir/unlink/rename, dup,
//! pipes, fcntl, ioctl (terminal queries on the console), poll.

use super::{Call, SysResult};
use crate::open_files::{FileObject, O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, OpenFile};
use crate::pipe::Pipe;
use crate::synthetic_files;
use crate::{files, process::Process};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use lwk::errno::Errno;
use lwk::ram_fs::{FileSystem, Ino, NodeKind, Stat};

const AT_FDCWD: u64 = -100i64 as u64;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_TRUNC: u32 = 0o1000;
const O_DIRECTORY: u32 = 0o200000;
const O_NOFOLLOW: u32 = 0o400000;
const O_NOCTTY: u32 = 0o400;
const O_LARGEFILE: u32 = 0o100000;
const O_PATH: u32 = 0o10000000;
const PATH_MAX: usize = 4096;
/// Most bytes one read or write moves (Linux's MAX_RW_COUNT: a larger count is cut to it).
const MAX_RW_COUNT: u64 = 0x7fff_f000;

fn path_arg(c: &Call, addr: u64) -> Result<String, Errno> {
    let bytes = c.process.space.lock().read_string(addr, PATH_MAX)?;
    String::from_utf8(bytes).map_err(|_| Errno::ENOENT)
}

/// The directory a `*at` call resolves relative paths from. `dirfd` is a C `int`: only its low
/// 32 bits count (glibc passes AT_FDCWD zero-extended).
fn base_dir(c: &Call, dirfd: u64, path: &str) -> Result<Ino, Errno> {
    let dirfd = dirfd as u32 as u64;
    if path.starts_with('/') || dirfd == AT_FDCWD as u32 as u64 {
        return Ok(*c.process.cwd.lock());
    }
    match c.process.files.lock().get(dirfd)?.object {
        FileObject::Node(ino) => Ok(ino),
        _ => Err(Errno::ENOTDIR),
    }
}

/// Resolves `path` for the caller, relative to `dirfd`.
fn resolve(c: &Call, dirfd: u64, path: &str, follow: bool) -> Result<Ino, Errno> {
    let base = base_dir(c, dirfd, path)?;
    let exe = c.process.exe.lock().clone();
    files::with_fs(|fs| fs.resolve(&lwk::ram_fs::Lookup { cwd: base, exe: &exe }, path, follow))
}

/// Resolves the parent directory of `path` and hands `f` the file system, it and the last name.
fn with_parent<R>(
    c: &Call,
    dirfd: u64,
    path: &str,
    f: impl FnOnce(&mut FileSystem<'static>, Ino, &str) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let base = base_dir(c, dirfd, path)?;
    let exe = c.process.exe.lock().clone();
    files::with_fs(|fs| {
        let (dir, name) = fs.resolve_parent(&lwk::ram_fs::Lookup { cwd: base, exe: &exe }, path)?;
        f(fs, dir, name)
    })
}

fn open_node(process: &Process, ino: Ino, flags: u32) -> Result<Arc<OpenFile>, Errno> {
    let kind = files::with_fs(|fs| fs.kind(ino));
    if flags & O_DIRECTORY != 0 && kind != NodeKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    let path_only = flags & O_PATH != 0;
    if !path_only {
        if kind == NodeKind::Directory && (flags & O_ACCMODE != O_RDONLY || flags & O_CREAT != 0) {
            return Err(Errno::EISDIR);
        }
        if flags & O_ACCMODE != O_RDONLY {
            // Writing a file of the read-only part (the initrd) fails now, not at the first write.
            files::with_fs(|fs| fs.check_writable(ino))?;
        }
    }
    let object = match kind {
        _ if path_only => FileObject::Node(ino),
        NodeKind::Device(d) => FileObject::Device(d, ino),
        NodeKind::Synthetic(s) => FileObject::Snapshot(synthetic_files::generate(s, process)),
        _ => FileObject::Node(ino),
    };
    if !path_only && flags & O_TRUNC != 0 && kind == NodeKind::File && flags & O_ACCMODE != O_RDONLY {
        files::with_fs(|fs| fs.truncate(ino, 0))?;
    }
    // What F_GETFL reports: Linux drops the flags that only mean something to open, and adds
    // O_LARGEFILE on 64-bit machines. An O_PATH descriptor can be neither read nor written.
    let kept = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC) | O_LARGEFILE;
    let kept = if path_only { kept | O_ACCMODE } else { kept };
    Ok(OpenFile::new(object, kept))
}

fn do_open(c: &mut Call, dirfd: u64, path_addr: u64, flags: u64, mode: u64) -> SysResult {
    let flags = flags as u32;
    let path = path_arg(c, path_addr)?;
    let follow = flags & O_NOFOLLOW == 0;
    let ino = match resolve(c, dirfd, &path, follow) {
        Ok(ino) => {
            if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            ino
        }
        Err(Errno::ENOENT) if flags & O_CREAT != 0 => {
            let umask = c.process.umask.load(Ordering::Relaxed);
            with_parent(c, dirfd, &path, |fs, dir, name| fs.create(dir, name, mode as u32 & 0o7777 & !umask))?
        }
        Err(e) => return Err(e),
    };
    if !follow && files::with_fs(|fs| fs.kind(ino)) == NodeKind::Symlink && flags & O_PATH == 0 {
        return Err(Errno::ELOOP);
    }
    let file = open_node(c.process, ino, flags)?;
    c.process.files.lock().insert(file, flags & O_CLOEXEC != 0, 0)
}

pub fn open(c: &mut Call) -> SysResult {
    let [path, flags, mode, ..] = c.args;
    do_open(c, AT_FDCWD, path, flags, mode)
}

pub fn openat(c: &mut Call) -> SysResult {
    let [dirfd, path, flags, mode, ..] = c.args;
    do_open(c, dirfd, path, flags, mode)
}

pub fn creat(c: &mut Call) -> SysResult {
    let [path, mode, ..] = c.args;
    do_open(c, AT_FDCWD, path, (O_CREAT | O_WRONLY | O_TRUNC) as u64, mode)
}

pub fn close(c: &mut Call) -> SysResult {
    c.process.files.lock().close(c.args[0])?;
    Ok(0)
}

/// Reads from `file` into user memory at `buf`. Nothing is consumed that cannot be delivered:
/// a bad buffer is EFAULT with the file offset (or the pipe's contents) unchanged, and a buffer
/// that turns bad part-way gives the bytes delivered before.
fn read_into_user(c: &Call, file: &OpenFile, buf: u64, len: u64, offset: Option<u64>) -> SysResult {
    let space = &c.process.space;
    let mut at = buf;
    let n = file.read_to(len.min(MAX_RW_COUNT) as usize, offset, &mut |piece| {
        space.lock().write(at, piece)?;
        at += piece.len() as u64;
        Ok(())
    })?;
    Ok(n as u64)
}

/// Writes `len` bytes of user memory at `buf` to `file`. A write to a pipe without readers is
/// EPIPE (the dispatcher adds SIGPIPE).
fn write_from_user(c: &Call, file: &OpenFile, buf: u64, len: u64, offset: Option<u64>) -> SysResult {
    let space = &c.process.space;
    let n = file.write_from(len.min(MAX_RW_COUNT) as usize, offset, &c.process.job, &mut |done, piece| {
        space.lock().read(buf.wrapping_add(done as u64), piece)
    })?;
    Ok(n as u64)
}

pub fn read(c: &mut Call) -> SysResult {
    let [fd, buf, len, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    read_into_user(c, &file, buf, len, None)
}

pub fn write(c: &mut Call) -> SysResult {
    let [fd, buf, len, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    write_from_user(c, &file, buf, len, None)
}

fn check_offset(offset: u64) -> Result<u64, Errno> {
    if (offset as i64) < 0 { Err(Errno::EINVAL) } else { Ok(offset) }
}

pub fn pread64(c: &mut Call) -> SysResult {
    let [fd, buf, len, offset, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    if matches!(file.object, FileObject::PipeRead(_) | FileObject::PipeWrite(_)) {
        return Err(Errno::ESPIPE);
    }
    read_into_user(c, &file, buf, len, Some(check_offset(offset)?))
}

pub fn pwrite64(c: &mut Call) -> SysResult {
    let [fd, buf, len, offset, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    if matches!(file.object, FileObject::PipeRead(_) | FileObject::PipeWrite(_)) {
        return Err(Errno::ESPIPE);
    }
    write_from_user(c, &file, buf, len, Some(check_offset(offset)?))
}

/// The (base, length) pairs of an iovec array.
fn iovecs(c: &Call, iov: u64, count: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; count as usize * 16];
    c.process.space.lock().read(iov, &mut raw)?;
    Ok(raw
        .chunks_exact(16)
        .map(|v| {
            let base = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
            let len = u64::from_le_bytes(v[8..].try_into().unwrap_or_default());
            (base, len)
        })
        .collect())
}

/// The bytes so far, or the error if there are none (how Linux ends a vector transfer).
fn so_far(total: u64, error: Errno) -> SysResult {
    if total > 0 { Ok(total) } else { Err(error) }
}

pub fn readv(c: &mut Call) -> SysResult {
    let [fd, iov, count, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let mut total = 0;
    for (base, len) in iovecs(c, iov, count)? {
        if len == 0 {
            continue;
        }
        let n = match read_into_user(c, &file, base, len, None) {
            Ok(n) => n,
            Err(e) => return so_far(total, e),
        };
        total += n;
        if n < len {
            break;
        }
    }
    Ok(total)
}

pub fn writev(c: &mut Call) -> SysResult {
    let [fd, iov, count, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let mut total = 0;
    for (base, len) in iovecs(c, iov, count)? {
        if len == 0 {
            continue;
        }
        let n = match write_from_user(c, &file, base, len, None) {
            Ok(n) => n,
            Err(e) => return so_far(total, e),
        };
        total += n;
        if n < len {
            break;
        }
    }
    Ok(total)
}

pub fn lseek(c: &mut Call) -> SysResult {
    let [fd, offset, whence, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let size = match &file.object {
        FileObject::Node(ino) => files::with_fs(|fs| fs.stat(*ino).size),
        FileObject::Snapshot(d) => d.len() as u64,
        FileObject::PipeRead(_) | FileObject::PipeWrite(_) | FileObject::Console(_) => return Err(Errno::ESPIPE),
        FileObject::Device(..) => 0,
    };
    let base = match whence {
        0 => 0,
        1 => file.offset.load(Ordering::Relaxed) as i64,
        2 => size as i64,
        _ => return Err(Errno::EINVAL),
    };
    let new = base.checked_add(offset as i64).filter(|&n| n >= 0).ok_or(Errno::EINVAL)?;
    file.offset.store(new as u64, Ordering::Relaxed);
    Ok(new as u64)
}

/// The attributes of an open file.
fn file_stat(file: &OpenFile) -> Stat {
    match &file.object {
        FileObject::Node(ino) => files::with_fs(|fs| fs.stat(*ino)),
        FileObject::Snapshot(d) => {
            Stat { ino: 1, mode: 0o100444, nlink: 1, uid: 0, gid: 0, size: d.len() as u64, mtime: 0, rdev: 0 }
        }
        FileObject::Device(_, ino) => files::with_fs(|fs| fs.stat(*ino)),
        FileObject::Console(_) => {
            Stat { ino: 2, mode: 0o020620, nlink: 1, uid: 0, gid: 0, size: 0, mtime: 0, rdev: (5 << 8) | 1 }
        }
        FileObject::PipeRead(_) | FileObject::PipeWrite(_) => {
            Stat { ino: 3, mode: 0o010600, nlink: 1, uid: 0, gid: 0, size: 0, mtime: 0, rdev: 0 }
        }
    }
}

/// `struct stat` as x86-64 Linux lays it out (144 bytes).
fn encode_stat(s: &Stat) -> [u8; 144] {
    let mut b = [0u8; 144];
    let put = |b: &mut [u8; 144], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, 1); // st_dev
    put(&mut b, 8, s.ino);
    put(&mut b, 16, s.nlink as u64);
    b[24..28].copy_from_slice(&s.mode.to_le_bytes());
    b[28..32].copy_from_slice(&s.uid.to_le_bytes());
    b[32..36].copy_from_slice(&s.gid.to_le_bytes());
    put(&mut b, 40, s.rdev);
    put(&mut b, 48, s.size);
    put(&mut b, 56, 4096);
    put(&mut b, 64, s.size.div_ceil(512));
    for at in [72, 88, 104] {
        put(&mut b, at, s.mtime);
    }
    b
}

fn stat_path(c: &mut Call, dirfd: u64, path_addr: u64, out: u64, flags: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    let stat = if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        {
            let file = c.process.files.lock().get(dirfd)?;
            file_stat(&file)
        }
    } else {
        let ino = resolve(c, dirfd, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        files::with_fs(|fs| fs.stat(ino))
    };
    c.process.space.lock().write(out, &encode_stat(&stat))?;
    Ok(0)
}

pub fn stat(c: &mut Call) -> SysResult {
    let [path, out, ..] = c.args;
    stat_path(c, AT_FDCWD, path, out, 0)
}

pub fn lstat(c: &mut Call) -> SysResult {
    let [path, out, ..] = c.args;
    stat_path(c, AT_FDCWD, path, out, AT_SYMLINK_NOFOLLOW)
}

pub fn newfstatat(c: &mut Call) -> SysResult {
    let [dirfd, path, out, flags, ..] = c.args;
    stat_path(c, dirfd, path, out, flags)
}

pub fn fstat(c: &mut Call) -> SysResult {
    let [fd, out, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let stat = file_stat(&file);
    c.process.space.lock().write(out, &encode_stat(&stat))?;
    Ok(0)
}

pub fn statx(c: &mut Call) -> SysResult {
    let [dirfd, path_addr, flags, _mask, out, _] = c.args;
    let path = path_arg(c, path_addr)?;
    let s = if path.is_empty() && flags & AT_EMPTY_PATH != 0 {
        {
            let file = c.process.files.lock().get(dirfd)?;
            file_stat(&file)
        }
    } else {
        let ino = resolve(c, dirfd, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        files::with_fs(|fs| fs.stat(ino))
    };
    let mut b = [0u8; 256];
    b[0..4].copy_from_slice(&0x7ffu32.to_le_bytes()); // STATX_BASIC_STATS
    b[4..8].copy_from_slice(&4096u32.to_le_bytes());
    b[16..20].copy_from_slice(&s.nlink.to_le_bytes());
    b[20..24].copy_from_slice(&s.uid.to_le_bytes());
    b[24..28].copy_from_slice(&s.gid.to_le_bytes());
    b[28..30].copy_from_slice(&(s.mode as u16).to_le_bytes());
    b[32..40].copy_from_slice(&s.ino.to_le_bytes());
    b[40..48].copy_from_slice(&s.size.to_le_bytes());
    b[48..56].copy_from_slice(&s.size.div_ceil(512).to_le_bytes());
    for at in [64, 80, 96, 112] {
        b[at..at + 8].copy_from_slice(&s.mtime.to_le_bytes());
    }
    b[128..132].copy_from_slice(&((s.rdev >> 8) as u32 & 0xfff).to_le_bytes());
    b[132..136].copy_from_slice(&((s.rdev & 0xff) as u32).to_le_bytes());
    c.process.space.lock().write(out, &b)?;
    Ok(0)
}

pub fn getdents64(c: &mut Call) -> SysResult {
    let [fd, buf, len, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let FileObject::Node(dir) = file.object else { return Err(Errno::ENOTDIR) };
    let mut out: Vec<u8> = Vec::new();
    let mut cursor = file.offset.load(Ordering::Relaxed);
    while let Some(entry) = files::with_fs(|fs| fs.read_dir(dir, cursor))? {
        let reclen = (19 + entry.name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > len as usize {
            if out.is_empty() {
                return Err(Errno::EINVAL);
            }
            break;
        }
        let d_type: u8 = match entry.kind {
            NodeKind::Directory => 4,
            NodeKind::File | NodeKind::Synthetic(_) => 8,
            NodeKind::Symlink => 10,
            NodeKind::Device(_) => 2,
        };
        let start = out.len();
        out.resize(start + reclen, 0);
        out[start..start + 8].copy_from_slice(&lwk::ram_fs::st_ino(entry.ino).to_le_bytes());
        out[start + 8..start + 16].copy_from_slice(&entry.next.to_le_bytes());
        out[start + 16..start + 18].copy_from_slice(&(reclen as u16).to_le_bytes());
        out[start + 18] = d_type;
        out[start + 19..start + 19 + entry.name.len()].copy_from_slice(entry.name.as_bytes());
        cursor = entry.next;
    }
    c.process.space.lock().write(buf, &out)?;
    file.offset.store(cursor, Ordering::Relaxed);
    Ok(out.len() as u64)
}

fn access_at(c: &mut Call, dirfd: u64, path_addr: u64, flags: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    resolve(c, dirfd, &path, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(0)
}

pub fn access(c: &mut Call) -> SysResult {
    let [path, ..] = c.args;
    access_at(c, AT_FDCWD, path, 0)
}

pub fn faccessat(c: &mut Call) -> SysResult {
    let [dirfd, path, _mode, flags, ..] = c.args;
    access_at(c, dirfd, path, flags)
}

fn readlink_at(c: &mut Call, dirfd: u64, path_addr: u64, buf: u64, len: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    let ino = resolve(c, dirfd, &path, false)?;
    let target = c.process.with_lookup(|at| files::with_fs(|fs| fs.readlink(ino, at)))?;
    let n = target.len().min(len as usize);
    c.process.space.lock().write(buf, &target.as_bytes()[..n])?;
    Ok(n as u64)
}

pub fn readlink(c: &mut Call) -> SysResult {
    let [path, buf, len, ..] = c.args;
    readlink_at(c, AT_FDCWD, path, buf, len)
}

pub fn readlinkat(c: &mut Call) -> SysResult {
    let [dirfd, path, buf, len, ..] = c.args;
    readlink_at(c, dirfd, path, buf, len)
}

pub fn getcwd(c: &mut Call) -> SysResult {
    let [buf, len, ..] = c.args;
    let cwd = *c.process.cwd.lock();
    let mut path = files::with_fs(|fs| fs.path_of(cwd))?.into_bytes();
    path.push(0);
    if path.len() > len as usize {
        return Err(Errno::ERANGE);
    }
    c.process.space.lock().write(buf, &path)?;
    Ok(path.len() as u64)
}

fn change_dir(c: &Call, ino: Ino) -> SysResult {
    if files::with_fs(|fs| fs.kind(ino)) != NodeKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    let old = core::mem::replace(&mut *c.process.cwd.lock(), ino);
    files::with_fs(|fs| {
        fs.hold(ino);
        fs.release(old);
    });
    Ok(0)
}

pub fn chdir(c: &mut Call) -> SysResult {
    let path = path_arg(c, c.args[0])?;
    let ino = resolve(c, AT_FDCWD, &path, true)?;
    change_dir(c, ino)
}

pub fn fchdir(c: &mut Call) -> SysResult {
    match c.process.files.lock().get(c.args[0])?.object {
        FileObject::Node(ino) => change_dir(c, ino),
        _ => Err(Errno::ENOTDIR),
    }
}

fn mkdir_at(c: &mut Call, dirfd: u64, path_addr: u64, mode: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    let umask = c.process.umask.load(Ordering::Relaxed);
    with_parent(c, dirfd, &path, |fs, dir, name| fs.mkdir(dir, name, mode as u32 & 0o7777 & !umask))?;
    Ok(0)
}

pub fn mkdir(c: &mut Call) -> SysResult {
    let [path, mode, ..] = c.args;
    mkdir_at(c, AT_FDCWD, path, mode)
}

pub fn mkdirat(c: &mut Call) -> SysResult {
    let [dirfd, path, mode, ..] = c.args;
    mkdir_at(c, dirfd, path, mode)
}

fn unlink_at(c: &mut Call, dirfd: u64, path_addr: u64, flags: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    with_parent(
        c,
        dirfd,
        &path,
        |fs, dir, name| if flags & AT_REMOVEDIR != 0 { fs.rmdir(dir, name) } else { fs.unlink(dir, name) },
    )?;
    Ok(0)
}

pub fn unlink(c: &mut Call) -> SysResult {
    unlink_at(c, AT_FDCWD, c.args[0], 0)
}

pub fn rmdir(c: &mut Call) -> SysResult {
    unlink_at(c, AT_FDCWD, c.args[0], AT_REMOVEDIR)
}

pub fn unlinkat(c: &mut Call) -> SysResult {
    let [dirfd, path, flags, ..] = c.args;
    unlink_at(c, dirfd, path, flags)
}

fn rename_at(c: &mut Call, olddir: u64, old_addr: u64, newdir: u64, new_addr: u64) -> SysResult {
    let (old, new) = (path_arg(c, old_addr)?, path_arg(c, new_addr)?);
    let new_base = base_dir(c, newdir, &new)?;
    let exe = c.process.exe.lock().clone();
    with_parent(c, olddir, &old, |fs, odir, oname| {
        let (ndir, nname) = fs.resolve_parent(&lwk::ram_fs::Lookup { cwd: new_base, exe: &exe }, &new)?;
        fs.rename(odir, oname, ndir, nname)
    })?;
    Ok(0)
}

pub fn rename(c: &mut Call) -> SysResult {
    let [old, new, ..] = c.args;
    rename_at(c, AT_FDCWD, old, AT_FDCWD, new)
}

pub fn renameat2(c: &mut Call) -> SysResult {
    let [olddir, old, newdir, new, flags, _] = c.args;
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    rename_at(c, olddir, old, newdir, new)
}

pub fn symlink(c: &mut Call) -> SysResult {
    let [target, path, ..] = c.args;
    let (target, path) = (path_arg(c, target)?, path_arg(c, path)?);
    with_parent(c, AT_FDCWD, &path, |fs, dir, name| fs.symlink(dir, name, &target))?;
    Ok(0)
}

pub fn ftruncate(c: &mut Call) -> SysResult {
    let [fd, len, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    let writable = matches!(file.flags.load(Ordering::Relaxed) & O_ACCMODE, O_WRONLY | O_RDWR);
    match file.object {
        FileObject::Node(ino) if writable => files::with_fs(|fs| fs.truncate(ino, check_offset(len)?))?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

pub fn umask(c: &mut Call) -> SysResult {
    Ok(c.process.umask.swap(c.args[0] as u32 & 0o777, Ordering::Relaxed) as u64)
}

pub fn dup(c: &mut Call) -> SysResult {
    let mut files = c.process.files.lock();
    let file = files.get(c.args[0])?;
    files.insert(file, false, 0)
}

pub fn dup3(c: &mut Call) -> SysResult {
    let [old, new, flags, ..] = c.args;
    if old == new || flags & !(O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut files = c.process.files.lock();
    let file = files.get(old)?;
    files.replace(new, file, flags & O_CLOEXEC as u64 != 0)?;
    Ok(new)
}

pub fn dup2(c: &mut Call) -> SysResult {
    let [old, new, ..] = c.args;
    if old == new {
        c.process.files.lock().get(old)?;
        return Ok(new);
    }
    c.args[2] = 0;
    dup3(c)
}

pub fn pipe2(c: &mut Call) -> SysResult {
    let [fds, flags, ..] = c.args;
    let flags = flags as u32;
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let pipe = Arc::new(Pipe::new());
    let reader = OpenFile::new(FileObject::PipeRead(pipe.clone()), flags & O_NONBLOCK);
    let writer = OpenFile::new(FileObject::PipeWrite(pipe), O_WRONLY | (flags & O_NONBLOCK));
    let cloexec = flags & O_CLOEXEC != 0;
    let (r, w) = {
        let mut files = c.process.files.lock();
        let r = files.insert(reader, cloexec, 0)?;
        match files.insert(writer, cloexec, 0) {
            Ok(w) => (r, w),
            Err(e) => {
                let _ = files.close(r);
                return Err(e);
            }
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(r as u32).to_le_bytes());
    out[4..].copy_from_slice(&(w as u32).to_le_bytes());
    if let Err(e) = c.process.space.lock().write(fds, &out) {
        let mut files = c.process.files.lock();
        let _ = files.close(r);
        let _ = files.close(w);
        return Err(e);
    }
    Ok(0)
}

pub fn pipe(c: &mut Call) -> SysResult {
    c.args[1] = 0;
    pipe2(c)
}

pub fn fcntl(c: &mut Call) -> SysResult {
    const F_DUPFD: u64 = 0;
    const F_GETFD: u64 = 1;
    const F_SETFD: u64 = 2;
    const F_GETFL: u64 = 3;
    const F_SETFL: u64 = 4;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    const FD_CLOEXEC: u64 = 1;
    let [fd, cmd, arg, ..] = c.args;
    let mut files = c.process.files.lock();
    let file = files.get(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => files.insert(file, cmd == F_DUPFD_CLOEXEC, arg as usize),
        F_GETFD => Ok(if files.close_on_exec(fd)? { FD_CLOEXEC } else { 0 }),
        F_SETFD => files.set_close_on_exec(fd, arg & FD_CLOEXEC != 0).map(|_| 0),
        F_GETFL => Ok(file.flags.load(Ordering::Relaxed) as u64),
        F_SETFL => {
            // Only these change; the access mode and the others stay as open set them.
            let settable = crate::open_files::O_APPEND | O_NONBLOCK;
            let keep = file.flags.load(Ordering::Relaxed) & !settable;
            file.flags.store(keep | (arg as u32 & settable), Ordering::Relaxed);
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn ioctl(c: &mut Call) -> SysResult {
    const TCGETS: u64 = 0x5401;
    const TIOCGPGRP: u64 = 0x540f;
    const TIOCGWINSZ: u64 = 0x5413;
    let [fd, request, arg, ..] = c.args;
    let file = c.process.files.lock().get(fd)?;
    if !matches!(file.object, FileObject::Console(_) | FileObject::Device(lwk::ram_fs::DeviceKind::Console, _)) {
        return Err(Errno::ENOTTY);
    }
    let space = c.process.space.lock();
    match request {
        TCGETS => {
            // The kernel's `struct termios` (36 bytes: four flag words, c_line, 19 control
            // characters), as a cooked terminal: ICRNL, OPOST|ONLCR, B38400|CS8|CREAD, ISIG|ICANON|ECHO...
            let mut t = [0u8; 36];
            t[0..4].copy_from_slice(&0o400u32.to_le_bytes());
            t[4..8].copy_from_slice(&0o5u32.to_le_bytes());
            t[8..12].copy_from_slice(&0o277u32.to_le_bytes());
            t[12..16].copy_from_slice(&0o105073u32.to_le_bytes());
            space.write(arg, &t)?;
            Ok(0)
        }
        TIOCGWINSZ => {
            let mut w = [0u8; 8];
            w[0..2].copy_from_slice(&24u16.to_le_bytes());
            w[2..4].copy_from_slice(&80u16.to_le_bytes());
            space.write(arg, &w)?;
            Ok(0)
        }
        TIOCGPGRP => {
            space.write(arg, &c.process.pid.to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// poll and ppoll: files, devices and the console are always ready; pipes block until ready.
pub fn poll(c: &mut Call) -> SysResult {
    const POLLIN: u16 = 1;
    const POLLOUT: u16 = 4;
    const POLLNVAL: u16 = 0x20;
    let [fds, count, timeout, ..] = c.args;
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; count as usize * 8];
    c.process.space.lock().read(fds, &mut raw)?;
    let timeout_zero = timeout == 0;
    loop {
        let mut ready = 0;
        let mut pipes = Vec::new();
        for entry in raw.chunks_exact_mut(8) {
            let fd = i32::from_le_bytes(entry[..4].try_into().unwrap_or_default());
            let events = u16::from_le_bytes([entry[4], entry[5]]);
            let revents = if fd < 0 {
                0
            } else {
                match c.process.files.lock().get(fd as u64) {
                    Err(_) => POLLNVAL,
                    Ok(f) => match &f.object {
                        FileObject::PipeRead(p) | FileObject::PipeWrite(p) => {
                            pipes.push(p.clone());
                            let (r, w) = p.ready();
                            let mut ev = 0;
                            if r && events & POLLIN != 0 {
                                ev |= POLLIN;
                            }
                            if w && events & POLLOUT != 0 {
                                ev |= POLLOUT;
                            }
                            ev
                        }
                        _ => events & (POLLIN | POLLOUT),
                    },
                }
            };
            entry[6..8].copy_from_slice(&revents.to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 || timeout_zero || pipes.is_empty() {
            c.process.space.lock().write(fds, &raw)?;
            return Ok(ready);
        }
        // Wait for any of the pipes to change, then look again.
        crate::scheduler::yield_now();
    }
}
