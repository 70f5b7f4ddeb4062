//! Leaving the machine: QEMU's isa-debug-exit port (distinct success and failure codes when the
//! device is there) and ACPI S5 through the FADT's PM1 control registers. The kernel's
//! `power::shutdown` decides when, and reports it.

use crate::acpi_tables::PowerOff;
use crate::cpu;

/// isa-debug-exit at port 0xf4: QEMU exits with status `(value << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;
pub const DEBUG_EXIT_SUCCESS: u8 = 0x10; // QEMU status 33
pub const DEBUG_EXIT_FAILURE: u8 = 0x11; // QEMU status 35
const SLP_EN: u16 = 1 << 13;
const SCI_EN: u16 = 1;

/// Writes `code` to QEMU's debug-exit device (nothing happens on a machine without one).
pub fn debug_exit(code: u8) {
    // SAFETY: port 0xf4 is QEMU's debug-exit device when present and unused otherwise.
    unsafe { cpu::outb(DEBUG_EXIT_PORT, code) };
}

/// Enters ACPI S5 (soft off) through the registers the FADT names, enabling ACPI first through
/// the SMI command port when it is not. The power-off takes effect asynchronously.
pub fn acpi_soft_off(p: &PowerOff) {
    // SAFETY: the FADT names these ports as the chipset's ACPI registers; writing SLP_TYP with
    // SLP_EN enters S5 (soft off).
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
