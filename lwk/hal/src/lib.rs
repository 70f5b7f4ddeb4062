//! The LWK's hardware layer: the one crate of the kernel where `unsafe` lives (CPU registers,
//! MSRs, port I/O, interrupt control, descriptor tables, the I/O APIC, kernel memory and the
//! heap, the XSAVE areas, the hardware random number), each block with its SAFETY comment,
//! behind APIs the rest of the kernel uses safely, and the parsers of what firmware and the
//! boot loader hand over (ACPI tables, the memory map, PVH start info). The kernel's modules move here one at a time
//! (`docs/architecture.md`, the architecture plan's step 3); the kernel crate names each one at
//! its old path (`crate::cpu`), so callers do not change.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod acpi_tables;
#[cfg(target_os = "none")]
pub mod cmos;
pub mod cpu;
#[cfg(target_os = "none")]
pub mod descriptor_tables;
pub mod fpu_state;
pub mod frame_allocator;
pub mod heap_classes;
#[cfg(target_os = "none")]
pub mod io_apic;
#[cfg(target_os = "none")]
pub mod kernel_heap;
#[cfg(target_os = "none")]
pub mod kernel_memory;
#[cfg(target_os = "none")]
pub mod local_apic;
pub mod memory_map;
#[cfg(target_os = "none")]
pub mod pit;
#[cfg(target_os = "none")]
pub mod power_off;
#[cfg(target_os = "none")]
pub mod random;
pub mod start_info;
#[cfg(target_os = "none")]
pub mod uart;
pub mod vectors;

/// x86-64 page tables: built by the VMM library's builder, which needs no OS.
pub use embedded_vmm::paging as page_table;
