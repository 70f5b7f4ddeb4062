//! Layer 2: memory management. A job's memory pool, user address spaces and their VM areas,
//! fork's copies.

#[cfg(target_os = "none")]
pub(crate) mod address_space;
#[cfg(target_os = "none")]
pub(crate) mod fork_copy;
#[cfg(target_os = "none")]
pub(crate) mod job_memory;
pub mod map_flags;
#[cfg(target_os = "none")]
pub(crate) mod segment;
pub mod vm_areas;
