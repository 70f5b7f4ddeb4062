//! Leaving: a `shutdown` event (preceded by per-CPU interrupt counts), then QEMU's
//! isa-debug-exit port with distinct success and failure codes when the device is there, and
//! ACPI S5 through the FADT's PM1 control registers otherwise.

use crate::acpi_tables::PowerOff;
use crate::{cpu, logging, per_cpu};
use core::sync::atomic::Ordering;

/// isa-debug-exit at port 0xf4: QEMU exits with status `(value << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const DEBUG_EXIT_SUCCESS: u8 = 0x10; // QEMU status 33
pub const DEBUG_EXIT_FAILURE: u8 = 0x11; // QEMU status 35
const SLP_EN: u16 = 1 << 13;
const SCI_EN: u16 = 1;

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
    for c in per_cpu::all() {
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
    // SAFETY: port 0xf4 is QEMU's debug-exit device when present and unused otherwise.
    unsafe { cpu::outb(DEBUG_EXIT_PORT, code) };
    if let Some(p) = ACPI_POWER_OFF.get() {
        // SAFETY: the FADT names these ports as the chipset's ACPI registers; writing SLP_TYP
        // with SLP_EN enters S5 (soft off).
        unsafe {
            if p.smi_command != 0 && p.acpi_enable != 0 && cpu::inb(p.pm1a_control) as u16 & SCI_EN == 0 {
                cpu::outb(p.smi_command, p.acpi_enable);
            }
            cpu::outw(p.pm1a_control, (p.slp_typ_a as u16) << 10 | SLP_EN);
            if p.pm1b_control != 0 {
                cpu::outw(p.pm1b_control, (p.slp_typ_b as u16) << 10 | SLP_EN);
            }
        }
    }
    // The power-off takes effect asynchronously; give it time before declaring it failed.
    crate::clock::spin_ns(500_000_000);
    crate::println!("shutdown: no way to power off; halting");
    cpu::halt_forever()
}
