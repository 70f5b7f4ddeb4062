//! The physical memory map at boot: the usable RAM ranges from the firmware's map, minus what is
//! already taken (the first MiB, the kernel image, boot modules). It hands out early memory (boot
//! page tables, allocator metadata) before the frame allocator exists, and then gives the rest of
//! its ranges to that allocator. Fixed capacity: it works before there is a heap.

/// Reads bytes of physical memory into a buffer; `false` when the range cannot be read. Parsers of
/// firmware data (start_info, ACPI) take their memory through it, so host tests can fake it.
pub trait PhysRead {
    fn read(&self, phys: u64, buf: &mut [u8]) -> bool;
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Firmware memory types (E820 numbering, as PVH start_info uses).
pub const E820_RAM: u32 = 1;

const CAPACITY: usize = 128;

#[derive(Clone, Debug)]
pub struct MemoryMap {
    ranges: [Range; CAPACITY],
    count: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMapError {
    /// More distinct ranges than the fixed table holds.
    TooManyRanges,
    /// No usable range can satisfy an early allocation.
    OutOfMemory { bytes: u64 },
}

impl Default for MemoryMap {
    fn default() -> Self {
        MemoryMap { ranges: [Range::default(); CAPACITY], count: 0 }
    }
}

impl MemoryMap {
    /// Adds usable memory, merging with overlapping or touching ranges and keeping the table
    /// sorted.
    pub fn add(&mut self, start: u64, end: u64) -> Result<(), MemoryMapError> {
        if start >= end {
            return Ok(());
        }
        let mut new = Range { start, end };
        // Absorb every range that overlaps or touches the new one.
        let mut i = 0;
        while i < self.count {
            let r = self.ranges[i];
            if r.start <= new.end && new.start <= r.end {
                new.start = new.start.min(r.start);
                new.end = new.end.max(r.end);
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        let pos = self.ranges[..self.count].iter().position(|r| r.start > new.start).unwrap_or(self.count);
        self.insert_at(pos, new)
    }

    /// Removes `[start, end)` from the usable memory.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), MemoryMapError> {
        let mut i = 0;
        while i < self.count {
            let r = self.ranges[i];
            if end <= r.start || start >= r.end {
                i += 1;
                continue;
            }
            match (start > r.start, end < r.end) {
                (true, true) => {
                    // Insert first so that a full table leaves the map unchanged.
                    self.insert_at(i + 1, Range { start: end, end: r.end })?;
                    self.ranges[i].end = start;
                    return Ok(());
                }
                (true, false) => {
                    self.ranges[i].end = start;
                    i += 1;
                }
                (false, true) => {
                    self.ranges[i].start = end;
                    i += 1;
                }
                (false, false) => self.remove_at(i),
            }
        }
        Ok(())
    }

    /// Takes `bytes` aligned to `align` from the lowest usable range that fits and lies entirely
    /// below `limit`.
    pub fn take(&mut self, bytes: u64, align: u64, limit: u64) -> Result<u64, MemoryMapError> {
        let found = self.ranges[..self.count].iter().find_map(|r| {
            let start = r.start.checked_next_multiple_of(align)?;
            let end = start.checked_add(bytes)?;
            (end <= r.end && end <= limit).then_some(start)
        });
        let start = found.ok_or(MemoryMapError::OutOfMemory { bytes })?;
        self.reserve(start, start + bytes)?;
        Ok(start)
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges[..self.count]
    }

    pub fn total(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    /// End of the highest usable byte.
    pub fn end(&self) -> u64 {
        self.ranges().last().map_or(0, |r| r.end)
    }

    fn insert_at(&mut self, pos: usize, r: Range) -> Result<(), MemoryMapError> {
        if self.count == CAPACITY {
            return Err(MemoryMapError::TooManyRanges);
        }
        self.ranges.copy_within(pos..self.count, pos + 1);
        self.ranges[pos] = r;
        self.count += 1;
        Ok(())
    }

    fn remove_at(&mut self, pos: usize) {
        self.ranges.copy_within(pos + 1..self.count, pos);
        self.count -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ranges: &[(u64, u64)]) -> MemoryMap {
        let mut m = MemoryMap::default();
        for &(s, e) in ranges {
            m.add(s, e).unwrap();
        }
        m
    }

    fn pairs(m: &MemoryMap) -> Vec<(u64, u64)> {
        m.ranges().iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn adds_merge_and_sort() {
        let m = map(&[(0x5000, 0x6000), (0x1000, 0x2000), (0x2000, 0x3000), (0x2800, 0x5800)]);
        assert_eq!(pairs(&m), [(0x1000, 0x6000)]);
        let m = map(&[(0x9000, 0xa000), (0x1000, 0x2000)]);
        assert_eq!(pairs(&m), [(0x1000, 0x2000), (0x9000, 0xa000)]);
    }

    #[test]
    fn reserve_splits_trims_and_removes() {
        let mut m = map(&[(0, 0x10000), (0x20000, 0x30000)]);
        m.reserve(0x4000, 0x5000).unwrap();
        assert_eq!(pairs(&m), [(0, 0x4000), (0x5000, 0x10000), (0x20000, 0x30000)]);
        m.reserve(0, 0x1000).unwrap();
        m.reserve(0xf000, 0x21000).unwrap();
        assert_eq!(pairs(&m), [(0x1000, 0x4000), (0x5000, 0xf000), (0x21000, 0x30000)]);
        m.reserve(0, u64::MAX).unwrap();
        assert!(m.ranges().is_empty());
    }

    #[test]
    fn take_respects_alignment_and_limit() {
        let mut m = map(&[(0x1000, 0x3000), (0x10_0000, 0x40_0000)]);
        let a = m.take(0x1000, 0x1000, u64::MAX).unwrap();
        assert_eq!(a, 0x1000);
        let b = m.take(0x20_0000, 0x20_0000, u64::MAX).unwrap();
        assert_eq!(b, 0x20_0000);
        assert_eq!(m.take(0x10_0000, 0x1000, 0x10_0000), Err(MemoryMapError::OutOfMemory { bytes: 0x10_0000 }));
        assert_eq!(m.total(), 0x1000 + 0x10_0000);
    }

    #[test]
    fn capacity_is_reported() {
        let mut m = MemoryMap::default();
        for i in 0..CAPACITY as u64 {
            m.add(i * 0x2000, i * 0x2000 + 0x1000).unwrap();
        }
        assert_eq!(m.add(u64::MAX - 10, u64::MAX), Err(MemoryMapError::TooManyRanges));
        assert_eq!(m.reserve(0x100, 0x200), Err(MemoryMapError::TooManyRanges));
        assert_eq!(m.ranges()[0], Range { start: 0, end: 0x1000 });
    }
}
