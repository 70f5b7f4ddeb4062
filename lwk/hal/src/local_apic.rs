//! The local APIC of each CPU, in x2APIC mode (MSRs) when the CPU has it and xAPIC mode (MMIO)
//! otherwise: end of interrupt, IPIs (fixed, INIT, STARTUP) and the one-shot timer.

use crate::cpu::{self, ApicBase, Features, MSR_APIC_BASE};
use crate::kernel_memory;
use crate::mmio::Registers;
use crate::vectors::{SPURIOUS_VECTOR, TIMER_VECTOR};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use x86::apic::xapic::{
    XAPIC_EOI as EOI, XAPIC_ESR as ESR, XAPIC_ICR0 as ICR_LOW, XAPIC_ICR1 as ICR_HIGH, XAPIC_ID as ID,
    XAPIC_LVT_ERROR as LVT_ERROR, XAPIC_LVT_LINT0 as LVT_LINT0, XAPIC_LVT_LINT1 as LVT_LINT1,
    XAPIC_LVT_TIMER as LVT_TIMER, XAPIC_SVR as SVR, XAPIC_TIMER_CURRENT_COUNT as TIMER_CURRENT,
    XAPIC_TIMER_DIV_CONF as TIMER_DIVIDE, XAPIC_TIMER_INIT_COUNT as TIMER_INITIAL, XAPIC_TPR as TPR,
};

const LVT_MASKED: u32 = 1 << 16;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
/// Timer divide configuration value for "divide by 16".
const DIVIDE_BY_16: u32 = 0b0011;

/// 0 = x2APIC; otherwise the virtual address of the xAPIC register page.
static XAPIC_BASE: AtomicU64 = AtomicU64::new(u64::MAX);

fn x2apic() -> bool {
    XAPIC_BASE.load(Ordering::Relaxed) == 0
}

/// The xAPIC register page at `base` (non-zero: what `choose_mode` mapped).
fn xapic(base: u64) -> Registers {
    // SAFETY: `choose_mode` mapped the xAPIC page uncached at `base` (never 0: 0 means x2APIC)
    // for the kernel's life; its registers are 32-bit and 16-byte aligned.
    unsafe { Registers::new(NonNull::new_unchecked(base as *mut u32), 0x1000) }
}

fn read(reg: u32) -> u32 {
    match XAPIC_BASE.load(Ordering::Relaxed) {
        0 => cpu::rdmsr(0x800 + (reg >> 4)) as u32,
        base => xapic(base).read(reg),
    }
}

fn write(reg: u32, value: u32) {
    match XAPIC_BASE.load(Ordering::Relaxed) {
        // SAFETY: x2APIC register MSRs for the registers named above.
        0 => unsafe { cpu::wrmsr(0x800 + (reg >> 4), value as u64) },
        base => xapic(base).write(reg, value),
    }
}

/// Chooses the mode on the boot CPU (before any CPU enables its APIC).
pub fn choose_mode(features: &Features, madt_address: u64) -> Result<&'static str, crate::page_table::MapError> {
    if features.x2apic {
        XAPIC_BASE.store(0, Ordering::Relaxed);
        Ok("x2apic")
    } else {
        let base = kernel_memory::map_physical(madt_address, 0x1000, true)?;
        XAPIC_BASE.store(base, Ordering::Relaxed);
        Ok("xapic")
    }
}

/// Enables this CPU's local APIC with every local interrupt source masked.
pub fn init_this_cpu() {
    let mut base = ApicBase::from_bits_retain(cpu::rdmsr(MSR_APIC_BASE)) | ApicBase::GLOBAL_ENABLE;
    if x2apic() {
        base |= ApicBase::EXTD;
    }
    // SAFETY: sets the global enable bit (and x2APIC mode if chosen) of this CPU's APIC.
    unsafe { cpu::wrmsr(MSR_APIC_BASE, base.bits()) };
    write(TPR, 0);
    write(LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(LVT_LINT0, LVT_MASKED);
    write(LVT_LINT1, LVT_MASKED);
    write(LVT_ERROR, LVT_MASKED);
    write(ESR, 0);
    write(SVR, (1 << 8) | SPURIOUS_VECTOR as u32);
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    end_of_interrupt();
}

pub fn id() -> u32 {
    let raw = read(ID);
    if x2apic() { raw } else { raw >> 24 }
}

#[inline]
pub fn end_of_interrupt() {
    write(EOI, 0);
}

fn send(destination: u32, command: u32) {
    if x2apic() {
        // SAFETY: the x2APIC ICR is one 64-bit MSR; writing it sends the IPI.
        unsafe { cpu::wrmsr(0x830, (destination as u64) << 32 | command as u64) };
    } else {
        while read(ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
        write(ICR_HIGH, destination << 24);
        write(ICR_LOW, command);
        while read(ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

#[inline]
pub fn send_ipi(apic_id: u32, vector: u8) {
    send(apic_id, ICR_ASSERT | vector as u32);
}

pub fn send_init(apic_id: u32) {
    send(apic_id, ICR_ASSERT | ICR_INIT);
}

/// STARTUP IPI: the target starts in real mode at `page * 4096`.
pub fn send_startup(apic_id: u32, page: u8) {
    send(apic_id, ICR_ASSERT | ICR_STARTUP | page as u32);
}

/// Starts the one-shot timer; it interrupts once after `ticks` timer ticks (divide by 16).
pub fn start_timer(ticks: u32) {
    write(LVT_TIMER, TIMER_VECTOR as u32);
    write(TIMER_INITIAL, ticks.max(1));
}

/// Stops the timer and masks it.
pub fn stop_timer() {
    write(TIMER_INITIAL, 0);
    write(LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
}

/// For calibration: starts the timer counting down from the maximum, masked.
pub fn start_free_running() {
    write(LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(TIMER_INITIAL, u32::MAX);
}

pub fn timer_current() -> u32 {
    read(TIMER_CURRENT)
}
