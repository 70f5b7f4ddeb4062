//! File system calls: open/openat/close, read/write and their vector and positioned forms,
//! sendfile, lseek, the stat and statfs families, getdents/getdents64, access, readlink, cwd,
//! mkdir/rmdir/unlink/rename, symlinks (no hard links), chmod, utimensat, truncate, fsync,
//! fadvise64, dup, pipes, fcntl, ioctl (terminal queries on the console), and the waits on
//! descriptors: poll, ppoll, select, pselect6.

use super::{Call, SysResult};
use crate::fs::files::Place;
use crate::fs::open_files::NodeRef;
use crate::fs::open_files::{FileObject, IO_CHUNK, MAX_FDS, OpenFile, PollEvents};
use crate::fs::open_flags::{O_RDONLY, O_WRONLY, OpenFlags};
use crate::fs::pipe::Pipe;
use crate::fs::process_files;
use crate::fs::ram_fs::{FileSystem, Ino, NODE_BYTES, NodeKind, Stat, WritableUsage};
use crate::task::process::Process;
use crate::task::wait_queue::{self, WaitQueue};
use crate::util::errno::Errno;
use crate::{fs::synthetic_files, task::signals, time::clock};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use bitflags::bitflags;
use core::sync::atomic::Ordering;

const AT_FDCWD: u64 = -100i64 as u64;
bitflags! {
    /// The flags of the `*at` calls. Those that take flags ignore bits they do not know, but for
    /// linkat and utimensat, which refuse them (EINVAL).
    #[derive(Clone, Copy)]
    struct AtFlags: u64 {
        const SYMLINK_NOFOLLOW = 0x100;
        const REMOVEDIR = 0x200;
        const SYMLINK_FOLLOW = 0x400;
        const EMPTY_PATH = 0x1000;
    }
}
const PATH_MAX: usize = 4096;
/// Most bytes one read or write moves (Linux's MAX_RW_COUNT: a larger count is cut to it).
const MAX_RW_COUNT: u64 = 0x7fff_f000;

fn path_arg(c: &Call, addr: u64) -> Result<String, Errno> {
    let bytes = c.process.space.lock().read_string(addr, PATH_MAX)?;
    String::from_utf8(bytes).map_err(|_| Errno::ENOENT)
}

/// The directory a `*at` call resolves relative paths from. `dirfd` is a C `int`: only its low
/// 32 bits count (glibc passes AT_FDCWD zero-extended).
fn base_dir(c: &Call, dirfd: u64, path: &str) -> Result<Place, Errno> {
    let dirfd = dirfd as u32 as u64;
    if path.starts_with('/') || dirfd == AT_FDCWD as u32 as u64 {
        return Ok(process_files::of(c.process).cwd.lock().clone());
    }
    match process_files::of(c.process).fds.lock().get(dirfd)?.object {
        FileObject::Node(ref node) => Ok(Place { files: node.files.clone(), ino: node.ino }),
        _ => Err(Errno::ENOTDIR),
    }
}

/// Resolves `path` for the caller, relative to `dirfd`.
fn resolve(c: &Call, dirfd: u64, path: &str, follow: bool) -> Result<Place, Errno> {
    let base = base_dir(c, dirfd, path)?;
    let exe = c.process.exe.lock().clone();
    process_files::of_job(&c.process.job).resolve(&base, &exe, path, follow)
}

/// The directory that holds (or would hold) the last name of `path`, and that name.
fn parent_of<'p>(c: &Call, dirfd: u64, path: &'p str) -> Result<(Place, &'p str), Errno> {
    let base = base_dir(c, dirfd, path)?;
    let exe = c.process.exe.lock().clone();
    process_files::of_job(&c.process.job).resolve_parent(&base, &exe, path)
}

