//! The interrupt vectors the kernel uses, defined once for the entry stubs that dispatch them,
//! the APICs that raise them and the code that sends them as IPIs.

/// The local APIC timer.
pub const TIMER_VECTOR: u8 = 0x20;
/// COM1's receive interrupt, through the I/O APIC.
pub const SERIAL_VECTOR: u8 = 0x24;
/// A cross-CPU call (`smp::call_on`).
pub const CROSS_CALL_VECTOR: u8 = 0xf0;
/// Wakes a CPU whose run queue gained a thread (or that has other work waiting).
pub const RESCHEDULE_VECTOR: u8 = 0xf1;
/// The local APIC's spurious interrupt.
pub const SPURIOUS_VECTOR: u8 = 0xff;
