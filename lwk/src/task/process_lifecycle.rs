//! How threads and processes end: a thread's exit (clearing its `clear_child_tid` and waking
//! the futex there), `exit_group` and fatal signals (every thread of the process is told to end
//! at its next return to user mode), the teardown by the last thread (memory back to the job's
//! pool, descriptors closed, children handed to the job's first process, the parent told), and
//! reaping by `wait4`.

use crate::task::process::{ExitReason, Job, Process};
use crate::task::signals::{self, SIGCHLD, SIGKILL};
use crate::task::thread::Thread;
use crate::util::hook::Hook;
use crate::{hal::cpu, hal::kernel_memory, task::scheduler};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

/// What runs when a job's first process has ended (its report, its enclave's end): the
/// control plane's.
pub static JOB_ENDED: Hook<fn(&Job, ExitReason)> = Hook::new();

/// Ends the calling thread `me`, which the caller hands over: nothing on the way here may keep
/// a reference to the thread or its process, since this never returns and whatever its callers
/// hold is never dropped. The last thread of a process ends the process, with the reason an
/// `exit_group` or fatal signal chose, else the thread's own `exit` status.
pub fn end_thread(me: Arc<Thread>) -> ! {
    let process = me.process.clone();
    let own = me.exit_reason.lock().take();
    let ctid = me.clear_child_tid.swap(0, Ordering::Relaxed);
    if ctid != 0 {
        let cleared = process.space.lock().write(ctid, &0u32.to_le_bytes()).is_ok();
        if cleared {
            crate::task::futex::wake_address(&process, ctid, 1);
        }
    }
    process.job.thread_left(me.cpu.load(Ordering::Relaxed));
    let last = {
        let mut threads = process.threads.lock();
        threads.retain(|t| !Arc::ptr_eq(t, &me));
        threads.is_empty()
    };
    drop(me);
    if last {
        process.exit.lock().get_or_insert(own.unwrap_or(ExitReason::Signaled(SIGKILL)));
        teardown(&process);
    }
    drop(process);
    scheduler::exit_current()
}

/// Tells every thread of `process` to end (at its next return to user mode, or now if it is
/// blocked in the kernel): `exit_group` and fatal signals. The calling thread ends on its way
/// back to user mode too.
pub fn kill_process(process: &Arc<Process>, reason: ExitReason) {
    process.exit.lock().get_or_insert(reason);
    let threads = process.threads.lock().clone();
    let me = scheduler::current();
    for t in &threads {
        t.killed.store(true, Ordering::SeqCst);
        if !me.as_ref().is_some_and(|m| Arc::ptr_eq(m, t)) {
            signals::interrupt(t);
        }
    }
}

/// The last thread is gone: release what the process holds and tell whoever waits for it.
fn teardown(process: &Arc<Process>) {
    let job = process.job.clone();
    if cpu::read_cr3() == process.page_table_root().phys() {
        // The kernel's own tables map everything this path uses.
        crate::task::per_cpu::load_root(kernel_memory::kernel_root());
    }
    process.space.lock().release_all();
    process.files.close_all();
    job.cpu_ns.fetch_add(process.cpu_ns.load(Ordering::Relaxed) + scheduler::current_slice_ns(), Ordering::Relaxed);
    let reason = process.exit.lock().unwrap_or(ExitReason::Exited(0));
    // Children go to the job's first process (or are reaped at once when it is gone).
    let children: Vec<Arc<Process>> = core::mem::take(&mut *process.children.lock());
    let init = job.process(1).filter(|p| p.pid != process.pid && !p.zombie.load(Ordering::SeqCst));
    for child in children {
        child.parent.store(init.as_ref().map_or(0, |i| i.pid), Ordering::SeqCst);
        match &init {
            Some(i) => i.children.lock().push(child),
            None if child.zombie.load(Ordering::SeqCst) => {
                job.processes.lock().remove(&child.pid);
            }
            None => {}
        }
    }
    process.vfork_released.store(true, Ordering::SeqCst);
    process.vfork_done.wake_all();
    process.zombie.store(true, Ordering::SeqCst);
    if process.pid == 1 {
        // The job's first process ends the job: the rest of its processes go too.
        let others: Vec<Arc<Process>> = job.processes.lock().values().filter(|p| p.pid != 1).cloned().collect();
        for p in &others {
            kill_process(p, ExitReason::Signaled(SIGKILL));
        }
        job.processes.lock().remove(&1);
        if let Some(ended) = JOB_ENDED.get() {
            ended(&job, reason);
        }
        return;
    }
    match job.process(process.parent.load(Ordering::SeqCst)) {
        Some(parent) if !parent.zombie.load(Ordering::SeqCst) => {
            signals::send_to_process(&parent, SIGCHLD);
            parent.child_events.wake_all();
        }
        // Nobody will wait: reap now.
        _ => {
            job.processes.lock().remove(&process.pid);
        }
    }
}

/// Removes a zombie child from its parent and from the job (wait4).
pub fn reap(parent: &Process, child: &Arc<Process>) {
    parent.children.lock().retain(|c| !Arc::ptr_eq(c, child));
    child.job.processes.lock().remove(&child.pid);
}
