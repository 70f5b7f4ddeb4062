//! Threads waiting for a condition (a pipe to fill, a child to exit): they register, re-check
//! and block; whoever changes the condition wakes them. Spurious wake-ups are fine: waiters
//! always re-check. [`wait_any`] waits on several queues at once, with a deadline (poll, select).

use crate::task::thread::Thread;
use crate::util::errno::Errno;
use crate::{task::scheduler, task::signals, time::clock};
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
    pub fn wait_until<R>(&self, ready: impl FnMut() -> Option<R>) -> Result<R, Errno> {
        self.wait(ready, true)
    }

    /// Blocks the calling thread until `ready()` is true, whatever signals arrive (a frozen
    /// job's threads wait for the thaw this way; `ready` itself must watch for a kill).
    pub fn wait_for(&self, mut ready: impl FnMut() -> bool) {
        let _ = self.wait(|| ready().then_some(()), false);
    }

    fn wait<R>(&self, mut ready: impl FnMut() -> Option<R>, interruptible: bool) -> Result<R, Errno> {
        loop {
            if let Some(r) = ready() {
                return Ok(r);
            }
            let Some(me) = scheduler::current() else {
                core::hint::spin_loop();
                continue;
            };
            if interruptible && signals::deliverable(&me) {
                return Err(Errno::EINTR);
            }
            if !self.register(&me) {
                // The heap cannot grow the list: an interruptible wait fails, an uninterruptible
                // one checks again after giving others the CPU.
                if interruptible {
                    return Err(Errno::ENOMEM);
                }
                scheduler::yield_now();
                continue;
            }
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

    /// Adds `thread` to the waiters; `false` when the heap cannot grow the list (bounded by the
    /// threads, which are charged to their enclaves: one entry per queue a thread waits on).
    fn register(&self, thread: &Arc<Thread>) -> bool {
        let mut waiters = self.waiters.lock();
        if waiters.try_reserve(1).is_err() {
            return false;
        }
        waiters.push(thread.clone());
        true
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

/// Blocks the calling thread until `ready()` returns `Some` (then that value), until the uptime
/// reaches `deadline` (`None`: no deadline) with `Ok(None)`, or until a signal (or a kill)
/// arrives first: EINTR (ENOMEM when the heap cannot hold the registration). A wake-up of any
/// of `queues` makes it check again. `ready` is called first, so a deadline already passed
/// checks once without blocking; and after the deadline or a signal it has been called once
/// more since the last wake-up.
pub fn wait_any<R>(
    queues: &[&WaitQueue],
    deadline: Option<u64>,
    mut ready: impl FnMut() -> Option<R>,
) -> Result<Option<R>, Errno> {
    let Some(me) = scheduler::current() else { return Ok(ready()) };
    loop {
        if let Some(r) = ready() {
            return Ok(Some(r));
        }
        if deadline.is_some_and(|d| clock::uptime_ns() >= d) {
            return Ok(None);
        }
        if signals::deliverable(&me) {
            return Err(Errno::EINTR);
        }
        let registered = queues.iter().take_while(|q| q.register(&me)).count();
        if registered < queues.len() {
            for q in &queues[..registered] {
                q.remove(&me);
            }
            return Err(Errno::ENOMEM);
        }
        // Re-check after registering: a wake-up between the check above and now is kept pending
        // by the thread, so the block below returns at once.
        let found = ready();
        if found.is_none() {
            match deadline {
                Some(d) => {
                    scheduler::block_current_until(d);
                }
                None => scheduler::block_current(),
            }
        }
        for q in queues {
            q.remove(&me);
        }
        if let Some(r) = found {
            return Ok(Some(r));
        }
    }
}
