//! Signals: dispositions per process, masks and pending sets per thread, delivery on the way
//! back to user mode (a Linux-compatible `rt_sigframe` on the user or alternate stack, with the
//! FPU state), `rt_sigreturn`, and the default actions (terminate, or ignore for SIGCHLD,
//! SIGCONT, SIGURG, SIGWINCH; stop signals are ignored: there is no job control on a node).
//!
//! Everything read back from user memory (the frame on sigreturn) is checked before the CPU sees
//! it: RIP and RSP canonical user addresses, RFLAGS limited to the bits user code may change,
//! user segments, and the FPU image (see `FpuState::load_checked`).

use crate::hal::cpu::{RFlags, USER_END};
use crate::hal::syscall_entry::USER_RFLAGS;
use crate::task::interrupt_entry::TrapFrame;
use crate::task::process::{ExitReason, Process, SaFlags, SignalAction};
use crate::task::process_lifecycle;
use crate::task::scheduler;
use crate::task::thread::Thread;
use crate::util::errno::Errno;
use crate::{hal::cpu, util::logging};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;

pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGSEGV: i32 = 11;
pub const SIGPIPE: i32 = 13;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGURG: i32 = 23;
pub const SIGWINCH: i32 = 28;
pub const MAX_SIGNAL: i32 = 64;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
/// Length of the `syscall` instruction, to run an interrupted call again.
const SYSCALL_LENGTH: u64 = 2;
/// RFLAGS bits user code may set: CF PF AF ZF SF TF DF OF, NT, RF, AC and ID.
const USER_FLAGS: u64 = RFlags::FLAGS_CF
    .union(RFlags::FLAGS_PF)
    .union(RFlags::FLAGS_AF)
    .union(RFlags::FLAGS_ZF)
    .union(RFlags::FLAGS_SF)
    .union(RFlags::FLAGS_TF)
    .union(RFlags::FLAGS_DF)
    .union(RFlags::FLAGS_OF)
    .union(RFlags::FLAGS_NT)
    .union(RFlags::FLAGS_RF)
    .union(RFlags::FLAGS_AC)
    .union(RFlags::FLAGS_ID)
    .bits();
const UCONTEXT_BYTES: u64 = 304;
const SIGINFO_BYTES: u64 = 128;

pub fn bit(sig: i32) -> u64 {
    1u64 << (sig - 1)
}

/// Signals that cannot be caught, blocked or ignored.
const UNBLOCKABLE: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1));

fn ignored_by_default(sig: i32) -> bool {
    matches!(sig, SIGCHLD | SIGCONT | SIGURG | SIGWINCH) || (19..=22).contains(&sig)
}

/// Whether a signal sent now would be thrown away (ignored explicitly or by default).
fn discarded(p: &Process, sig: i32) -> bool {
    let action = p.actions.lock()[(sig - 1) as usize];
    action.handler == SIG_IGN || (action.handler == SIG_DFL && ignored_by_default(sig))
}

/// Sends `sig` to a process: a thread that does not block it is woken to take it.
pub fn send_to_process(p: &Arc<Process>, sig: i32) {
    if sig == SIGKILL {
        process_lifecycle::kill_process(p, ExitReason::Signaled(SIGKILL));
        return;
    }
    if discarded(p, sig) {
        return;
    }
    p.pending_signals.fetch_or(bit(sig), Ordering::SeqCst);
    let threads = p.threads.lock().clone();
    if let Some(t) = threads.iter().find(|t| t.signal_mask.load(Ordering::Relaxed) & bit(sig) == 0) {
        interrupt(t);
    }
}

/// Sends `sig` to one thread.
pub fn send_to_thread(t: &Arc<Thread>, sig: i32) {
    if sig == SIGKILL {
        process_lifecycle::kill_process(&t.process, ExitReason::Signaled(SIGKILL));
        return;
    }
    if discarded(&t.process, sig) {
        return;
    }
    t.pending_signals.fetch_or(bit(sig), Ordering::SeqCst);
    interrupt(t);
}

