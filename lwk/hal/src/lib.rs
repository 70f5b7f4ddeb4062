//! The LWK's hardware layer: the one crate of the kernel where `unsafe` lives (CPU registers,
//! MSRs, port I/O, interrupt control), each block with its SAFETY comment, behind APIs the
//! rest of the kernel uses safely. The kernel's modules move here one at a time
//! (`docs/architecture.md`, the architecture plan's step 3); the kernel crate names each one at
//! its old path (`crate::cpu`), so callers do not change.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod cpu;
pub mod fpu_state;
pub mod frame_allocator;
pub mod heap_classes;
#[cfg(target_os = "none")]
pub mod kernel_heap;
#[cfg(target_os = "none")]
pub mod kernel_memory;
pub mod memory_map;
pub mod start_info;

/// x86-64 page tables: built by the VMM library's builder, which needs no OS.
pub use embedded_vmm::paging as page_table;
