//! Per-CPU data, reached through the GS base: identity, stack bounds, interrupt counters, the
//! timer's deadline, the queue of cross-CPU calls, the loaded page-table root, and a slot the
//! kernel fills with its own per-CPU state (`K`: the scheduler's), reached through `Deref`.
//!
//! The hardware's part of every entry has the same layout whatever `K` is (`repr(C)`, the slot
//! last), so the layers of the kernel below its scheduler reach it without naming `K`:
//! [`this_cpu`] and [`cpus`] give it as a `PerCpu<()>`.

use crate::context::SavedContext;
use crate::cpu::{self, IrqMutex, MSR_GS_BASE};
use crate::kernel_memory::{Root, Stack};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::any::TypeId;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A function another CPU asked this one to run.
pub type CrossCall = Box<dyn FnOnce() + Send>;

/// [`PerCpu::timer_deadline`] when the timer is stopped (or fired: it is one-shot).
pub const TIMER_STOPPED: u64 = u64::MAX - 1;
/// [`PerCpu::timer_deadline`] when something else armed the timer.
pub const TIMER_UNKNOWN: u64 = u64::MAX;

/// Offsets the assembly entry stubs use (checked below against the struct).
pub const OFFSET_KERNEL_STACK_TOP: usize = 8;
pub const OFFSET_USER_RSP: usize = 16;

#[repr(C)]
pub struct PerCpu<K: 'static> {
    /// Address of this structure; first, so `gs:[0]` finds it.
    self_pointer: AtomicU64,
    /// Top of the running thread's kernel stack (the `syscall` entry switches to it).
    pub kernel_stack_top: AtomicU64,
    /// Scratch slot for the user stack pointer during `syscall` entry.
    pub user_rsp: AtomicU64,
    /// The type of the kernel's slot, checked where `gs:[0]` is read as a `PerCpu<K>`.
    kind: TypeId,
    /// This CPU's TSS (its RSP0 is set to the running thread's kernel stack).
    pub tss: AtomicU64,
    /// The idle context while a thread runs.
    pub idle: SavedContext,
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
    /// The uptime the timer is armed for, or [`TIMER_STOPPED`], or [`TIMER_UNKNOWN`] (armed
    /// otherwise, or not yet): lets a caller that asks for the same deadline again (the VMM,
    /// before every guest entry) skip reprogramming it.
    pub timer_deadline: AtomicU64,
    pub calls: IrqMutex<VecDeque<CrossCall>>,
    /// An interrupt found threads waiting while the running one was in the kernel: it gives way
    /// on its return to user mode.
    pub resched: AtomicBool,
    /// The page-table root this CPU has loaded (see [`load_root`]): whoever frees an address
    /// space checks that no other CPU still runs on it.
    loaded_root: AtomicU64,
    /// The kernel's per-CPU state.
    kernel: K,
}

static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu<()>, kernel_stack_top), OFFSET_KERNEL_STACK_TOP);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu<()>, user_rsp), OFFSET_USER_RSP);

impl<K: 'static> PerCpu<K> {
    pub fn new(index: usize, apic_id: u32, stack: Stack, kernel: K) -> Self {
        PerCpu {
            self_pointer: AtomicU64::new(0),
            kernel_stack_top: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            kind: TypeId::of::<K>(),
            tss: AtomicU64::new(0),
            idle: SavedContext::empty(),
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
            timer_deadline: AtomicU64::new(TIMER_UNKNOWN),
            calls: IrqMutex::new(VecDeque::new()),
            resched: AtomicBool::new(false),
            loaded_root: AtomicU64::new(0),
            kernel,
        }
    }

    /// Loads `root` into CR3 on this CPU (which must be the one this entry describes) and
    /// records it.
    pub fn load_root(&self, root: Root) {
        self.loaded_root.store(root.phys(), Ordering::Release);
        if cpu::read_cr3() != root.phys() {
            // SAFETY: a `Root` maps the kernel half as every address space does (only
            // `kernel_memory` makes one), so the running code and stack stay mapped; whoever
            // frees a root first waits until no CPU has it loaded (`others_with_root`).
            unsafe { cpu::write_cr3(root.phys()) };
        }
    }
}

impl<K: 'static> core::ops::Deref for PerCpu<K> {
    type Target = K;

    #[inline]
    fn deref(&self) -> &K {
        &self.kernel
    }
}

/// The table of all CPUs: its address, length and the size of one entry.
struct Table {
    address: AtomicUsize,
    len: AtomicUsize,
    stride: AtomicUsize,
}

static TABLE: Table = Table { address: AtomicUsize::new(0), len: AtomicUsize::new(0), stride: AtomicUsize::new(0) };
static PUBLISHED: spin::Once<TypeId> = spin::Once::new();

/// Publishes the table of all CPUs (once, on the boot CPU, before any other CPU starts); a
/// second call returns `None`.
pub fn set_all<K: Sync + 'static>(cpus: Vec<PerCpu<K>>) -> Option<&'static [PerCpu<K>]> {
    let mut fresh = false;
    PUBLISHED.call_once(|| {
        fresh = true;
        TypeId::of::<K>()
    });
    if !fresh {
        return None;
    }
    let table: &'static [PerCpu<K>] = Box::leak(cpus.into_boxed_slice());
    TABLE.len.store(table.len(), Ordering::Relaxed);
    TABLE.stride.store(size_of::<PerCpu<K>>(), Ordering::Relaxed);
    TABLE.address.store(table.as_ptr() as usize, Ordering::Release);
    Some(table)
}

