//! The LWK's hardware layer: the one crate of the kernel where `unsafe` lives, each block with
//! its SAFETY comment, behind APIs the rest of the kernel (`#![deny(unsafe_code)]`) uses
//! safely: CPU registers, MSRs, port I/O and interrupt control; descriptor tables, interrupt
//! and `syscall` entry, the context switch, the PVH entry and the start of the other CPUs;
//! per-CPU storage; the local and I/O APIC, PIT, CMOS, the serial port, power-off; kernel
//! memory (frames, the direct map, stacks, page-table roots), memory lent to jobs and
//! segments, and the heap; the XSAVE areas; the hardware random number. It also holds the
//! parsers of what firmware and the boot loader hand over (ACPI tables, the memory map, PVH
//! start info). The kernel names most modules at their old paths (`crate::cpu`).
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

#[cfg(target_os = "none")]
#[macro_use]
mod frame_asm;

pub mod acpi_tables;
#[cfg(target_os = "none")]
pub mod cmos;
#[cfg(target_os = "none")]
pub mod context;
pub mod cpu;
#[cfg(target_os = "none")]
pub mod cpu_start;
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
pub mod lent_memory;
#[cfg(target_os = "none")]
pub mod local_apic;
pub mod memory_map;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
pub mod per_cpu;
#[cfg(target_os = "none")]
pub mod pit;
#[cfg(target_os = "none")]
pub mod power_off;
#[cfg(target_os = "none")]
mod pvh_entry;
#[cfg(target_os = "none")]
pub mod random;
pub mod start_info;
#[cfg(target_os = "none")]
pub mod syscall_entry;
#[cfg(target_os = "none")]
pub mod trap;
#[cfg(target_os = "none")]
pub mod uart;
pub mod vectors;

/// x86-64 page tables: built by the VMM library's builder, which needs no OS.
pub use embedded_vmm::paging as page_table;
