//! Open files and descriptor tables. An [`OpenFile`] is what `open` creates (an inode of the RAM
//! file system, a device, a snapshot of a synthetic file, the console, a pipe end) with its
//! offset and status flags; descriptors point at open files and may share them (`dup`, `fork`).

use crate::fs::files::EnclaveFiles;
use crate::fs::open_flags::{O_RDWR, OpenFlags};
use crate::fs::pipe::Pipe;
use crate::fs::ram_fs::{DeviceKind, Ino};
use crate::hal::random;
use crate::mm::segment::SegmentView;
use crate::task::process::Job;
use crate::task::wait_queue::WaitQueue;
use crate::util::errno::Errno;
use crate::util::hook::Hook;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use bitflags::bitflags;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use enclave::{Account, Charge};

/// Where a job's console output goes (the job's lines, prefixed and paced on the node's
/// console): the control plane's.
pub static CONSOLE_WRITE: Hook<fn(&Job, &[u8])> = Hook::new();

/// Writes `data` to `job`'s console; EIO before the control plane has said where that is.
fn console_write(job: &Job, data: &[u8]) -> Result<(), Errno> {
    CONSOLE_WRITE.get().ok_or(Errno::EIO)?(job, data);
    Ok(())
}

/// Most descriptors a process may hold (RLIMIT_NOFILE).
pub const MAX_FDS: usize = 1024;
/// Most bytes moved between a file and user memory in one step (the kernel buffer's size, and
/// how long a file system's lock is held at once).
pub const IO_CHUNK: usize = 64 * 1024;

/// Makes `buf` hold `len` zeroed bytes, allocating fallibly: `ENOMEM` when the heap cannot.
pub fn sized_buffer(buf: &mut Vec<u8>, len: usize) -> Result<(), Errno> {
    buf.clear();
    buf.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    buf.resize(len, 0);
    Ok(())
}

bitflags! {
    /// Poll events, as Linux numbers them (`struct pollfd`'s `events` and `revents`). Bits
    /// without a name here that a caller asks for are kept and never reported.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PollEvents: u16 {
        const IN = 0x1;
        const PRI = 0x2;
        const OUT = 0x4;
        const ERR = 0x8;
        const HUP = 0x10;
        const NVAL = 0x20;
        const RDNORM = 0x40;
        const RDBAND = 0x80;
        const WRNORM = 0x100;
        const WRBAND = 0x200;
    }
}

/// Where [`OpenFile::read_to`] puts what it reads (user memory, for `read`): it accepts the
/// bytes or refuses them with an error.
pub type Deliver<'a> = dyn FnMut(&[u8]) -> Result<(), Errno> + 'a;
/// Where [`OpenFile::write_from`] gets what it writes: `fetch(position, buffer)` fills `buffer`
/// with the bytes from `position` on.
pub type Fetch<'a> = dyn FnMut(usize, &mut [u8]) -> Result<(), Errno> + 'a;

/// A node of an enclave's file system, held there while the open file lives.
pub struct NodeRef {
    pub files: Arc<EnclaveFiles>,
    pub ino: Ino,
}

pub enum FileObject {
    /// A file or directory of the RAM file system.
    Node(NodeRef),
    /// A device of `/dev`, and its node (built in: never freed, so not held).
    Device(DeviceKind, Ino),
    /// `/proc` and `/sys` contents, generated at open.
    Snapshot(Vec<u8>),
    /// The serial console as the job sees it: output prefixed with the job's name, no input.
    Console(Arc<Job>),
    PipeRead(Arc<Pipe>),
    PipeWrite(Arc<Pipe>),
    /// A shared segment granted to the job (`/dev/manul/seg/NAME`): only `mmap` reaches its
    /// memory.
    Segment {
        name: String,
        view: SegmentView,
    },
}

pub struct OpenFile {
    pub object: FileObject,
    pub offset: AtomicU64,
    pub flags: AtomicU32,
    /// What it costs its enclave's kernel memory (none for the console descriptors a job starts
    /// with).
    _charge: Option<Charge>,
}

