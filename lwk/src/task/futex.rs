//! The futex core: threads waiting on a word of user memory until another thread wakes them.
//! `syscalls::futex` decodes the system call on top of it; thread exit wakes through it too.
//!
//! Waiters are keyed by the physical address of the word, so a futex works between threads
//! (same mapping) and between processes sharing memory alike, whatever the operation's
//! `FUTEX_PRIVATE` flag says (as on Linux, where a private and a shared operation on the same
//! word of private memory meet). A word of a job's own memory has its waiters in the job's table
//! (`Job::futexes`): jobs of different enclaves never contend for a lock. Any other word (a
//! segment, which enclaves may share) has them in the node's table. A table is 64 buckets; a
//! word's bucket is a hash of its address. The value check and the registration happen under the
//! lock of the word's bucket, which every waker of that word takes, so no wake-up is lost.
//!
//! Waiting allocates nothing per wait: a thread's wait state (word, bitset, woken) is part of the
//! thread ([`FutexWait`], charged with it), and a bucket holds the waiting threads themselves.
//! A bucket's list grows only when more threads wait in it than ever before; that growth is
//! fallible (the wait fails with ENOMEM, the heap is never asked for more than it has), and it
//! is bounded by the threads that exist, which are charged to their enclaves.

use crate::hal::kernel_memory;
use crate::hal::page_table;
use crate::task::process::{Job, Process};
use crate::task::scheduler;
use crate::task::signals;
use crate::task::thread::{FutexWait, Thread};
use crate::time::clock;
use crate::util::errno::Errno;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// A wake or wait for any bit.
pub const BITSET_ANY: u32 = u32::MAX;
/// Buckets of a table (a power of two).
const BUCKETS: usize = 64;

type Bucket = spin::Mutex<Vec<Arc<Thread>>>;

/// Waiting threads by word.
pub struct FutexTable {
    buckets: [Bucket; BUCKETS],
}

impl FutexTable {
    pub const fn new() -> FutexTable {
        FutexTable { buckets: [const { spin::Mutex::new(Vec::new()) }; BUCKETS] }
    }
}

impl Default for FutexTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Waiters on words outside every job's own memory (segments).
static NODE: FutexTable = FutexTable::new();

/// The bucket of word `k` (a physical address) as seen by a thread of `job`.
fn bucket(job: &Job, k: u64) -> &Bucket {
    let table = if job.memory.owns(k) { &job.futexes } else { &NODE };
    let index = (k >> 2).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKETS.trailing_zeros());
    &table.buckets[index as usize]
}

/// The physical address of a futex word of `process` (4-byte aligned, mapped for the user).
pub fn key(process: &Process, addr: u64) -> Result<u64, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut tables = kernel_memory::user_tables();
    let t = page_table::translate(&mut tables, process.page_table_root().phys(), addr).ok_or(Errno::EFAULT)?;
    if !t.flags.contains(page_table::PageFlags::USER) {
        return Err(Errno::EFAULT);
    }
    Ok(t.phys)
}

/// Takes up to `count` waiters on `k` whose bitset meets `bitset` out of `list` (the bucket of
/// `k`, locked) and wakes them; returns how many.
fn wake_in(list: &mut Vec<Arc<Thread>>, k: u64, count: usize, bitset: u32) -> usize {
    let mut woken = 0;
    let mut i = 0;
    while i < list.len() && woken < count {
        let w = &list[i].futex_wait;
        if w.key.load(Ordering::Relaxed) == k && w.bitset.load(Ordering::Relaxed) & bitset != 0 {
            let t = list.remove(i);
            t.futex_wait.key.store(FutexWait::NONE, Ordering::Relaxed);
            t.futex_wait.woken.store(true, Ordering::SeqCst);
            scheduler::wake(&t);
            woken += 1;
        } else {
            i += 1;
        }
    }
    woken
}

/// Wakes up to `count` waiters on word `k` whose bitset meets `bitset`; returns how many.
pub fn wake(job: &Job, k: u64, count: usize, bitset: u32) -> usize {
    wake_in(&mut bucket(job, k).lock(), k, count, bitset)
}

/// For thread exit (CLONE_CHILD_CLEARTID): wakes waiters on a word of `process`.
pub fn wake_address(process: &Process, addr: u64, count: usize) {
    if let Ok(k) = key(process, addr) {
        wake(&process.job, k, count, BITSET_ANY);
    }
}

/// Runs `f` under the lock of word `k`'s bucket: what its waiters' checks see is atomic with
/// respect to `f` (FUTEX_WAKE_OP changes a word this way).
pub fn with_word_locked<R>(job: &Job, k: u64, f: impl FnOnce() -> R) -> R {
    let _bucket = bucket(job, k).lock();
    f()
}

