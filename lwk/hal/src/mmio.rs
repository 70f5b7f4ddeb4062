//! Device registers mapped uncached (the local APIC's xAPIC page, an I/O APIC's window): 32-bit
//! registers read and written through `volatile`'s pointers, so that no access is merged, left
//! out or moved, and no reference to device memory is ever made.

use core::ptr::NonNull;
use volatile::VolatilePtr;

/// A block of 32-bit device registers mapped for the kernel's life.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registers {
    base: NonNull<u32>,
    bytes: u32,
}

// SAFETY: the registers are device memory every CPU may access (each access is one volatile
// 32-bit load or store); the block holds no Rust data.
unsafe impl Send for Registers {}
// SAFETY: as above.
unsafe impl Sync for Registers {}

impl Registers {
    /// # Safety
    /// `[base, base + bytes)` must be device registers mapped uncached for the rest of the
    /// kernel's life, 4-byte aligned.
    pub(crate) const unsafe fn new(base: NonNull<u32>, bytes: u32) -> Registers {
        Registers { base, bytes }
    }

    fn register(&self, offset: u32) -> VolatilePtr<'static, u32> {
        assert!(offset.is_multiple_of(4) && offset < self.bytes, "register {offset:#x} outside the block");
        // SAFETY: inside the block (checked) and aligned; the block is mapped for the kernel's
        // life (the constructor's contract).
        unsafe { VolatilePtr::new(self.base.byte_add(offset as usize)) }
    }

    #[inline]
    pub(crate) fn read(&self, offset: u32) -> u32 {
        self.register(offset).read()
    }

    #[inline]
    pub(crate) fn write(&self, offset: u32, value: u32) {
        self.register(offset).write(value)
    }
}
