//! What interrupts and exceptions do: the hardware layer's stubs (`lwk_hal::trap`) save the
//! interrupted context and call [`trap_dispatch`], which routes by vector (faults, the timer,
//! IPIs, the serial port) and delivers signals on the way back to user mode.

use crate::hal::vectors::{CROSS_CALL_VECTOR, RESCHEDULE_VECTOR, SERIAL_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::{hal::local_apic, task::exceptions, task::per_cpu, task::scheduler, task::signals, util::serial_console};
use core::sync::atomic::Ordering;

pub use lwk_hal::trap::TrapFrame;

/// Loads the IDT on this CPU, every vector routed to [`trap_dispatch`].
pub fn load_idt() {
    lwk_hal::trap::load_idt(trap_dispatch);
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    handle(frame);
    if frame.cs & 3 == 3 {
        signals::on_return_to_user(frame);
    }
}

fn handle(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        0..=31 if frame.cs & 3 == 3 => signals::user_fault(frame),
        0..=31 => exceptions::fatal(frame),
        TIMER_VECTOR => {
            let cpu = per_cpu::current();
            cpu.timer_interrupts.fetch_add(1, Ordering::Relaxed);
            cpu.timer_fired.store(true, Ordering::Release);
            cpu.timer_deadline.store(crate::time::clock::TIMER_STOPPED, Ordering::Release);
            local_apic::end_of_interrupt();
            scheduler::on_timer(frame);
        }
        RESCHEDULE_VECTOR => {
            per_cpu::current().cross_call_interrupts.fetch_add(1, Ordering::Relaxed);
            local_apic::end_of_interrupt();
            scheduler::preempt(frame);
        }
        CROSS_CALL_VECTOR => {
            per_cpu::current().cross_call_interrupts.fetch_add(1, Ordering::Relaxed);
            local_apic::end_of_interrupt();
            crate::hal::per_cpu::run_pending_calls();
        }
        SERIAL_VECTOR => {
            serial_console::on_receive_interrupt();
            local_apic::end_of_interrupt();
        }
        SPURIOUS_VECTOR => {
            per_cpu::current().spurious_interrupts.fetch_add(1, Ordering::Relaxed);
        }
        other => {
            per_cpu::current().other_interrupts.fetch_add(1, Ordering::Relaxed);
            log::warn!("unexpected interrupt vector {other:#x}");
            local_apic::end_of_interrupt();
        }
    }
}
