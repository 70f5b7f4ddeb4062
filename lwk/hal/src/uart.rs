//! A 16550 UART on the PC's I/O ports (COM1 for the console): set-up at 115200 8N1 with FIFOs,
//! a byte out (polling the transmitter), a byte in, the receive interrupt. The console's logic
//! (lines, owners, input ring) is the kernel's (`serial_console`).

use crate::cpu;

const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_TRANSMIT_EMPTY: u8 = 1 << 5;

/// The ISA interrupt of COM1.
pub const COM1_IRQ: u8 = 4;

/// A 16550's registers at an I/O port base.
pub struct Port16550 {
    base: u16,
}

impl Port16550 {
    /// COM1, at 0x3f8: the console's.
    pub const fn com1() -> Self {
        Self { base: 0x3f8 }
    }

    fn reg(&self, r: u16) -> u16 {
        self.base + r
    }

    /// 115200 baud, 8N1, FIFOs on, the interrupt line enabled (OUT2), no interrupt yet.
    pub fn init(&mut self) {
        // SAFETY: the port belongs to its owner (the console); this is the standard 115200 8N1
        // set-up with FIFOs.
        unsafe {
            cpu::outb(self.reg(INTERRUPT_ENABLE), 0);
            cpu::outb(self.reg(LINE_CONTROL), 0x80); // divisor latch
            cpu::outb(self.reg(DATA), 1); // 115200 baud
            cpu::outb(self.reg(INTERRUPT_ENABLE), 0);
            cpu::outb(self.reg(LINE_CONTROL), 0x03); // 8N1
            cpu::outb(self.reg(FIFO_CONTROL), 0xc7); // enable, clear, 14-byte threshold
            cpu::outb(self.reg(MODEM_CONTROL), 0x0b); // DTR, RTS, OUT2 (IRQ line enabled)
        }
    }

    /// Writes `b` once the transmitter can take it.
    pub fn write_byte(&mut self, b: u8) {
        // SAFETY: polling the line status and writing the data register of this UART.
        unsafe {
            while cpu::inb(self.reg(LINE_STATUS)) & LSR_TRANSMIT_EMPTY == 0 {
                core::hint::spin_loop();
            }
            cpu::outb(self.reg(DATA), b);
        }
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&mut self) -> Option<u8> {
        // SAFETY: reading this UART's status and data registers.
        unsafe { (cpu::inb(self.reg(LINE_STATUS)) & LSR_DATA_READY != 0).then(|| cpu::inb(self.reg(DATA))) }
    }

    /// Interrupts when data is available (IER bit 0).
    pub fn enable_receive_interrupt(&mut self) {
        // SAFETY: IER bit 0 of this UART: interrupt when data is available.
        unsafe { cpu::outb(self.reg(INTERRUPT_ENABLE), 1) };
    }
}
