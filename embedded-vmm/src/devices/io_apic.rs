//! The I/O APIC at 0xfec0_0000: IOREGSEL/IOWIN, ID and version, 24 redirection entries. A pin's
//! rising edge (or a level-triggered pin while it stays asserted) produces an interrupt message
//! for the local APICs; the VM routes it.

use super::local_apic::Destination;

pub const PINS: usize = 24;
const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const LOGICAL: u64 = 1 << 11;
const REMOTE_IRR: u64 = 1 << 14;

/// An interrupt message for the local APICs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    pub vector: u8,
    pub destination: Destination,
    pub lowest_priority: bool,
}

#[derive(Clone, Debug)]
pub struct IoApic {
    select: u32,
    id: u32,
    redirection: [u64; PINS],
    levels: u32,
}

impl Default for IoApic {
    fn default() -> Self {
        IoApic { select: 0, id: 0, redirection: [MASKED; PINS], levels: 0 }
    }
}

impl IoApic {
    pub fn read(&self, offset: u64) -> u32 {
        match offset {
            0x00 => self.select,
            0x10 => match self.select {
                0 => self.id,
                1 => 0x0017_0011, // 24 entries, version 0x11
                2 => self.id,
                r @ 0x10..=0x3f => {
                    let e = self.redirection[((r - 0x10) / 2) as usize];
                    if r % 2 == 0 { e as u32 } else { (e >> 32) as u32 }
                }
                _ => 0,
            },
            _ => 0,
        }
    }

    pub fn write(&mut self, offset: u64, value: u32) {
        match offset {
            0x00 => self.select = value & 0xff,
            0x10 => match self.select {
                0 => self.id = value & 0x0f00_0000,
                r @ 0x10..=0x3f => {
                    let e = &mut self.redirection[((r - 0x10) / 2) as usize];
                    *e = if r % 2 == 0 {
                        (*e & !0xffff_ffff) | (value as u64 & !REMOTE_IRR) | (*e & REMOTE_IRR)
                    } else {
                        (*e & 0xffff_ffff) | (value as u64) << 32
                    };
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn message(&self, pin: usize) -> Option<Message> {
        let e = self.redirection[pin];
        if e & MASKED != 0 {
            return None;
        }
        let dest = (e >> 56) as u8;
        let destination = if e & LOGICAL != 0 { Destination::Logical(dest) } else { Destination::Physical(dest) };
        Some(Message { vector: e as u8, destination, lowest_priority: (e >> 8) & 7 == 1 })
    }

    /// A pin's level changes; returns the message to deliver, if this raises an interrupt.
    pub fn set_pin(&mut self, pin: usize, high: bool) -> Option<Message> {
        if pin >= PINS {
            return None;
        }
        let bit = 1 << pin;
        let rising = high && self.levels & bit == 0;
        if high {
            self.levels |= bit;
        } else {
            self.levels &= !bit;
        }
        let level_triggered = self.redirection[pin] & LEVEL != 0;
        if !(rising || (level_triggered && high && self.redirection[pin] & REMOTE_IRR == 0)) {
            return None;
        }
        let m = self.message(pin)?;
        if level_triggered {
            self.redirection[pin] |= REMOTE_IRR;
        }
        Some(m)
    }

    /// An EOI for `vector` from a local APIC: level-triggered pins with it may fire again.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        for e in &mut self.redirection {
            if *e as u8 == vector {
                *e &= !REMOTE_IRR;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirection_and_edges() {
        let mut io = IoApic::default();
        io.write(0, 1);
        assert_eq!(io.read(0x10) >> 16 & 0xff, 23);
        assert_eq!(io.set_pin(2, true), None, "masked");
        io.set_pin(2, false);
        io.write(0, 0x10 + 2 * 2);
        io.write(0x10, 0x30);
        io.write(0, 0x10 + 2 * 2 + 1);
        io.write(0x10, 1 << 24);
        assert_eq!(
            io.set_pin(2, true),
            Some(Message { vector: 0x30, destination: Destination::Physical(1), lowest_priority: false })
        );
        assert_eq!(io.set_pin(2, true), None, "no new edge");
    }

    #[test]
    fn level_triggered_needs_eoi() {
        let mut io = IoApic::default();
        io.write(0, 0x10 + 2 * 9);
        io.write(0x10, 0x41 | (1 << 15));
        assert!(io.set_pin(9, true).is_some());
        assert!(io.set_pin(9, true).is_none());
        io.end_of_interrupt(0x41);
        assert!(io.set_pin(9, true).is_some());
    }
}
