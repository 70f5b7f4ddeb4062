//! Per-CPU scheduling. Space sharing by default: a job's threads are spread over its cores, one
//! per core, and a core with one thread never takes a timer interrupt. A core with more than one
//! runnable thread round-robins them with a coarse quantum, armed only while that is the case;
//! threads sleeping with a deadline (nanosleep, futex timeouts) arm the timer for the earliest.
//! Threads run in the kernel without preemption (they block or return to user mode).

use crate::hal::cpu::MSR_FS_BASE;
use crate::hal::vectors::RESCHEDULE_VECTOR;
use crate::task::interrupt_entry::TrapFrame;
use crate::task::thread::{Thread, ThreadState};
use crate::{hal::cpu, hal::descriptor_tables, hal::kernel_memory, hal::local_apic, task::per_cpu, time::clock};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use lwk_hal::context;

/// Time slice when a core is shared.
const QUANTUM_NS: u64 = 10_000_000;

#[derive(Default)]
pub struct Scheduler {
    queue: VecDeque<Arc<Thread>>,
    current: Option<Arc<Thread>>,
    /// When `current` started running (uptime ns).
    since: u64,
    /// Threads blocked with a deadline, by (deadline, tid).
    sleepers: BTreeMap<(u64, u32), Arc<Thread>>,
}

impl Scheduler {
    /// Arms this CPU's timer for the next thing that needs it: the earliest sleeper, and the
    /// quantum when threads wait for the CPU. Stops it when nothing does.
    fn arm_timer(&self, now: u64) {
        let quantum = (!self.queue.is_empty()).then_some(now + QUANTUM_NS);
        let sleeper = self.sleepers.keys().next().map(|&(d, _)| d);
        clock::arm_timer_at([quantum, sleeper].into_iter().flatten().min(), || now);
    }
}

/// The thread running on this CPU.
pub fn current() -> Option<Arc<Thread>> {
    per_cpu::current().scheduler.lock().current.clone()
}

pub fn has_runnable() -> bool {
    !per_cpu::current().scheduler.lock().queue.is_empty()
}

/// CPU time `thread` has had, its current slice included if it is running now (read from any
/// CPU: the health monitor samples a job's threads from core 0).
pub fn cpu_time_ns(thread: &Arc<Thread>) -> u64 {
    let banked = thread.cpu_ns.load(Ordering::Relaxed);
    let Some(cpu) = per_cpu::all().get(thread.cpu.load(Ordering::Relaxed)) else { return banked };
    let s = cpu.scheduler.lock();
    match &s.current {
        Some(running) if Arc::ptr_eq(running, thread) => banked + clock::uptime_ns().saturating_sub(s.since),
        _ => banked,
    }
}

/// Nanoseconds the running thread has been on this CPU since it was last switched in.
pub fn current_slice_ns() -> u64 {
    clock::uptime_ns().saturating_sub(per_cpu::current().scheduler.lock().since)
}

/// Puts a runnable thread on its CPU's queue and wakes that CPU.
pub fn enqueue(thread: Arc<Thread>) {
    let index = thread.cpu.load(Ordering::Relaxed);
    let Some(target) = per_cpu::all().get(index) else { return };
    target.scheduler.lock().queue.push_back(thread);
    if index != per_cpu::current().index {
        local_apic::send_ipi(target.apic_id, RESCHEDULE_VECTOR);
    } else {
        let s = target.scheduler.lock();
        s.arm_timer(clock::uptime_ns());
    }
}

/// Wakes a blocked thread (or leaves the wake-up pending if it has not blocked yet).
pub fn wake(thread: &Arc<Thread>) {
    if thread.try_unblock() {
        enqueue(thread.clone());
    }
}

/// Interrupts a thread that runs user code on another CPU so it notices a signal or a kill.
pub fn kick(thread: &Arc<Thread>) {
    let index = thread.cpu.load(Ordering::Relaxed);
    if index != per_cpu::current().index
        && let Some(target) = per_cpu::all().get(index)
    {
        local_apic::send_ipi(target.apic_id, RESCHEDULE_VECTOR);
    }
}

/// Blocks the running thread until [`wake`]; returns at once if a wake-up is pending.
pub fn block_current() {
    let Some(me) = current() else { return };
    cpu::without_interrupts(|| {
        if me.prepare_block() {
            drop(me);
            schedule();
        }
    });
}

/// Blocks until [`wake`] or until uptime reaches `deadline_ns`; true if the deadline passed.
pub fn block_current_until(deadline_ns: u64) -> bool {
    let Some(me) = current() else { return true };
    let key = (deadline_ns, me.tid);
    cpu::without_interrupts(|| {
        let here = per_cpu::current();
        if clock::uptime_ns() >= deadline_ns {
            return;
        }
        {
            let mut s = here.scheduler.lock();
            s.sleepers.insert(key, me.clone());
            s.arm_timer(clock::uptime_ns());
        }
        if me.prepare_block() {
            schedule();
        }
        here.scheduler.lock().sleepers.remove(&key);
    });
    clock::uptime_ns() >= deadline_ns
}

