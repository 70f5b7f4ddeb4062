//! futex: WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE and WAKE_OP, private or
//! shared, with timeouts. Waiters are keyed by the physical address of the futex word, so a
//! futex works between threads (same mapping) and between processes sharing memory alike. The
//! value check and the registration happen under the lock of the word's bucket, which every
//! waker of that word takes, so no wake-up is lost.
//!
//! Waiting allocates nothing per wait: a thread's wait state (word, bitset, woken) is part of the
//! thread ([`FutexWait`], charged with it), and a bucket holds the waiting threads themselves.
//! A bucket's list grows only when more threads wait in it than ever before; that growth is
//! fallible (the wait fails with ENOMEM, the heap is never asked for more than it has), and it
//! is bounded by the threads that exist, which are charged to their enclaves.

use super::{Call, SysResult};
use crate::clock;
use crate::kernel_memory;
use crate::page_table;
use crate::process::Process;
use crate::scheduler;
use crate::signals;
use crate::thread::{FutexWait, Thread};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use lwk::errno::Errno;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;
const BITSET_ANY: u32 = u32::MAX;

/// Buckets of the waiter table (a power of two); a word's bucket is a hash of its address.
const BUCKETS: usize = 64;
type Bucket = spin::Mutex<Vec<Arc<Thread>>>;
static TABLE: [Bucket; BUCKETS] = [const { spin::Mutex::new(Vec::new()) }; BUCKETS];

fn bucket_index(k: u64) -> usize {
    ((k >> 2).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKETS.trailing_zeros())) as usize
}

fn bucket(k: u64) -> &'static Bucket {
    &TABLE[bucket_index(k)]
}

/// The physical address of a futex word (4-byte aligned, mapped for the user).
fn key(process: &Process, addr: u64) -> Result<u64, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let root = process.page_table_root();
    let mut tables = kernel_memory::user_tables();
    let t = page_table::translate(&mut tables, root, addr).ok_or(Errno::EFAULT)?;
    if !t.flags.contains(page_table::PageFlags::USER) {
        return Err(Errno::EFAULT);
    }
    Ok(t.phys)
}

/// The futex word as an atomic, through the direct map (it must be writable by the user).
fn user_atomic(process: &Process, addr: u64) -> Result<&'static AtomicU32, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut tables = kernel_memory::user_tables();
    let t = page_table::translate(&mut tables, process.page_table_root(), addr).ok_or(Errno::EFAULT)?;
    if !t.flags.contains(page_table::PageFlags::USER | page_table::PageFlags::WRITABLE) {
        return Err(Errno::EFAULT);
    }
    // SAFETY: a 4-byte aligned word of mapped, user-writable memory of this process, seen
    // through the direct map; user code accesses it atomically too. The frame stays mapped while
    // the caller (a thread of the process, in a system call) uses it.
    Ok(unsafe { AtomicU32::from_ptr(kernel_memory::phys_to_virt(t.phys) as *mut u32) })
}

