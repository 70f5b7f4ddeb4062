//! Physical memory: a buddy allocator of physically contiguous, naturally aligned blocks from
//! 4 KiB (order 0) to 1 GiB (order 18).
//!
//! Free blocks sit on one doubly linked list per order. The links live inside the free blocks
//! themselves and a one-byte tag per 4 KiB frame marks the head of each free block with its order,
//! so freeing coalesces with the buddy in constant time per order and allocation never touches a
//! heap. Both are reached through [`FrameMetadata`], so the same code runs in the kernel (links in
//! the direct map) and in host tests (links in a map).
//!
//! Exact-size requests ([`FrameAllocator::alloc_bytes`]) take the smallest block that fits and give
//! the unused tail back at once, so a 3 MiB request costs 3 MiB, not 4.

pub const FRAME_SIZE: u64 = embedded_vmm::paging::PAGE_4K;
/// Order of the largest block: 2^18 frames = 1 GiB.
pub const MAX_ORDER: usize = 18;
const ORDERS: usize = MAX_ORDER + 1;
const NOT_FREE: u8 = u8::MAX;
const NIL: u64 = u64::MAX;

/// Links of a free block, stored in the block itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub prev: u64,
    pub next: u64,
}

/// Where the allocator keeps its bookkeeping.
pub trait FrameMetadata {
    /// The tag of the frame at `index` (frames counted from the start of the managed span).
    fn tag(&self, index: usize) -> u8;
    fn set_tag(&mut self, index: usize, tag: u8);
    /// The links stored in the free block at physical address `block`.
    fn link(&self, block: u64) -> Link;
    fn set_link(&mut self, block: u64, link: Link);
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    OutOfMemory,
    /// Zero bytes, an order above [`MAX_ORDER`], or an alignment that is not a power of two.
    BadRequest,
    /// The address is not aligned to the block size or lies outside managed memory.
    BadAddress(u64),
    /// The range (or part of it) is already free.
    DoubleFree(u64),
}

/// Bytes in a block of `order`.
pub const fn order_size(order: usize) -> u64 {
    FRAME_SIZE << order
}

/// The smallest order whose block holds `bytes` with the given alignment.
pub fn order_for(bytes: u64, align: u64) -> Option<usize> {
    if bytes == 0 || !align.is_power_of_two() {
        return None;
    }
    let need = bytes.max(align).max(FRAME_SIZE).checked_next_power_of_two()?;
    let order = (need / FRAME_SIZE).trailing_zeros() as usize;
    (order <= MAX_ORDER).then_some(order)
}

pub struct FrameAllocator<M> {
    meta: M,
    /// Physical address of frame index 0.
    base: u64,
    frames: usize,
    heads: [u64; ORDERS],
    free_blocks: [usize; ORDERS],
}

impl<M: FrameMetadata> FrameAllocator<M> {
    /// An allocator for the span `[base, base + frames * 4 KiB)` with nothing free yet. `meta`
    /// must hold `frames` tags; they are all set here.
    pub fn new(mut meta: M, base: u64, frames: usize) -> Self {
        assert_eq!(base % FRAME_SIZE, 0, "span base must be frame aligned");
        for i in 0..frames {
            meta.set_tag(i, NOT_FREE);
        }
        FrameAllocator { meta, base, frames, heads: [NIL; ORDERS], free_blocks: [0; ORDERS] }
    }

    /// Metadata bytes needed for a span of `frames` frames.
    pub const fn tag_bytes(frames: usize) -> usize {
        frames
    }

    /// Gives the range `[start, end)` to the allocator (rounded inwards to frames).
    pub fn add_range(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let start = start.next_multiple_of(FRAME_SIZE);
        let end = end & !(FRAME_SIZE - 1);
        if start >= end {
            return Ok(());
        }
        if !self.contains(start, end - start) {
            return Err(FrameError::BadAddress(start));
        }
        self.free_range(start, end)
    }

