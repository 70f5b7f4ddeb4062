//! `cargo xtask bench` ([`runner`]): the workloads ([`workloads`]) and what is written of their
//! numbers ([`report`]). Uses `run`, `artifacts` and `host`.

pub mod report;
pub mod runner;
pub mod workloads;
