//! The host the xtask works on: where things live ([`workspace`]), running child processes
//! ([`process`]) and the host programs it needs ([`prerequisites`]). Nothing here uses the other
//! folders.

pub mod prerequisites;
pub mod process;
pub mod workspace;
