//! Manul's embedded virtual machine monitor: an OS-independent `no_std` + `alloc` library that
//! boots guests with AMD SVM and nested paging. It reaches its host only through [`VmmHost`], so
//! the same code runs inside the LWK and inside the Linux module.
//!
//! Modules from the bottom up (none imports one above it): `svm` (VMCB, initial state, VMRUN),
//! `machine` (the layout), `host`, `paging`; guest memory and paging, the decoder, CPUID,
//! the paravirtual clock, statistics, shared regions, the VM's end; `devices`; `loaders` and the
//! ACPI tables; `irq` (the router); `exits`; `vcpu`; `vm`.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]
// `unsafe` only where the hardware is touched (VMRUN, the VMCB, MSRs) and where guest memory is
// reached through the host's mapping: those two modules allow it, the compiler refuses it
// elsewhere.
#![deny(unsafe_code)]

extern crate alloc;

pub mod acpi_builder;
pub mod cpuid;
pub mod decoder;
pub mod devices;
pub mod end;
pub mod exit_stats;
pub mod exits;
#[cfg(test)]
pub(crate) mod fake_host;
#[allow(unsafe_code)]
pub mod guest_memory;
pub mod guest_paging;
pub mod host;
pub mod irq;
pub mod loaders;
pub mod machine;
pub mod paging;
pub mod pv_clock;
pub mod shared_regions;
#[allow(unsafe_code)]
pub mod svm;
pub mod vcpu;
pub mod vm;

pub use host::{HostBlock, LogLevel, VmmHost};
pub use shared_regions::SharedRegion;
pub use vm::{CONSOLE_HELP_AFTER_NS, Vm, VmConfig, VmEnd, VmError, hypercall, linux_cmdline};
