//! The hardware-independent half of Manul's lightweight kernel: parsers of firmware and boot
//! data, the physical memory allocator, page-table building, the command line, event lines. It is
//! `no_std` + `alloc` in the kernel and plain Rust in host tests and fuzz targets; the kernel
//! binary (`main.rs`) adds everything that touches the hardware.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod boot_manifest;
pub mod calendar;
pub mod cmdline;
pub mod cpio;
pub mod elf_loader;
pub mod errno;
pub mod event;
pub mod job_options;
pub mod ram_fs;
pub mod user_stack;
pub mod vm_areas;
pub mod vm_options;

// The hardware layer's pure parts, at their old paths (host tests and the kernel name them so).
pub use lwk_hal::{acpi_tables, frame_allocator, heap_classes, memory_map, start_info};

/// x86-64 page tables: the kernel's own, user address spaces, and the VMM's nested tables share
/// one builder, which lives in the VMM library (it needs no OS).
pub use embedded_vmm::paging as page_table;
