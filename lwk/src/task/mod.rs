//! Layer 4: per-CPU state, the scheduler, threads and processes with their lifecycle, signals,
//! wait queues, the futex core, SMP start-up and cross-CPU calls, interrupt and fault routing.

/// Kernel memory one thread takes: its 32 KiB kernel stack, its XSAVE area and its bookkeeping.
pub const THREAD_KERNEL_BYTES: u64 = 40 * 1024;

pub mod clone_flags;
#[cfg(target_os = "none")]
pub(crate) mod exceptions;
#[cfg(target_os = "none")]
pub(crate) mod futex;
#[cfg(target_os = "none")]
pub(crate) mod interrupt_entry;
#[cfg(target_os = "none")]
pub(crate) mod per_cpu;
#[cfg(target_os = "none")]
pub(crate) mod process;
#[cfg(target_os = "none")]
pub(crate) mod process_lifecycle;
#[cfg(target_os = "none")]
pub(crate) mod scheduler;
#[cfg(target_os = "none")]
pub(crate) mod signals;
#[cfg(target_os = "none")]
pub(crate) mod smp;
#[cfg(target_os = "none")]
pub(crate) mod thread;
#[cfg(target_os = "none")]
pub(crate) mod wait_queue;
