//! Clocks: CLOCK_MONOTONIC from the TSC, CLOCK_REALTIME from the RTC date read at boot plus
//! uptime, per-thread and per-process CPU time.

use super::{Call, SysResult};
use crate::time::clock;
use crate::util::errno::Errno;
use core::sync::atomic::Ordering;

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
        CLOCK_PROCESS_CPUTIME_ID => {
            c.process.cpu_ns.load(Ordering::Relaxed) + crate::task::scheduler::current_slice_ns()
        }
        CLOCK_THREAD_CPUTIME_ID => c.thread.cpu_ns.load(Ordering::Relaxed) + crate::task::scheduler::current_slice_ns(),
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

/// Sleeps until `until` (uptime ns) or a signal; on a signal, returns EINTR and the time left.
fn sleep_until(c: &mut Call, until: u64, remaining: u64) -> SysResult {
    loop {
        let now = clock::uptime_ns();
        if now >= until {
            return Ok(0);
        }
        if crate::task::signals::deliverable(c.thread) {
            if remaining != 0 {
                c.process.space.lock().write(remaining, &timespec(until - now))?;
            }
            return Err(Errno::EINTR);
        }
        crate::task::scheduler::block_current_until(until);
    }
}

fn read_timespec(c: &Call, addr: u64) -> Result<u64, Errno> {
    let mut raw = [0u8; 16];
    c.process.space.lock().read(addr, &mut raw)?;
    let secs = i64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
    let nanos = i64::from_le_bytes(raw[8..].try_into().unwrap_or_default());
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return Err(Errno::EINVAL);
    }
    Ok((secs as u64).saturating_mul(1_000_000_000).saturating_add(nanos as u64))
}

pub fn nanosleep(c: &mut Call) -> SysResult {
    let [request, remaining, ..] = c.args;
    let ns = read_timespec(c, request)?;
    let until = clock::uptime_ns().saturating_add(ns);
    sleep_until(c, until, remaining)
}

pub fn clock_nanosleep(c: &mut Call) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    let [clock_id, flags, request, remaining, ..] = c.args;
    let ns = read_timespec(c, request)?;
    let now = clock::uptime_ns();
    let until = match (flags & TIMER_ABSTIME != 0, clock_id) {
        (false, CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME) => now.saturating_add(ns),
        (true, CLOCK_MONOTONIC | CLOCK_BOOTTIME) => ns,
        (true, CLOCK_REALTIME) => now.saturating_add(ns.saturating_sub(clock::realtime_ns())),
        _ => return Err(Errno::EINVAL),
    };
    sleep_until(c, until, if flags & TIMER_ABSTIME != 0 { 0 } else { remaining })
}

/// `struct rusage` with the process's CPU time as user time.
pub fn getrusage(c: &mut Call) -> SysResult {
    let [who, out, ..] = c.args;
    let ns = match who as i64 {
        0 => c.process.cpu_ns.load(Ordering::Relaxed) + crate::task::scheduler::current_slice_ns(), // RUSAGE_SELF
        1 => c.thread.cpu_ns.load(Ordering::Relaxed) + crate::task::scheduler::current_slice_ns(),  // RUSAGE_THREAD
        -1 => 0,                                                                                    // RUSAGE_CHILDREN
        _ => return Err(Errno::EINVAL),
    };
    let mut b = [0u8; 144];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..16].copy_from_slice(&(ns % 1_000_000_000 / 1000).to_le_bytes());
    c.process.space.lock().write(out, &b)?;
    Ok(0)
}

/// `times`: CPU time in clock ticks (100 per second); returns ticks since boot.
pub fn times(c: &mut Call) -> SysResult {
    let ticks = |ns: u64| ns / 10_000_000;
    if c.args[0] != 0 {
        let mut b = [0u8; 32];
        let user = c.process.cpu_ns.load(Ordering::Relaxed) + crate::task::scheduler::current_slice_ns();
        b[..8].copy_from_slice(&ticks(user).to_le_bytes());
        c.process.space.lock().write(c.args[0], &b)?;
    }
    Ok(ticks(clock::uptime_ns()))
}

/// `sysinfo`: uptime, the job's memory, its process count.
pub fn sysinfo(c: &mut Call) -> SysResult {
    let mut b = [0u8; 112];
    let put = |b: &mut [u8; 112], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, clock::uptime_ns() / 1_000_000_000);
    put(&mut b, 32, c.process.job.memory.bytes);
    put(&mut b, 40, c.process.job.memory.free_bytes());
    b[80..82].copy_from_slice(&(c.process.job.processes.lock().len() as u16).to_le_bytes());
    b[104..108].copy_from_slice(&1u32.to_le_bytes());
    c.process.space.lock().write(c.args[0], &b)?;
    Ok(0)
}