/// Makes a thread notice something at once: out of a blocking wait, or out of user mode.
pub fn interrupt(t: &Arc<Thread>) {
    scheduler::wake(t);
    scheduler::kick(t);
}

/// Whether the calling thread has a signal to take now (blocking waits end with EINTR).
pub fn deliverable(t: &Thread) -> bool {
    let pending = t.pending_signals.load(Ordering::SeqCst) | t.process.pending_signals.load(Ordering::SeqCst);
    t.killed.load(Ordering::SeqCst) || pending & !t.signal_mask.load(Ordering::Relaxed) != 0
}

/// The signal a CPU exception raises, as Linux maps them.
fn signal_for(vector: u64) -> i32 {
    match vector {
        0 | 16 | 19 => SIGFPE,
        1 | 3 => SIGTRAP,
        6 => SIGILL,
        17 => SIGBUS,
        _ => SIGSEGV,
    }
}

/// An exception in user mode: the signal goes to the thread's handler if it has one that can
/// run; otherwise the process dies with it, with a `user_fault` report.
pub fn user_fault(frame: &mut TrapFrame) {
    let sig = signal_for(frame.vector);
    let address = if frame.vector == 14 { cpu::read_cr2() } else { frame.rip };
    let Some(thread) = scheduler::current() else {
        crate::task::exceptions::fatal(frame);
    };
    let process = thread.process.clone();
    let action = process.actions.lock()[(sig - 1) as usize];
    let blocked = thread.signal_mask.load(Ordering::Relaxed) & bit(sig) != 0;
    if action.handler > SIG_IGN && !blocked && deliver(frame, &thread, sig, &action, address).is_ok() {
        return;
    }
    logging::emit("user_fault", |e| {
        e.str("job", &process.job.name)
            .u64("pid", process.pid as u64)
            .u64("tid", thread.tid as u64)
            .u64("signal", sig as u64)
            .u64("vector", frame.vector)
            .u64("error_code", frame.error_code)
            .u64("address", address)
            .u64("rip", frame.rip);
    });
    log::warn!(
        target: "signals",
        "job {} pid {}: signal {sig} (vector {}) at address {address:#x}, rip {:#x}",
        process.job.name,
        process.pid,
        frame.vector,
        frame.rip
    );
    // The thread ends on its way back to user mode (see `on_return_to_user`).
    process_lifecycle::kill_process(&process, ExitReason::Signaled(sig));
}

/// On every return to user mode: ends a killed thread, holds the thread of a paused job until
/// it resumes, then delivers one pending signal. Returns true when the frame changed (the
/// return must restore every register).
pub fn on_return_to_user(frame: &mut TrapFrame) -> bool {
    let Some(thread) = scheduler::current() else { return false };
    return_to_user(frame, thread)
}

