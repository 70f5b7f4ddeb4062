//! Pipes: a ring of up to 64 KiB between writers and readers. A read blocks while the pipe is
//! empty and has writers; a write blocks while it is full and has readers; writing with no reader
//! left is EPIPE (and SIGPIPE). Poll and select see an end's state through [`Pipe::poll_mask`]
//! and wait on [`Pipe::poll_queue`].
//!
//! Memory: a pipe is charged to its enclave's kernel-memory account. It starts with one page of
//! room (charged at `pipe()`, which fails with ENOMEM when the account refuses) and grows page by
//! page up to [`CAPACITY`] while the account allows; when it does not, the pipe is full sooner
//! (writers wait or get EAGAIN), as Linux shrinks pipes past `pipe-user-pages-soft`. A drained
//! pipe gives its extra room back.

use crate::fs::open_files::{Deliver, PollEvents};
use crate::task::wait_queue::WaitQueue;
use crate::util::errno::Errno;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use enclave::{Account, Charge};

/// The most a pipe holds.
pub const CAPACITY: usize = 64 * 1024;
/// The room a pipe starts with and grows by.
const STEP: usize = 4096;
/// What a pipe costs besides its room: the pipe itself and its two open files.
const PIPE_BYTES: u64 = 512;

/// The bytes in a pipe, and the room charged for them.
struct Buffer {
    bytes: VecDeque<u8>,
    /// The most `bytes` may hold now (its charge covers it, and the deque has the capacity).
    room: usize,
    charge: Charge,
}

impl Buffer {
    /// Makes room for `wanted` more bytes if the account and the allocator allow (in whole
    /// steps, up to [`CAPACITY`]); returns the room now free.
    fn make_room(&mut self, wanted: usize) -> usize {
        let need = (self.bytes.len() + wanted).min(CAPACITY).next_multiple_of(STEP).min(CAPACITY);
        if need > self.room {
            let more = need - self.room;
            if self.charge.grow(more as u64).is_ok() {
                if self.bytes.try_reserve(need - self.bytes.len()).is_ok() {
                    self.room = need;
                } else {
                    self.charge.shrink(more as u64);
                }
            }
        }
        self.room - self.bytes.len()
    }

    /// A drained pipe keeps one step of room and gives the rest back.
    fn settle(&mut self) {
        if self.bytes.is_empty() && self.room > STEP {
            self.charge.shrink((self.room - STEP) as u64);
            self.room = STEP;
            self.bytes.shrink_to(STEP);
        }
    }
}

pub struct Pipe {
    buffer: spin::Mutex<Buffer>,
    readers: AtomicUsize,
    writers: AtomicUsize,
    readable: WaitQueue,
    writable: WaitQueue,
}

impl Pipe {
    /// A pipe with one step of room, charged to `account`: ENOMEM when it refuses, or when the
    /// allocator has nothing.
    pub fn new(account: &Arc<Account>) -> Result<Pipe, Errno> {
        let charge = Charge::new(account, PIPE_BYTES + STEP as u64).map_err(|_| Errno::ENOMEM)?;
        let mut bytes = VecDeque::new();
        bytes.try_reserve_exact(STEP).map_err(|_| Errno::ENOMEM)?;
        Ok(Pipe {
            buffer: spin::Mutex::new(Buffer { bytes, room: STEP, charge }),
            readers: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        })
    }

    pub fn open_end(&self, write: bool) {
        let count = if write { &self.writers } else { &self.readers };
        count.fetch_add(1, Ordering::SeqCst);
    }

    pub fn close_end(&self, write: bool) {
        let count = if write { &self.writers } else { &self.readers };
        if count.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The other side must notice: readers see EOF, writers see EPIPE.
            self.readable.wake_all();
            self.writable.wake_all();
        }
    }

    /// Reads what is there (at least one byte, at most `max`), handing it to `deliver` before
    /// taking it out of the pipe: bytes `deliver` refuses (a bad user buffer) stay for the next
    /// read. 0 at end of file, EAGAIN if non-blocking and empty.
    pub fn read_to(&self, max: usize, nonblocking: bool, deliver: &mut Deliver) -> Result<usize, Errno> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.readable.wait_until(|| {
            let mut b = self.buffer.lock();
            if !b.bytes.is_empty() {
                let n = max.min(b.bytes.len());
                if let Err(e) = deliver(&b.bytes.make_contiguous()[..n]) {
                    return Some(Err(e));
                }
                b.bytes.drain(..n);
                b.settle();
                return Some(Ok(n));
            }
            if self.writers.load(Ordering::SeqCst) == 0 {
                return Some(Ok(0));
            }
            nonblocking.then_some(Err(Errno::EAGAIN))
        })??;
        self.writable.wake_all();
        Ok(n)
    }

    /// Writes all of `data` (blocking as needed) unless the readers go away.
    pub fn write(&self, data: &[u8], nonblocking: bool) -> Result<usize, Errno> {
        let mut done = 0;
        while done < data.len() {
            let n = self.writable.wait_until(|| {
                if self.readers.load(Ordering::SeqCst) == 0 {
                    return Some(Err(Errno::EPIPE));
                }
                let mut b = self.buffer.lock();
                let room = b.make_room(data.len() - done);
                if room > 0 {
                    let n = room.min(data.len() - done);
                    b.bytes.extend(&data[done..done + n]);
                    return Some(Ok(n));
                }
                nonblocking.then_some(Err(Errno::EAGAIN))
            });
            match n.and_then(|r| r) {
                Ok(n) => done += n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
            self.readable.wake_all();
        }
        Ok(done)
    }

    /// What poll reports for one end (`read_end`: the reading end), as Linux's `pipe_poll`: the
    /// reading end is readable (POLLIN) while data waits and hung up (POLLHUP) once no writer is
    /// left; the writing end is writable (POLLOUT) while there is room, and in error (POLLERR)
    /// once no reader is left.
    pub fn poll_mask(&self, read_end: bool) -> PollEvents {
        let (len, room, can_grow) = {
            let b = self.buffer.lock();
            (b.bytes.len(), b.room, b.room < CAPACITY && b.charge.account().available() >= STEP as u64)
        };
        let mut mask = PollEvents::empty();
        if read_end {
            if len > 0 {
                mask |= PollEvents::IN | PollEvents::RDNORM;
            }
            if self.writers.load(Ordering::SeqCst) == 0 {
                mask |= PollEvents::HUP;
            }
        } else {
            // Writable while there is room now, or room the pipe may still grow into.
            if len < room || can_grow {
                mask |= PollEvents::OUT | PollEvents::WRNORM;
            }
            if self.readers.load(Ordering::SeqCst) == 0 {
                mask |= PollEvents::ERR;
            }
        }
        mask
    }

    /// The queue woken whenever [`Pipe::poll_mask`] of that end may have changed: data arriving
    /// or the last writer leaving for the reading end, room appearing or the last reader leaving
    /// for the writing end.
    pub fn poll_queue(&self, read_end: bool) -> &WaitQueue {
        if read_end { &self.readable } else { &self.writable }
    }
}