/// What one open file is charged: the open file itself and its descriptor slot.
const OPEN_FILE_BYTES: u64 = 256;

impl OpenFile {
    /// Opens `object`, charged to `account`: `ENOMEM` when it refuses, `ENOENT` for a node that
    /// is already gone (removed by another thread since its path was resolved).
    pub fn new(object: FileObject, flags: OpenFlags, account: &Arc<Account>) -> Result<Arc<OpenFile>, Errno> {
        let charge = Charge::new(account, OPEN_FILE_BYTES).map_err(|_| Errno::ENOMEM)?;
        match &object {
            FileObject::Node(node) => node.files.with(|fs| fs.hold(node.ino))?,
            FileObject::PipeRead(p) => p.open_end(false),
            FileObject::PipeWrite(p) => p.open_end(true),
            _ => {}
        }
        Ok(Arc::new(OpenFile {
            object,
            offset: AtomicU64::new(0),
            flags: AtomicU32::new(flags.difference(OpenFlags::CLOEXEC).bits()),
            _charge: Some(charge),
        }))
    }

    /// The flags it was opened with, as F_SETFL left them.
    pub fn status(&self) -> OpenFlags {
        OpenFlags::from_bits_retain(self.flags.load(Ordering::Relaxed))
    }

    /// Open for reading (access mode 3 is an O_PATH descriptor: neither readable nor writable).
    pub fn readable(&self) -> bool {
        self.status().readable()
    }

    pub fn writable(&self) -> bool {
        self.status().writable()
    }

    fn nonblocking(&self) -> bool {
        self.status().contains(OpenFlags::NONBLOCK)
    }

    /// What the file is ready for now (Linux's `f_op->poll`, before poll masks it with the
    /// events asked for): pipes as [`Pipe::poll_mask`]; files, directories, devices, snapshots
    /// and the console are always readable and writable (a read of the console is at its end at
    /// once, a write never blocks).
    pub fn poll_mask(&self) -> PollEvents {
        match &self.object {
            FileObject::PipeRead(p) => p.poll_mask(true),
            FileObject::PipeWrite(p) => p.poll_mask(false),
            _ => PollEvents::IN | PollEvents::RDNORM | PollEvents::OUT | PollEvents::WRNORM,
        }
    }

    /// The queue woken when [`OpenFile::poll_mask`] may change; `None` when it never does.
    pub fn poll_queue(&self) -> Option<&WaitQueue> {
        match &self.object {
            FileObject::PipeRead(p) => Some(p.poll_queue(true)),
            FileObject::PipeWrite(p) => Some(p.poll_queue(false)),
            _ => None,
        }
    }

    /// An `O_PATH` descriptor: poll, select and the calls that need an open file see none.
    pub fn path_only(&self) -> bool {
        self.status().contains(OpenFlags::PATH)
    }

