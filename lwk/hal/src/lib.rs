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
