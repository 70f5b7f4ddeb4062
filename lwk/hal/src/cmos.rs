//! The CMOS registers (index port 0x70, data port 0x71): the real-time clock's, read at boot.

use crate::cpu;

/// Reads CMOS register `reg` (NMI stays enabled: bit 7 of the index clear).
pub fn read(reg: u8) -> u8 {
    // SAFETY: the CMOS index/data ports belong to the kernel; reading a register has no side
    // effect beyond selecting the index.
    unsafe {
        cpu::outb(0x70, reg & 0x7f);
        cpu::inb(0x71)
    }
}
