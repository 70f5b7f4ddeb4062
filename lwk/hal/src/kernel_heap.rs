//! The kernel heap behind `#[global_allocator]`: small objects from per-size-class free lists
//! carved out of 4 KiB frames, larger ones straight from the buddy frame allocator in the direct
//! map (see `heap_classes`). It grows with demand; no fixed heap region limits it.

use crate::cpu::IrqMutex;
use crate::frame_allocator::FRAME_SIZE;
use crate::heap_classes::{CLASSES, SMALLEST, size_class};
use crate::kernel_memory::{alloc_frames, free_frames, phys_to_virt, virt_to_phys};
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicU64, Ordering};

/// Head of each class's free list (virtual address, 0 = empty); each free object holds the next.
static FREE: [IrqMutex<usize>; CLASSES] = [const { IrqMutex::new(0) }; CLASSES];

/// Bytes handed out and not given back (objects at their class's size, large blocks in frames).
static IN_USE: AtomicU64 = AtomicU64::new(0);
/// The most [`IN_USE`] has been.
static PEAK: AtomicU64 = AtomicU64::new(0);

/// What the kernel heap holds now: a difference of two readings is what the code between them
/// kept (another core's allocations meanwhile included).
pub fn bytes_in_use() -> u64 {
    IN_USE.load(Ordering::Relaxed)
}

/// The most the kernel heap has held at once since boot.
pub fn peak_bytes() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// The bytes an allocation of `layout` takes.
fn footprint(layout: Layout) -> u64 {
    match size_class(layout) {
        Some(class) => (SMALLEST << class) as u64,
        None => (layout.size() as u64).next_multiple_of(FRAME_SIZE),
    }
}

struct KernelHeap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;

// SAFETY: every block handed out is either a size-class object that no one else holds, or
// frames owned by the caller until dealloc; alignment follows from `size_class` (objects aligned
// to their power-of-two size within page-aligned frames) and from the frame allocator's
// alignment argument.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { self.alloc_block(layout) };
        if !block.is_null() {
            let size = footprint(layout);
            let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(footprint(layout), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.dealloc_block(ptr, layout) }
    }
}

impl KernelHeap {
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    unsafe fn alloc_block(&self, layout: Layout) -> *mut u8 {
        let Some(class) = size_class(layout) else {
            let align = (layout.align() as u64).max(FRAME_SIZE);
            return match alloc_frames(layout.size() as u64, align) {
                Ok(phys) => phys_to_virt(phys) as *mut u8,
                Err(_) => core::ptr::null_mut(),
            };
        };
        let mut head = FREE[class].lock();
        if *head == 0 {
            let Ok(phys) = alloc_frames(FRAME_SIZE, FRAME_SIZE) else { return core::ptr::null_mut() };
            let page = phys_to_virt(phys) as usize;
            let size = SMALLEST << class;
            // Thread the new page's objects onto the list.
            for obj in (page..page + FRAME_SIZE as usize).step_by(size) {
                let next = if obj + size < page + FRAME_SIZE as usize { obj + size } else { 0 };
                // SAFETY: `obj` lies in the frame just allocated for this class.
                unsafe { (obj as *mut usize).write(next) };
            }
            *head = page;
        }
        let obj = *head;
        // SAFETY: `obj` is a free object of this class; its first word is the next free one.
        *head = unsafe { (obj as *const usize).read() };
        obj as *mut u8
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    unsafe fn dealloc_block(&self, ptr: *mut u8, layout: Layout) {
        match size_class(layout) {
            Some(class) => {
                let mut head = FREE[class].lock();
                // SAFETY: the caller returns an object of this class it got from `alloc`.
                unsafe { (ptr as *mut usize).write(*head) };
                *head = ptr as usize;
            }
            None => {
                let freed = free_frames(virt_to_phys(ptr as u64), layout.size() as u64);
                debug_assert!(freed.is_ok(), "heap dealloc of {ptr:p} failed: {freed:?}");
            }
        }
    }
}
