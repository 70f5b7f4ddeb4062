//! The 8254 programmable interval timer (ports 0x40-0x43, 1.193182 MHz) and port 0x61 (the gate
//! and output of channel 2, which Linux uses to calibrate the TSC). Counters are computed from
//! the VM's clock, so the model needs no ticks: the VM asks when the next channel-0 edge is due.

use crate::machine::{PIT, PORT_B};

/// The channels' ports, then the mode register's.
const CHANNEL_0: u16 = PIT.start;
const CHANNEL_2: u16 = PIT.start + 2;
const MODE: u16 = PIT.start + 3;
pub const PIT_HZ: u64 = 1_193_182;

#[derive(Clone, Copy, Debug, Default)]
struct Channel {
    mode: u8,
    /// Access: 1 = low byte, 2 = high byte, 3 = low then high.
    access: u8,
    reload: u32,
    /// When the current count started (ns), if counting.
    start_ns: Option<u64>,
    latched: Option<u16>,
    /// For access 3: the next read/write is the high byte.
    high_next: bool,
    /// Output pin for modes 0 and 1 after terminal count.
    fired: bool,
}

impl Channel {
    fn period(&self) -> u64 {
        if self.reload == 0 { 0x10000 } else { self.reload as u64 }
    }

    fn ticks_since(&self, now: u64) -> Option<u64> {
        self.start_ns.map(|s| ((now.saturating_sub(s)) as u128 * PIT_HZ as u128 / 1_000_000_000) as u64)
    }

    fn count(&self, now: u64) -> u16 {
        match self.ticks_since(now) {
            None => self.reload as u16,
            Some(t) => match self.mode {
                2 | 3 => (self.period() - t % self.period()) as u16,
                _ => self.period().saturating_sub(t) as u16,
            },
        }
    }

