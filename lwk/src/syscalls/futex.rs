//! futex: WAIT, WAKE, WAIT_BITSET, WAKE_BITSET, REQUEUE, CMP_REQUEUE and WAKE_OP, private or
//! shared, with timeouts: the system call's arguments, decoded for the futex core
//! (`crate::task::futex`, which keeps the waiters).

use super::{Call, SysResult};
use crate::hal::kernel_memory;
use crate::hal::page_table;
use crate::task::futex::{self, BITSET_ANY};
use crate::task::process::Process;
use crate::time::clock;
use crate::util::errno::Errno;
use bitflags::bitflags;
use core::sync::atomic::{AtomicU32, Ordering};
use lwk_hal::lent_memory;

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;

bitflags! {
    /// The flags of futex's `op` beside its command (a number: FUTEX_WAIT...). PRIVATE does not
    /// choose the table: the word's memory does (`crate::task::futex`).
    #[derive(Clone, Copy)]
    struct FutexFlags: u64 {
        const PRIVATE = 128;
        const CLOCK_REALTIME = 256;
    }
}

/// The futex word as an atomic, through the direct map (it must be writable by the user).
fn user_atomic(process: &Process, addr: u64) -> Result<&'static AtomicU32, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut tables = kernel_memory::user_tables();
    let t = page_table::translate(&mut tables, process.page_table_root().phys(), addr).ok_or(Errno::EFAULT)?;
    if !t.flags.contains(page_table::PageFlags::USER | page_table::PageFlags::WRITABLE) {
        return Err(Errno::EFAULT);
    }
    // Mapped, user-writable memory of this process: it stays mapped while the caller (a thread of
    // the process, in a system call) uses it.
    lent_memory::atomic_u32(t.phys).map_err(|_| Errno::EFAULT)
}

fn read_word(process: &Process, addr: u64) -> Result<u32, Errno> {
    let mut b = [0u8; 4];
    process.space.lock().read(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
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
    let realtime = FutexFlags::from_bits_retain(op).contains(FutexFlags::CLOCK_REALTIME);
    let job = &c.process.job;
    let command = op & !FutexFlags::all().bits();
    match command {
        FUTEX_WAIT => {
            let until = deadline(c, timeout_or_val2, false, realtime)?;
            wait(c, addr, val as u32, BITSET_ANY, until)
        }
        FUTEX_WAIT_BITSET => {
            let until = deadline(c, timeout_or_val2, true, realtime)?;
            wait(c, addr, val as u32, val3 as u32, until)
        }
        FUTEX_WAKE => Ok(futex::wake(job, futex::key(c.process, addr)?, val as usize, BITSET_ANY) as u64),
        FUTEX_WAKE_BITSET => {
            if val3 as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            Ok(futex::wake(job, futex::key(c.process, addr)?, val as usize, val3 as u32) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            let (from, to) = (futex::key(c.process, addr)?, futex::key(c.process, addr2)?);
            let compare = command == FUTEX_CMP_REQUEUE;
            let unchanged = || Ok(!compare || read_word(c.process, addr)? == val3 as u32);
            let n = futex::requeue(job, from, to, val as usize, timeout_or_val2 as u32 as usize, unchanged)?;
            Ok(n as u64)
        }
        FUTEX_WAKE_OP => {
            let (k1, k2) = (futex::key(c.process, addr)?, futex::key(c.process, addr2)?);
            // The read-modify-write of the second word happens under its bucket's lock, which
            // its waiters take to check it: atomic with respect to them.
            let pass = futex::with_word_locked(job, k2, || {
                let word = user_atomic(c.process, addr2)?;
                let mut old = word.load(Ordering::SeqCst);
                loop {
                    let (new, pass) = wake_op(val3 as u32, old)?;
                    match word.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                        Ok(_) => break Ok::<bool, Errno>(pass),
                        Err(seen) => old = seen,
                    }
                }
            })?;
            let mut n = futex::wake(job, k1, val as usize, BITSET_ANY);
            if pass {
                n += futex::wake(job, k2, timeout_or_val2 as u32 as usize, BITSET_ANY);
            }
            Ok(n as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// WAIT and WAIT_BITSET: blocks while the word at `addr` holds `expected`.
fn wait(c: &mut Call, addr: u64, expected: u32, bitset: u32, until: Option<u64>) -> SysResult {
    let k = futex::key(c.process, addr)?;
    let process = c.process;
    futex::wait(c.thread, k, || Ok(read_word(process, addr)? == expected), bitset, until)?;
    Ok(0)
}