    /// A block of `2^order` frames aligned to its size.
    pub fn alloc(&mut self, order: usize) -> Result<u64, FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::BadRequest);
        }
        let found = (order..ORDERS).find(|&o| self.heads[o] != NIL).ok_or(FrameError::OutOfMemory)?;
        let block = self.heads[found];
        self.unlink(block, found);
        // Split down to the requested order, keeping the lower half each time.
        for o in (order..found).rev() {
            self.push(block + order_size(o), o);
        }
        Ok(block)
    }

    /// Exactly `bytes` (rounded up to frames) of contiguous memory aligned to `align`. The unused
    /// tail of the underlying block goes straight back to the free lists.
    pub fn alloc_bytes(&mut self, bytes: u64, align: u64) -> Result<u64, FrameError> {
        let order = order_for(bytes, align).ok_or(FrameError::BadRequest)?;
        let block = self.alloc(order)?;
        let used = bytes.next_multiple_of(FRAME_SIZE);
        self.free_range(block + used, block + order_size(order))?;
        Ok(block)
    }

    /// Returns memory from [`Self::alloc_bytes`] (`bytes` as it was requested).
    pub fn free_bytes(&mut self, addr: u64, bytes: u64) -> Result<(), FrameError> {
        if bytes == 0 || !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::BadAddress(addr));
        }
        let end = addr.checked_add(bytes.next_multiple_of(FRAME_SIZE)).ok_or(FrameError::BadAddress(addr))?;
        if !self.contains(addr, end - addr) {
            return Err(FrameError::BadAddress(addr));
        }
        // Check the whole range first so a bad request changes nothing.
        let mut a = addr;
        while a < end {
            if self.free_block_containing(a).is_some() {
                return Err(FrameError::DoubleFree(a));
            }
            a += FRAME_SIZE;
        }
        self.free_range(addr, end)
    }

    /// Returns a block of `order` from [`Self::alloc`].
    pub fn free(&mut self, block: u64, order: usize) -> Result<(), FrameError> {
        if order > MAX_ORDER || !block.is_multiple_of(order_size(order)) || !self.contains(block, order_size(order)) {
            return Err(FrameError::BadAddress(block));
        }
        // The block must not overlap anything free: no free block contains it, and none lies
        // inside it (a larger block being freed may cover smaller free ones).
        if self.free_block_containing(block).is_some() {
            return Err(FrameError::DoubleFree(block));
        }
        if order > 0 {
            let mut a = block;
            while a < block + order_size(order) {
                if self.tag_at(a) != NOT_FREE {
                    return Err(FrameError::DoubleFree(a));
                }
                a += FRAME_SIZE;
            }
        }
        let mut block = block;
        let mut order = order;
        while order < MAX_ORDER {
            let buddy = block ^ order_size(order);
            if !self.contains(buddy, order_size(order)) || self.tag_at(buddy) != order as u8 {
                break;
            }
            self.unlink(buddy, order);
            block = block.min(buddy);
            order += 1;
        }
        self.push(block, order);
        Ok(())
    }

    /// Total free bytes.
    pub fn free_total(&self) -> u64 {
        (0..ORDERS).map(|o| self.free_blocks[o] as u64 * order_size(o)).sum()
    }

    /// Number of free blocks of each order.
    #[cfg(test)]
    pub fn free_blocks(&self) -> [usize; ORDERS] {
        self.free_blocks
    }

    /// The largest order with a free block, if any.
    pub fn largest_free_order(&self) -> Option<usize> {
        (0..ORDERS).rev().find(|&o| self.heads[o] != NIL)
    }

    fn free_range(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        let mut addr = start;
        while addr < end {
            let order = largest_order_at(addr, end - addr);
            self.free(addr, order)?;
            addr += order_size(order);
        }
        Ok(())
    }

    /// The free block that covers `addr`, as `(block, order)`.
    fn free_block_containing(&self, addr: u64) -> Option<(u64, usize)> {
        (0..ORDERS).find_map(|o| {
            let head = addr & !(order_size(o) - 1);
            (self.contains(head, FRAME_SIZE) && self.tag_at(head) == o as u8).then_some((head, o))
        })
    }

    fn contains(&self, addr: u64, len: u64) -> bool {
        let span_end = self.base + self.frames as u64 * FRAME_SIZE;
        addr >= self.base && addr.checked_add(len).is_some_and(|end| end <= span_end)
    }

    fn index(&self, addr: u64) -> usize {
        ((addr - self.base) / FRAME_SIZE) as usize
    }

    fn tag_at(&self, addr: u64) -> u8 {
        self.meta.tag(self.index(addr))
    }

    fn push(&mut self, block: u64, order: usize) {
        let head = self.heads[order];
        if head != NIL {
            let mut l = self.meta.link(head);
            l.prev = block;
            self.meta.set_link(head, l);
        }
        self.meta.set_link(block, Link { prev: NIL, next: head });
        self.heads[order] = block;
        let i = self.index(block);
        self.meta.set_tag(i, order as u8);
        self.free_blocks[order] += 1;
    }

    fn unlink(&mut self, block: u64, order: usize) {
        let Link { prev, next } = self.meta.link(block);
        if prev == NIL {
            self.heads[order] = next;
        } else {
            let mut l = self.meta.link(prev);
            l.next = next;
            self.meta.set_link(prev, l);
        }
        if next != NIL {
            let mut l = self.meta.link(next);
            l.prev = prev;
            self.meta.set_link(next, l);
        }
        let i = self.index(block);
        self.meta.set_tag(i, NOT_FREE);
        self.free_blocks[order] -= 1;
    }
}