    fn output(&self, now: u64) -> bool {
        match (self.mode, self.ticks_since(now)) {
            (0 | 1, Some(t)) => t >= self.period(),
            (3, Some(t)) => t % self.period() < self.period() / 2,
            (2, Some(t)) => t % self.period() != self.period() - 1,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Pit8254 {
    channels: [Channel; 3],
    /// Port 0x61 bits 0 (channel 2 gate) and 1 (speaker).
    port61: u8,
    /// Channel-0 edges already delivered (for periodic modes), to find new ones.
    delivered: u64,
}

impl Pit8254 {
    pub fn read(&mut self, port: u16, now: u64) -> u8 {
        if port == PORT_B {
            let out2 = self.channels[2].output(now) as u8;
            return (self.port61 & 0x0f) | (out2 << 5);
        }
        let Some(ch) = self.channels.get_mut((port - CHANNEL_0) as usize) else { return 0 };
        let value = ch.latched.unwrap_or_else(|| ch.count(now));
        match ch.access {
            1 => {
                ch.latched = None;
                value as u8
            }
            2 => {
                ch.latched = None;
                (value >> 8) as u8
            }
            _ => {
                ch.high_next = !ch.high_next;
                if ch.high_next {
                    value as u8
                } else {
                    ch.latched = None;
                    (value >> 8) as u8
                }
            }
        }
    }

    pub fn write(&mut self, port: u16, value: u8, now: u64) {
        match port {
            PORT_B => {
                let gate_rises = value & 1 != 0 && self.port61 & 1 == 0;
                self.port61 = value & 0x0f;
                if gate_rises {
                    self.channels[2].start_ns = Some(now);
                }
            }
            MODE => {
                let index = (value >> 6) as usize;
                if index == 3 {
                    return; // read-back command: not needed by Linux
                }
                let ch = &mut self.channels[index];
                let access = (value >> 4) & 3;
                if access == 0 {
                    ch.latched = Some(ch.count(now));
                    return;
                }
                *ch = Channel { mode: (value >> 1) & 7, access, ..Channel::default() };
                if ch.mode > 5 {
                    ch.mode &= 3;
                }
                if index == 0 {
                    self.delivered = 0;
                }
            }
            CHANNEL_0..=CHANNEL_2 => {
                let index = (port - CHANNEL_0) as usize;
                let gate = index != 2 || self.port61 & 1 != 0;
                let ch = &mut self.channels[index];
                match ch.access {
                    1 => ch.reload = (ch.reload & 0xff00) | value as u32,
                    2 => ch.reload = (ch.reload & 0x00ff) | (value as u32) << 8,
                    _ => {
                        if ch.high_next {
                            ch.reload = (ch.reload & 0x00ff) | (value as u32) << 8;
                        } else {
                            ch.reload = (ch.reload & 0xff00) | value as u32;
                        }
                        ch.high_next = !ch.high_next;
                        if ch.high_next {
                            return; // wait for the high byte
                        }
                    }
                }
                ch.fired = false;
                ch.start_ns = gate.then_some(now);
                if index == 0 {
                    self.delivered = 0;
                }
            }
            _ => {}
        }
    }

    /// Channel-0 interrupts (IRQ 0 edges) that became due since the last call.
    pub fn take_irq0(&mut self, now: u64) -> bool {
        let ch = &mut self.channels[0];
        let Some(ticks) = ch.ticks_since(now) else { return false };
        match ch.mode {
            2 | 3 => {
                let edges = ticks / ch.period();
                if edges > self.delivered {
                    self.delivered = edges;
                    return true;
                }
                false
            }
            _ => {
                if !ch.fired && ticks >= ch.period() {
                    ch.fired = true;
                    return true;
                }
                false
            }
        }
    }

    /// When the next IRQ 0 edge is due (ns), if one is.
    pub fn next_irq0_ns(&self) -> Option<u64> {
        let ch = &self.channels[0];
        let start = ch.start_ns?;
        let ticks = match ch.mode {
            2 | 3 => (self.delivered + 1) * ch.period(),
            _ if ch.fired => return None,
            _ => ch.period(),
        };
        Some(start + (ticks as u128 * 1_000_000_000 / PIT_HZ as u128) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn periodic_channel_zero() {
        let mut p = Pit8254::default();
        p.write(0x43, 0x34, 0); // channel 0, lo/hi, mode 2
        p.write(0x40, 0x9c, 0);
        p.write(0x40, 0x2e, 0); // 11932 = 10 ms
        assert!(!p.take_irq0(5 * MS));
        assert!(p.take_irq0(10 * MS + 1000));
        assert!(!p.take_irq0(11 * MS));
        let next = p.next_irq0_ns().unwrap();
        assert!((19 * MS..21 * MS).contains(&next), "{next}");
    }

    #[test]
    fn one_shot_and_latch() {
        let mut p = Pit8254::default();
        p.write(0x43, 0x30, 0); // mode 0
        p.write(0x40, 0xff, 0);
        p.write(0x40, 0xff, 0);
        p.write(0x43, 0x00, 10 * MS); // latch
        let lo = p.read(0x40, 20 * MS) as u16;
        let hi = p.read(0x40, 20 * MS) as u16;
        let count = hi << 8 | lo;
        assert!((0xffff - 11932 - 20..=0xffff - 11932 + 20).contains(&count), "{count}");
        assert!(p.take_irq0(60 * MS));
        assert!(!p.take_irq0(70 * MS));
        assert_eq!(p.next_irq0_ns(), None);
    }

    #[test]
    fn channel_two_through_port_61() {
        let mut p = Pit8254::default();
        p.write(0x61, 0x00, 0);
        p.write(0x43, 0xb0, 0); // channel 2, mode 0
        p.write(0x42, 0x9c, 0);
        p.write(0x42, 0x2e, 0);
        p.write(0x61, 0x01, MS); // gate up: counting starts
        assert_eq!(p.read(0x61, 5 * MS) & 0x20, 0);
        assert_eq!(p.read(0x61, 12 * MS) & 0x20, 0x20);
    }
}
