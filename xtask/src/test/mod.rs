//! `cargo xtask test` ([`runner`]): the QEMU boot scenarios ([`scenarios`]) and the fault
//! campaign's table ([`fault_campaign`]). Uses `run`, `artifacts` and `host`.

pub mod fault_campaign;
pub mod runner;
pub mod scenarios;
