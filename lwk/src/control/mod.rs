//! Layer 9: the control plane. The command line and the boot manifest, enclaves, jobs, the
//! console's commands, node health, the node's shutdown.

pub mod boot_manifest;
pub mod cmdline;
#[cfg(target_os = "none")]
pub(crate) mod console_commands;
#[cfg(target_os = "none")]
pub(crate) mod enclaves;
pub mod job_options;
#[cfg(target_os = "none")]
pub(crate) mod jobs;
#[cfg(target_os = "none")]
pub(crate) mod node_health;
pub mod vm_options;
