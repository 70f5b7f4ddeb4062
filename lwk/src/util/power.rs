//! Leaving: a `shutdown` event (preceded by per-CPU interrupt counts), then QEMU's
//! isa-debug-exit port with distinct success and failure codes when the device is there, and
//! ACPI S5 through the FADT's PM1 control registers otherwise (`power_off`, the hardware side).

use crate::hal::acpi_tables::PowerOff;
use crate::hal::power_off::{self, DEBUG_EXIT_FAILURE, DEBUG_EXIT_SUCCESS};
use crate::{hal::cpu, hal::per_cpu, util::logging};
use core::sync::atomic::Ordering;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Failure,
}

impl ExitStatus {
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure",
        }
    }
}

static ACPI_POWER_OFF: spin::Once<PowerOff> = spin::Once::new();

pub fn set_acpi_power_off(p: PowerOff) {
    ACPI_POWER_OFF.call_once(|| p);
}

/// Prints one `irq_stats` event per CPU.
pub fn report_interrupt_counts() {
    for c in per_cpu::cpus() {
        logging::emit_from_fault("irq_stats", |e| {
            e.u64("cpu", c.index as u64)
                .u64("apic_id", c.apic_id as u64)
                .bool("online", c.online.load(Ordering::Relaxed))
                .u64("timer", c.timer_interrupts.load(Ordering::Relaxed))
                .u64("ipi", c.cross_call_interrupts.load(Ordering::Relaxed))
                .u64("spurious", c.spurious_interrupts.load(Ordering::Relaxed))
                .u64("other", c.other_interrupts.load(Ordering::Relaxed))
                .u64("halts", c.halts.load(Ordering::Relaxed));
        });
    }
}

/// Stops the machine. Safe to call from any CPU and from fault paths.
pub fn shutdown(status: ExitStatus) -> ! {
    cpu::disable_interrupts();
    report_interrupt_counts();
    logging::emit_from_fault("shutdown", |e| {
        e.str("status", status.name());
    });
    let code = match status {
        ExitStatus::Success => DEBUG_EXIT_SUCCESS,
        ExitStatus::Failure => DEBUG_EXIT_FAILURE,
    };
    power_off::debug_exit(code);
    if let Some(p) = ACPI_POWER_OFF.get() {
        power_off::acpi_soft_off(p);
    }
    // The power-off takes effect asynchronously; give it time before declaring it failed.
    crate::time::clock::spin_ns(500_000_000);
    crate::println!("shutdown: no way to power off; halting");
    cpu::halt_forever()
}