    /// Reads up to `len` bytes at `offset` (`None`: at the file offset) and hands them to
    /// `deliver` in order, in pieces of at most [`IO_CHUNK`] bytes. Only what `deliver` accepts
    /// is read: the file offset advances by that much, and a pipe gives up only those bytes (so
    /// a bad user buffer loses nothing). Returns the bytes delivered, or the error of the first
    /// piece when none was.
    pub fn read_to(&self, len: usize, offset: Option<u64>, deliver: &mut Deliver) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        match &self.object {
            FileObject::PipeRead(p) => return p.read_to(len, self.nonblocking(), deliver),
            FileObject::PipeWrite(_) => return Err(Errno::EBADF),
            _ => {}
        }
        let start = offset.unwrap_or_else(|| self.offset.load(Ordering::Relaxed));
        let mut buf = Vec::new();
        let mut done = 0usize;
        let result = loop {
            let want = (len - done).min(IO_CHUNK);
            if want == 0 {
                break Ok(());
            }
            let at = start.saturating_add(done as u64);
            let piece: &[u8] = match &self.object {
                FileObject::Node(node) => {
                    if let Err(e) = sized_buffer(&mut buf, want) {
                        break Err(e);
                    }
                    match node.files.with(|fs| fs.read(node.ino, at, &mut buf)) {
                        Ok(n) => &buf[..n],
                        Err(e) => break Err(e),
                    }
                }
                FileObject::Snapshot(data) => {
                    let from = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
                    &data[from..from + want.min(data.len() - from)]
                }
                FileObject::Device(DeviceKind::Zero, _) => {
                    if let Err(e) = sized_buffer(&mut buf, want) {
                        break Err(e);
                    }
                    &buf
                }
                FileObject::Device(DeviceKind::Urandom, _) => {
                    if let Err(e) = sized_buffer(&mut buf, want) {
                        break Err(e);
                    }
                    random::fill(&mut buf);
                    &buf
                }
                FileObject::Segment { .. } => break Err(Errno::EINVAL),
                FileObject::Device(DeviceKind::Null | DeviceKind::Console, _)
                | FileObject::Console(_)
                | FileObject::PipeRead(_)
                | FileObject::PipeWrite(_) => &[],
            };
            if piece.is_empty() {
                break Ok(());
            }
            if let Err(e) = deliver(piece) {
                break Err(e);
            }
            done += piece.len();
            if piece.len() < want {
                break Ok(()); // The end of the file.
            }
        };
        if offset.is_none() {
            self.offset.store(start.saturating_add(done as u64), Ordering::Relaxed);
        }
        match result {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Writes `len` bytes at `offset` (`None`: at the file offset, or the end with O_APPEND),
    /// getting them from `fetch(position, buffer)`, which fills `buffer` with the bytes from
    /// `position` on, in pieces of at most [`IO_CHUNK`] bytes. Returns the bytes written (fewer
    /// when an error cuts the write short), or the error when nothing was written.
    pub fn write_from(&self, len: usize, offset: Option<u64>, job: &Job, fetch: &mut Fetch) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        match &self.object {
            // Discarded unread, as Linux does.
            FileObject::Device(DeviceKind::Null | DeviceKind::Zero | DeviceKind::Urandom, _) => return Ok(len),
            FileObject::Snapshot(_) => return Err(Errno::EACCES),
            FileObject::PipeRead(_) => return Err(Errno::EBADF),
            FileObject::Segment { .. } => return Err(Errno::EINVAL),
            _ => {}
        }
        let mut buf = Vec::new();
        sized_buffer(&mut buf, len.min(IO_CHUNK))?;
        let mut done = 0usize;
        let result = loop {
            let want = (len - done).min(IO_CHUNK);
            if want == 0 {
                break Ok(());
            }
            if let Err(e) = fetch(done, &mut buf[..want]) {
                break Err(e);
            }
            let data = &buf[..want];
            let written = match &self.object {
                FileObject::Node(node) => self.write_node(node, data, offset.map(|o| o.saturating_add(done as u64))),
                FileObject::Console(owner) => console_write(owner, data).map(|()| want),
                FileObject::Device(DeviceKind::Console, _) => console_write(job, data).map(|()| want),
                FileObject::PipeWrite(p) => p.write(data, self.nonblocking()),
                _ => Err(Errno::EBADF),
            };
            match written {
                Ok(n) => {
                    done += n;
                    if n < want {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// One write to a file of the RAM file system, moving the file offset unless `offset`.
    fn write_node(&self, node: &NodeRef, data: &[u8], offset: Option<u64>) -> Result<usize, Errno> {
        let ino = node.ino;
        node.files.with(|fs| {
            let at = match offset {
                Some(o) => o,
                None if self.status().contains(OpenFlags::APPEND) => fs.stat(ino)?.size,
                None => self.offset.load(Ordering::Relaxed),
            };
            let n = fs.write(ino, at, data)?;
            if offset.is_none() {
                self.offset.store(at + n as u64, Ordering::Relaxed);
            }
            Ok(n)
        })
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        match &self.object {
            FileObject::Node(node) => node.files.with(|fs| fs.release(node.ino)),
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
        let console = Arc::new(OpenFile {
            object: FileObject::Console(job.clone()),
            offset: AtomicU64::new(0),
            flags: AtomicU32::new(O_RDWR),
            _charge: None,
        });
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
