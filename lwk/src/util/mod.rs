//! Layer 1, the bottom: what every other layer uses. Error numbers, event lines and their
//! output, the calendar, the serial console's logic (`println!`), logging, backtraces.

#[cfg(target_os = "none")]
pub(crate) mod backtrace;
pub mod errno;
pub mod event;
pub mod hook;
#[cfg(target_os = "none")]
pub(crate) mod logging;
#[cfg(target_os = "none")]
pub(crate) mod power;
#[cfg(target_os = "none")]
pub(crate) mod serial_console;