/// All CPUs (empty before [`set_all`], or if the table holds another kernel slot type).
pub fn all<K: Sync + 'static>() -> &'static [PerCpu<K>] {
    let address = TABLE.address.load(Ordering::Acquire);
    if address == 0 || PUBLISHED.get() != Some(&TypeId::of::<K>()) {
        return &[];
    }
    // SAFETY: `set_all` leaked a boxed slice of `len` `PerCpu<K>` at `address` (the type
    // checked just above) and never frees it.
    unsafe { core::slice::from_raw_parts(address as *const PerCpu<K>, TABLE.len.load(Ordering::Relaxed)) }
}

/// Points this CPU's GS base at its entry.
pub fn install<K: Sync + 'static>(cpu: &'static PerCpu<K>) {
    let address = cpu as *const PerCpu<K> as u64;
    cpu.self_pointer.store(address, Ordering::Relaxed);
    // SAFETY: GS base is the kernel's per-CPU pointer (the user's is swapped in only while user
    // code runs); `cpu` lives for the kernel's life.
    unsafe { cpu::wrmsr(MSR_GS_BASE, address) };
}

/// This CPU's entry. Only valid after [`install`] ran on this CPU: before, or with another
/// slot type, the kernel is broken and stops here.
#[inline]
pub fn current<K: Sync + 'static>() -> &'static PerCpu<K> {
    let address: u64;
    // SAFETY: reads gs:[0], which `install` set to this CPU's entry (and which is 0 before).
    unsafe { asm!("mov {}, gs:[0]", out(reg) address, options(nostack, readonly, preserves_flags)) };
    let header = address as *const PerCpu<()>;
    // SAFETY: after `install`, `address` is a `PerCpu<_>` of the leaked table; `kind` sits at
    // the same offset whatever the slot type (`repr(C)`, the slot last).
    let kind = unsafe { core::ptr::addr_of!((*header).kind).read() };
    assert!(kind == TypeId::of::<K>(), "per-CPU data read as another type");
    // SAFETY: the entry is a `PerCpu<K>` (its type just checked), never freed.
    unsafe { &*(address as *const PerCpu<K>) }
}

/// This CPU's entry, or `None` before [`install`] (for fault paths that may run early).
pub fn try_current<K: Sync + 'static>() -> Option<&'static PerCpu<K>> {
    let address = cpu::rdmsr(MSR_GS_BASE);
    all::<K>().iter().find(|c| core::ptr::eq(*c, address as *const PerCpu<K>))
}

/// The hardware's part of entry `index` of the table (any slot type).
fn hardware_part(index: usize) -> Option<&'static PerCpu<()>> {
    let address = TABLE.address.load(Ordering::Acquire);
    (address != 0 && index < TABLE.len.load(Ordering::Relaxed)).then(|| {
        let entry = address + index * TABLE.stride.load(Ordering::Relaxed);
        // SAFETY: entry `index` of the leaked table `set_all` published; a `PerCpu<K>` starts
        // with the fields of a `PerCpu<()>` at the same offsets (`repr(C)`, the slot last) and
        // is at least as large and as aligned, so its first bytes are a valid `PerCpu<()>`.
        unsafe { &*(entry as *const PerCpu<()>) }
    })
}

/// Every CPU's entry, the hardware's part only.
pub fn cpus() -> impl Iterator<Item = &'static PerCpu<()>> {
    (0..).map_while(hardware_part)
}

/// This CPU's entry, the hardware's part only (after [`install`]).
#[inline]
pub fn this_cpu() -> &'static PerCpu<()> {
    let address: u64;
    // SAFETY: reads gs:[0], which `install` set to this CPU's entry.
    unsafe { asm!("mov {}, gs:[0]", out(reg) address, options(nostack, readonly, preserves_flags)) };
    assert!(address != 0, "per-CPU data used before it was installed");
    // SAFETY: as in `hardware_part`: the entry's first bytes are a valid `PerCpu<()>`.
    unsafe { &*(address as *const PerCpu<()>) }
}

/// Queues `f` on CPU `index` and interrupts it. Runs `f` at once if `index` is this CPU.
pub fn run_on(index: usize, f: impl FnOnce() + Send + 'static) -> Result<(), &'static str> {
    let target = hardware_part(index).ok_or("no such CPU")?;
    if !target.online.load(Ordering::Acquire) {
        return Err("CPU is not online");
    }
    if target.index == this_cpu().index {
        cpu::without_interrupts(f);
        return Ok(());
    }
    target.calls.lock().push_back(Box::new(f));
    crate::local_apic::send_ipi(target.apic_id, crate::vectors::CROSS_CALL_VECTOR);
    Ok(())
}

/// Runs every call queued for this CPU (from the cross-call interrupt).
pub fn run_pending_calls() {
    let me = this_cpu();
    while let Some(call) = me.calls.lock().pop_front() {
        call();
    }
}

/// The other CPUs (not this one) that have `root` loaded now: whoever frees an address space
/// waits for, or reports, them.
pub fn others_with_root(root: Root) -> Vec<usize> {
    let me = this_cpu().index;
    cpus().filter(|c| c.index != me && c.loaded_root.load(Ordering::Acquire) == root.phys()).map(|c| c.index).collect()
}
