//! The panic handler: message, location and a backtrace on the console, a `panic` event, and a
//! failure exit. A panic while panicking goes straight to the exit.

use crate::power::{ExitStatus, shutdown};
use crate::{backtrace, cpu, logging, per_cpu, serial_console};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        // SAFETY: the debug-exit port; a second panic must not recurse into the console.
        unsafe { cpu::outb(0xf4, crate::power::DEBUG_EXIT_FAILURE) };
        cpu::halt_forever();
    }
    let cpu_index = per_cpu::try_current().map_or(u64::MAX, |c| c.index as u64);
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    serial_console::with_console_for_fault(|c| {
        let _ = writeln!(c, "\nPANIC on cpu {cpu_index} at {file}:{line}: {}", info.message());
        backtrace::write(c, panic as *const () as u64, cpu::read_rbp());
    });
    logging::emit_from_fault("panic", |e| {
        e.u64("cpu", cpu_index).display("message", info.message()).str("file", file).u64("line", line as u64);
    });
    shutdown(ExitStatus::Failure)
}