/// From the timer interrupt: wake the sleepers whose deadline has passed, then rotate.
pub fn on_timer(frame: &TrapFrame) {
    let now = clock::uptime_ns();
    let me = per_cpu::current();
    let due: alloc::vec::Vec<Arc<Thread>> = {
        let mut s = me.scheduler.lock();
        let later = s.sleepers.split_off(&(now + 1, 0));
        let due = core::mem::replace(&mut s.sleepers, later);
        due.into_values().collect()
    };
    for t in &due {
        wake(t);
    }
    me.scheduler.lock().arm_timer(now);
    preempt(frame);
}

/// Lets another runnable thread of this CPU run (sched_yield, polling loops).
pub fn yield_now() {
    cpu::without_interrupts(|| {
        if has_runnable() {
            schedule();
        }
    });
    core::hint::spin_loop();
}

/// From an interrupt: rotate when threads wait and the CPU was in user mode (or idle). Threads
/// are not preempted in the kernel: there the rotation is asked for, and the thread gives way on
/// its return to user mode ([`give_way_if_asked`]), so that a thread making system calls back to
/// back (mostly in the kernel, interrupts on) cannot keep the others waiting for seconds.
pub fn preempt(frame: &TrapFrame) {
    if !has_runnable() {
        return;
    }
    if frame.cs & 3 == 3 {
        schedule();
    } else {
        per_cpu::current().resched.store(true, Ordering::Relaxed);
    }
}

/// On the way back to user mode from a system call: the rotation an interrupt asked for while
/// the thread was in the kernel (one flag test when none was). Inline: the system-call path
/// runs it on every return.
#[inline]
pub fn give_way_if_asked() {
    let resched = &per_cpu::current().resched;
    if resched.load(Ordering::Relaxed) && resched.swap(false, Ordering::Relaxed) {
        cpu::without_interrupts(|| {
            if has_runnable() {
                schedule();
            }
        });
    }
}

/// Ends the running thread for good: switches away and never returns. Its memory is freed by
/// whatever runs next.
pub fn exit_current() -> ! {
    cpu::disable_interrupts();
    if let Some(me) = current() {
        me.set_state(ThreadState::Exited);
    }
    schedule();
    unreachable!("an exited thread was scheduled again");
}

/// Picks the next thread for this CPU and switches to it (or to the idle loop). Interrupts must
/// be disabled.
pub fn schedule() {
    let me = per_cpu::current();
    let now = clock::uptime_ns();
    let (prev, next) = {
        let mut s = me.scheduler.lock();
        let prev = s.current.take();
        if let Some(p) = &prev {
            let ran = now.saturating_sub(s.since);
            p.cpu_ns.fetch_add(ran, Ordering::Relaxed);
            p.process.cpu_ns.fetch_add(ran, Ordering::Relaxed);
            if p.state() == ThreadState::Running {
                p.set_state(ThreadState::Runnable);
                if p.cpu.load(Ordering::Relaxed) == me.index {
                    s.queue.push_back(p.clone());
                } else {
                    // Moving to another CPU: queued there once this CPU has left its stack.
                    *me.migrating.lock() = Some(p.clone());
                }
            }
        }
        let next = s.queue.pop_front();
        if let Some(n) = &next {
            n.set_state(ThreadState::Running);
        }
        s.current = next.clone();
        s.since = now;
        s.arm_timer(now);
        (prev, next)
    };
    match (&prev, &next) {
        (Some(p), Some(n)) if Arc::ptr_eq(p, n) => return,
        (None, None) => return,
        _ => {}
    }
    let save = match &prev {
        Some(p) => {
            p.fpu.lock().save();
            p.fs_base.store(cpu::rdmsr(MSR_FS_BASE), Ordering::Relaxed);
            if p.state() == ThreadState::Exited {
                *me.dead.lock() = Some(p.clone());
            }
            p.saved.slot()
        }
        None => me.idle.slot(),
    };
    let load = match &next {
        Some(n) => {
            let space_root = n.process.page_table_root();
            // The process's tables live as long as the process, which the thread holds.
            me.load_root(space_root);
            n.fpu.lock().restore();
            // The thread's TLS bases (user addresses: what is not is refused when it is set).
            cpu::set_user_fs_base(n.fs_base.load(Ordering::Relaxed));
            cpu::set_user_gs_base(n.gs_base.load(Ordering::Relaxed));
            me.kernel_stack_top.store(n.kernel_stack.top(), Ordering::Relaxed);
            descriptor_tables::set_kernel_stack(me.tss.load(Ordering::Relaxed), n.kernel_stack.top());
            n.saved.target()
        }
        None => {
            me.load_root(kernel_memory::kernel_root());
            me.idle.target()
        }
    };
    drop(prev);
    drop(next);
    // The outgoing context's slot stays alive: a dead thread is kept in `me.dead` until the
    // next context drops it.
    context::switch(save, load);
    finish_switch();
}

/// First thing after a switch, in the new context: free a thread that ended here, and hand a
/// migrating thread to its new CPU (only now is it safe for another CPU to run it).
pub extern "C" fn finish_switch() {
    let me = per_cpu::current();
    let dead = me.dead.lock().take();
    drop(dead);
    if let Some(t) = me.migrating.lock().take() {
        enqueue(t);
    }
}

/// Moves the calling thread to `cpu` (sched_setaffinity); returns when it runs there.
pub fn migrate_current(cpu: usize) {
    let Some(me) = current() else { return };
    if me.cpu.swap(cpu, Ordering::SeqCst) != cpu {
        drop(me);
        cpu::without_interrupts(schedule);
    }
}
