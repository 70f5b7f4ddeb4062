//! `cargo xtask test` ([`runner`]): the QEMU boot scenarios ([`scenarios`]), the fault
//! campaign's table ([`fault_campaign`]) and the layer check of the
//! crates' imports (`layers`, a host test). Uses `run`, `artifacts` and `host`.

pub mod fault_campaign;
#[cfg(test)]
mod layers;
pub mod runner;
pub mod scenarios;
