//! Layer 5: files. The RAM file system and the initrd's cpio, the enclave's file systems and
//! shares, descriptor tables, pipes, the synthetic `/proc` and `/sys`.

pub mod cpio;
#[cfg(target_os = "none")]
pub(crate) mod files;
#[cfg(target_os = "none")]
pub(crate) mod open_files;
pub mod open_flags;
#[cfg(target_os = "none")]
pub(crate) mod pipe;
#[cfg(target_os = "none")]
pub(crate) mod process_files;
pub mod ram_fs;
#[cfg(target_os = "none")]
pub(crate) mod synthetic_files;
