//! The kernel log (levels, one prefix per subsystem, a timestamp) and the emission of
//! machine-readable events, both on the serial console.

use crate::util::event::Event;
use crate::{time::clock, util::serial_console};
use core::fmt::Write;
use log::{Level, LevelFilter, Log, Metadata, Record};

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = clock::uptime_ns();
        // The subsystem is the kernel module that logs: a module `smp` prints as `smp`.
        let target = record.target();
        let subsystem = target.strip_prefix("crate::").unwrap_or(target);
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        serial_console::with_console_line(|c| {
            let _ = writeln!(
                c,
                "[{:5}.{:06}] {level} {subsystem}: {}",
                ns / 1_000_000_000,
                ns % 1_000_000_000 / 1000,
                record.args()
            );
        });
    }

    fn flush(&self) {}
}

pub fn init() {
    // A second call only fails because the logger is already set, which is fine.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
}

/// Prints one event line: `emit("boot", |e| { e.u64("cpus", 4); })`.
pub fn emit(name: &str, fields: impl FnOnce(&mut Event<&mut dyn Write>)) {
    serial_console::with_console_line(|c| {
        let mut e = Event::new(c, name);
        fields(&mut e);
        let _ = e.finish();
    });
}

/// Like [`emit`], for panic and fault paths (bounded wait for the console lock).
pub fn emit_from_fault(name: &str, fields: impl FnOnce(&mut Event<&mut dyn Write>)) {
    serial_console::with_console_for_fault(|c| {
        let mut e = Event::new(c, name);
        fields(&mut e);
        let _ = e.finish();
    });
}
