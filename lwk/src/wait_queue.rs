//! Threads waiting for a condition (a pipe to fill, a child to exit): they register, re-check
//! and block; whoever changes the condition wakes them. Spurious wake-ups are fine: waiters
//! always re-check.

use crate::{scheduler, signals};
use lwk::errno::Errno;
use crate::thread::Thread;
use alloc::sync::Arc;
use alloc::vec::Vec;

#[derive(Default)]
pub struct WaitQueue {
    waiters: spin::Mutex<Vec<Arc<Thread>>>,
}

impl WaitQueue {
    pub const fn new() -> WaitQueue {
        WaitQueue { waiters: spin::Mutex::new(Vec::new()) }
    }

    /// Blocks the calling thread until `ready()` returns `Some`, and returns that value; EINTR
    /// when a signal (or a kill) arrives first.
    pub fn wait_until<R>(&self, mut ready: impl FnMut() -> Option<R>) -> Result<R, Errno> {
        loop {
            if let Some(r) = ready() {
                return Ok(r);
            }
            let Some(me) = scheduler::current() else {
                core::hint::spin_loop();
                continue;
            };
            if signals::deliverable(&me) {
                return Err(Errno::EINTR);
            }
            self.waiters.lock().push(me.clone());
            // Re-check after registering: a wake-up between the first check and now is kept
            // pending by the thread, so the block below returns at once.
            if let Some(r) = ready() {
                self.remove(&me);
                return Ok(r);
            }
            scheduler::block_current();
            self.remove(&me);
        }
    }

    fn remove(&self, thread: &Arc<Thread>) {
        self.waiters.lock().retain(|t| !Arc::ptr_eq(t, thread));
    }

    /// Wakes every waiter.
    pub fn wake_all(&self) {
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for t in &waiters {
            scheduler::wake(t);
        }
    }
}
