//! The console: a 16550 UART on COM1. Output is polled (a line at a time under one lock, so lines
//! of different CPUs never interleave); input arrives by interrupt (IRQ 4 through the I/O APIC)
//! into a small ring the console command loop drains.

use crate::hal::cpu::IrqMutex;
use crate::hal::uart::Port16550;
use core::fmt::{self, Write};

/// The ISA interrupt of COM1.
pub use crate::hal::uart::COM1_IRQ;

pub struct Uart {
    port: Port16550,
    /// The last byte written ended a line (log lines and events must start on a fresh one).
    line_start: bool,
    /// Who wrote the current line: 0 for the kernel, else the writer [`write_owned`] names.
    owner: usize,
}

impl Uart {
    fn write_byte(&mut self, b: u8) {
        self.port.write_byte(b);
    }

    fn start_line(&mut self) {
        if !self.line_start {
            let _ = self.write_str("\n");
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        if let Some(&last) = s.as_bytes().last() {
            self.line_start = last == b'\n';
            self.owner = 0;
        }
        Ok(())
    }
}

static UART: IrqMutex<Uart> = IrqMutex::new(Uart { port: Port16550::com1(), line_start: true, owner: 0 });

/// Input bytes waiting for the console command loop.
static INPUT: IrqMutex<InputRing> = IrqMutex::new(InputRing { buf: [0; 256], head: 0, len: 0 });

struct InputRing {
    buf: [u8; 256],
    head: usize,
    len: usize,
}

pub fn init() {
    UART.lock().port.init();
}

/// Writes formatted text under the console lock.
pub fn write_fmt(args: fmt::Arguments) {
    let _ = UART.lock().write_fmt(args);
}

/// Runs `f` with the console on a fault path: the lock is taken with a bounded wait and, if
/// another CPU keeps it, the output goes to the UART regardless (garbling beats silence).
pub fn with_console_for_fault<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    match UART.try_lock_for(10_000_000) {
        Some(mut g) => {
            g.start_line();
            f(&mut *g)
        }
        None => f(&mut Uart { port: Port16550::com1(), line_start: true, owner: 0 }),
    }
}

/// Like [`with_console`], starting on a fresh line (log lines and events: a prompt or a job's
/// unfinished line must not swallow them).
pub fn with_console_line<R>(f: impl FnOnce(&mut dyn Write) -> R) -> R {
    let mut uart = UART.lock();
    uart.start_line();
    f(&mut *uart)
}

/// Writes `piece`, part of the output of writer `owner` (not 0), under the console lock: it
/// continues that writer's unfinished line only if nobody wrote since; otherwise it starts on a
/// fresh line, after the writer's `prefix`. So every console line a writer begins carries its
/// prefix, and no writer can make a line look like the kernel's (an `@manul` event).
pub fn write_owned(owner: usize, prefix: impl FnOnce(&mut dyn Write), piece: &str) {
    let mut uart = UART.lock();
    if uart.line_start || uart.owner != owner {
        uart.start_line();
        prefix(&mut *uart);
    }
    let _ = uart.write_str(piece);
    uart.owner = if uart.line_start { 0 } else { owner };
}

/// Turns on receive interrupts (once the I/O APIC routes IRQ 4).
pub fn enable_input_interrupts() {
    UART.lock().port.enable_receive_interrupt();
}

/// Interrupt handler: moves every received byte into the input ring.
pub fn on_receive_interrupt() {
    let mut uart = UART.lock();
    let mut ring = INPUT.lock();
    while let Some(b) = uart.port.read_byte() {
        if ring.len < ring.buf.len() {
            let at = (ring.head + ring.len) % ring.buf.len();
            ring.buf[at] = b;
            ring.len += 1;
        }
    }
}

/// The next input byte, if one has arrived.
/// Whether typed input waits to be read.
pub fn input_pending() -> bool {
    INPUT.lock().len != 0
}

pub fn read_input() -> Option<u8> {
    let mut ring = INPUT.lock();
    if ring.len == 0 {
        return None;
    }
    let b = ring.buf[ring.head];
    ring.head = (ring.head + 1) % ring.buf.len();
    ring.len -= 1;
    Some(b)
}

#[macro_export]
macro_rules! println {
    () => { $crate::util::serial_console::write_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::util::serial_console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::util::serial_console::write_fmt(format_args!($($arg)*)) };
}
