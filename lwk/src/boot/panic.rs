//! The panic handler: message, location and a backtrace on the console, a `panic` event, and a
//! failure exit. A panic while panicking goes straight to the exit.

use crate::util::power::{ExitStatus, shutdown};
use crate::{hal::cpu, hal::kernel_heap, task::per_cpu, util::backtrace, util::logging, util::serial_console};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

static PANICKING: AtomicBool = AtomicBool::new(false);
/// How `alloc`'s error handler begins its message.
const HEAP_EXHAUSTED: &str = "memory allocation of";

/// Whether the panic message begins with `prefix` (compared as it is formatted, without
/// allocating: the heap may be what failed).
fn starts_with(info: &PanicInfo, prefix: &str) -> bool {
    struct Prefix<'p> {
        expected: &'p [u8],
        seen: usize,
        matches: bool,
    }
    impl core::fmt::Write for Prefix<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                match self.expected.get(self.seen) {
                    Some(&e) if e == b => self.seen += 1,
                    Some(_) => self.matches = false,
                    None => return Ok(()),
                }
            }
            Ok(())
        }
    }
    let mut p = Prefix { expected: prefix.as_bytes(), seen: 0, matches: true };
    let _ = core::fmt::write(&mut p, format_args!("{}", info.message()));
    p.matches && p.seen == prefix.len()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    cpu::disable_interrupts();
    if PANICKING.swap(true, Ordering::SeqCst) {
        // A second panic must not recurse into the console: straight to the debug-exit port.
        crate::hal::power_off::debug_exit(crate::hal::power_off::DEBUG_EXIT_FAILURE);
        cpu::halt_forever();
    }
    let cpu_index = per_cpu::try_current().map_or(u64::MAX, |c| c.index as u64);
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    serial_console::with_console_for_fault(|c| {
        let _ = writeln!(c, "\nPANIC on cpu {cpu_index} at {file}:{line}: {}", info.message());
        backtrace::write(c, panic as *const () as u64, cpu::read_rbp());
    });
    // The kernel's own heap ran dry (no user-driven allocation reaches it unaccounted): a node
    // error, zone 1, said as such with what the heap held.
    let heap_exhausted = starts_with(info, HEAP_EXHAUSTED);
    logging::emit_from_fault("panic", |e| {
        e.u64("cpu", cpu_index).display("message", info.message()).str("file", file).u64("line", line as u64);
        if heap_exhausted {
            e.str("cause", "kernel heap exhausted").u64("zone", 1).u64("heap_kib", kernel_heap::bytes_in_use() >> 10);
        }
    });
    shutdown(ExitStatus::Failure)
}