fn read_word(process: &Process, addr: u64) -> Result<u32, Errno> {
    let mut b = [0u8; 4];
    process.space.lock().read(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
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

/// Wakes up to `count` waiters on `k` whose bitset meets `bitset`; returns how many.
fn wake_key(k: u64, count: usize, bitset: u32) -> usize {
    wake_in(&mut bucket(k).lock(), k, count, bitset)
}

/// For thread exit (CLONE_CHILD_CLEARTID): wakes waiters on a word of `process`.
pub fn wake_address(process: &Process, addr: u64, count: usize) {
    if let Ok(k) = key(process, addr) {
        wake_key(k, count, BITSET_ANY);
    }
}

/// Reads a timeout (`struct timespec`) and turns it into an uptime deadline.
fn deadline(c: &Call, timeout: u64, absolute: bool, realtime: bool) -> Result<Option<u64>, Errno> {
    if timeout == 0 {
        return Ok(None);
    }
    let mut raw = [0u8; 16];
    c.process.space.lock().read(timeout, &mut raw)?;
    let secs = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
    let nanos = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return Err(Errno::EINVAL);
    }
    let ns = (secs as u64).saturating_mul(1_000_000_000).saturating_add(nanos as u64);
    let now = clock::uptime_ns();
    Ok(Some(match (absolute, realtime) {
        (false, _) => now.saturating_add(ns),
        (true, false) => ns,
        (true, true) => now.saturating_add(ns.saturating_sub(clock::realtime_ns())),
    }))
}

fn wait(c: &mut Call, addr: u64, expected: u32, bitset: u32, until: Option<u64>) -> SysResult {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let k = key(c.process, addr)?;
    let me = &c.thread.futex_wait;
    {
        let mut list = bucket(k).lock();
        if read_word(c.process, addr)? != expected {
            return Err(Errno::EAGAIN);
        }
        list.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        me.woken.store(false, Ordering::SeqCst);
        me.bitset.store(bitset, Ordering::Relaxed);
        me.key.store(k, Ordering::Relaxed);
        list.push(c.thread.clone());
    }
    loop {
        if me.woken.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let interrupted = signals::deliverable(c.thread);
        let timed_out = until.is_some_and(|d| clock::uptime_ns() >= d);
        if interrupted || timed_out {
            // Leave the table unless a waker took us meanwhile (then it is a wake-up).
            if leave(c.thread) {
                return Err(if interrupted { Errno::EINTR } else { Errno::ETIMEDOUT });
            }
            return Ok(0);
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
        let mut list = bucket(k).lock();
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

/// REQUEUE and CMP_REQUEUE: under the locks of both words' buckets, checks the first word
/// (when `expected` is given), wakes up to `wake` of its waiters and moves up to `count` more
/// to the second word. Returns how many were woken and moved.
fn requeue(c: &Call, (addr, from): (u64, u64), to: u64, wake: usize, count: usize, expected: Option<u32>) -> SysResult {
    let (first, second) = (bucket_index(from), bucket_index(to));
    // Both locks, the lower index first (one lock when both words share a bucket).
    let mut low = TABLE[first.min(second)].lock();
    let mut high = (first != second).then(|| TABLE[first.max(second)].lock());
    if let Some(expected) = expected
        && read_word(c.process, addr)? != expected
    {
        return Err(Errno::EAGAIN);
    }
    let (source, mut target) = match &mut high {
        None => (&mut *low, None),
        Some(h) if first < second => (&mut *low, Some(&mut **h)),
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
    Ok((woken + moved) as u64)
}

/// The operation of FUTEX_WAKE_OP: (new value, whether the old value passes the comparison).
fn wake_op(encoded: u32, old: u32) -> Result<(u32, bool), Errno> {
    let op = (encoded >> 28) & 0x7;
    let shift = (encoded >> 28) & 0x8 != 0;
    let cmp = (encoded >> 24) & 0xf;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    if shift {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(Errno::ENOSYS),
    };
    let (o, a) = (old as i32, cmparg as i32);
    let pass = match cmp {
        0 => o == a,
        1 => o != a,
        2 => o < a,
        3 => o <= a,
        4 => o > a,
        5 => o >= a,
        _ => return Err(Errno::ENOSYS),
    };
    Ok((new, pass))
}

pub fn futex(c: &mut Call) -> SysResult {
    let [addr, op, val, timeout_or_val2, addr2, val3] = c.args;
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    match op & !(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME) {
        FUTEX_WAIT => {
            let until = deadline(c, timeout_or_val2, false, realtime)?;
            wait(c, addr, val as u32, BITSET_ANY, until)
        }
        FUTEX_WAIT_BITSET => {
            let until = deadline(c, timeout_or_val2, true, realtime)?;
            wait(c, addr, val as u32, val3 as u32, until)
        }
        FUTEX_WAKE => Ok(wake_key(key(c.process, addr)?, val as usize, BITSET_ANY) as u64),
        FUTEX_WAKE_BITSET => {
            if val3 as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(wake_key(key(c.process, addr)?, val as usize, val3 as u32) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let (from, to) = (key(c.process, addr)?, key(c.process, addr2)?);
            let expected = (op & 0x7f == FUTEX_CMP_REQUEUE).then_some(val3 as u32);
            requeue(c, (addr, from), to, val as usize, timeout_or_val2 as u32 as usize, expected)
        }
        FUTEX_WAKE_OP => {
            let (k1, k2) = (key(c.process, addr)?, key(c.process, addr2)?);
            // The read-modify-write of the second word happens under its bucket's lock, which
            // its waiters take to check it: atomic with respect to them.
            let pass = {
                let _bucket = bucket(k2).lock();
                let word = user_atomic(c.process, addr2)?;
                let mut old = word.load(Ordering::SeqCst);
                loop {
                    let (new, pass) = wake_op(val3 as u32, old)?;
                    match word.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                        Ok(_) => break pass,
                        Err(seen) => old = seen,
                    }
                }
            };
            let mut n = wake_key(k1, val as usize, BITSET_ANY);
            if pass {
                n += wake_key(k2, timeout_or_val2 as u32 as usize, BITSET_ANY);
            }
            Ok(n as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}
