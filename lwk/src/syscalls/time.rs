//! Clocks: CLOCK_MONOTONIC from the TSC, CLOCK_REALTIME from the RTC date read at boot plus
//! uptime, per-thread and per-process CPU time.

use super::{Call, SysResult};
use crate::clock;
use core::sync::atomic::Ordering;
use lwk::errno::Errno;

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;

fn now_ns(c: &Call, clock_id: u64) -> Result<u64, Errno> {
    Ok(match clock_id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => clock::realtime_ns(),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => clock::uptime_ns(),
        CLOCK_PROCESS_CPUTIME_ID => c.process.cpu_ns.load(Ordering::Relaxed) + crate::scheduler::current_slice_ns(),
        CLOCK_THREAD_CPUTIME_ID => c.thread.cpu_ns.load(Ordering::Relaxed) + crate::scheduler::current_slice_ns(),
        _ => return Err(Errno::EINVAL),
    })
}

fn timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
    b
}

pub fn clock_gettime(c: &mut Call) -> SysResult {
    let ns = now_ns(c, c.args[0])?;
    c.process.space.lock().write(c.args[1], &timespec(ns))?;
    Ok(0)
}

pub fn clock_getres(c: &mut Call) -> SysResult {
    now_ns(c, c.args[0])?;
    if c.args[1] != 0 {
        c.process.space.lock().write(c.args[1], &timespec(1))?;
    }
    Ok(0)
}

pub fn gettimeofday(c: &mut Call) -> SysResult {
    if c.args[0] != 0 {
        let ns = clock::realtime_ns();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&(ns % 1_000_000_000 / 1000).to_le_bytes());
        c.process.space.lock().write(c.args[0], &b)?;
    }
    Ok(0)
}

pub fn time(c: &mut Call) -> SysResult {
    let secs = clock::realtime_ns() / 1_000_000_000;
    if c.args[0] != 0 {
        c.process.space.lock().write(c.args[0], &secs.to_le_bytes())?;
    }
    Ok(secs)
}
