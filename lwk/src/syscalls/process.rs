//! Processes and threads: clone/clone3 (threads and forks), fork, vfork, execve, exit, wait4,
//! waitid, kill/tkill/tgkill, process groups and sessions, signal actions and masks.

use super::{Call, SysResult};
use crate::exec::program_loader;
use crate::fs::process_files::{self, ProcessFiles};
use crate::hal::cpu::USER_END;
use crate::hal::syscall_entry::USER_RFLAGS;
use crate::mm::fork_copy;
use crate::task::clone_flags::CloneFlags;
use crate::task::interrupt_entry::TrapFrame;
use crate::task::process::{ExitReason, PROCESS_KERNEL_BYTES, Process, SaFlags, SignalAction};
use crate::task::process_lifecycle;
use crate::task::scheduler;
use crate::task::signals::{self, SIG_DFL, SIG_IGN};
use crate::task::thread::Thread;
use crate::time::clock;
use crate::util::errno::Errno;
use alloc::sync::Arc;
use alloc::vec::Vec;
use bitflags::bitflags;
use core::sync::atomic::Ordering;
use enclave::Charge;

bitflags! {
    /// The options of wait4 and waitid the kernel looks at; others (WUNTRACED, WCONTINUED,
    /// __WALL...) are taken and ignored (`from_bits_retain`): no child ever stops.
    #[derive(Clone, Copy)]
    struct WaitOptions: u64 {
        const NOHANG = 1;
        const EXITED = 4;
        const NOWAIT = 0x0100_0000;
    }
}
/// Most argv + envp entries and bytes execve accepts.
const MAX_ARGS: usize = 4096;
const MAX_ARG_BYTES: usize = 256 * 1024;

struct CloneArgs {
    flags: CloneFlags,
    stack: u64,
    parent_tid: u64,
    child_tid: u64,
    tls: u64,
}

pub fn clone(c: &mut Call) -> SysResult {
    let [flags, stack, parent_tid, child_tid, tls, _] = c.args;
    let flags = CloneFlags::parse(flags).ok_or(Errno::EINVAL)?;
    do_clone(c, CloneArgs { flags, stack, parent_tid, child_tid, tls })
}

