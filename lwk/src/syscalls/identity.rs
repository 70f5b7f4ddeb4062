//! Who and where the caller is (uname, limits, affinity, CPU), and the thread-level calls of program start-up: arch_prctl, set_tid_address, exit.

use super::{Call, SysResult};
use crate::fs::open_files::{IO_CHUNK, sized_buffer};
use crate::util::errno::Errno;
use crate::{hal::random, task::per_cpu};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

pub fn uname(c: &mut Call) -> SysResult {
    let mut buf = [0u8; 6 * 65];
    let fields: [&[u8]; 6] = [b"Linux", b"manul", b"6.1.0-manul", b"#1 SMP Manul LWK", b"x86_64", b"(none)"];
    for (i, f) in fields.iter().enumerate() {
        buf[i * 65..i * 65 + f.len()].copy_from_slice(f);
    }
    c.process.space.lock().write(c.args[0], &buf)?;
    Ok(0)
}

/// Limits as Linux reports them by default, with the stack at its real size.
fn limit(resource: u64) -> Result<(u64, u64), Errno> {
    const INFINITY: u64 = u64::MAX;
    Ok(match resource {
        3 => (crate::exec::program_loader::STACK_BYTES, INFINITY), // RLIMIT_STACK
        7 => (1024, 4096),                                         // RLIMIT_NOFILE
        0..=15 => (INFINITY, INFINITY),
        _ => return Err(Errno::EINVAL),
    })
}

pub fn getrlimit(c: &mut Call) -> SysResult {
    let (cur, max) = limit(c.args[0])?;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&cur.to_le_bytes());
    b[8..].copy_from_slice(&max.to_le_bytes());
    c.process.space.lock().write(c.args[1], &b)?;
    Ok(0)
}

pub fn prlimit64(c: &mut Call) -> SysResult {
    let [pid, resource, new, old, ..] = c.args;
    if pid != 0 && pid != c.process.pid as u64 {
        return Err(Errno::ESRCH);
    }
    let (cur, max) = limit(resource)?;
    if old != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        c.process.space.lock().write(old, &b)?;
    }
    // Setting limits is accepted and ignored: the LWK's limits are the job's reservation.
    let _ = new;
    Ok(0)
}

pub fn arch_prctl(c: &mut Call) -> SysResult {
    let [code, addr, ..] = c.args;
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            let (slot, load): (_, fn(u64) -> bool) = if code == ARCH_SET_FS {
                (&c.thread.fs_base, crate::hal::cpu::set_user_fs_base)
            } else {
                (&c.thread.gs_base, crate::hal::cpu::set_user_gs_base)
            };
            if !load(addr) {
                return Err(Errno::EPERM);
            }
            slot.store(addr, Ordering::Relaxed);
            Ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let v = if code == ARCH_GET_FS {
                crate::hal::cpu::rdmsr(crate::hal::cpu::MSR_FS_BASE)
            } else {
                c.thread.gs_base.load(Ordering::Relaxed)
            };
            c.process.space.lock().write(addr, &v.to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn set_tid_address(c: &mut Call) -> SysResult {
    c.thread.clear_child_tid.store(c.args[0], Ordering::Relaxed);
    Ok(c.thread.tid as u64)
}

pub fn getrandom(c: &mut Call) -> SysResult {
    let [buf, len, ..] = c.args;
    // At most one kernel buffer's worth at once, as Linux returns short reads of getrandom.
    let len = (len as usize).min(IO_CHUNK);
    let mut data = Vec::new();
    sized_buffer(&mut data, len)?;
    random::fill(&mut data);
    c.process.space.lock().write(buf, &data)?;
    Ok(len as u64)
}

pub fn sched_getaffinity(c: &mut Call) -> SysResult {
    let [pid, size, mask, ..] = c.args;
    if pid != 0 && pid != c.thread.tid as u64 && pid != c.process.pid as u64 {
        return Err(Errno::ESRCH);
    }
    let cpus = per_cpu::all().len();
    let bytes = cpus.div_ceil(64) * 8;
    if (size as usize) < bytes || size % 8 != 0 {
        return Err(Errno::EINVAL);
    }
    let mut set = vec![0u8; bytes];
    for &core in &c.process.job.cores {
        set[core / 8] |= 1 << (core % 8);
    }
    c.process.space.lock().write(mask, &set)?;
    Ok(bytes as u64)
}

pub fn getcpu(c: &mut Call) -> SysResult {
    let [cpu, node, ..] = c.args;
    let here = per_cpu::current().index as u32;
    let space = c.process.space.lock();
    if cpu != 0 {
        space.write(cpu, &here.to_le_bytes())?;
    }
    if node != 0 {
        space.write(node, &0u32.to_le_bytes())?;
    }
    Ok(0)
}

pub fn sched_setaffinity(c: &mut Call) -> SysResult {
    let [pid, size, mask, ..] = c.args;
    if pid != 0 && pid != c.thread.tid as u64 {
        return Err(Errno::ESRCH);
    }
    let len = (size as usize).min(512);
    let mut set = vec![0u8; len];
    c.process.space.lock().read(mask, &mut set)?;
    let allowed = |core: usize| set.get(core / 8).is_some_and(|b| b & (1 << (core % 8)) != 0);
    let job = &c.process.job;
    let here = c.thread.cpu.load(Ordering::Relaxed);
    if allowed(here) && job.cores.contains(&here) {
        return Ok(0);
    }
    // Threads stay on their job's cores: the new core is the first allowed one among them.
    let target = job.cores.iter().copied().find(|&core| allowed(core)).ok_or(Errno::EINVAL)?;
    job.thread_moved(here, target);
    crate::task::scheduler::migrate_current(target);
    Ok(0)
}

pub fn set_robust_list(c: &mut Call) -> SysResult {
    let [head, len, ..] = c.args;
    if len != 24 {
        return Err(Errno::EINVAL);
    }
    *c.thread.robust_list.lock() = (head, len);
    Ok(0)
}

pub fn get_robust_list(c: &mut Call) -> SysResult {
    let [tid, head_out, len_out, ..] = c.args;
    if tid != 0 && tid != c.thread.tid as u64 {
        return Err(Errno::EPERM);
    }
    let (head, len) = *c.thread.robust_list.lock();
    let space = c.process.space.lock();
    space.write(head_out, &head.to_le_bytes())?;
    space.write(len_out, &len.to_le_bytes())?;
    Ok(0)
}
