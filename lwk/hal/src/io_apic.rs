//! The I/O APICs from the MADT: every input masked at start, then individual ISA interrupts
//! routed (with the MADT's overrides) to a vector on one CPU. The legacy 8259 pair is remapped
//! away from the exception vectors and masked for good.

use crate::acpi_tables::Madt;
use crate::mmio::Registers;
use crate::{cpu, kernel_memory};
use alloc::vec::Vec;
use core::ptr::NonNull;

const REG_VERSION: u32 = 1;
const REG_REDIRECTION: u32 = 0x10;
const MASKED: u32 = 1 << 16;

/// IOREGSEL and IOWIN, the two registers through which all others are reached.
const IOREGSEL: u32 = 0x00;
const IOWIN: u32 = 0x10;

struct IoApic {
    registers: Registers,
    gsi_base: u32,
    inputs: u32,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        self.registers.write(IOREGSEL, reg);
        self.registers.read(IOWIN)
    }

    fn write(&self, reg: u32, value: u32) {
        self.registers.write(IOREGSEL, reg);
        self.registers.write(IOWIN, value);
    }
}

static IO_APICS: spin::Once<Vec<IoApic>> = spin::Once::new();

/// Remaps the 8259 PICs to vectors 0x30-0x3f (so a stray legacy interrupt can never look like
/// an exception) and masks every input.
pub fn disable_legacy_pic() {
    // SAFETY: the standard ICW1-4 initialisation of both 8259s, then OCW1 masks everything.
    unsafe {
        for (command, data, vector, cascade) in [(0x20, 0x21, 0x30, 0x04), (0xa0, 0xa1, 0x38, 0x02)] {
            cpu::outb(command, 0x11);
            cpu::outb(data, vector);
            cpu::outb(data, cascade);
            cpu::outb(data, 0x01);
            cpu::outb(data, 0xff);
        }
    }
}

/// Maps every I/O APIC and masks all its inputs.
pub fn init(madt: &Madt) -> Result<usize, crate::page_table::MapError> {
    let mut apics = Vec::new();
    for a in &madt.io_apics {
        let base = kernel_memory::map_physical(a.address, 0x20, true)?;
        let base = NonNull::new(base as *mut u32).ok_or(crate::page_table::MapError::OutOfMemory)?;
        // SAFETY: `map_physical` just mapped the I/O APIC's 32 bytes uncached, for good.
        let registers = unsafe { Registers::new(base, 0x20) };
        let mut apic = IoApic { registers, gsi_base: a.gsi_base, inputs: 0 };
        apic.inputs = ((apic.read(REG_VERSION) >> 16) & 0xff) + 1;
        for i in 0..apic.inputs {
            apic.write(REG_REDIRECTION + 2 * i, MASKED);
            apic.write(REG_REDIRECTION + 2 * i + 1, 0);
        }
        apics.push(apic);
    }
    let count = apics.len();
    IO_APICS.call_once(|| apics);
    Ok(count)
}

/// Routes ISA interrupt `irq` to `vector` on the CPU with `apic_id`. Returns the GSI used, or
/// `None` if no I/O APIC serves it.
pub fn route_isa_irq(madt: &Madt, irq: u8, vector: u8, apic_id: u32) -> Option<u32> {
    let (gsi, over) = madt.isa_route(irq);
    let apic = IO_APICS.get()?.iter().find(|a| gsi >= a.gsi_base && gsi < a.gsi_base + a.inputs)?;
    let mut low = vector as u32;
    if over.is_some_and(|o| o.active_low()) {
        low |= 1 << 13;
    }
    if over.is_some_and(|o| o.level_triggered()) {
        low |= 1 << 15;
    }
    let input = gsi - apic.gsi_base;
    apic.write(REG_REDIRECTION + 2 * input + 1, apic_id << 24);
    apic.write(REG_REDIRECTION + 2 * input, low);
    Some(gsi)
}
