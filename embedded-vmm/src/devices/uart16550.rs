//! A 16550A UART (the PC's COM1 at 0x3f8, IRQ 4) as a state machine: divisor latch, FIFO
//! control, line and modem registers with loopback as Linux's 8250 driver probes them. Output
//! goes out a line at a time; input comes from the host.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

const LCR_DLAB: u8 = 0x80;
const IER_RX: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const MCR_LOOP: u8 = 0x10;
/// Longest output line kept before it is flushed anyway.
const LINE_MAX: usize = 512;
/// The receive FIFO of a 16550A: a byte arriving when it is full is lost and flagged (overrun),
/// as on the chip, so that nothing a guest or the host sends grows without bound.
pub const RX_FIFO: usize = 16;
/// Line status: a received byte was lost to a full FIFO (cleared by reading LSR).
const LSR_OVERRUN: u8 = 0x02;

#[derive(Debug, Default)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    divisor: u16,
    /// A transmitter-empty interrupt is pending (set when THR empties, cleared by reading IIR or
    /// writing THR).
    thre_pending: bool,
    input: VecDeque<u8>,
    /// A byte was lost to a full receive FIFO since LSR was last read.
    overrun: bool,
    line: Vec<u8>,
}

impl Uart16550 {
    /// Reads register `offset` (0-7).
    pub fn read(&mut self, offset: u16) -> u8 {
        match offset {
            0 if self.lcr & LCR_DLAB != 0 => self.divisor as u8,
            0 => self.input.pop_front().unwrap_or(0),
            1 if self.lcr & LCR_DLAB != 0 => (self.divisor >> 8) as u8,
            1 => self.ier,
            2 => {
                let fifo = if self.fcr & 1 != 0 { 0xc0 } else { 0 };
                let id = if self.ier & IER_RX != 0 && !self.input.is_empty() {
                    0x04
                } else if self.ier & IER_THRE != 0 && self.thre_pending {
                    self.thre_pending = false;
                    0x02
                } else {
                    0x01
                };
                fifo | id
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => {
                let overrun = if core::mem::take(&mut self.overrun) { LSR_OVERRUN } else { 0 };
                LSR_THRE | LSR_TEMT | overrun | if self.input.is_empty() { 0 } else { LSR_DATA_READY }
            }
            6 => {
                if self.mcr & MCR_LOOP != 0 {
                    // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                    let m = self.mcr;
                    ((m & 1) << 5) | ((m & 2) << 3) | ((m & 4) << 4) | ((m & 8) << 4)
                } else {
                    0xb0 // DCD, DSR, CTS
                }
            }
            _ => self.scr,
        }
    }

    /// Writes register `offset`; returns a finished output line, if this write ended one.
    pub fn write(&mut self, offset: u16, value: u8) -> Option<Vec<u8>> {
        match offset {
            0 if self.lcr & LCR_DLAB != 0 => self.divisor = (self.divisor & 0xff00) | value as u16,
            0 => {
                self.thre_pending = true;
                if self.mcr & MCR_LOOP != 0 {
                    self.push_input(value);
                    return None;
                }
                self.line.push(value);
                if value == b'\n' || self.line.len() >= LINE_MAX {
                    return Some(core::mem::take(&mut self.line));
                }
            }
            1 if self.lcr & LCR_DLAB != 0 => self.divisor = (self.divisor & 0xff) | (value as u16) << 8,
            1 => {
                // Enabling the THRE interrupt with the transmitter empty raises it at once.
                if value & IER_THRE != 0 && self.ier & IER_THRE == 0 {
                    self.thre_pending = true;
                }
                self.ier = value & 0x0f;
            }
            2 => self.fcr = value,
            3 => self.lcr = value,
            4 => self.mcr = value & 0x1f,
            7 => self.scr = value,
            _ => {}
        }
        None
    }

    /// Whether the UART asserts its interrupt line.
    pub fn interrupt_pending(&self) -> bool {
        (self.ier & IER_RX != 0 && !self.input.is_empty()) || (self.ier & IER_THRE != 0 && self.thre_pending)
    }

    /// Bytes typed at the guest's console; those that find the FIFO full are lost, as on the
    /// chip (the host feeds it no faster than the guest reads). Returns how many were taken.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let room = RX_FIFO.saturating_sub(self.input.len()).min(bytes.len());
        for &b in bytes {
            self.push_input(b);
        }
        room
    }

    fn push_input(&mut self, b: u8) {
        if self.input.len() < RX_FIFO {
            self.input.push_back(b);
        } else {
            self.overrun = true;
        }
    }

    /// Output not yet ended by a newline.
    pub fn take_partial_line(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_out_whole() {
        let mut u = Uart16550::default();
        for &b in b"hi" {
            assert_eq!(u.write(0, b), None);
        }
        assert_eq!(u.write(0, b'\n'), Some(b"hi\n".to_vec()));
        assert_eq!(u.read(5) & LSR_THRE, LSR_THRE);
    }

    #[test]
    fn divisor_latch_and_scratch() {
        let mut u = Uart16550::default();
        u.write(3, LCR_DLAB | 3);
        u.write(0, 0x01);
        u.write(1, 0x00);
        assert_eq!((u.read(0), u.read(1)), (1, 0));
        u.write(3, 3);
        u.write(7, 0x5a);
        assert_eq!(u.read(7), 0x5a);
        assert_eq!(u.read(3), 3);
    }

    #[test]
    fn loopback_as_linux_probes_it() {
        let mut u = Uart16550::default();
        u.write(4, MCR_LOOP | 0x0a); // loop, RTS, OUT2
        assert_eq!(u.read(6) & 0xf0, 0x90); // CTS and DCD
        u.write(0, 0x42);
        assert_eq!(u.read(5) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(u.read(0), 0x42);
    }

    /// A guest writing in loopback mode without reading (or a host typing faster than the guest
    /// reads) fills the 16-byte FIFO and no more: the rest is lost and flagged, as on the chip.
    #[test]
    fn the_receive_fifo_is_bounded() {
        let mut u = Uart16550::default();
        u.write(4, MCR_LOOP);
        for i in 0..1_000_000u32 {
            u.write(0, i as u8);
        }
        assert_eq!(u.input.len(), RX_FIFO);
        assert_eq!(u.read(5) & LSR_OVERRUN, LSR_OVERRUN);
        assert_eq!(u.read(5) & LSR_OVERRUN, 0, "reading LSR clears the overrun");
        assert_eq!(u.read(0), 0);
        u.write(4, 0);
        assert_eq!(u.receive(&[7; 100]), 1);
        assert_eq!(u.input.len(), RX_FIFO);
    }

    #[test]
    fn interrupts_follow_ier() {
        let mut u = Uart16550::default();
        assert!(!u.interrupt_pending());
        u.write(1, IER_THRE);
        assert!(u.interrupt_pending());
        assert_eq!(u.read(2) & 0x0f, 0x02);
        assert!(!u.interrupt_pending());
        u.write(1, IER_RX);
        u.receive(b"x");
        assert!(u.interrupt_pending());
        assert_eq!(u.read(2) & 0x0f, 0x04);
        u.write(2, 1);
        assert_eq!(u.read(2) & 0xc0, 0xc0);
    }
}