pub fn clone3(c: &mut Call) -> SysResult {
    let [args, size, ..] = c.args;
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut raw = [0u8; 64];
    c.process.space.lock().read(args, &mut raw)?;
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    let (flags, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
        (word(0), word(2), word(3), word(4), word(5), word(6), word(7));
    if exit_signal > 64 || CloneFlags::from_bits_retain(flags).intersects(CloneFlags::EXIT_SIGNAL) {
        return Err(Errno::EINVAL);
    }
    let top = if stack == 0 { 0 } else { stack.checked_add(stack_size).ok_or(Errno::EINVAL)? };
    let flags = CloneFlags::parse(flags | exit_signal).ok_or(Errno::EINVAL)?;
    do_clone(c, CloneArgs { flags, stack: top, parent_tid, child_tid, tls })
}

/// fork's flags: a new process, SIGCHLD to the parent when it ends.
const FORK: CloneFlags = CloneFlags::from_bits_retain(signals::SIGCHLD as u64);

pub fn fork(c: &mut Call) -> SysResult {
    do_clone(c, CloneArgs { flags: FORK, stack: 0, parent_tid: 0, child_tid: 0, tls: 0 })
}

pub fn vfork(c: &mut Call) -> SysResult {
    let flags = FORK.union(CloneFlags::VFORK);
    do_clone(c, CloneArgs { flags, stack: 0, parent_tid: 0, child_tid: 0, tls: 0 })
}

fn do_clone(c: &mut Call, a: CloneArgs) -> SysResult {
    if a.stack >= USER_END || a.tls >= USER_END {
        return Err(Errno::EINVAL);
    }
    let thread_clone = a.flags.contains(CloneFlags::THREAD);
    let job = c.process.job.clone();
    let id = job.new_id();
    let mut regs = c.frame.clone();
    regs.rax = 0;
    if a.stack != 0 {
        regs.rsp = a.stack;
    }
    // Processes not yet reaped (zombies too) count against the thread limit, so that children
    // nobody waits for cannot pile up in kernel memory either.
    if !thread_clone && job.processes.lock().len() >= job.max_threads {
        return Err(Errno::EAGAIN);
    }
    // A slot under the job's thread limit first; every failure below gives it back.
    let core = job.place_thread().ok_or(Errno::EAGAIN)?;
    let placed = new_thread(c, &a, id, core, &regs);
    if placed.is_err() {
        job.thread_left(core);
    }
    let (process, thread) = placed?;
    // The new thread starts with the caller's FPU registers, TLS base and signal mask.
    {
        let mut mine = c.thread.fpu.lock();
        mine.save();
        if let Some(copy) = mine.duplicate() {
            *thread.fpu.lock() = copy;
        }
    }
    let fs =
        if a.flags.contains(CloneFlags::SETTLS) { a.tls } else { crate::hal::cpu::rdmsr(crate::hal::cpu::MSR_FS_BASE) };
    thread.fs_base.store(fs, Ordering::Relaxed);
    thread.gs_base.store(c.thread.gs_base.load(Ordering::Relaxed), Ordering::Relaxed);
    thread.signal_mask.store(c.thread.signal_mask.load(Ordering::Relaxed), Ordering::Relaxed);
    if a.flags.contains(CloneFlags::CHILD_CLEARTID) {
        thread.clear_child_tid.store(a.child_tid, Ordering::Relaxed);
    }
    process.threads.lock().push(thread.clone());
    if !thread_clone {
        job.processes.lock().insert(id, process.clone());
        let parent = if a.flags.contains(CloneFlags::PARENT) {
            job.process(c.process.parent.load(Ordering::Relaxed))
        } else {
            None
        };
        parent.as_ref().unwrap_or(c.process).children.lock().push(process.clone());
    }
    scheduler::enqueue(thread);
    if a.flags.contains(CloneFlags::VFORK) {
        // The parent waits until the child has exec'd or exited (a signal ends the wait early).
        let _ = process.vfork_done.wait_until(|| process.vfork_released.load(Ordering::SeqCst).then_some(()));
    }
    Ok(id as u64)
}

/// The fallible part of `clone`: the child process (unless a thread is asked for), its thread on
/// `core`, and the thread ID stored where CLONE_CHILD_SETTID / CLONE_PARENT_SETTID ask.
fn new_thread(
    c: &Call,
    a: &CloneArgs,
    id: u32,
    core: usize,
    regs: &TrapFrame,
) -> Result<(Arc<Process>, Arc<Thread>), Errno> {
    let process = if a.flags.contains(CloneFlags::THREAD) {
        c.process.clone()
    } else {
        // A new process out of kernel memory is a resource limit: EAGAIN, as Linux's fork.
        let charge = Charge::new(&c.process.job.kernel_memory, PROCESS_KERNEL_BYTES).map_err(|_| Errno::EAGAIN)?;
        let space = fork_copy::duplicate(&c.process.space.lock(), c.frame.rsp)?;
        let files = process_files::of(c.process).fds.lock().clone();
        let parent_pid =
            if a.flags.contains(CloneFlags::PARENT) { c.process.parent.load(Ordering::Relaxed) } else { c.process.pid };
        let group = (c.process.pgid.load(Ordering::Relaxed), c.process.sid.load(Ordering::Relaxed));
        let exe = c.process.exe.lock().clone();
        let cwd = process_files::of(c.process).cwd.lock().clone();
        let child = Arc::new(Process::new(
            id,
            parent_pid,
            c.process.job.clone(),
            space,
            exe,
            ProcessFiles::boxed(files, cwd),
            group,
            charge,
        ));
        *child.actions.lock() = *c.process.actions.lock();
        child.umask.store(c.process.umask.load(Ordering::Relaxed), Ordering::Relaxed);
        child
    };
    // Out of kernel memory (the enclave's budget, or frames for the stack): a resource limit,
    // EAGAIN as Linux's clone says it.
    let thread = Thread::new(id, process.clone(), core, regs).map_err(|_| Errno::EAGAIN)?;
    let tid = id.to_le_bytes();
    if a.flags.contains(CloneFlags::CHILD_SETTID) {
        process.space.lock().write(a.child_tid, &tid)?;
    }
    if a.flags.contains(CloneFlags::PARENT_SETTID) {
        c.process.space.lock().write(a.parent_tid, &tid)?;
    }
    Ok((process, thread))
}

/// Reads a NULL-terminated array of string pointers (argv, envp).
fn string_array(c: &Call, addr: u64, total: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let space = c.process.space.lock();
    for i in 0..MAX_ARGS as u64 {
        let ptr = space.read_u64(addr + 8 * i)?;
        if ptr == 0 {
            return Ok(out);
        }
        let s = space
            .read_string(ptr, MAX_ARG_BYTES)
            .map_err(|e| if e == Errno::ENAMETOOLONG { Errno::E2BIG } else { e })?;
        *total += s.len() + 1;
        if *total > MAX_ARG_BYTES {
            return Err(Errno::E2BIG);
        }
        out.push(s);
    }
    Err(Errno::E2BIG)
}

pub fn execve(c: &mut Call) -> SysResult {
    let [path, argv, envp, ..] = c.args;
    let path = c.process.space.lock().read_string(path, 4096)?;
    let path = alloc::string::String::from_utf8(path).map_err(|_| Errno::ENOENT)?;
    let mut total = 0;
    let argv = string_array(c, argv, &mut total)?;
    let envp = string_array(c, envp, &mut total)?;
    let memory = c.process.job.memory.clone();
    let (start, exe) = (process_files::of(c.process).cwd.lock().clone(), c.process.exe.lock().clone());
    let job = &c.process.job;
    let from = program_loader::From { root: process_files::of_job(job), start: &start, exe: &exe };
    let program =
        program_loader::load(memory, job.kernel_memory.clone(), &from, &path, &argv, &envp).map_err(|e| e.errno())?;
    // The point of no return: the new program replaces the old one. The other threads end
    // first (as Linux's de_thread), so that none runs on the old tables when they are freed.
    let others: Vec<Arc<Thread>> =
        c.process.threads.lock().iter().filter(|t| !Arc::ptr_eq(t, c.thread)).cloned().collect();
    for t in &others {
        t.killed.store(true, Ordering::SeqCst);
        signals::interrupt(t);
    }
    drop(others);
    let alone = wait_for_other_threads(c.process);
    let old = c.process.replace_space(program.space);
    // This thread now runs the new program.
    crate::task::per_cpu::load_root(c.process.page_table_root());
    if alone {
        drop(old);
    } else {
        // A thread that has not ended may still use the old tables: they stay with the process
        // until the process itself is gone.
        log::warn!(target: "process", "execve: threads of pid {} still run; the old address space is kept", c.process.pid);
        c.process.retired_spaces.lock().push(old);
    }
    *c.process.exe.lock() = program.path;
    process_files::of(c.process).fds.lock().close_for_exec();
    for a in c.process.actions.lock().iter_mut() {
        if a.handler != SIG_IGN {
            *a = SignalAction::default();
        }
    }
    *c.thread.alt_stack.lock() = (0, 0);
    c.thread.fs_base.store(0, Ordering::Relaxed);
    c.thread.gs_base.store(0, Ordering::Relaxed);
    crate::hal::cpu::set_user_fs_base(0);
    crate::hal::cpu::set_user_gs_base(0);
    // The new program starts from a reset FPU state (kept in the thread's own area, so nothing
    // is allocated and nothing of the old program's registers survives).
    crate::hal::fpu_state::load_reset_state();
    c.thread.fpu.lock().save();
    let f = &mut *c.frame;
    *f = TrapFrame {
        rip: program.entry,
        rsp: program.rsp,
        cs: f.cs,
        ss: f.ss,
        rflags: USER_RFLAGS,
        vector: f.vector,
        ..TrapFrame::default()
    };
    c.full_restore = true;
    c.process.vfork_released.store(true, Ordering::SeqCst);
    c.process.vfork_done.wake_all();
    Ok(0)
}

/// How long `execve` waits for the other threads of its process to end.
const EXEC_WAIT_NS: u64 = 1_000_000_000;

/// Waits (sleeping a millisecond at a time, so that threads sharing this core run) until
/// `process` has no thread but the caller and no other CPU has its page tables loaded (an ending
/// thread leaves the list before its CPU switches away); false if that takes longer than
/// [`EXEC_WAIT_NS`].
fn wait_for_other_threads(process: &Process) -> bool {
    let deadline = clock::uptime_ns() + EXEC_WAIT_NS;
    let root = process.page_table_root();
    loop {
        if process.threads.lock().len() <= 1 && crate::hal::per_cpu::others_with_root(root).is_empty() {
            return true;
        }
        let now = clock::uptime_ns();
        if now >= deadline {
            return false;
        }
        scheduler::block_current_until(now + 1_000_000);
    }
}

/// `exit`: the thread ends on its way back to user mode, once the dispatcher has let go of it
/// (see `process_lifecycle::end_thread`).
pub fn exit(c: &mut Call) -> SysResult {
    *c.thread.exit_reason.lock() = Some(ExitReason::Exited((c.args[0] & 0xff) as i32));
    c.thread.killed.store(true, Ordering::SeqCst);
    Ok(0)
}

pub fn exit_group(c: &mut Call) -> SysResult {
    process_lifecycle::kill_process(c.process, ExitReason::Exited((c.args[0] & 0xff) as i32));
    Ok(0)
}

/// Which children a wait selects: pid > 0 that child, -1 any, 0 the caller's group, < -1 group.
fn selects(c: &Call, which: i64, child: &Process) -> bool {
    match which {
        -1 => true,
        0 => child.pgid.load(Ordering::Relaxed) == c.process.pgid.load(Ordering::Relaxed),
        p if p > 0 => child.pid as i64 == p,
        g => child.pgid.load(Ordering::Relaxed) as i64 == -g,
    }
}

/// Waits for a selected child to end; `Ok(None)` with WNOHANG when none has yet.
fn wait_child(c: &Call, which: i64, options: WaitOptions) -> Result<Option<(Arc<Process>, ExitReason)>, Errno> {
    let process = c.process.clone();
    process.child_events.wait_until(|| {
        let children = process.children.lock();
        if !children.iter().any(|ch| selects(c, which, ch)) {
            return Some(Err(Errno::ECHILD));
        }
        if let Some(ch) = children.iter().find(|ch| selects(c, which, ch) && ch.zombie.load(Ordering::SeqCst)) {
            let reason = ch.exit.lock().unwrap_or(ExitReason::Exited(0));
            return Some(Ok(Some((ch.clone(), reason))));
        }
        options.contains(WaitOptions::NOHANG).then_some(Ok(None))
    })?
}

pub fn wait4(c: &mut Call) -> SysResult {
    let [pid, status, options, rusage, ..] = c.args;
    let options = WaitOptions::from_bits_retain(options);
    // pid_t is 32 bits: -1 arrives as 0xffffffff.
    let Some((child, reason)) = wait_child(c, pid as i32 as i64, options)? else { return Ok(0) };
    let space = c.process.space.lock();
    if status != 0 {
        space.write(status, &reason.wait_status().to_le_bytes())?;
    }
    if rusage != 0 {
        space.write(rusage, &[0u8; 144])?;
    }
    drop(space);
    process_lifecycle::reap(c.process, &child);
    Ok(child.pid as u64)
}

pub fn waitid(c: &mut Call) -> SysResult {
    let [idtype, id, info, options, ..] = c.args;
    let options = WaitOptions::from_bits_retain(options);
    if !options.contains(WaitOptions::EXITED) {
        return Err(Errno::EINVAL);
    }
    let which = match idtype {
        0 => -1,
        1 => id as i32 as i64,
        2 => -(id as i32 as i64),
        _ => return Err(Errno::EINVAL),
    };
    let found = wait_child(c, which, options)?;
    let mut si = [0u8; 128];
    if let Some((child, reason)) = &found {
        si[0..4].copy_from_slice(&signals::SIGCHLD.to_le_bytes());
        let (code, status) = match reason {
            ExitReason::Exited(s) => (1i32, *s),
            ExitReason::Signaled(s) => (2, *s),
        };
        si[8..12].copy_from_slice(&code.to_le_bytes());
        si[16..20].copy_from_slice(&child.pid.to_le_bytes());
        si[24..28].copy_from_slice(&status.to_le_bytes());
    }
    if info != 0 {
        c.process.space.lock().write(info, &si)?;
    }
    if let Some((child, _)) = found
        && !options.contains(WaitOptions::NOWAIT)
    {
        process_lifecycle::reap(c.process, &child);
    }
    Ok(0)
}

pub fn kill(c: &mut Call) -> SysResult {
    let [pid, sig, ..] = c.args;
    let sig = if sig == 0 { 0 } else { signals::check_signal(sig)? };
    let pid = pid as i32 as i64;
    let targets: Vec<Arc<Process>> = {
        let all = c.process.job.processes.lock();
        let my_group = c.process.pgid.load(Ordering::Relaxed) as i64;
        all.values()
            .filter(|p| !p.zombie.load(Ordering::SeqCst))
            .filter(|p| match pid {
                p_ if p_ > 0 => p.pid as i64 == p_,
                0 => p.pgid.load(Ordering::Relaxed) as i64 == my_group,
                -1 => p.pid != 1 || c.process.pid == 1,
                g => p.pgid.load(Ordering::Relaxed) as i64 == -g,
            })
            .cloned()
            .collect()
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        for p in &targets {
            signals::send_to_process(p, sig);
        }
    }
    Ok(0)
}

fn find_thread(c: &Call, tid: u64) -> Result<Arc<Thread>, Errno> {
    let processes: Vec<Arc<Process>> = c.process.job.processes.lock().values().cloned().collect();
    processes.iter().flat_map(|p| p.threads.lock().clone()).find(|t| t.tid as u64 == tid).ok_or(Errno::ESRCH)
}

pub fn tgkill(c: &mut Call) -> SysResult {
    let [tgid, tid, sig, ..] = c.args;
    let t = find_thread(c, tid)?;
    if t.process.pid as u64 != tgid {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        signals::send_to_thread(&t, signals::check_signal(sig)?);
    }
    Ok(0)
}

pub fn tkill(c: &mut Call) -> SysResult {
    let [tid, sig, ..] = c.args;
    let t = find_thread(c, tid)?;
    if sig != 0 {
        signals::send_to_thread(&t, signals::check_signal(sig)?);
    }
    Ok(0)
}

fn process_or_self(c: &Call, pid: u64) -> Result<Arc<Process>, Errno> {
    if pid == 0 || pid == c.process.pid as u64 {
        return Ok(c.process.clone());
    }
    c.process.job.process(pid as u32).ok_or(Errno::ESRCH)
}

pub fn setpgid(c: &mut Call) -> SysResult {
    let [pid, pgid, ..] = c.args;
    if (pgid as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let p = process_or_self(c, pid)?;
    p.pgid.store(if pgid == 0 { p.pid } else { pgid as u32 }, Ordering::Relaxed);
    Ok(0)
}

pub fn getpgid(c: &mut Call) -> SysResult {
    Ok(process_or_self(c, c.args[0])?.pgid.load(Ordering::Relaxed) as u64)
}

pub fn getpgrp(c: &mut Call) -> SysResult {
    Ok(c.process.pgid.load(Ordering::Relaxed) as u64)
}

pub fn getsid(c: &mut Call) -> SysResult {
    Ok(process_or_self(c, c.args[0])?.sid.load(Ordering::Relaxed) as u64)
}

pub fn setsid(c: &mut Call) -> SysResult {
    let p = c.process;
    if p.pgid.load(Ordering::Relaxed) == p.pid {
        return Err(Errno::EPERM);
    }
    p.sid.store(p.pid, Ordering::Relaxed);
    p.pgid.store(p.pid, Ordering::Relaxed);
    Ok(p.pid as u64)
}

pub fn rt_sigaction(c: &mut Call) -> SysResult {
    let [sig, act, old, size, ..] = c.args;
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let sig = signals::check_signal(sig)?;
    let index = (sig - 1) as usize;
    let previous = c.process.actions.lock()[index];
    if act != 0 {
        if sig == signals::SIGKILL || sig == signals::SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut raw = [0u8; 32];
        c.process.space.lock().read(act, &mut raw)?;
        let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let action = SignalAction {
            handler: word(0),
            flags: SaFlags::from_bits_retain(word(1)),
            restorer: word(2),
            mask: word(3) & !signals::unblockable(),
        };
        if action.handler >= USER_END {
            return Err(Errno::EFAULT);
        }
        c.process.actions.lock()[index] = action;
        if action.handler == SIG_IGN || (action.handler == SIG_DFL && sig == signals::SIGCHLD) {
            c.process.pending_signals.fetch_and(!signals::bit(sig), Ordering::SeqCst);
        }
    }
    if old != 0 {
        let mut raw = [0u8; 32];
        for (i, v) in [previous.handler, previous.flags.bits(), previous.restorer, previous.mask].iter().enumerate() {
            raw[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        c.process.space.lock().write(old, &raw)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(c: &mut Call) -> SysResult {
    let [how, set, old, size, ..] = c.args;
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let current = c.thread.signal_mask.load(Ordering::Relaxed);
    if set != 0 {
        let new = c.process.space.lock().read_u64(set)?;
        let mask = match how {
            0 => current | new,
            1 => current & !new,
            2 => new,
            _ => return Err(Errno::EINVAL),
        };
        c.thread.signal_mask.store(mask & !signals::unblockable(), Ordering::Relaxed);
    }
    if old != 0 {
        c.process.space.lock().write(old, &current.to_le_bytes())?;
    }
    Ok(0)
}

pub fn rt_sigreturn(c: &mut Call) -> SysResult {
    if signals::sigreturn(c.frame, c.thread).is_err() {
        process_lifecycle::kill_process(c.process, ExitReason::Signaled(signals::SIGSEGV));
    }
    c.full_restore = true;
    Ok(c.frame.rax)
}

pub fn sigaltstack(c: &mut Call) -> SysResult {
    const SS_DISABLE: u32 = 2;
    let [new, old, ..] = c.args;
    let (base, size) = *c.thread.alt_stack.lock();
    if old != 0 {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&base.to_le_bytes());
        raw[8..12].copy_from_slice(&(if size == 0 { SS_DISABLE } else { 0 }).to_le_bytes());
        raw[16..24].copy_from_slice(&size.to_le_bytes());
        c.process.space.lock().write(old, &raw)?;
    }
    if new != 0 {
        let mut raw = [0u8; 24];
        c.process.space.lock().read(new, &mut raw)?;
        let sp = u64::from_le_bytes(raw[..8].try_into().unwrap_or_default());
        let flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(raw[16..24].try_into().unwrap_or_default());
        *c.thread.alt_stack.lock() = if flags & SS_DISABLE != 0 {
            (0, 0)
        } else if len < 2048 || sp.checked_add(len).is_none_or(|e| e > USER_END) {
            return Err(Errno::ENOMEM);
        } else {
            (sp, len)
        };
    }
    Ok(0)
}

pub fn rt_sigpending(c: &mut Call) -> SysResult {
    let pending = c.thread.pending_signals.load(Ordering::SeqCst) | c.process.pending_signals.load(Ordering::SeqCst);
    c.process.space.lock().write(c.args[0], &pending.to_le_bytes())?;
    Ok(0)
}

/// Waits with a temporary mask until a signal arrives; the handler then runs with that mask and
/// the old one comes back after it.
pub fn rt_sigsuspend(c: &mut Call) -> SysResult {
    let [set, size, ..] = c.args;
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = c.process.space.lock().read_u64(set)?;
    let old = c.thread.signal_mask.swap(mask & !signals::unblockable(), Ordering::Relaxed);
    *c.thread.suspend_mask.lock() = Some(old);
    while !signals::deliverable(c.thread) {
        scheduler::block_current();
    }
    Err(Errno::EINTR)
}

/// prctl: the calls programs make in passing (names, dumpability, the parent-death signal) are
/// accepted; anything else is EINVAL.
pub fn prctl(c: &mut Call) -> SysResult {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    let [option, arg, ..] = c.args;
    match option {
        PR_SET_PDEATHSIG | PR_SET_DUMPABLE | PR_SET_NAME => Ok(0),
        PR_GET_DUMPABLE => Ok(1),
        PR_GET_NAME => {
            let exe = c.process.exe.lock().clone();
            let base = exe.rsplit('/').next().unwrap_or("");
            let mut name = [0u8; 16];
            let n = base.len().min(15);
            name[..n].copy_from_slice(&base.as_bytes()[..n]);
            c.process.space.lock().write(arg, &name)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Waits for a signal.
pub fn pause(c: &mut Call) -> SysResult {
    while !signals::deliverable(c.thread) {
        scheduler::block_current();
    }
    Err(Errno::EINTR)
}