/// [`on_return_to_user`] for the thread the caller already holds (the system-call path), which
/// it gives up: a killed thread ends here, and must leave no reference behind.
pub fn return_to_user(frame: &mut TrapFrame, thread: Arc<Thread>) -> bool {
    loop {
        if thread.killed.load(Ordering::SeqCst) {
            process_lifecycle::end_thread(thread);
        }
        let job = &thread.process.job;
        if job.frozen.load(Ordering::SeqCst) {
            job.threads_frozen.fetch_add(1, Ordering::SeqCst);
            job.thaw.wait_for(|| !job.frozen.load(Ordering::SeqCst) || thread.killed.load(Ordering::SeqCst));
            job.threads_frozen.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let mask = thread.signal_mask.load(Ordering::Relaxed);
        let mine = thread.pending_signals.load(Ordering::SeqCst) & !mask;
        let shared = thread.process.pending_signals.load(Ordering::SeqCst) & !mask;
        let (set, source) =
            if mine != 0 { (mine, &thread.pending_signals) } else { (shared, &thread.process.pending_signals) };
        if set == 0 {
            // An rt_sigsuspend that delivered nothing puts its caller's mask back.
            if let Some(mask) = thread.suspend_mask.lock().take() {
                thread.signal_mask.store(mask, Ordering::Relaxed);
            }
            // An interrupted call whose signal needed no handler runs again.
            return restart_interrupted(frame, &thread, true);
        }
        let sig = set.trailing_zeros() as i32 + 1;
        if source.fetch_and(!bit(sig), Ordering::SeqCst) & bit(sig) == 0 {
            continue; // another thread took it
        }
        let action = thread.process.actions.lock()[(sig - 1) as usize];
        match action.handler {
            SIG_IGN => continue,
            SIG_DFL if ignored_by_default(sig) => continue,
            SIG_DFL => process_lifecycle::kill_process(&thread.process, ExitReason::Signaled(sig)),
            _ => {
                restart_interrupted(frame, &thread, action.flags.contains(SaFlags::RESTART));
                if deliver(frame, &thread, sig, &action, 0).is_ok() {
                    return true;
                }
                process_lifecycle::kill_process(&thread.process, ExitReason::Signaled(SIGSEGV));
            }
        }
    }
}

/// Rewinds the user context to run an interrupted system call again (when `restart`), or leaves
/// its EINTR. Returns whether the frame changed.
fn restart_interrupted(frame: &mut TrapFrame, t: &Thread, restart: bool) -> bool {
    let nr = t.interrupted_syscall.swap(0, Ordering::Relaxed);
    if nr == 0 || !restart {
        return false;
    }
    frame.rax = nr - 1;
    frame.rip -= SYSCALL_LENGTH;
    true
}

/// Builds the signal frame on the user stack and points the thread at the handler.
fn deliver(frame: &mut TrapFrame, t: &Arc<Thread>, sig: i32, action: &SignalAction, address: u64) -> Result<(), Errno> {
    if !action.flags.contains(SaFlags::RESTORER) {
        return Err(Errno::EFAULT);
    }
    let (alt_base, alt_size) = *t.alt_stack.lock();
    let on_alt = alt_size > 0 && frame.rsp > alt_base && frame.rsp <= alt_base + alt_size;
    let mut sp = if action.flags.contains(SaFlags::ONSTACK) && alt_size > 0 && !on_alt {
        alt_base + alt_size
    } else {
        frame.rsp - 128
    };
    // FPU state, 64-byte aligned.
    let fpu_bytes = t.fpu.lock().bytes().len() as u64;
    sp = sp.checked_sub(fpu_bytes).ok_or(Errno::EFAULT)? & !63;
    let fpu_at = sp;
    // Below the FPU state, Linux's rt_sigframe: the return address (pretcode), the ucontext
    // right above it (rt_sigreturn finds it at the RSP the handler's `ret` leaves), then the
    // siginfo. The handler starts as if called: RSP + 8 is 16-byte aligned.
    sp = ((sp - 8 - UCONTEXT_BYTES - SIGINFO_BYTES) & !15) - 8;
    let uc_at = sp + 8;
    let info_at = uc_at + UCONTEXT_BYTES;
    let mut info = [0u8; SIGINFO_BYTES as usize];
    info[0..4].copy_from_slice(&sig.to_le_bytes());
    info[16..24].copy_from_slice(&address.to_le_bytes());
    let mut uc = [0u8; UCONTEXT_BYTES as usize];
    let put = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut uc, 16, alt_base);
    put(&mut uc, 32, alt_size);
    let m = 40; // uc_mcontext
    let regs = [
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rdi,
        frame.rsi,
        frame.rbp,
        frame.rbx,
        frame.rdx,
        frame.rax,
        frame.rcx,
        frame.rsp,
        frame.rip,
        frame.rflags,
    ];
    for (i, r) in regs.iter().enumerate() {
        put(&mut uc, m + 8 * i, *r);
    }
    uc[m + 144..m + 146].copy_from_slice(&(frame.cs as u16).to_le_bytes());
    uc[m + 150..m + 152].copy_from_slice(&(frame.ss as u16).to_le_bytes());
    put(&mut uc, m + 152, frame.error_code);
    put(&mut uc, m + 160, frame.vector);
    // After the handler, sigreturn restores the mask from before an rt_sigsuspend, if any.
    let restore_mask = t.suspend_mask.lock().take().unwrap_or_else(|| t.signal_mask.load(Ordering::Relaxed));
    put(&mut uc, m + 168, restore_mask);
    put(&mut uc, m + 176, address);
    put(&mut uc, m + 184, fpu_at);
    put(&mut uc, 296, restore_mask);
    {
        let space = t.process.space.lock();
        {
            let mut f = t.fpu.lock();
            f.save();
            space.write(fpu_at, f.bytes())?;
        }
        space.write(info_at, &info)?;
        space.write(uc_at, &uc)?;
        space.write(sp, &action.restorer.to_le_bytes())?;
    }
    let mut mask = t.signal_mask.load(Ordering::Relaxed) | action.mask;
    if !action.flags.contains(SaFlags::NODEFER) {
        mask |= bit(sig);
    }
    t.signal_mask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
    if action.flags.contains(SaFlags::RESETHAND) {
        t.process.actions.lock()[(sig - 1) as usize] = SignalAction::default();
    }
    frame.rip = action.handler;
    frame.rsp = sp;
    frame.rdi = sig as u64;
    frame.rsi = if action.flags.contains(SaFlags::SIGINFO) { info_at } else { 0 };
    frame.rdx = if action.flags.contains(SaFlags::SIGINFO) { uc_at } else { 0 };
    frame.rax = 0;
    frame.rflags &= !RFlags::FLAGS_TF.union(RFlags::FLAGS_DF).bits();
    Ok(())
}

