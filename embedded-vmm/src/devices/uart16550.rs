//! A 16550A UART (the PC's COM1 at 0x3f8, IRQ 4) as a state machine: divisor latch, FIFO
//! control, line and modem registers with loopback as Linux's 8250 driver probes them. Input
//! comes from the host.
//!
//! Output goes to the host's console a line at a time, and the host may be slower than the
//! guest (a serial port at 115,200 baud takes 9 ms for a line). The transmitter holds at most
//! one finished line for the host ([`Uart16550::take_held`] hands it over,
//! [`Uart16550::written`] says it is out) while the guest fills the next one; once the next
//! line is finished too, THR reports itself busy (LSR's THRE and TEMT clear) and a byte written
//! anyway is refused ([`Output::Full`]: the VMM makes the guest wait and write it again). So a
//! guest that floods its console only slows itself, nothing is dropped, and the VMM holds at
//! most two lines of it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

const LCR_DLAB: u8 = 0x80;
const IER_RX: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const MCR_LOOP: u8 = 0x10;
/// Longest output line kept before it is sent anyway.
const LINE_MAX: usize = 512;
/// The receive FIFO of a 16550A: a byte arriving when it is full is lost and flagged (overrun),
/// as on the chip, so that nothing a guest or the host sends grows without bound.
pub const RX_FIFO: usize = 16;
/// Line status: a received byte was lost to a full FIFO (cleared by reading LSR).
const LSR_OVERRUN: u8 = 0x02;

/// What a write to the UART asks of the VMM.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    None,
    /// A finished line waits for the host's console ([`Uart16550::take_held`]).
    LineHeld,
    /// The byte was refused: a line is held and the next one is finished too. The guest must
    /// wait until the host has written the held one, and write the byte again.
    Full,
}

/// The transmitter's line for the host.
#[derive(Debug, Default)]
enum Transmitter {
    #[default]
    Idle,
    /// A finished line, held since this host time (ns).
    Holding { line: Vec<u8>, since_ns: u64 },
    /// Taken by the host, which is writing it.
    Writing,
}

