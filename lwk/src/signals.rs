//! Signals. For now: a CPU exception in user mode ends the process with the matching signal
//! (status 128 + signal) and a report naming the address and instruction.

use crate::interrupt_entry::TrapFrame;
use crate::{cpu, jobs, logging, scheduler};

pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGSEGV: i32 = 11;

/// The signal a CPU exception raises, as Linux maps them.
fn signal_for(vector: u64) -> i32 {
    match vector {
        0 | 16 | 19 => SIGFPE,
        1 | 3 => SIGTRAP,
        6 => SIGILL,
        17 => SIGBUS,
        _ => SIGSEGV,
    }
}

/// An exception in user mode: the process dies with the signal.
pub fn user_fault(frame: &mut TrapFrame) -> ! {
    let signal = signal_for(frame.vector);
    let address = if frame.vector == 14 { cpu::read_cr2() } else { frame.rip };
    let Some(thread) = scheduler::current() else {
        crate::exceptions::fatal(frame);
    };
    let process = thread.process.clone();
    logging::emit("user_fault", |e| {
        e.str("job", &process.job.name)
            .u64("pid", process.pid as u64)
            .u64("tid", thread.tid as u64)
            .u64("signal", signal as u64)
            .u64("vector", frame.vector)
            .u64("error_code", frame.error_code)
            .u64("address", address)
            .u64("rip", frame.rip);
    });
    log::warn!(
        target: "signals",
        "job {} pid {}: signal {signal} (vector {}) at address {address:#x}, rip {:#x}",
        process.job.name,
        process.pid,
        frame.vector,
        frame.rip
    );
    drop(thread);
    jobs::exit_process(&process, 128 + signal)
}
