//! The kernel's per-CPU state, in the slot of the hardware layer's per-CPU entry
//! (`lwk_hal::per_cpu`): the scheduler's queue, the thread that just ended or is leaving, the
//! vCPU to run on the idle context, the timer's deadline. Fields of both are reached as
//! `per_cpu::current().NAME`.

use crate::hal::cpu::IrqMutex;
use crate::hal::kernel_memory::{Root, Stack};
use crate::task::scheduler::Scheduler;
use crate::task::thread::Thread;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use lwk_hal::per_cpu as hal;

/// One CPU's entry: the hardware layer's fields and the kernel's [`KernelCpu`].
pub type PerCpu = hal::PerCpu<KernelCpu>;

pub struct KernelCpu {
    /// Threads of this CPU and the one running.
    pub scheduler: IrqMutex<Scheduler>,
    /// A thread that ended on this CPU; dropped by whatever runs next (not on its own stack).
    pub dead: IrqMutex<Option<Arc<Thread>>>,
    /// A thread leaving this CPU; queued on its new CPU after the switch away from it.
    pub migrating: IrqMutex<Option<Arc<Thread>>>,
    /// A vCPU to run on this core's idle context (the VMM's vCPU loop).
    pub vcpu_work: IrqMutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// A CPU's entry with a fresh kernel state.
pub fn new(index: usize, apic_id: u32, stack: Stack) -> PerCpu {
    PerCpu::new(
        index,
        apic_id,
        stack,
        KernelCpu {
            scheduler: IrqMutex::new(Scheduler::default()),
            dead: IrqMutex::new(None),
            migrating: IrqMutex::new(None),
            vcpu_work: IrqMutex::new(None),
        },
    )
}

/// Publishes the table of all CPUs (once, on the boot CPU, before any other CPU starts).
pub fn set_all(cpus: Vec<PerCpu>) -> Option<&'static [PerCpu]> {
    hal::set_all(cpus)
}

#[inline]
pub fn all() -> &'static [PerCpu] {
    hal::all()
}

/// This CPU's entry. Only valid after [`install`] ran on this CPU.
#[inline]
pub fn current() -> &'static PerCpu {
    hal::current()
}

/// This CPU's entry, or `None` before [`install`] (for fault paths that may run early).
pub fn try_current() -> Option<&'static PerCpu> {
    hal::try_current()
}

/// Points this CPU's GS base at its entry.
pub fn install(cpu: &'static PerCpu) {
    hal::install(cpu)
}

/// Loads `root` on this CPU.
#[inline]
pub fn load_root(root: Root) {
    current().load_root(root)
}