/// `rt_sigreturn`: restores the context saved by [`deliver`] from the frame at the user RSP.
pub fn sigreturn(frame: &mut TrapFrame, t: &Arc<Thread>) -> Result<(), Errno> {
    let uc_at = frame.rsp;
    let mut uc = [0u8; UCONTEXT_BYTES as usize];
    let space = t.process.space.lock();
    space.read(uc_at, &mut uc)?;
    let get = |at: usize| u64::from_le_bytes(uc[at..at + 8].try_into().unwrap_or_default());
    let m = 40;
    let rip = get(m + 128);
    let rsp = get(m + 120);
    if rip >= USER_END || rsp >= USER_END {
        return Err(Errno::EFAULT);
    }
    let fpu_at = get(m + 184);
    if fpu_at != 0 {
        let mut fpu = t.fpu.lock();
        fpu.load_checked(|area| space.read(fpu_at, area), Errno::EFAULT)?;
        fpu.restore();
    }
    drop(space);
    frame.r8 = get(m);
    frame.r9 = get(m + 8);
    frame.r10 = get(m + 16);
    frame.r11 = get(m + 24);
    frame.r12 = get(m + 32);
    frame.r13 = get(m + 40);
    frame.r14 = get(m + 48);
    frame.r15 = get(m + 56);
    frame.rdi = get(m + 64);
    frame.rsi = get(m + 72);
    frame.rbp = get(m + 80);
    frame.rbx = get(m + 88);
    frame.rdx = get(m + 96);
    frame.rax = get(m + 104);
    frame.rcx = get(m + 112);
    frame.rsp = rsp;
    frame.rip = rip;
    frame.rflags = (get(m + 136) & USER_FLAGS) | USER_RFLAGS;
    t.signal_mask.store(get(296) & !UNBLOCKABLE, Ordering::Relaxed);
    Ok(())
}

/// Validates a signal number from user space (1..=64).
pub fn check_signal(sig: u64) -> Result<i32, Errno> {
    if (1..=MAX_SIGNAL as u64).contains(&sig) { Ok(sig as i32) } else { Err(Errno::EINVAL) }
}

pub fn unblockable() -> u64 {
    UNBLOCKABLE
}
