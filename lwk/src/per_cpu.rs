//! Per-CPU data, reached through the GS base: identity, stack bounds, interrupt counters and the
//! queue of cross-CPU calls.

use crate::cpu::{self, IrqMutex, MSR_GS_BASE};
use crate::kernel_memory::Stack;
use crate::scheduler::Scheduler;
use crate::thread::Thread;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A function another CPU asked this one to run.
pub type CrossCall = Box<dyn FnOnce() + Send>;

/// Offsets the assembly entry stubs use (checked below against the struct).
pub const OFFSET_KERNEL_STACK_TOP: usize = 8;
pub const OFFSET_USER_RSP: usize = 16;

#[repr(C)]
pub struct PerCpu {
    /// Address of this structure; first, so `gs:[0]` finds it.
    self_pointer: AtomicU64,
    /// Top of the running thread's kernel stack (the `syscall` entry switches to it).
    pub kernel_stack_top: AtomicU64,
    /// Scratch slot for the user stack pointer during `syscall` entry.
    pub user_rsp: AtomicU64,
    /// This CPU's TSS (its RSP0 is set to the running thread's kernel stack).
    pub tss: AtomicU64,
    /// Threads of this CPU and the one running.
    pub scheduler: IrqMutex<Scheduler>,
    /// The idle context's saved stack pointer while a thread runs.
    pub idle_rsp: AtomicU64,
    /// A thread that ended on this CPU; dropped by whatever runs next (not on its own stack).
    pub dead: IrqMutex<Option<Arc<Thread>>>,
    /// A thread leaving this CPU; queued on its new CPU after the switch away from it.
    pub migrating: IrqMutex<Option<Arc<Thread>>>,
    /// A vCPU to run on this core's idle context (the VMM's vCPU loop).
    pub vcpu_work: IrqMutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Dense CPU number: 0 is the boot CPU, then MADT order.
    pub index: usize,
    pub apic_id: u32,
    /// The CPU's kernel stack, for backtraces that must not leave it.
    pub stack: Stack,
    pub online: AtomicBool,
    pub timer_interrupts: AtomicU64,
    pub cross_call_interrupts: AtomicU64,
    pub spurious_interrupts: AtomicU64,
    pub other_interrupts: AtomicU64,
    /// Times the CPU halted waiting for work.
    pub halts: AtomicU64,
    /// Set by the timer interrupt; cleared by whoever armed the timer.
    pub timer_fired: AtomicBool,
    /// The uptime the timer is armed for by `clock::arm_timer_at`, or `clock::TIMER_STOPPED`,
    /// or `clock::TIMER_UNKNOWN` (armed otherwise, or not yet): lets a caller that asks for the
    /// same deadline again (the VMM, before every guest entry) skip reprogramming it.
    pub timer_deadline: AtomicU64,
    pub calls: IrqMutex<VecDeque<CrossCall>>,
    /// An interrupt found threads waiting while the running one was in the kernel: it gives way
    /// on its return to user mode (see `scheduler::preempt`).
    pub resched: AtomicBool,
    /// The page-table root this CPU has loaded (see [`load_root`]): whoever frees an address
    /// space checks that no other CPU still runs on it.
    pub loaded_root: AtomicU64,
}

static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, kernel_stack_top), OFFSET_KERNEL_STACK_TOP);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, user_rsp), OFFSET_USER_RSP);

impl PerCpu {
    pub fn new(index: usize, apic_id: u32, stack: Stack) -> Self {
        PerCpu {
            self_pointer: AtomicU64::new(0),
            kernel_stack_top: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            tss: AtomicU64::new(0),
            scheduler: IrqMutex::new(Scheduler::default()),
            idle_rsp: AtomicU64::new(0),
            dead: IrqMutex::new(None),
            migrating: IrqMutex::new(None),
            vcpu_work: IrqMutex::new(None),
            index,
            apic_id,
            stack,
            online: AtomicBool::new(false),
            timer_interrupts: AtomicU64::new(0),
            cross_call_interrupts: AtomicU64::new(0),
            spurious_interrupts: AtomicU64::new(0),
            other_interrupts: AtomicU64::new(0),
            halts: AtomicU64::new(0),
            timer_fired: AtomicBool::new(false),
            timer_deadline: AtomicU64::new(crate::clock::TIMER_UNKNOWN),
            calls: IrqMutex::new(VecDeque::new()),
            resched: AtomicBool::new(false),
            loaded_root: AtomicU64::new(0),
        }
    }
}

static CPUS: spin::Once<&'static [PerCpu]> = spin::Once::new();

/// Publishes the table of all CPUs (once, on the boot CPU, before any other CPU starts).
pub fn set_all(cpus: Vec<PerCpu>) -> &'static [PerCpu] {
    CPUS.call_once(|| Box::leak(cpus.into_boxed_slice()))
}

pub fn all() -> &'static [PerCpu] {
    CPUS.get().copied().unwrap_or(&[])
}

/// Loads `root` into CR3 and records it in this CPU's [`PerCpu::loaded_root`].
///
/// # Safety
/// `root` must be a page-table root that maps the kernel half as every address space does (the
/// kernel's own, or a user space's), and stay allocated while loaded.
pub unsafe fn load_root(root: u64) {
    let me = current();
    me.loaded_root.store(root, Ordering::Release);
    if cpu::read_cr3() != root {
        // SAFETY: the caller's contract.
        unsafe { cpu::write_cr3(root) };
    }
}

/// The other CPUs (not this one) that have `root` loaded now: whoever frees an address space
/// waits for, or reports, them.
pub fn others_with_root(root: u64) -> Vec<usize> {
    let me = current().index;
    all().iter().filter(|c| c.index != me && c.loaded_root.load(Ordering::Acquire) == root).map(|c| c.index).collect()
}

/// Points this CPU's GS base at its entry.
pub fn install(cpu: &'static PerCpu) {
    let address = cpu as *const PerCpu as u64;
    cpu.self_pointer.store(address, Ordering::Relaxed);
    // SAFETY: GS base is the kernel's per-CPU pointer; `cpu` is in a leaked, never-freed table.
    unsafe { cpu::wrmsr(MSR_GS_BASE, address) };
}

/// This CPU's entry. Only valid after [`install`] ran on this CPU.
pub fn current() -> &'static PerCpu {
    let address: u64;
    // SAFETY: after `install`, gs:[0] holds the address of this CPU's PerCpu.
    unsafe { asm!("mov {}, gs:[0]", out(reg) address, options(nostack, readonly, preserves_flags)) };
    // SAFETY: the address points into the leaked CPU table.
    unsafe { &*(address as *const PerCpu) }
}

/// This CPU's entry, or `None` before [`install`] (for fault paths that may run early).
pub fn try_current() -> Option<&'static PerCpu> {
    let address = cpu::rdmsr(MSR_GS_BASE);
    all().iter().find(|c| core::ptr::eq(*c, address as *const PerCpu))
}
