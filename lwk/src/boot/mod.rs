//! Layer 10, the top: `kernel_main`, the order things start in, and the panic handler.

#[cfg(target_os = "none")]
mod cpus;
#[cfg(target_os = "none")]
pub mod kernel_main;
#[cfg(target_os = "none")]
mod panic;
