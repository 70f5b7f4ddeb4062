//! Memory the kernel lends out (a job's pool and the user pages built from it, a segment),
//! read, written, zeroed and copied through the direct map by physical address. The kernel names
//! such memory by the addresses its own page tables and pools hold; these functions refuse any
//! range that is not ordinary RAM the frame allocator manages (the first MiB, the kernel image,
//! memory past the end of RAM), so a wrong address from the kernel's logic cannot write over the
//! kernel's code or a device.

use crate::kernel_memory::phys_to_virt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The span of RAM that may be lent, and the kernel image inside it (set once by
/// `kernel_memory::init`).
static LENDABLE_START: AtomicU64 = AtomicU64::new(0);
static LENDABLE_END: AtomicU64 = AtomicU64::new(0);
static IMAGE_START: AtomicU64 = AtomicU64::new(0);
static IMAGE_END: AtomicU64 = AtomicU64::new(0);

/// A range that is not lendable RAM: a bug in the caller, reported as the caller's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLent;

pub(crate) fn set_lendable(start: u64, end: u64, image: (u64, u64)) {
    IMAGE_START.store(image.0, Ordering::Relaxed);
    IMAGE_END.store(image.1, Ordering::Relaxed);
    LENDABLE_START.store(start, Ordering::Relaxed);
    LENDABLE_END.store(end, Ordering::Release);
}

/// The direct-map address of `[phys, phys + len)` if that range is lendable RAM.
#[inline]
fn lent(phys: u64, len: usize) -> Result<*mut u8, NotLent> {
    let end = phys.checked_add(len as u64).ok_or(NotLent)?;
    let inside = phys >= LENDABLE_START.load(Ordering::Relaxed) && end <= LENDABLE_END.load(Ordering::Acquire);
    let on_image = phys < IMAGE_END.load(Ordering::Relaxed) && end > IMAGE_START.load(Ordering::Relaxed);
    if inside && !on_image { Ok(phys_to_virt(phys) as *mut u8) } else { Err(NotLent) }
}

/// Zeroes `len` bytes at `phys`.
pub fn zero(phys: u64, len: usize) -> Result<(), NotLent> {
    let at = lent(phys, len)?;
    // SAFETY: lendable RAM (checked), mapped writable by the direct map; the kernel holds no
    // Rust reference into lent memory, whose owner (a job, a segment) reaches it only through
    // its own mappings, for which it is plain memory.
    unsafe { core::ptr::write_bytes(at, 0, len) };
    Ok(())
}

/// Copies `buf.len()` bytes at `phys` into `buf`.
pub fn read(phys: u64, buf: &mut [u8]) -> Result<(), NotLent> {
    let at = lent(phys, buf.len())?;
    // SAFETY: lendable RAM (checked) seen through the direct map, not overlapping `buf` (a
    // kernel buffer; lent memory is never the kernel's).
    unsafe { core::ptr::copy_nonoverlapping(at, buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

/// Copies `data` to `phys`.
pub fn write(phys: u64, data: &[u8]) -> Result<(), NotLent> {
    let at = lent(phys, data.len())?;
    // SAFETY: as in `zero`; `data` is kernel memory, so the ranges do not overlap.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len()) };
    Ok(())
}

/// Copies `len` bytes from `src` to `dst` (both lent).
pub fn copy(dst: u64, src: u64, len: usize) -> Result<(), NotLent> {
    let (to, from) = (lent(dst, len)?, lent(src, len)?);
    // SAFETY: both ranges lendable RAM (checked); `copy` allows them to overlap.
    unsafe { core::ptr::copy(from, to, len) };
    Ok(())
}

/// The 4-byte aligned word at `phys` as an atomic (a futex word): user code accesses it
/// atomically too. Valid while the memory stays lent, which the caller ensures by holding its
/// owner (the process, the segment).
pub fn atomic_u32(phys: u64) -> Result<&'static AtomicU32, NotLent> {
    if !phys.is_multiple_of(4) {
        return Err(NotLent);
    }
    let at = lent(phys, 4)?;
    // SAFETY: an aligned word of lendable RAM (checked), mapped for the kernel's life by the
    // direct map; every access to it, the user's and the kernel's, is atomic.
    Ok(unsafe { AtomicU32::from_ptr(at as *mut u32) })
}
