//! Layer 8: the LWK as the embedded VMM's host (`VmmHost`) and VM launch.

#[cfg(target_os = "none")]
pub(crate) mod vms;
