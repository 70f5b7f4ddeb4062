//! Bringing up the other CPUs (INIT-SIPI-SIPI into the hardware layer's real-mode trampoline,
//! which enters long mode directly and jumps to the entry the caller names) and waiting for a
//! cross-CPU call's result.

use crate::hal::acpi_tables::Madt;
use crate::hal::kernel_memory::{MemoryError, Stack, alloc_stack};
use crate::task::per_cpu::{self, PerCpu};
use crate::{hal::cpu, hal::local_apic, time::clock};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use lwk_hal::cpu_start::Trampoline;

pub const KERNEL_STACK_BYTES: u64 = 64 * 1024;
const START_TIMEOUT_NS: u64 = 1_000_000_000;

pub enum SmpError {
    Memory(MemoryError),
    /// The trampoline pages are not RAM in the memory map.
    NoTrampolineMemory,
    /// The per-CPU table was already made.
    Twice,
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            SmpError::Memory(e) => write!(f, "{e}"),
            SmpError::NoTrampolineMemory => write!(f, "no RAM at 0x8000-0xbfff for the start-up trampoline"),
            SmpError::Twice => write!(f, "the per-CPU table was already made"),
        }
    }
}

/// Outcome of starting the application processors.
pub struct SmpReport {
    pub started: usize,
    /// APIC IDs of CPUs that did not come online in time.
    pub failed: Vec<u32>,
}

/// Creates the per-CPU table (boot CPU first) and installs the boot CPU's entry.
pub fn init_boot_cpu(madt: &Madt, boot_stack: Stack) -> Result<&'static PerCpu, SmpError> {
    let me = local_apic::id();
    let mut cpus = Vec::new();
    cpus.push(per_cpu::new(0, me, boot_stack));
    for c in madt.cpus.iter().filter(|c| c.enabled && c.apic_id != me) {
        let stack = alloc_stack(KERNEL_STACK_BYTES).map_err(SmpError::Memory)?;
        cpus.push(per_cpu::new(cpus.len(), c.apic_id, stack));
    }
    let all = per_cpu::set_all(cpus).ok_or(SmpError::Twice)?;
    per_cpu::install(&all[0]);
    all[0].online.store(true, Ordering::Release);
    Ok(&all[0])
}

/// Starts every other CPU in the table, one at a time, each at `entry`.
pub fn start_application_processors(
    ram_below_1m: bool,
    features: &cpu::Features,
    entry: extern "C" fn(&'static PerCpu) -> !,
) -> Result<SmpReport, SmpError> {
    if !ram_below_1m {
        return Err(SmpError::NoTrampolineMemory);
    }
    let trampoline = Trampoline::install();
    let mut report = SmpReport { started: 0, failed: Vec::new() };
    for cpu in per_cpu::all().iter().skip(1) {
        trampoline.post(cpu, features.nx, entry);
        local_apic::send_init(cpu.apic_id);
        clock::spin_ns(10_000_000);
        for _ in 0..2 {
            local_apic::send_startup(cpu.apic_id, trampoline.startup_vector());
            let deadline = clock::uptime_ns() + START_TIMEOUT_NS / 2;
            while !cpu.online.load(Ordering::Acquire) && clock::uptime_ns() < deadline {
                core::hint::spin_loop();
            }
            if cpu.online.load(Ordering::Acquire) {
                break;
            }
        }
        if cpu.online.load(Ordering::Acquire) {
            report.started += 1;
        } else {
            log::error!("cpu {} (APIC {}) did not start", cpu.index, cpu.apic_id);
            report.failed.push(cpu.apic_id);
        }
    }
    Ok(report)
}

/// Runs `f` on CPU `index` and waits for its result (at most `timeout_ns`).
pub fn call_on<R: Send + 'static>(
    index: usize,
    timeout_ns: u64,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, &'static str> {
    let slot = Arc::new((AtomicBool::new(false), spin::Mutex::new(None)));
    let theirs = slot.clone();
    crate::hal::per_cpu::run_on(index, move || {
        *theirs.1.lock() = Some(f());
        theirs.0.store(true, Ordering::Release);
    })?;
    let deadline = clock::uptime_ns() + timeout_ns;
    while !slot.0.load(Ordering::Acquire) {
        if clock::uptime_ns() > deadline {
            return Err("timed out");
        }
        core::hint::spin_loop();
    }
    slot.1.lock().take().ok_or("no result")
}

/// Flushes the whole TLB, global kernel pages included, on every online CPU; true if every CPU
/// did within 10 ms.
pub fn flush_kernel_tlbs_everywhere() -> bool {
    let mut all = true;
    for c in per_cpu::all().iter().filter(|c| c.online.load(Ordering::Acquire)) {
        all &= call_on(c.index, 10_000_000, cpu::flush_tlb_global).is_ok();
    }
    all
}
