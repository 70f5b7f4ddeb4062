//! Open files and descriptor tables. An [`OpenFile`] is what `open` creates (an inode of the RAM
//! file system, a device, a snapshot of a synthetic file, the console, a pipe end) with its
//! offset and status flags; descriptors point at open files and may share them (`dup`, `fork`).

use crate::files;
use crate::pipe::Pipe;
use crate::process::Job;
use crate::{jobs, random};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use lwk::errno::Errno;
use lwk::ram_fs::{DeviceKind, Ino};

pub const O_ACCMODE: u32 = 3;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_CLOEXEC: u32 = 0o2000000;
/// Most descriptors a process may hold (RLIMIT_NOFILE).
pub const MAX_FDS: usize = 1024;

pub enum FileObject {
    /// A file or directory of the RAM file system.
    Node(Ino),
    Device(DeviceKind),
    /// `/proc` and `/sys` contents, generated at open.
    Snapshot(Vec<u8>),
    /// The serial console as the job sees it: output prefixed with the job's name, no input.
    Console(Arc<Job>),
    PipeRead(Arc<Pipe>),
    PipeWrite(Arc<Pipe>),
}

pub struct OpenFile {
    pub object: FileObject,
    pub offset: AtomicU64,
    pub flags: AtomicU32,
}

impl OpenFile {
    pub fn new(object: FileObject, flags: u32) -> Arc<OpenFile> {
        match &object {
            FileObject::Node(ino) => files::with_fs(|fs| fs.hold(*ino)),
            FileObject::PipeRead(p) => p.open_end(false),
            FileObject::PipeWrite(p) => p.open_end(true),
            _ => {}
        }
        Arc::new(OpenFile { object, offset: AtomicU64::new(0), flags: AtomicU32::new(flags & !O_CLOEXEC) })
    }

    fn readable(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_ACCMODE != O_WRONLY
    }

    fn writable(&self) -> bool {
        matches!(self.flags.load(Ordering::Relaxed) & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    fn nonblocking(&self) -> bool {
        self.flags.load(Ordering::Relaxed) & O_NONBLOCK != 0
    }

    /// Reads at `offset` (`None`: at the file offset, which advances).
    pub fn read(&self, buf: &mut [u8], offset: Option<u64>) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        let at = offset.unwrap_or_else(|| self.offset.load(Ordering::Relaxed));
        let n = match &self.object {
            FileObject::Node(ino) => files::with_fs(|fs| fs.read(*ino, at, buf))?,
            FileObject::Snapshot(data) => {
                let start = (at as usize).min(data.len());
                let n = buf.len().min(data.len() - start);
                buf[..n].copy_from_slice(&data[start..start + n]);
                n
            }
            FileObject::Device(DeviceKind::Zero) => {
                buf.fill(0);
                buf.len()
            }
            FileObject::Device(DeviceKind::Urandom) => {
                random::fill(buf);
                buf.len()
            }
            FileObject::Device(DeviceKind::Null | DeviceKind::Console) | FileObject::Console(_) => 0,
            FileObject::PipeRead(p) => return p.read(buf, self.nonblocking()),
            FileObject::PipeWrite(_) => return Err(Errno::EBADF),
        };
        if offset.is_none() {
            self.offset.store(at + n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Writes at `offset` (`None`: at the file offset, or the end with O_APPEND).
    pub fn write(&self, data: &[u8], offset: Option<u64>, job: &Job) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        match &self.object {
            FileObject::Node(ino) => {
                let ino = *ino;
                let n = files::with_fs(|fs| {
                    let at = match offset {
                        Some(o) => o,
                        None if self.flags.load(Ordering::Relaxed) & O_APPEND != 0 => fs.stat(ino).size,
                        None => self.offset.load(Ordering::Relaxed),
                    };
                    let n = fs.write(ino, at, data)?;
                    if offset.is_none() {
                        self.offset.store(at + n as u64, Ordering::Relaxed);
                    }
                    Ok::<usize, Errno>(n)
                })?;
                Ok(n)
            }
            FileObject::Console(owner) => {
                jobs::console_write(owner, data);
                Ok(data.len())
            }
            FileObject::Device(DeviceKind::Console) => {
                jobs::console_write(job, data);
                Ok(data.len())
            }
            FileObject::Device(_) => Ok(data.len()),
            FileObject::Snapshot(_) => Err(Errno::EACCES),
            FileObject::PipeWrite(p) => p.write(data, self.nonblocking()),
            FileObject::PipeRead(_) => Err(Errno::EBADF),
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        match &self.object {
            FileObject::Node(ino) => files::with_fs(|fs| fs.release(*ino)),
            FileObject::PipeRead(p) => p.close_end(false),
            FileObject::PipeWrite(p) => p.close_end(true),
            _ => {}
        }
    }
}

#[derive(Clone)]
struct Descriptor {
    file: Arc<OpenFile>,
    close_on_exec: bool,
}

/// A process's descriptors.
#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<Descriptor>>,
}

impl FdTable {
    /// Descriptors 0, 1 and 2 on the job's console.
    pub fn with_console(job: &Arc<Job>) -> FdTable {
        let console = OpenFile::new(FileObject::Console(job.clone()), O_RDWR);
        let d = Descriptor { file: console, close_on_exec: false };
        FdTable { slots: vec![Some(d.clone()), Some(d.clone()), Some(d)] }
    }

    pub fn get(&self, fd: u64) -> Result<Arc<OpenFile>, Errno> {
        self.slots.get(fd as usize).and_then(|s| s.as_ref()).map(|d| d.file.clone()).ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free descriptor at or above `min`.
    pub fn insert(&mut self, file: Arc<OpenFile>, close_on_exec: bool, min: usize) -> Result<u64, Errno> {
        let fd = (min..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(|s| s.is_none())).ok_or(Errno::EMFILE)?;
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd] = Some(Descriptor { file, close_on_exec });
        Ok(fd as u64)
    }

    /// Puts `file` at exactly `fd`, closing what was there.
    pub fn replace(&mut self, fd: u64, file: Arc<OpenFile>, close_on_exec: bool) -> Result<(), Errno> {
        let fd = fd as usize;
        if fd >= MAX_FDS {
            return Err(Errno::EBADF);
        }
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd] = Some(Descriptor { file, close_on_exec });
        Ok(())
    }

    pub fn close(&mut self, fd: u64) -> Result<(), Errno> {
        self.slots.get_mut(fd as usize).and_then(|s| s.take()).map(|_| ()).ok_or(Errno::EBADF)
    }

    pub fn close_on_exec(&self, fd: u64) -> Result<bool, Errno> {
        self.slots.get(fd as usize).and_then(|s| s.as_ref()).map(|d| d.close_on_exec).ok_or(Errno::EBADF)
    }

    pub fn set_close_on_exec(&mut self, fd: u64, on: bool) -> Result<(), Errno> {
        let d = self.slots.get_mut(fd as usize).and_then(|s| s.as_mut()).ok_or(Errno::EBADF)?;
        d.close_on_exec = on;
        Ok(())
    }

    /// Closes every descriptor marked close-on-exec (execve).
    pub fn close_for_exec(&mut self) {
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|d| d.close_on_exec) {
                *slot = None;
            }
        }
    }

    /// Drops every descriptor (process exit).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}
