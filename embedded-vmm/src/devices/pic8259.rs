//! The PC's two cascaded 8259A interrupt controllers (master at 0x20, slave at 0xa0 on the
//! master's IRQ 2), edge-triggered, fixed priority: initialisation words, masks, IRR/ISR reads,
//! specific and non-specific EOI, auto-EOI. A pure state machine: the VM raises lines and asks
//! for the vector to inject.

use crate::machine::{PIC_MASTER, PIC_SLAVE};

#[derive(Clone, Copy, Debug, Default)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    vector_base: u8,
    /// Expected initialisation word (0 = initialised).
    init_step: u8,
    needs_icw4: bool,
    auto_eoi: bool,
    read_isr: bool,
    /// Line levels last seen, for edge detection.
    lines: u8,
}

impl Chip {
    fn highest(&self, bits: u8) -> Option<u8> {
        (bits != 0).then(|| bits.trailing_zeros() as u8)
    }

    /// The IRQ this chip would deliver now (priority above anything in service).
    fn pending(&self) -> Option<u8> {
        let irq = self.highest(self.irr & !self.imr)?;
        match self.highest(self.isr) {
            Some(busy) if busy <= irq => None,
            _ => Some(irq),
        }
    }

    fn write_command(&mut self, value: u8) {
        if value & 0x10 != 0 {
            // ICW1
            self.init_step = 2;
            self.needs_icw4 = value & 1 != 0;
            self.imr = 0;
            self.isr = 0;
            self.irr = 0;
            self.auto_eoi = false;
            self.read_isr = false;
        } else if value & 0x08 != 0 {
            // OCW3
            if value & 0x02 != 0 {
                self.read_isr = value & 1 != 0;
            }
        } else {
            // OCW2: EOI
            match value & 0xe0 {
                0x20 => {
                    if let Some(irq) = self.highest(self.isr) {
                        self.isr &= !(1 << irq);
                    }
                }
                0x60 => self.isr &= !(1 << (value & 7)),
                _ => {}
            }
        }
    }

    fn write_data(&mut self, value: u8) {
        match self.init_step {
            2 => {
                self.vector_base = value & 0xf8;
                self.init_step = 3;
            }
            3 => self.init_step = if self.needs_icw4 { 4 } else { 0 },
            4 => {
                self.auto_eoi = value & 0x02 != 0;
                self.init_step = 0;
            }
            _ => self.imr = value,
        }
    }

    fn read(&self, data_port: bool) -> u8 {
        if data_port {
            self.imr
        } else if self.read_isr {
            self.isr
        } else {
            self.irr
        }
    }

    fn set_line(&mut self, irq: u8, high: bool) {
        let bit = 1 << irq;
        if high && self.lines & bit == 0 {
            self.irr |= bit;
        }
        if high {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
    }

    fn acknowledge(&mut self, irq: u8) {
        self.irr &= !(1 << irq);
        if !self.auto_eoi {
            self.isr |= 1 << irq;
        }
    }
}

/// The pair's ports: a chip's command port, then its data port.
const MASTER_COMMAND: u16 = PIC_MASTER.start;
const MASTER_DATA: u16 = PIC_MASTER.start + 1;
const SLAVE_COMMAND: u16 = PIC_SLAVE.start;
const SLAVE_DATA: u16 = PIC_SLAVE.start + 1;

#[derive(Clone, Debug, Default)]
pub struct Pic8259Pair {
    master: Chip,
    slave: Chip,
}

impl Pic8259Pair {
    pub fn read(&self, port: u16) -> u8 {
        match port {
            MASTER_COMMAND | MASTER_DATA => self.master.read(port == MASTER_DATA),
            _ => self.slave.read(port == SLAVE_DATA),
        }
    }

    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            MASTER_COMMAND => self.master.write_command(value),
            MASTER_DATA => self.master.write_data(value),
            SLAVE_COMMAND => self.slave.write_command(value),
            _ => self.slave.write_data(value),
        }
    }

    /// Sets interrupt line `irq` (0-15) high or low; a rising edge makes it pending.
    pub fn set_irq(&mut self, irq: u8, high: bool) {
        if irq < 8 {
            self.master.set_line(irq, high);
        } else if irq < 16 {
            self.slave.set_line(irq - 8, high);
        }
    }

    fn cascade(&mut self) {
        let slave_wants = self.slave.pending().is_some();
        self.master.set_line(2, slave_wants);
    }

    /// Whether an interrupt is waiting for the CPU.
    pub fn has_pending(&mut self) -> bool {
        self.cascade();
        self.master.pending().is_some()
    }

    /// The CPU takes the highest-priority pending interrupt: its vector.
    pub fn acknowledge(&mut self) -> Option<u8> {
        self.cascade();
        let irq = self.master.pending()?;
        self.master.acknowledge(irq);
        if irq == 2 {
            let s = self.slave.pending()?;
            self.slave.acknowledge(s);
            self.cascade();
            return Some(self.slave.vector_base + s);
        }
        Some(self.master.vector_base + irq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's init sequence: master at 0x30, slave at 0x38, cascade on 2, 8086 mode.
    fn initialised() -> Pic8259Pair {
        let mut p = Pic8259Pair::default();
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xa0, 0x11),
            (0xa1, 0x38),
            (0xa1, 0x02),
            (0xa1, 0x01),
        ] {
            p.write(port, v);
        }
        p.write(0x21, 0x00);
        p.write(0xa1, 0x00);
        p
    }

    #[test]
    fn edges_vectors_and_eoi() {
        let mut p = initialised();
        assert!(!p.has_pending());
        p.set_irq(0, true);
        assert_eq!(p.acknowledge(), Some(0x30));
        p.set_irq(0, true); // still high: no new edge
        assert!(!p.has_pending());
        p.set_irq(0, false);
        p.set_irq(0, true);
        assert!(!p.has_pending(), "IRQ 0 still in service");
        p.write(0x20, 0x20);
        assert_eq!(p.acknowledge(), Some(0x30));
    }

    #[test]
    fn masks_priority_and_the_slave() {
        let mut p = initialised();
        p.write(0x21, 0x01); // mask IRQ 0
        p.set_irq(0, true);
        p.set_irq(4, true);
        assert_eq!(p.acknowledge(), Some(0x34));
        p.write(0x20, 0x20);
        p.set_irq(12, true);
        assert_eq!(p.acknowledge(), Some(0x3c));
        assert_eq!(p.read(0xa0) & 0x10, 0, "IRR read clears with the acknowledge");
        p.write(0xa0, 0x0b); // read ISR
        assert_eq!(p.read(0xa0), 0x10);
        p.write(0xa0, 0x20);
        p.write(0x20, 0x20);
        p.write(0x21, 0x00);
        assert_eq!(p.acknowledge(), Some(0x30));
    }
}