#[derive(Debug, Default)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr: u8,
    divisor: u16,
    /// A transmitter-empty interrupt is pending (set when THR can take bytes again, cleared by
    /// reading IIR or writing THR).
    thre_pending: bool,
    input: VecDeque<u8>,
    /// A byte was lost to a full receive FIFO since LSR was last read.
    overrun: bool,
    /// The line the guest is writing.
    line: Vec<u8>,
    transmitter: Transmitter,
    /// Bytes handed to the host, and bytes refused because the transmitter was busy.
    pub bytes_out: u64,
    pub refused: u64,
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
                let thre = if self.line_finished() { 0 } else { LSR_THRE };
                let temt =
                    if self.line.is_empty() && matches!(self.transmitter, Transmitter::Idle) { LSR_TEMT } else { 0 };
                thre | temt | overrun | if self.input.is_empty() { 0 } else { LSR_DATA_READY }
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

    /// Writes register `offset` at host time `now_ns`.
    pub fn write(&mut self, offset: u16, value: u8, now_ns: u64) -> Output {
        match offset {
            0 if self.lcr & LCR_DLAB != 0 => self.divisor = (self.divisor & 0xff00) | value as u16,
            0 if self.mcr & MCR_LOOP != 0 => {
                self.thre_pending = true;
                self.push_input(value);
            }
            0 => {
                if self.line_finished() {
                    self.refused += 1;
                    return Output::Full;
                }
                // Writing THR clears its interrupt; it comes again if THR can take more.
                self.thre_pending = false;
                self.line.push(value);
                if !self.line_finished() {
                    self.thre_pending = true;
                    return Output::None;
                }
                return self.hand_over(now_ns);
            }
            1 if self.lcr & LCR_DLAB != 0 => self.divisor = (self.divisor & 0xff) | (value as u16) << 8,
            1 => {
                // Enabling the THRE interrupt while THR can take bytes raises it at once.
                if value & IER_THRE != 0 && self.ier & IER_THRE == 0 && !self.line_finished() {
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
        Output::None
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

    /// Whether the line being written is finished (a newline, or [`LINE_MAX`] bytes): it waits
    /// for the transmitter, and THR takes nothing more.
    fn line_finished(&self) -> bool {
        self.line.last() == Some(&b'\n') || self.line.len() >= LINE_MAX
    }

    /// Moves a finished line to the transmitter when it is idle; THR can take bytes again.
    fn hand_over(&mut self, now_ns: u64) -> Output {
        if !self.line_finished() || !matches!(self.transmitter, Transmitter::Idle) {
            return Output::None;
        }
        self.transmitter = Transmitter::Holding { line: core::mem::take(&mut self.line), since_ns: now_ns };
        self.thre_pending = true;
        Output::LineHeld
    }

    /// Since when (host ns) a line has waited for the host, if one does.
    pub fn held_since(&self) -> Option<u64> {
        match self.transmitter {
            Transmitter::Holding { since_ns, .. } => Some(since_ns),
            _ => None,
        }
    }

    /// Whether the host is writing a line it took.
    pub fn host_writing(&self) -> bool {
        matches!(self.transmitter, Transmitter::Writing)
    }

    /// The held line, for the host to write; the transmitter stays busy until [`Self::written`].
    pub fn take_held(&mut self) -> Option<Vec<u8>> {
        match core::mem::replace(&mut self.transmitter, Transmitter::Writing) {
            Transmitter::Holding { line, .. } => {
                self.bytes_out += line.len() as u64;
                Some(line)
            }
            other => {
                self.transmitter = other;
                None
            }
        }
    }

    /// The host has written the line it took: the transmitter takes the next finished line, if
    /// there is one ([`Output::LineHeld`]: the host has more to write).
    pub fn written(&mut self, now_ns: u64) -> Output {
        if matches!(self.transmitter, Transmitter::Writing) {
            self.transmitter = Transmitter::Idle;
        }
        self.hand_over(now_ns)
    }

    /// Output not yet ended by a newline (at the VM's end, once nothing is held or written).
    pub fn take_partial_line(&mut self) -> Vec<u8> {
        self.bytes_out += self.line.len() as u64;
        core::mem::take(&mut self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` to THR at time 0; the outputs in order.
    fn send(u: &mut Uart16550, bytes: &[u8]) -> Vec<Output> {
        bytes.iter().map(|&b| u.write(0, b, 0)).collect()
    }

    #[test]
    fn lines_come_out_whole() {
        let mut u = Uart16550::default();
        assert_eq!(send(&mut u, b"hi"), [Output::None, Output::None]);
        assert_eq!(u.write(0, b'\n', 7), Output::LineHeld);
        assert_eq!(u.held_since(), Some(7));
        assert_eq!(u.read(5) & LSR_THRE, LSR_THRE, "THR takes the next line meanwhile");
        assert_eq!(u.read(5) & LSR_TEMT, 0, "the transmitter is not empty");
        assert_eq!(u.take_held(), Some(b"hi\n".to_vec()));
        assert!(u.host_writing());
        assert_eq!(u.take_held(), None, "a line is taken once");
        assert_eq!(u.written(8), Output::None);
        assert_eq!(u.read(5) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        assert_eq!(u.bytes_out, 3);
    }

    /// A guest that writes faster than the host: a second finished line makes THR busy, bytes
    /// written anyway are refused (not dropped: the VMM has the guest write them again), and
    /// the host's write of the held line lets the next one in.
    #[test]
    fn a_busy_transmitter_refuses_and_loses_nothing() {
        let mut u = Uart16550::default();
        u.write(1, IER_THRE, 0);
        assert_eq!(u.read(2) & 0x0f, 0x02);
        assert_eq!(send(&mut u, b"one\n").last(), Some(&Output::LineHeld));
        assert_eq!(send(&mut u, b"two\n").last(), Some(&Output::None));
        assert_eq!(u.read(5) & (LSR_THRE | LSR_TEMT), 0, "two lines waiting: THR busy");
        assert!(!u.interrupt_pending(), "no THRE interrupt while THR is busy");
        assert_eq!(u.write(0, b'3', 0), Output::Full);
        assert_eq!(u.refused, 1);
        assert_eq!(u.take_held(), Some(b"one\n".to_vec()));
        assert_eq!(u.write(0, b'3', 0), Output::Full, "still busy while the host writes");
        assert_eq!(u.written(5), Output::LineHeld, "the next line goes to the transmitter");
        assert!(u.interrupt_pending(), "THR empty again: the guest is told");
        assert_eq!(u.write(0, b'3', 0), Output::None);
        assert_eq!(u.take_held(), Some(b"two\n".to_vec()));
        assert_eq!(u.written(6), Output::None);
        assert_eq!(u.take_partial_line(), b"3".to_vec());
        assert_eq!(u.bytes_out, 9);
    }

    /// A line without a newline is sent at [`LINE_MAX`] bytes; memory stays at two lines.
    #[test]
    fn long_lines_are_cut_and_bounded() {
        let mut u = Uart16550::default();
        let out = send(&mut u, &[b'x'; 3 * LINE_MAX]);
        assert_eq!(out.iter().filter(|o| **o == Output::LineHeld).count(), 1);
        assert_eq!(out.iter().filter(|o| **o == Output::Full).count(), LINE_MAX);
        assert_eq!(u.line.len(), LINE_MAX);
        assert_eq!(u.take_held().map(|l| l.len()), Some(LINE_MAX));
    }

    #[test]
    fn divisor_latch_and_scratch() {
        let mut u = Uart16550::default();
        u.write(3, LCR_DLAB | 3, 0);
        u.write(0, 0x01, 0);
        u.write(1, 0x00, 0);
        assert_eq!((u.read(0), u.read(1)), (1, 0));
        u.write(3, 3, 0);
        u.write(7, 0x5a, 0);
        assert_eq!(u.read(7), 0x5a);
        assert_eq!(u.read(3), 3);
    }

    #[test]
    fn loopback_as_linux_probes_it() {
        let mut u = Uart16550::default();
        u.write(4, MCR_LOOP | 0x0a, 0); // loop, RTS, OUT2
        assert_eq!(u.read(6) & 0xf0, 0x90); // CTS and DCD
        u.write(0, 0x42, 0);
        assert_eq!(u.read(5) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(u.read(0), 0x42);
    }

    /// A guest writing in loopback mode without reading (or a host typing faster than the guest
    /// reads) fills the 16-byte FIFO and no more: the rest is lost and flagged, as on the chip.
    #[test]
    fn the_receive_fifo_is_bounded() {
        let mut u = Uart16550::default();
        u.write(4, MCR_LOOP, 0);
        for i in 0..1_000_000u32 {
            u.write(0, i as u8, 0);
        }
        assert_eq!(u.input.len(), RX_FIFO);
        assert_eq!(u.read(5) & LSR_OVERRUN, LSR_OVERRUN);
        assert_eq!(u.read(5) & LSR_OVERRUN, 0, "reading LSR clears the overrun");
        assert_eq!(u.read(0), 0);
        u.write(4, 0, 0);
        assert_eq!(u.receive(&[7; 100]), 1);
        assert_eq!(u.input.len(), RX_FIFO);
    }

    #[test]
    fn interrupts_follow_ier() {
        let mut u = Uart16550::default();
        assert!(!u.interrupt_pending());
        u.write(1, IER_THRE, 0);
        assert!(u.interrupt_pending());
        assert_eq!(u.read(2) & 0x0f, 0x02);
        assert!(!u.interrupt_pending());
        u.write(1, IER_RX, 0);
        u.receive(b"x");
        assert!(u.interrupt_pending());
        assert_eq!(u.read(2) & 0x0f, 0x04);
        u.write(2, 1, 0);
        assert_eq!(u.read(2) & 0xc0, 0xc0);
    }
}
