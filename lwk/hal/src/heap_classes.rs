//! Size classes of the kernel heap: small objects (up to 2 KiB) come from per-class free lists,
//! larger ones from the frame allocator. Objects of a class are aligned to their size, so an
//! alignment is met by choosing a large enough class.

use core::alloc::Layout;

pub const CLASSES: usize = 8;
pub const SMALLEST: usize = 16;
const LARGEST: usize = SMALLEST << (CLASSES - 1); // 2 KiB

/// The size class serving `layout`, or `None` if it goes to the frame allocator.
pub fn size_class(layout: Layout) -> Option<usize> {
    let need = layout.size().max(layout.align()).max(SMALLEST).next_power_of_two();
    (need <= LARGEST).then(|| need.trailing_zeros() as usize - SMALLEST.trailing_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_size_and_alignment() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(size_class(l(1, 1)), Some(0));
        assert_eq!(size_class(l(16, 8)), Some(0));
        assert_eq!(size_class(l(17, 8)), Some(1));
        assert_eq!(size_class(l(8, 256)), Some(4));
        assert_eq!(size_class(l(2048, 8)), Some(7));
        assert_eq!(size_class(l(2049, 8)), None);
        assert_eq!(size_class(l(8, 4096)), None);
    }
}
