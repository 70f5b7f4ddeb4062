//! The PIT's channel 2, gated through port 0x61 (the speaker's gate, so nothing else hears it):
//! a known interval to measure other clocks against at boot.

use crate::cpu;

/// Counts `latch` ticks of channel 2 (mode 0, interrupt on terminal count; 1.193182 MHz), calling
/// `start` as it begins and `end` as soon as it reaches zero (bit 5 of port 0x61 rises); returns
/// what they returned. The gate is restored afterwards.
pub fn time_channel2<S, E>(latch: u16, start: impl FnOnce() -> S, end: impl FnOnce() -> E) -> (S, E) {
    // SAFETY: the PIT and port 0x61 belong to the kernel; channel 2 only drives the speaker
    // gate, which is put back as it was.
    unsafe {
        let gate = cpu::inb(0x61);
        cpu::outb(0x61, (gate & !0x02) | 0x01);
        cpu::outb(0x43, 0xb0);
        cpu::outb(0x42, latch as u8);
        cpu::outb(0x42, (latch >> 8) as u8);
        let started = start();
        while cpu::inb(0x61) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let ended = end();
        cpu::outb(0x61, gate);
        (started, ended)
    }
}