/// The largest order of a block that starts at `addr` (aligned) and fits in `len`.
fn largest_order_at(addr: u64, len: u64) -> usize {
    let align_order = if addr == 0 { MAX_ORDER } else { (addr.trailing_zeros() as usize).saturating_sub(12) };
    let len_order = (63 - (len / FRAME_SIZE).leading_zeros()) as usize;
    align_order.min(len_order).min(MAX_ORDER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::{BTreeMap, HashMap};

    struct TestMeta {
        tags: Vec<u8>,
        links: HashMap<u64, Link>,
    }

    impl FrameMetadata for TestMeta {
        fn tag(&self, i: usize) -> u8 {
            self.tags[i]
        }
        fn set_tag(&mut self, i: usize, t: u8) {
            self.tags[i] = t;
        }
        fn link(&self, b: u64) -> Link {
            self.links[&b]
        }
        fn set_link(&mut self, b: u64, l: Link) {
            self.links.insert(b, l);
        }
    }

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn allocator(base: u64, bytes: u64) -> FrameAllocator<TestMeta> {
        let frames = (bytes / FRAME_SIZE) as usize;
        let meta = TestMeta { tags: vec![0; frames], links: HashMap::new() };
        FrameAllocator::new(meta, base, frames)
    }

    #[test]
    fn a_whole_gib_coalesces_into_one_block() {
        let mut a = allocator(0, 2 * GIB);
        a.add_range(GIB, 2 * GIB).unwrap();
        assert_eq!(a.free_blocks()[MAX_ORDER], 1);
        assert_eq!(a.free_total(), GIB);
    }

    #[test]
    fn blocks_are_aligned_to_their_size() {
        let mut a = allocator(0, 4 * GIB);
        a.add_range(MIB, 4 * GIB - 3 * FRAME_SIZE).unwrap();
        for order in [0, 1, 5, 9, 12, 18] {
            let b = a.alloc(order).unwrap();
            assert_eq!(b % order_size(order), 0, "order {order} block {b:#x}");
        }
        let b = a.alloc_bytes(3 * MIB, 2 * MIB).unwrap();
        assert_eq!(b % (2 * MIB), 0);
    }

    #[test]
    fn freeing_everything_restores_the_initial_state() {
        let mut a = allocator(0, GIB);
        a.add_range(0, GIB).unwrap();
        let before = a.free_blocks();
        let blocks: Vec<_> = (0..100).map(|i| (a.alloc(i % 7).unwrap(), i % 7)).collect();
        for (b, o) in blocks.into_iter().rev() {
            a.free(b, o).unwrap();
        }
        assert_eq!(a.free_blocks(), before);
    }

    #[test]
    fn exact_size_returns_the_tail() {
        let mut a = allocator(0, 16 * MIB);
        a.add_range(0, 16 * MIB).unwrap();
        let b = a.alloc_bytes(3 * MIB, FRAME_SIZE).unwrap();
        assert_eq!(a.free_total(), 13 * MIB);
        a.free_bytes(b, 3 * MIB).unwrap();
        assert_eq!(a.free_total(), 16 * MIB);
        assert_eq!(a.largest_free_order(), Some(12)); // 16 MiB block again
    }

    #[test]
    fn exhaustion_is_an_error_not_a_panic() {
        let mut a = allocator(0, 8 * FRAME_SIZE);
        a.add_range(0, 8 * FRAME_SIZE).unwrap();
        assert_eq!(a.alloc(4), Err(FrameError::OutOfMemory));
        for _ in 0..8 {
            a.alloc(0).unwrap();
        }
        assert_eq!(a.alloc(0), Err(FrameError::OutOfMemory));
        assert_eq!(a.alloc(MAX_ORDER + 1), Err(FrameError::BadRequest));
        assert_eq!(a.alloc_bytes(0, FRAME_SIZE), Err(FrameError::BadRequest));
        assert_eq!(a.alloc_bytes(FRAME_SIZE, 3), Err(FrameError::BadRequest));
    }

    #[test]
    fn double_and_bad_frees_are_refused_and_change_nothing() {
        let mut a = allocator(0, 4 * MIB);
        a.add_range(0, 4 * MIB).unwrap();
        let b = a.alloc(0).unwrap();
        a.free(b, 0).unwrap();
        let snapshot = a.free_blocks();
        assert!(matches!(a.free(b, 0), Err(FrameError::DoubleFree(_))));
        assert!(matches!(a.free(0, 10), Err(FrameError::DoubleFree(_))));
        assert_eq!(a.free(FRAME_SIZE / 2, 0), Err(FrameError::BadAddress(FRAME_SIZE / 2)));
        assert_eq!(a.free(8 * MIB, 0), Err(FrameError::BadAddress(8 * MIB)));
        assert!(matches!(a.free_bytes(0, 2 * FRAME_SIZE), Err(FrameError::DoubleFree(_))));
        assert_eq!(a.free_blocks(), snapshot);
    }

    #[test]
    fn larger_free_over_a_free_part_is_refused() {
        let mut a = allocator(0, 4 * MIB);
        a.add_range(0, 4 * MIB).unwrap();
        let big = a.alloc(4).unwrap();
        // Give back one frame inside the allocated block, then try to free the whole block.
        a.free(big + FRAME_SIZE, 0).unwrap();
        assert!(matches!(a.free(big, 4), Err(FrameError::DoubleFree(_))));
    }

    #[test]
    fn unaligned_ranges_with_holes() {
        let mut a = allocator(0, 64 * MIB);
        a.add_range(0x9_f000, 0x9_fc00).unwrap(); // less than a frame: nothing
        a.add_range(MIB + 0x1234, 40 * MIB + 0x800).unwrap(); // rounded inwards
        let expected = 40 * MIB - MIB - 2 * FRAME_SIZE;
        assert_eq!(a.free_total(), expected);
        assert_eq!(a.add_range(60 * MIB, 80 * MIB), Err(FrameError::BadAddress(60 * MIB)));
    }

    #[test]
    fn random_sequences_never_hand_out_overlapping_memory() {
        let mut rng = SmallRng::seed_from_u64(0x4d616e756c);
        let span = 256 * MIB;
        let mut a = allocator(0, span);
        a.add_range(2 * FRAME_SIZE, span - 5 * FRAME_SIZE).unwrap();
        let total = a.free_total();
        let initial = a.free_blocks();
        let mut live: BTreeMap<u64, u64> = BTreeMap::new(); // start -> bytes
        for step in 0..20_000 {
            if live.is_empty() || rng.gen_bool(0.55) {
                let bytes = match rng.gen_range(0..10) {
                    0 => rng.gen_range(1..=64) * MIB,
                    1..=3 => rng.gen_range(1..=512) * FRAME_SIZE,
                    _ => rng.gen_range(1..=8) * FRAME_SIZE,
                };
                let align = FRAME_SIZE << rng.gen_range(0..10);
                match a.alloc_bytes(bytes, align) {
                    Ok(b) => {
                        assert_eq!(b % align, 0);
                        let end = b + bytes;
                        if let Some((&s, &l)) = live.range(..end).next_back() {
                            assert!(s + l <= b, "step {step}: [{b:#x},{end:#x}) overlaps [{s:#x},+{l:#x})");
                        }
                        live.insert(b, bytes);
                    }
                    Err(FrameError::OutOfMemory) => {}
                    Err(e) => panic!("step {step}: {e:?}"),
                }
            } else {
                let k = *live.keys().nth(rng.gen_range(0..live.len())).unwrap();
                let bytes = live.remove(&k).unwrap();
                a.free_bytes(k, bytes).unwrap();
            }
            let used: u64 = live.values().sum();
            assert_eq!(a.free_total() + used, total, "step {step}");
        }
        for (b, bytes) in live {
            a.free_bytes(b, bytes).unwrap();
        }
        assert_eq!(a.free_total(), total);
        // Fragmentation did not stick: every block coalesced back.
        assert_eq!(a.free_blocks(), initial);
    }
}
