//! Manul's lightweight kernel, one module tree in layers (`docs/architecture.md`): each folder
//! imports only the folders above it in this list, and the hardware layer (`lwk-hal`, named
//! `hal` here) holds every `unsafe`. The parts that touch the hardware are compiled for the
//! kernel's target only (`cfg(target_os = "none")`); everything else is also built on the host,
//! where `cargo test` runs its tests and the fuzz targets call its parsers.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

/// The hardware layer: CPU, interrupts, memory, devices, entry code.
pub use lwk_hal as hal;

pub mod util;

pub mod mm;

pub mod time;

pub mod task;

pub mod fs;

pub mod exec;

#[cfg(target_os = "none")]
pub(crate) mod syscalls;

#[cfg(target_os = "none")]
pub(crate) mod vmm_host;

pub mod control;

#[cfg(target_os = "none")]
pub mod boot;