/// Resolves the parent directory of `path` and hands `f` its file system (for a change: `EROFS`
/// through a read-only grant), it and the last name.
fn with_parent<R>(
    c: &Call,
    dirfd: u64,
    path: &str,
    f: impl FnOnce(&mut FileSystem<'static>, Ino, &str) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let (dir, name) = parent_of(c, dirfd, path)?;
    dir.files.change(|fs| f(fs, dir.ino, name))
}

fn open_node(process: &Process, place: Place, flags: OpenFlags) -> Result<Arc<OpenFile>, Errno> {
    let Place { files, ino } = place;
    let files = &files;
    let kind = files.with(|fs| fs.kind(ino))?;
    if flags.contains(OpenFlags::DIRECTORY) && kind != NodeKind::Directory {
        return Err(Errno::ENOTDIR);
    }
    let path_only = flags.contains(OpenFlags::PATH);
    if !path_only {
        if kind == NodeKind::Directory && (flags.access_mode() != O_RDONLY || flags.contains(OpenFlags::CREAT)) {
            return Err(Errno::EISDIR);
        }
        if flags.access_mode() != O_RDONLY {
            // Writing a file of the read-only part (the initrd, a share granted read-only) fails
            // now, not at the first write.
            files.check_writable(ino)?;
        }
    }
    let node = || FileObject::Node(NodeRef { files: files.clone(), ino });
    let object = match kind {
        _ if path_only => node(),
        NodeKind::Device(d) => FileObject::Device(d, ino),
        NodeKind::Synthetic(s) => FileObject::Snapshot(synthetic_files::generate(s, process)),
        _ => node(),
    };
    if !path_only && flags.contains(OpenFlags::TRUNC) && kind == NodeKind::File && flags.access_mode() != O_RDONLY {
        files.change(|fs| fs.truncate(ino, 0))?;
    }
    OpenFile::new(object, flags.kept(), &process.job.kernel_memory)
}

fn do_open(c: &mut Call, dirfd: u64, path_addr: u64, flags: u64, mode: u64) -> SysResult {
    let flags = OpenFlags::from_bits_retain(flags as u32);
    let path = path_arg(c, path_addr)?;
    if let Some(name) = path.strip_prefix(SEGMENT_DIR) {
        return open_segment(c, name, flags);
    }
    let follow = !flags.contains(OpenFlags::NOFOLLOW);
    let place = match resolve(c, dirfd, &path, follow) {
        Ok(place) => {
            if flags.contains(OpenFlags::CREAT | OpenFlags::EXCL) {
                return Err(Errno::EEXIST);
            }
            place
        }
        Err(Errno::ENOENT) if flags.contains(OpenFlags::CREAT) => {
            let umask = c.process.umask.load(Ordering::Relaxed);
            let (dir, name) = parent_of(c, dirfd, &path)?;
            let ino = dir.files.change(|fs| fs.create(dir.ino, name, mode as u32 & 0o7777 & !umask))?;
            Place { files: dir.files, ino }
        }
        Err(e) => return Err(e),
    };
    if !follow && place.files.with(|fs| fs.kind(place.ino))? == NodeKind::Symlink && !flags.contains(OpenFlags::PATH) {
        return Err(Errno::ELOOP);
    }
    let file = open_node(c.process, place, flags)?;
    process_files::of(c.process).fds.lock().insert(file, flags.contains(OpenFlags::CLOEXEC), 0)
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
    let flags = OpenFlags::from_bits_retain(O_WRONLY) | OpenFlags::CREAT | OpenFlags::TRUNC;
    do_open(c, AT_FDCWD, path, u64::from(flags.bits()), mode)
}

pub fn close(c: &mut Call) -> SysResult {
    process_files::of(c.process).fds.lock().close(c.args[0])?;
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
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    read_into_user(c, &file, buf, len, None)
}

pub fn write(c: &mut Call) -> SysResult {
    let [fd, buf, len, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    write_from_user(c, &file, buf, len, None)
}

fn check_offset(offset: u64) -> Result<u64, Errno> {
    if (offset as i64) < 0 { Err(Errno::EINVAL) } else { Ok(offset) }
}

pub fn pread64(c: &mut Call) -> SysResult {
    let [fd, buf, len, offset, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    if matches!(file.object, FileObject::PipeRead(_) | FileObject::PipeWrite(_)) {
        return Err(Errno::ESPIPE);
    }
    read_into_user(c, &file, buf, len, Some(check_offset(offset)?))
}

pub fn pwrite64(c: &mut Call) -> SysResult {
    let [fd, buf, len, offset, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
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

/// readv/writev: `transfer(call, file, base, len)` for each buffer in turn, stopping at the first
/// short one; an error ends the call with the bytes so far, or the error if there are none (as
/// Linux ends a vector transfer).
fn vector_transfer(c: &mut Call, transfer: fn(&Call, &OpenFile, u64, u64, Option<u64>) -> SysResult) -> SysResult {
    let [fd, iov, count, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    let mut total = 0;
    for (base, len) in iovecs(c, iov, count)? {
        if len == 0 {
            continue;
        }
        let n = match transfer(c, &file, base, len, None) {
            Ok(n) => n,
            Err(_) if total > 0 => return Ok(total),
            Err(e) => return Err(e),
        };
        total += n;
        if n < len {
            break;
        }
    }
    Ok(total)
}

pub fn readv(c: &mut Call) -> SysResult {
    vector_transfer(c, read_into_user)
}

pub fn writev(c: &mut Call) -> SysResult {
    vector_transfer(c, write_from_user)
}

pub fn lseek(c: &mut Call) -> SysResult {
    let [fd, offset, whence, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    let size = match &file.object {
        FileObject::Node(node) => node.files.with(|fs| fs.stat(node.ino))?.size,
        FileObject::Snapshot(d) => d.len() as u64,
        FileObject::PipeRead(_) | FileObject::PipeWrite(_) | FileObject::Console(_) => return Err(Errno::ESPIPE),
        FileObject::Device(..) => 0,
        FileObject::Segment { view, .. } => view.memory.bytes,
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
fn file_stat(c: &Call, file: &OpenFile) -> Result<Stat, Errno> {
    Ok(match &file.object {
        FileObject::Node(node) => node.files.with(|fs| fs.stat(node.ino))?,
        FileObject::Snapshot(d) => {
            Stat { ino: 1, mode: 0o100444, nlink: 1, uid: 0, gid: 0, size: d.len() as u64, mtime: 0, rdev: 0 }
        }
        FileObject::Device(_, ino) => process_files::of_job(&c.process.job).with(|fs| fs.stat(*ino))?,
        FileObject::Console(_) => {
            Stat { ino: 2, mode: 0o020620, nlink: 1, uid: 0, gid: 0, size: 0, mtime: 0, rdev: (5 << 8) | 1 }
        }
        FileObject::PipeRead(_) | FileObject::PipeWrite(_) => {
            Stat { ino: 3, mode: 0o010600, nlink: 1, uid: 0, gid: 0, size: 0, mtime: 0, rdev: 0 }
        }
        FileObject::Segment { view, .. } => {
            let mode = if view.writable { 0o020660 } else { 0o020440 };
            Stat { ino: 4, mode, nlink: 1, uid: 0, gid: 0, size: view.memory.bytes, mtime: 0, rdev: SEGMENT_RDEV }
        }
    })
}

/// The device number of `/dev/manul/seg/*` (a character device of an unassigned major).
const SEGMENT_RDEV: u64 = 240 << 8;
/// Where a job finds the shared segments granted to it.
const SEGMENT_DIR: &str = "/dev/manul/seg/";

/// Opens `/dev/manul/seg/NAME`: ENOENT unless the job holds a grant to segment NAME, EACCES
/// for writing under a read-only grant.
fn open_segment(c: &Call, name: &str, flags: OpenFlags) -> SysResult {
    let lookup = crate::mm::segment::SEGMENT_FOR.get().ok_or(Errno::ENOENT)?;
    let view = lookup(&c.process.job.name, name)?;
    if flags.access_mode() != O_RDONLY && !view.writable {
        return Err(Errno::EACCES);
    }
    let file = OpenFile::new(FileObject::Segment { name: name.into(), view }, flags, &c.process.job.kernel_memory)?;
    process_files::of(c.process).fds.lock().insert(file, flags.contains(OpenFlags::CLOEXEC), 0)
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

fn stat_path(c: &mut Call, dirfd: u64, path_addr: u64, out: u64, flags: AtFlags) -> SysResult {
    let path = path_arg(c, path_addr)?;
    let stat = if path.is_empty() {
        if !flags.contains(AtFlags::EMPTY_PATH) {
            return Err(Errno::ENOENT);
        }
        {
            let file = process_files::of(c.process).fds.lock().get(dirfd)?;
            file_stat(c, &file)?
        }
    } else {
        let place = resolve(c, dirfd, &path, !flags.contains(AtFlags::SYMLINK_NOFOLLOW))?;
        place.files.with(|fs| fs.stat(place.ino))?
    };
    c.process.space.lock().write(out, &encode_stat(&stat))?;
    Ok(0)
}

pub fn stat(c: &mut Call) -> SysResult {
    let [path, out, ..] = c.args;
    stat_path(c, AT_FDCWD, path, out, AtFlags::empty())
}

pub fn lstat(c: &mut Call) -> SysResult {
    let [path, out, ..] = c.args;
    stat_path(c, AT_FDCWD, path, out, AtFlags::SYMLINK_NOFOLLOW)
}

pub fn newfstatat(c: &mut Call) -> SysResult {
    let [dirfd, path, out, flags, ..] = c.args;
    stat_path(c, dirfd, path, out, AtFlags::from_bits_retain(flags))
}

pub fn fstat(c: &mut Call) -> SysResult {
    let [fd, out, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    let stat = file_stat(c, &file)?;
    c.process.space.lock().write(out, &encode_stat(&stat))?;
    Ok(0)
}

pub fn statx(c: &mut Call) -> SysResult {
    let [dirfd, path_addr, flags, _mask, out, _] = c.args;
    let flags = AtFlags::from_bits_retain(flags);
    let path = path_arg(c, path_addr)?;
    let s = if path.is_empty() && flags.contains(AtFlags::EMPTY_PATH) {
        {
            let file = process_files::of(c.process).fds.lock().get(dirfd)?;
            file_stat(c, &file)?
        }
    } else {
        let place = resolve(c, dirfd, &path, !flags.contains(AtFlags::SYMLINK_NOFOLLOW))?;
        place.files.with(|fs| fs.stat(place.ino))?
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

/// Lists a directory into user memory from the descriptor's position: `struct linux_dirent64`
/// records, or with `old_format` the `struct linux_dirent` of getdents (no `d_type` field after
/// `d_reclen`: the type is the record's last byte). EINVAL when not even one entry fits.
fn list_directory(c: &mut Call, old_format: bool) -> SysResult {
    let [fd, buf, len, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    if file.path_only() {
        return Err(Errno::EBADF);
    }
    let FileObject::Node(ref dir) = file.object else { return Err(Errno::ENOTDIR) };
    // At most one kernel buffer's worth per call: a listing continues at the next call.
    let len = len.min(IO_CHUNK as u64);
    let mut out: Vec<u8> = Vec::new();
    let mut cursor = file.offset.load(Ordering::Relaxed);
    while let Some(entry) = dir.files.with(|fs| fs.read_dir(dir.ino, cursor))? {
        let name_at = if old_format { 18 } else { 19 };
        let reclen = (name_at + entry.name.len() + if old_format { 2 } else { 1 }).next_multiple_of(8);
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
        let record = &mut out[start..];
        record[0..8].copy_from_slice(&crate::fs::ram_fs::st_ino(entry.ino).to_le_bytes());
        record[8..16].copy_from_slice(&entry.next.to_le_bytes());
        record[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        record[name_at..name_at + entry.name.len()].copy_from_slice(entry.name.as_bytes());
        if old_format {
            record[reclen - 1] = d_type;
        } else {
            record[18] = d_type;
        }
        cursor = entry.next;
    }
    c.process.space.lock().write(buf, &out)?;
    file.offset.store(cursor, Ordering::Relaxed);
    Ok(out.len() as u64)
}

pub fn getdents64(c: &mut Call) -> SysResult {
    list_directory(c, false)
}

pub fn getdents(c: &mut Call) -> SysResult {
    list_directory(c, true)
}

fn access_at(c: &mut Call, dirfd: u64, path_addr: u64, flags: AtFlags) -> SysResult {
    let path = path_arg(c, path_addr)?;
    resolve(c, dirfd, &path, !flags.contains(AtFlags::SYMLINK_NOFOLLOW))?;
    Ok(0)
}

pub fn access(c: &mut Call) -> SysResult {
    let [path, ..] = c.args;
    access_at(c, AT_FDCWD, path, AtFlags::empty())
}

pub fn faccessat(c: &mut Call) -> SysResult {
    let [dirfd, path, _mode, flags, ..] = c.args;
    access_at(c, dirfd, path, AtFlags::from_bits_retain(flags))
}

fn readlink_at(c: &mut Call, dirfd: u64, path_addr: u64, buf: u64, len: u64) -> SysResult {
    let path = path_arg(c, path_addr)?;
    let place = resolve(c, dirfd, &path, false)?;
    let exe = c.process.exe.lock().clone();
    let target =
        place.files.with(|fs| fs.readlink(place.ino, &crate::fs::ram_fs::Lookup { cwd: place.ino, exe: &exe }))?;
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
    let cwd = process_files::of(c.process).cwd.lock().clone();
    let mut path = cwd.files.path_of(cwd.ino)?.into_bytes();
    path.push(0);
    if path.len() > len as usize {
        return Err(Errno::ERANGE);
    }
    c.process.space.lock().write(buf, &path)?;
    Ok(path.len() as u64)
}

/// Makes `place` the working directory: checked and held in one step (another thread may be
/// removing it), then the old one released.
fn change_dir(c: &Call, place: Place) -> SysResult {
    place.files.with(|fs| {
        if fs.kind(place.ino)? != NodeKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        fs.hold(place.ino)
    })?;
    let old = core::mem::replace(&mut *process_files::of(c.process).cwd.lock(), place);
    old.files.with(|fs| fs.release(old.ino));
    Ok(0)
}

pub fn chdir(c: &mut Call) -> SysResult {
    let path = path_arg(c, c.args[0])?;
    let place = resolve(c, AT_FDCWD, &path, true)?;
    change_dir(c, place)
}

pub fn fchdir(c: &mut Call) -> SysResult {
    let file = process_files::of(c.process).fds.lock().get(c.args[0])?;
    match file.object {
        FileObject::Node(ref node) => change_dir(c, Place { files: node.files.clone(), ino: node.ino }),
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

fn unlink_at(c: &mut Call, dirfd: u64, path_addr: u64, flags: AtFlags) -> SysResult {
    let path = path_arg(c, path_addr)?;
    with_parent(c, dirfd, &path, |fs, dir, name| {
        if flags.contains(AtFlags::REMOVEDIR) { fs.rmdir(dir, name) } else { fs.unlink(dir, name) }
    })?;
    Ok(0)
}

pub fn unlink(c: &mut Call) -> SysResult {
    unlink_at(c, AT_FDCWD, c.args[0], AtFlags::empty())
}

pub fn rmdir(c: &mut Call) -> SysResult {
    unlink_at(c, AT_FDCWD, c.args[0], AtFlags::REMOVEDIR)
}

pub fn unlinkat(c: &mut Call) -> SysResult {
    let [dirfd, path, flags, ..] = c.args;
    unlink_at(c, dirfd, path, AtFlags::from_bits_retain(flags))
}

/// rename: within one file system (`EXDEV` between the tree and a share, or two shares, as
/// Linux between mounts).
fn rename_at(c: &mut Call, olddir: u64, old_addr: u64, newdir: u64, new_addr: u64) -> SysResult {
    let (old, new) = (path_arg(c, old_addr)?, path_arg(c, new_addr)?);
    let (odir, oname) = parent_of(c, olddir, &old)?;
    let (ndir, nname) = parent_of(c, newdir, &new)?;
    if !odir.files.same_as(&ndir.files) {
        return Err(Errno::EXDEV);
    }
    odir.files.change(|fs| fs.rename(odir.ino, oname, ndir.ino, nname))?;
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

fn symlink_at(c: &mut Call, target_addr: u64, dirfd: u64, path_addr: u64) -> SysResult {
    let (target, path) = (path_arg(c, target_addr)?, path_arg(c, path_addr)?);
    with_parent(c, dirfd, &path, |fs, dir, name| fs.symlink(dir, name, &target))?;
    Ok(0)
}

pub fn symlink(c: &mut Call) -> SysResult {
    let [target, path, ..] = c.args;
    symlink_at(c, target, AT_FDCWD, path)
}

pub fn symlinkat(c: &mut Call) -> SysResult {
    let [target, dirfd, path, ..] = c.args;
    symlink_at(c, target, dirfd, path)
}

/// link and linkat: the file system has no hard links, so a link that Linux would make fails
/// with EPERM (as on file systems without them); the errors Linux gives first (a missing source,
/// an existing target, a read-only directory) come first.
fn link_at(c: &mut Call, olddir: u64, old_addr: u64, newdir: u64, new_addr: u64, flags: u64) -> SysResult {
    let flags = AtFlags::from_bits_retain(flags);
    if !(AtFlags::SYMLINK_FOLLOW | AtFlags::EMPTY_PATH).contains(flags) {
        return Err(Errno::EINVAL);
    }
    let (old, new) = (path_arg(c, old_addr)?, path_arg(c, new_addr)?);
    if old.is_empty() && flags.contains(AtFlags::EMPTY_PATH) {
        process_files::of(c.process).fds.lock().get(olddir as u32 as u64)?;
    } else {
        resolve(c, olddir, &old, flags.contains(AtFlags::SYMLINK_FOLLOW))?;
    }
    with_parent(c, newdir, &new, |fs, dir, name| {
        if fs.resolve(&crate::fs::ram_fs::Lookup { cwd: dir, exe: "" }, name, false).is_ok() {
            return Err(Errno::EEXIST);
        }
        if !fs.in_writable_part(dir) {
            return Err(Errno::EROFS);
        }
        Err(Errno::EPERM)
    })
}

pub fn link(c: &mut Call) -> SysResult {
    let [old, new, ..] = c.args;
    link_at(c, AT_FDCWD, old, AT_FDCWD, new, 0)
}

pub fn linkat(c: &mut Call) -> SysResult {
    let [olddir, old, newdir, new, flags, _] = c.args;
    link_at(c, olddir, old, newdir, new, flags)
}

pub fn ftruncate(c: &mut Call) -> SysResult {
    let [fd, len, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    let writable = file.writable();
    match file.object {
        FileObject::Node(ref node) if writable => node.files.with(|fs| fs.truncate(node.ino, check_offset(len)?))?,
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

pub fn umask(c: &mut Call) -> SysResult {
    Ok(c.process.umask.swap(c.args[0] as u32 & 0o777, Ordering::Relaxed) as u64)
}

pub fn dup(c: &mut Call) -> SysResult {
    let mut files = process_files::of(c.process).fds.lock();
    let file = files.get(c.args[0])?;
    files.insert(file, false, 0)
}

pub fn dup3(c: &mut Call) -> SysResult {
    let [old, new, flags, ..] = c.args;
    let flags = OpenFlags::only(flags, OpenFlags::CLOEXEC).ok_or(Errno::EINVAL)?;
    if old == new {
        return Err(Errno::EINVAL);
    }
    let mut files = process_files::of(c.process).fds.lock();
    let file = files.get(old)?;
    files.replace(new, file, flags.contains(OpenFlags::CLOEXEC))?;
    Ok(new)
}

pub fn dup2(c: &mut Call) -> SysResult {
    let [old, new, ..] = c.args;
    if old == new {
        process_files::of(c.process).fds.lock().get(old)?;
        return Ok(new);
    }
    c.args[2] = 0;
    dup3(c)
}

pub fn pipe2(c: &mut Call) -> SysResult {
    let [fds, flags, ..] = c.args;
    let flags = OpenFlags::only(flags as u32 as u64, OpenFlags::CLOEXEC | OpenFlags::NONBLOCK).ok_or(Errno::EINVAL)?;
    let account = &c.process.job.kernel_memory;
    let pipe = Arc::new(Pipe::new(account)?);
    let nonblock = flags.intersection(OpenFlags::NONBLOCK);
    let reader = OpenFile::new(FileObject::PipeRead(pipe.clone()), nonblock, account)?;
    let writer = OpenFile::new(FileObject::PipeWrite(pipe), OpenFlags::from_bits_retain(O_WRONLY) | nonblock, account)?;
    let cloexec = flags.contains(OpenFlags::CLOEXEC);
    let (r, w) = {
        let mut files = process_files::of(c.process).fds.lock();
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
        let mut files = process_files::of(c.process).fds.lock();
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
    let mut files = process_files::of(c.process).fds.lock();
    let file = files.get(fd)?;
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => files.insert(file, cmd == F_DUPFD_CLOEXEC, arg as usize),
        F_GETFD => Ok(if files.close_on_exec(fd)? { FD_CLOEXEC } else { 0 }),
        F_SETFD => files.set_close_on_exec(fd, arg & FD_CLOEXEC != 0).map(|_| 0),
        F_GETFL => Ok(file.flags.load(Ordering::Relaxed) as u64),
        F_SETFL => {
            file.flags.store(file.status().with_settable(arg as u32).bits(), Ordering::Relaxed);
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
    let file = process_files::of(c.process).fds.lock().get(fd)?;
    if !matches!(file.object, FileObject::Console(_) | FileObject::Device(crate::fs::ram_fs::DeviceKind::Console, _)) {
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

/// The node behind an open file, if it has one in the file system.
/// Where an open file's node is (a device's is in the enclave's tree).
fn file_node(c: &Call, file: &OpenFile) -> Option<Place> {
    match &file.object {
        FileObject::Node(node) => Some(Place { files: node.files.clone(), ino: node.ino }),
        FileObject::Device(_, ino) => Some(Place { files: process_files::of_job(&c.process.job).clone(), ino: *ino }),
        _ => None,
    }
}

/// The open file behind `fd` for a call that needs a real one: an O_PATH descriptor is EBADF.
fn open_file(c: &Call, fd: u64) -> Result<Arc<OpenFile>, Errno> {
    let file = process_files::of(c.process).fds.lock().get(fd as u32 as u64)?;
    if file.path_only() {
        return Err(Errno::EBADF);
    }
    Ok(file)
}

/// sendfile: copies up to `count` bytes from `in_fd` (from `*offset` when given, which is then
/// advanced instead of the file offset) to `out_fd`, through a kernel buffer. Bytes are taken
/// from the input only as far as the output accepted them. The input cannot be a pipe (EINVAL,
/// as Linux without splice support for it), nor an output opened with O_APPEND (EINVAL).
pub fn sendfile(c: &mut Call) -> SysResult {
    const CHUNK: usize = 64 * 1024;
    let [out_fd, in_fd, offset_at, count, ..] = c.args;
    let input = open_file(c, in_fd)?;
    if !input.readable() {
        return Err(Errno::EBADF);
    }
    let is_pipe = matches!(input.object, FileObject::PipeRead(_) | FileObject::PipeWrite(_));
    if is_pipe && offset_at != 0 {
        return Err(Errno::ESPIPE);
    }
    let mut position = if offset_at != 0 {
        check_offset(c.process.space.lock().read_u64(offset_at)?)?
    } else {
        input.offset.load(Ordering::Relaxed)
    };
    let output = open_file(c, out_fd)?;
    if !output.writable() {
        return Err(Errno::EBADF);
    }
    if is_pipe || output.status().contains(OpenFlags::APPEND) {
        return Err(Errno::EINVAL);
    }
    let count = count.min(MAX_RW_COUNT) as usize;
    let mut buf = vec![0u8; count.min(CHUNK)];
    let mut total = 0usize;
    let mut failure = None;
    while total < count {
        let want = (count - total).min(CHUNK);
        let mut got = 0;
        let read = input.read_to(want, Some(position), &mut |piece| {
            buf.get_mut(got..got + piece.len()).ok_or(Errno::EIO)?.copy_from_slice(piece);
            got += piece.len();
            Ok(())
        });
        let got = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let written = output.write_from(got, None, &c.process.job, &mut |at, piece| {
            piece.copy_from_slice(buf.get(at..at + piece.len()).ok_or(Errno::EIO)?);
            Ok(())
        });
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        position = position.saturating_add(written as u64);
        total += written;
        if written < got || got < want {
            break;
        }
    }
    if offset_at != 0 {
        c.process.space.lock().write(offset_at, &position.to_le_bytes())?;
    } else {
        input.offset.store(position, Ordering::Relaxed);
    }
    match failure {
        Some(e) if total == 0 => Err(e),
        _ => Ok(total as u64),
    }
}

/// fsync and fdatasync: the RAM file system has nothing to write back; Linux's EINVAL for what
/// cannot be synced (pipes, devices, the console, /proc files).
pub fn fsync(c: &mut Call) -> SysResult {
    match open_file(c, c.args[0])?.object {
        FileObject::Node(_) => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn truncate(c: &mut Call) -> SysResult {
    let [path_addr, len, ..] = c.args;
    let len = check_offset(len)?;
    let path = path_arg(c, path_addr)?;
    let place = resolve(c, AT_FDCWD, &path, true)?;
    place.files.change(|fs| fs.truncate(place.ino, len))?;
    Ok(0)
}

fn chmod_node(place: Place, mode: u64) -> SysResult {
    place.files.change(|fs| fs.chmod(place.ino, mode as u32))?;
    Ok(0)
}

pub fn chmod(c: &mut Call) -> SysResult {
    let [path_addr, mode, ..] = c.args;
    let path = path_arg(c, path_addr)?;
    chmod_node(resolve(c, AT_FDCWD, &path, true)?, mode)
}

/// fchmodat (268) has no flags argument: links are followed (fchmodat2 would have them).
pub fn fchmodat(c: &mut Call) -> SysResult {
    let [dirfd, path_addr, mode, ..] = c.args;
    let path = path_arg(c, path_addr)?;
    chmod_node(resolve(c, dirfd, &path, true)?, mode)
}

/// fchmod: nodes of the writable part; EROFS for the others (pipes and the console included:
/// their modes are fixed).
pub fn fchmod(c: &mut Call) -> SysResult {
    let [fd, mode, ..] = c.args;
    let file = open_file(c, fd)?;
    chmod_node(file_node(c, &file).ok_or(Errno::EROFS)?, mode)
}

/// utimensat: the file system keeps one time per node (the modification time, also reported as
/// access and change time), so the access time asked for is checked and dropped. A NULL `times`
/// means now for both; UTIME_NOW and UTIME_OMIT as Linux. With a NULL path, `dirfd` itself.
pub fn utimensat(c: &mut Call) -> SysResult {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    const UTIME_OMIT: i64 = (1 << 30) - 2;
    let [dirfd, path_addr, times, flags, ..] = c.args;
    // The new modification time in seconds, None to keep it. "Now" is the real-time clock's
    // (the file system's own clock may not be set).
    let now = clock::realtime_ns() / NS_PER_SEC;
    let mut mtime = Some(now);
    if times != 0 {
        let mut raw = [0u8; 32];
        c.process.space.lock().read(times, &mut raw)?;
        let word = |i: usize| i64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (atime_ns, mtime_s, mtime_ns) = (word(1), word(2), word(3));
        if atime_ns == UTIME_OMIT && mtime_ns == UTIME_OMIT {
            return Ok(0); // Nothing to do: Linux does not even look at the path.
        }
        let valid = |ns: i64| ns == UTIME_NOW || ns == UTIME_OMIT || (0..1_000_000_000).contains(&ns);
        if !valid(atime_ns) || !valid(mtime_ns) {
            return Err(Errno::EINVAL);
        }
        mtime = match mtime_ns {
            UTIME_OMIT => None,
            UTIME_NOW => Some(now),
            _ => Some(mtime_s as u64),
        };
    }
    let flags = AtFlags::from_bits_retain(flags);
    if !(AtFlags::SYMLINK_NOFOLLOW | AtFlags::EMPTY_PATH).contains(flags) {
        return Err(Errno::EINVAL);
    }
    let place = if path_addr == 0 {
        if dirfd as u32 == AT_FDCWD as u32 {
            return Err(Errno::EFAULT);
        }
        if !flags.is_empty() {
            return Err(Errno::EINVAL);
        }
        file_node(c, &*open_file(c, dirfd)?).ok_or(Errno::EROFS)?
    } else {
        let path = path_arg(c, path_addr)?;
        if path.is_empty() && flags.contains(AtFlags::EMPTY_PATH) {
            let file = process_files::of(c.process).fds.lock().get(dirfd as u32 as u64)?;
            file_node(c, &file).ok_or(Errno::EROFS)?
        } else {
            resolve(c, dirfd, &path, !flags.contains(AtFlags::SYMLINK_NOFOLLOW))?
        }
    };
    place.files.change(|fs| match mtime {
        Some(seconds) => fs.set_mtime(place.ino, Some(seconds)),
        None if fs.in_writable_part(place.ino) => Ok(()),
        None => Err(Errno::EROFS),
    })?;
    Ok(0)
}

/// Which file system a statfs describes.
#[derive(Clone, Copy)]
enum FsKind {
    /// `/tmp`: the enclave's own, bounded by its `tmp_size`, like tmpfs.
    Tmp(WritableUsage),
    /// The read-only rest: the initrd, `/dev`, like a read-only ramfs.
    Ram,
    Proc,
    Sys,
    Pipe,
    /// The console, as a pseudo-terminal.
    Terminal,
}

fn fs_kind_of(place: &Place) -> FsKind {
    let ino = place.ino;
    place.files.with(|fs| {
        if fs.in_writable_part(ino) {
            return FsKind::Tmp(fs.writable_usage());
        }
        let path = fs.path_of(ino).unwrap_or_default();
        let under = |top: &str| path == top || path.strip_prefix(top).is_some_and(|rest| rest.starts_with('/'));
        if under("/proc") {
            FsKind::Proc
        } else if under("/sys") {
            FsKind::Sys
        } else {
            FsKind::Ram
        }
    })
}

/// `struct statfs` (120 bytes) for a kind of file system.
fn encode_statfs(kind: FsKind) -> [u8; 120] {
    const BLOCK: u64 = 4096;
    const ST_RDONLY: u64 = 1;
    const ST_NOSUID: u64 = 2;
    const ST_NODEV: u64 = 4;
    const ST_NOEXEC: u64 = 8;
    const ST_VALID: u64 = 0x20;
    let read_only = ST_VALID | ST_RDONLY;
    let virtual_fs = read_only | ST_NOSUID | ST_NODEV | ST_NOEXEC;
    // (f_type, blocks, free blocks, inodes, free inodes, f_flags, f_fsid)
    let (magic, blocks, free, inodes, free_inodes, flags, fsid) = match kind {
        FsKind::Tmp(usage) => {
            let blocks = usage.limit / BLOCK;
            let free = usage.limit.saturating_sub(usage.bytes) / BLOCK;
            // Every node is charged NODE_BYTES: that many fit in the limit.
            let inodes = usage.limit / NODE_BYTES;
            let free_inodes = inodes.saturating_sub(usage.nodes);
            (0x0102_1994, blocks, free, inodes, free_inodes, ST_VALID | ST_NOSUID | ST_NODEV, 2)
        }
        FsKind::Ram => (0x8584_58f6, 0, 0, 0, 0, read_only, 1),
        FsKind::Proc => (0x9fa0, 0, 0, 0, 0, virtual_fs, 3),
        FsKind::Sys => (0x6265_6572, 0, 0, 0, 0, virtual_fs, 4),
        FsKind::Pipe => (0x5049_5045, 0, 0, 0, 0, ST_VALID, 5),
        FsKind::Terminal => (0x1cd1, 0, 0, 0, 0, ST_VALID | ST_NOSUID | ST_NOEXEC, 6),
    };
    let mut b = [0u8; 120];
    let fields = [magic, BLOCK, blocks, free, free, inodes, free_inodes, fsid, 255, BLOCK, flags];
    for (i, v) in fields.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

pub fn statfs(c: &mut Call) -> SysResult {
    let [path_addr, out, ..] = c.args;
    let path = path_arg(c, path_addr)?;
    let kind = fs_kind_of(&resolve(c, AT_FDCWD, &path, true)?);
    c.process.space.lock().write(out, &encode_statfs(kind))?;
    Ok(0)
}

/// fstatfs: O_PATH descriptors too, as Linux.
pub fn fstatfs(c: &mut Call) -> SysResult {
    let [fd, out, ..] = c.args;
    let file = process_files::of(c.process).fds.lock().get(fd as u32 as u64)?;
    let kind = match &file.object {
        FileObject::Node(node) => fs_kind_of(&Place { files: node.files.clone(), ino: node.ino }),
        FileObject::Device(_, ino) => {
            fs_kind_of(&Place { files: process_files::of_job(&c.process.job).clone(), ino: *ino })
        }
        FileObject::Snapshot(_) => FsKind::Proc,
        FileObject::Console(_) => FsKind::Terminal,
        FileObject::Segment { .. } => FsKind::Ram,
        FileObject::PipeRead(_) | FileObject::PipeWrite(_) => FsKind::Pipe,
    };
    c.process.space.lock().write(out, &encode_statfs(kind))?;
    Ok(0)
}

/// fadvise64: advice is accepted and has nothing to act on (every file is in memory).
pub fn fadvise64(c: &mut Call) -> SysResult {
    let [fd, _offset, len, advice, ..] = c.args;
    let file = open_file(c, fd)?;
    if matches!(file.object, FileObject::PipeRead(_) | FileObject::PipeWrite(_)) {
        return Err(Errno::ESPIPE);
    }
    // POSIX_FADV_NORMAL .. POSIX_FADV_NOREUSE
    if (len as i64) < 0 || !(0..=5).contains(&(advice as i32)) {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

// ---- Waiting on descriptors: poll, ppoll, select, pselect6 ----

/// What select's three sets count as ready (Linux's POLLIN_SET, POLLOUT_SET, POLLEX_SET).
const POLLIN_SET: PollEvents =
    PollEvents::IN.union(PollEvents::RDNORM).union(PollEvents::RDBAND).union(PollEvents::HUP).union(PollEvents::ERR);
const POLLOUT_SET: PollEvents =
    PollEvents::OUT.union(PollEvents::WRNORM).union(PollEvents::WRBAND).union(PollEvents::ERR);
const POLLEX_SET: PollEvents = PollEvents::PRI;
const NS_PER_SEC: u64 = 1_000_000_000;

/// A timeout `ns` from now as a deadline in uptime nanoseconds.
fn deadline_after(ns: u64) -> u64 {
    clock::uptime_ns().saturating_add(ns)
}

/// A `struct timespec` timeout from user memory, in nanoseconds: EFAULT, or EINVAL for negative
/// seconds or nanoseconds outside 0..1e9.
fn read_timeout(c: &Call, addr: u64) -> Result<u64, Errno> {
    let mut raw = [0u8; 16];
    c.process.space.lock().read(addr, &mut raw)?;
    let secs = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
    let nanos = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
    if secs < 0 || !(0..NS_PER_SEC as i64).contains(&nanos) {
        return Err(Errno::EINVAL);
    }
    Ok((secs as u64).saturating_mul(NS_PER_SEC).saturating_add(nanos as u64))
}

/// After a wait with a timeout of `ns` (non-zero), writes the time left until `deadline` back to
/// the caller's timespec (ppoll, pselect6) or timeval (select), as Linux does; a failed write is
/// ignored, as Linux ignores it.
fn write_time_left(c: &Call, addr: u64, ns: u64, deadline: u64, timeval: bool) {
    if ns == 0 {
        return;
    }
    let left = deadline.saturating_sub(clock::uptime_ns());
    let sub = if timeval { left % NS_PER_SEC / 1000 } else { left % NS_PER_SEC };
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&(left / NS_PER_SEC).to_le_bytes());
    raw[8..].copy_from_slice(&sub.to_le_bytes());
    let _ = c.process.space.lock().write(addr, &raw);
}

/// The signal mask a ppoll or pselect6 waits with (`None`: the thread's own): EINVAL unless the
/// size is 8 bytes, EFAULT.
fn read_wait_mask(c: &Call, addr: u64, size: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(c.process.space.lock().read_u64(addr)?))
}

/// Runs `wait` with the signal mask `mask` installed, as rt_sigsuspend does. On EINTR the mask
/// stays until the signal is delivered: the handler runs with it and its sigreturn restores the
/// caller's mask (or the way back to user mode does, when nothing was delivered). Any other
/// result restores the caller's mask at once, so a signal only the temporary mask let through
/// stays pending, as on Linux.
fn with_wait_mask(c: &mut Call, mask: Option<u64>, wait: impl FnOnce(&mut Call) -> SysResult) -> SysResult {
    let Some(mask) = mask else { return wait(c) };
    let old = c.thread.signal_mask.swap(mask & !signals::unblockable(), Ordering::Relaxed);
    *c.thread.suspend_mask.lock() = Some(old);
    let result = wait(c);
    if result != Err(Errno::EINTR)
        && let Some(old) = c.thread.suspend_mask.lock().take()
    {
        c.thread.signal_mask.store(old, Ordering::Relaxed);
    }
    result
}

/// Waits until `scan` counts something ready (that count), the deadline passes (0) or a signal
/// arrives (EINTR), sleeping on the wait queues of `files` (pipes) between scans.
fn wait_for_files(files: &[&Arc<OpenFile>], deadline: Option<u64>, mut scan: impl FnMut() -> usize) -> SysResult {
    let queues: Vec<&WaitQueue> = files.iter().filter_map(|f| f.poll_queue()).collect();
    let found = wait_queue::wait_any(&queues, deadline, || {
        let n = scan();
        (n > 0).then_some(n)
    })?;
    Ok(found.unwrap_or(0) as u64)
}

/// One entry of a poll: a negative descriptor (skipped), a bad one (POLLNVAL), or an open file
/// with the events that count (those asked for, and POLLERR and POLLHUP always).
enum PollTarget {
    Skip,
    Invalid,
    File(Arc<OpenFile>, PollEvents),
}

/// poll and ppoll on `nfds` `struct pollfd` at `fds`, until `deadline` (`None`: for ever).
fn poll_files(c: &Call, fds: u64, nfds: u64, deadline: Option<u64>) -> SysResult {
    let nfds = nfds as u32 as usize; // unsigned int
    if nfds > MAX_FDS {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds * 8];
    c.process.space.lock().read(fds, &mut raw)?;
    let targets: Vec<PollTarget> = {
        let table = process_files::of(c.process).fds.lock();
        raw.chunks_exact(8)
            .map(|entry| {
                let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
                let events = PollEvents::from_bits_retain(u16::from_le_bytes([entry[4], entry[5]]));
                if fd < 0 {
                    return PollTarget::Skip;
                }
                match table.get(fd as u64) {
                    Ok(file) if !file.path_only() => PollTarget::File(file, events | PollEvents::ERR | PollEvents::HUP),
                    _ => PollTarget::Invalid,
                }
            })
            .collect()
    };
    let files: Vec<&Arc<OpenFile>> =
        targets.iter().filter_map(|t| if let PollTarget::File(f, _) = t { Some(f) } else { None }).collect();
    let mut revents = vec![PollEvents::empty(); nfds];
    let ready = wait_for_files(&files, deadline, || {
        let mut count = 0;
        for (target, r) in targets.iter().zip(revents.iter_mut()) {
            *r = match target {
                PollTarget::Skip => PollEvents::empty(),
                PollTarget::Invalid => PollEvents::NVAL,
                PollTarget::File(file, wanted) => file.poll_mask() & *wanted,
            };
            count += usize::from(!r.is_empty());
        }
        count
    })?;
    for (entry, r) in raw.chunks_exact_mut(8).zip(&revents) {
        entry[6..8].copy_from_slice(&r.bits().to_le_bytes());
    }
    c.process.space.lock().write(fds, &raw)?;
    Ok(ready)
}

/// poll: `timeout` milliseconds (a C int; negative waits for ever, 0 does not wait).
pub fn poll(c: &mut Call) -> SysResult {
    let [fds, nfds, timeout, ..] = c.args;
    let timeout = timeout as i32;
    let deadline = (timeout >= 0).then(|| deadline_after(timeout as u64 * 1_000_000));
    poll_files(c, fds, nfds, deadline)
}

/// ppoll: a timespec timeout (NULL: for ever), written back with the time left, and a signal
/// mask for the duration of the wait.
pub fn ppoll(c: &mut Call) -> SysResult {
    let [fds, nfds, timeout_at, mask_at, mask_size, _] = c.args;
    let timeout = if timeout_at != 0 { Some(read_timeout(c, timeout_at)?) } else { None };
    let deadline = timeout.map(deadline_after);
    let mask = read_wait_mask(c, mask_at, mask_size)?;
    let result = with_wait_mask(c, mask, |c| poll_files(c, fds, nfds, deadline));
    if let (Some(ns), Some(deadline)) = (timeout, deadline) {
        write_time_left(c, timeout_at, ns, deadline, false);
    }
    result
}

/// Words of 64 descriptors in an `fd_set` of MAX_FDS bits.
const FD_SET_WORDS: usize = MAX_FDS / 64;

/// select and pselect6: the read, write and except sets (`fd_set` bitmaps at `sets`, 0 for
/// none) of the descriptors below `nfds`, until `deadline`. Descriptors beyond what a process
/// can have are not looked at (Linux cuts `nfds` to its table size too); a bit for a closed
/// descriptor is EBADF. The sets come back holding the ready descriptors; the result is how many
/// bits are set in all three.
fn select_files(c: &Call, nfds: u64, sets: [u64; 3], deadline: Option<u64>) -> SysResult {
    let n = nfds as i32;
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (n as usize).min(MAX_FDS);
    let words = n.div_ceil(64);
    let mut asked = [[0u64; FD_SET_WORDS]; 3];
    for (set, &addr) in asked.iter_mut().zip(&sets) {
        if addr == 0 || words == 0 {
            continue;
        }
        let mut raw = [0u8; FD_SET_WORDS * 8];
        c.process.space.lock().read(addr, &mut raw[..words * 8])?;
        for (w, bytes) in set.iter_mut().zip(raw.chunks_exact(8)).take(words) {
            *w = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        }
        if !n.is_multiple_of(64) {
            set[words - 1] &= (1u64 << (n % 64)) - 1;
        }
    }
    // The descriptors asked about, with which sets ask (bit 0 read, 1 write, 2 except).
    let mut targets: Vec<(usize, Arc<OpenFile>, u8)> = Vec::new();
    {
        let table = process_files::of(c.process).fds.lock();
        for fd in 0..n {
            let (word, bit) = (fd / 64, 1u64 << (fd % 64));
            let which = (0..3).filter(|&s| asked[s][word] & bit != 0).fold(0u8, |acc, s| acc | 1 << s);
            if which == 0 {
                continue;
            }
            match table.get(fd as u64) {
                Ok(file) if !file.path_only() => targets.push((fd, file, which)),
                _ => return Err(Errno::EBADF),
            }
        }
    }
    let files: Vec<&Arc<OpenFile>> = targets.iter().map(|(_, f, _)| f).collect();
    let mut result = [[0u64; FD_SET_WORDS]; 3];
    let ready = wait_for_files(&files, deadline, || {
        result = [[0u64; FD_SET_WORDS]; 3];
        let mut count = 0;
        for (fd, file, which) in &targets {
            let mask = file.poll_mask();
            for (s, events) in [POLLIN_SET, POLLOUT_SET, POLLEX_SET].into_iter().enumerate() {
                if which & (1 << s) != 0 && mask.intersects(events) {
                    result[s][fd / 64] |= 1u64 << (fd % 64);
                    count += 1;
                }
            }
        }
        count
    })?;
    for (set, &addr) in result.iter().zip(&sets) {
        if addr == 0 || words == 0 {
            continue;
        }
        let mut raw = [0u8; FD_SET_WORDS * 8];
        for (bytes, w) in raw.chunks_exact_mut(8).zip(set) {
            bytes.copy_from_slice(&w.to_le_bytes());
        }
        c.process.space.lock().write(addr, &raw[..words * 8])?;
    }
    Ok(ready)
}

/// select: a `struct timeval` timeout (NULL: for ever; microseconds beyond a second carry into
/// the seconds as Linux does), written back with the time left.
pub fn select(c: &mut Call) -> SysResult {
    let [nfds, readfds, writefds, exceptfds, timeout_at, _] = c.args;
    let timeout = if timeout_at != 0 {
        let mut raw = [0u8; 16];
        c.process.space.lock().read(timeout_at, &mut raw)?;
        let secs = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
        let micros = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
        let secs = secs.saturating_add(micros / 1_000_000);
        let nanos = (micros % 1_000_000) * 1000;
        if secs < 0 || nanos < 0 {
            return Err(Errno::EINVAL);
        }
        Some((secs as u64).saturating_mul(NS_PER_SEC).saturating_add(nanos as u64))
    } else {
        None
    };
    let deadline = timeout.map(deadline_after);
    let result = select_files(c, nfds, [readfds, writefds, exceptfds], deadline);
    if let (Some(ns), Some(deadline)) = (timeout, deadline) {
        write_time_left(c, timeout_at, ns, deadline, true);
    }
    result
}

/// pselect6: select with a timespec timeout (written back with the time left) and, through
/// its sixth argument `{ const sigset_t *mask; size_t size; }`, a signal mask for the wait.
pub fn pselect6(c: &mut Call) -> SysResult {
    let [nfds, readfds, writefds, exceptfds, timeout_at, mask_arg] = c.args;
    let (mask_at, mask_size) = if mask_arg != 0 {
        let mut raw = [0u8; 16];
        c.process.space.lock().read(mask_arg, &mut raw)?;
        let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        (word(0), word(1))
    } else {
        (0, 0)
    };
    let timeout = if timeout_at != 0 { Some(read_timeout(c, timeout_at)?) } else { None };
    let deadline = timeout.map(deadline_after);
    let mask = read_wait_mask(c, mask_at, mask_size)?;
    let result = with_wait_mask(c, mask, |c| select_files(c, nfds, [readfds, writefds, exceptfds], deadline));
    if let (Some(ns), Some(deadline)) = (timeout, deadline) {
        write_time_left(c, timeout_at, ns, deadline, false);
    }
    result
}