/// Blocks `thread` on word `k` while `unchanged()` says (under the bucket's lock) that the word
/// still holds what the caller expects (EAGAIN otherwise), until a wake for `bitset`, a signal
/// (EINTR) or the uptime `until` (ETIMEDOUT).
pub fn wait(
    thread: &Arc<Thread>,
    k: u64,
    unchanged: impl FnOnce() -> Result<bool, Errno>,
    bitset: u32,
    until: Option<u64>,
) -> Result<(), Errno> {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let me = &thread.futex_wait;
    {
        let mut list = bucket(&thread.process.job, k).lock();
        if !unchanged()? {
            return Err(Errno::EAGAIN);
        }
        list.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        me.woken.store(false, Ordering::SeqCst);
        me.bitset.store(bitset, Ordering::Relaxed);
        me.key.store(k, Ordering::Relaxed);
        list.push(thread.clone());
    }
    loop {
        if me.woken.load(Ordering::SeqCst) {
            return Ok(());
        }
        let interrupted = signals::deliverable(thread);
        let timed_out = until.is_some_and(|d| clock::uptime_ns() >= d);
        if interrupted || timed_out {
            // Leave the table unless a waker took us meanwhile (then it is a wake-up).
            if leave(thread) {
                return Err(if interrupted { Errno::EINTR } else { Errno::ETIMEDOUT });
            }
            return Ok(());
        }
        match until {
            Some(d) => {
                scheduler::block_current_until(d);
            }
            None => scheduler::block_current(),
        }
    }
}

/// Takes a waiting thread out of the table; `false` if a waker took it first. A requeue may
/// move it to another word meanwhile, so its bucket is looked up again under the lock.
fn leave(thread: &Arc<Thread>) -> bool {
    let w = &thread.futex_wait;
    loop {
        let k = w.key.load(Ordering::Relaxed);
        if k == FutexWait::NONE {
            return false;
        }
        let mut list = bucket(&thread.process.job, k).lock();
        if w.woken.load(Ordering::SeqCst) {
            return false;
        }
        if w.key.load(Ordering::Relaxed) == k {
            list.retain(|t| !Arc::ptr_eq(t, thread));
            w.key.store(FutexWait::NONE, Ordering::Relaxed);
            return true;
        }
    }
}

/// REQUEUE and CMP_REQUEUE: under the locks of both words' buckets, checks the first word with
/// `unchanged` (EAGAIN when it changed), wakes up to `wake` of its waiters and moves up to
/// `count` more to word `to`. Returns how many were woken and moved.
pub fn requeue(
    job: &Job,
    from: u64,
    to: u64,
    wake: usize,
    count: usize,
    unchanged: impl FnOnce() -> Result<bool, Errno>,
) -> Result<usize, Errno> {
    let (source_bucket, target_bucket) = (bucket(job, from), bucket(job, to));
    let same = core::ptr::eq(source_bucket, target_bucket);
    // Both locks, in address order (one lock when both words share a bucket).
    let (first, second) = if (source_bucket as *const Bucket) < (target_bucket as *const Bucket) {
        (source_bucket, target_bucket)
    } else {
        (target_bucket, source_bucket)
    };
    let mut low = first.lock();
    let mut high = (!same).then(|| second.lock());
    if !unchanged()? {
        return Err(Errno::EAGAIN);
    }
    let source_is_low = core::ptr::eq(first, source_bucket);
    let (source, mut target) = match &mut high {
        None => (&mut *low, None),
        Some(h) if source_is_low => (&mut *low, Some(&mut **h)),
        Some(h) => (&mut **h, Some(&mut *low)),
    };
    let woken = wake_in(source, from, wake, BITSET_ANY);
    let mut moved = 0;
    let mut i = 0;
    while i < source.len() && moved < count {
        if source[i].futex_wait.key.load(Ordering::Relaxed) != from {
            i += 1;
            continue;
        }
        source[i].futex_wait.key.store(to, Ordering::Relaxed);
        moved += 1;
        match target.as_deref_mut() {
            // Same bucket: the key is all that changes.
            None => i += 1,
            Some(list) => {
                if list.try_reserve(1).is_err() {
                    // No room in the other bucket: this one stays waiting on the old word.
                    source[i].futex_wait.key.store(from, Ordering::Relaxed);
                    moved -= 1;
                    break;
                }
                list.push(source.remove(i));
            }
        }
    }
    Ok(woken + moved)
}
