//! Manul's embedded virtual machine monitor: an OS-independent `no_std` + `alloc` library that
//! boots guests with AMD SVM and nested paging. It reaches its host only through [`VmmHost`], so
//! the same code runs inside the LWK and inside the Linux module.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod acpi_builder;
pub mod cpuid;
pub mod decoder;
pub mod devices;
pub mod exit_stats;
pub mod guest_memory;
pub mod guest_paging;
pub mod host;
pub mod loaders;
pub mod machine;
pub mod paging;
pub mod pv_clock;
pub mod shared_regions;
pub mod svm;
pub mod vm;

pub use host::{HostBlock, LogLevel, VmmHost};
pub use shared_regions::SharedRegion;
pub use vm::{Vm, VmConfig, VmEnd, VmError};
