//! Pipes: a 64 KiB ring between writers and readers. A read blocks while the pipe is empty and
//! has writers; a write blocks while it is full and has readers; writing with no reader left is
//! EPIPE (and SIGPIPE). Poll and select see an end's state through [`Pipe::poll_mask`] and
//! wait on [`Pipe::poll_queue`].

use crate::open_files::{Deliver, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM};
use crate::wait_queue::WaitQueue;
use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicUsize, Ordering};
use lwk::errno::Errno;

pub const CAPACITY: usize = 64 * 1024;

pub struct Pipe {
    buffer: spin::Mutex<VecDeque<u8>>,
    readers: AtomicUsize,
    writers: AtomicUsize,
    readable: WaitQueue,
    writable: WaitQueue,
}

impl Pipe {
    pub fn new() -> Pipe {
        Pipe {
            buffer: spin::Mutex::new(VecDeque::new()),
            readers: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        }
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
            if !b.is_empty() {
                let n = max.min(b.len());
                if let Err(e) = deliver(&b.make_contiguous()[..n]) {
                    return Some(Err(e));
                }
                b.drain(..n);
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
                let room = CAPACITY - b.len();
                if room > 0 {
                    let n = room.min(data.len() - done);
                    b.extend(&data[done..done + n]);
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
    pub fn poll_mask(&self, read_end: bool) -> u16 {
        let len = self.buffer.lock().len();
        let mut mask = 0;
        if read_end {
            if len > 0 {
                mask |= POLLIN | POLLRDNORM;
            }
            if self.writers.load(Ordering::SeqCst) == 0 {
                mask |= POLLHUP;
            }
        } else {
            if len < CAPACITY {
                mask |= POLLOUT | POLLWRNORM;
            }
            if self.readers.load(Ordering::SeqCst) == 0 {
                mask |= POLLERR;
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
