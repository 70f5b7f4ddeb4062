//! The map of a process's user address space: which ranges are in use, with what protection and
//! what they hold. Page tables hold the physical truth; this map answers "where is room for a new
//! mapping", "is this range mapped" and `/proc/self/maps`.

use crate::hal::cpu::USER_END;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// A 4 KiB page, as the page tables define it.
pub const PAGE: u64 = crate::hal::page_table::PAGE_4K;

/// What user code may do with a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// What a range holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AreaKind {
    /// Loaded from the program file.
    Image(String),
    Heap,
    Stack,
    Anonymous,
    /// A private copy of a file's contents.
    File {
        path: String,
        offset: u64,
    },
    /// A shared segment (`/dev/manul/seg/NAME`): the segment's own memory, at `offset` into it
    /// from the area's start (physical address `phys`); `writable` if its grant allows writing.
    Segment {
        name: String,
        phys: u64,
        offset: u64,
        writable: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Area {
    pub start: u64,
    pub end: u64,
    pub protection: Protection,
    pub shared: bool,
    pub kind: AreaKind,
}

impl Area {
    /// The part of this area inside `[start, end)`, with the file offset moved along.
    fn clip(&self, start: u64, end: u64) -> Area {
        let (s, e) = (self.start.max(start), self.end.min(end));
        Area { start: s, end: e, kind: self.kind_at(s), ..self.clone() }
    }

    /// What the area holds from `addr` on (`addr` may lie at or past its end, for the
    /// continuation of a growing area): for a file, the offset at `addr`.
    pub fn kind_at(&self, addr: u64) -> AreaKind {
        match &self.kind {
            AreaKind::File { path, offset } => {
                AreaKind::File { path: path.clone(), offset: offset.saturating_add(addr.saturating_sub(self.start)) }
            }
            AreaKind::Segment { name, phys, offset, writable } => {
                let moved = addr.saturating_sub(self.start);
                AreaKind::Segment {
                    name: name.clone(),
                    phys: phys.saturating_add(moved),
                    offset: offset.saturating_add(moved),
                    writable: *writable,
                }
            }
            k => k.clone(),
        }
    }
}

/// Why a change to the map was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AreaError {
    /// The new area overlaps an existing one (or is empty).
    Overlap,
    /// Part of the range is not mapped.
    NotMapped,
}

/// Lowest address `mmap` hands out without a hint, and where the search starts (top down).
pub const MMAP_BOTTOM: u64 = 0x1_0000_0000;
pub const MMAP_TOP: u64 = 0x7f00_0000_0000;

#[derive(Clone, Debug, Default)]
pub struct VmAreas {
    areas: BTreeMap<u64, Area>,
}

impl VmAreas {
    pub fn iter(&self) -> impl Iterator<Item = &Area> {
        self.areas.values()
    }

    /// How many areas there are.
    pub fn len(&self) -> usize {
        self.areas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.areas.is_empty()
    }

    /// The area containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Area> {
        self.areas.range(..=addr).next_back().map(|(_, a)| a).filter(|a| addr < a.end)
    }

    /// True when some area overlaps `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.areas.range(..end).next_back().is_some_and(|(_, a)| a.end > start)
    }

    /// True when `[start, end)` is entirely covered by areas.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.find(at) {
                Some(a) => at = a.end,
                None => return false,
            }
        }
        true
    }

    /// Adds an area; the caller has made room (see [`Self::remove`]). Like Linux, it merges with
    /// a neighbour that continues it (same protection and contents, private), so that a range
    /// grown piece by piece (brk, `mremap` in place) is one area again.
    pub fn insert(&mut self, area: Area) -> Result<(), AreaError> {
        if area.start >= area.end || self.overlaps(area.start, area.end) {
            return Err(AreaError::Overlap);
        }
        let (start, end) = (area.start, area.end);
        self.areas.insert(start, area);
        self.coalesce(start, end);
        Ok(())
    }

    /// Merges the areas touching `[start, end)` (its edges included) with the neighbours that
    /// continue them.
    fn coalesce(&mut self, start: u64, end: u64) {
        // Areas are sorted and disjoint, so their ends grow with their starts.
        let mut keys: Vec<u64> =
            self.areas.range(..=end).rev().take_while(|(_, a)| a.end >= start).map(|(&k, _)| k).collect();
        keys.reverse();
        let mut current: Option<u64> = None;
        for k in keys {
            if let Some(c) = current
                && let (Some(a), Some(b)) = (self.areas.get(&c), self.areas.get(&k))
                && continues(a, b)
                && let Some(next) = self.areas.remove(&k)
                && let Some(merged) = self.areas.get_mut(&c)
            {
                merged.end = next.end;
                continue;
            }
            current = Some(k);
        }
    }

    /// Removes `[start, end)` from every area it touches, splitting areas at the edges. Returns
    /// the removed pieces.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<Area> {
        let touched: Vec<u64> = self.areas.range(..end).filter(|(_, a)| a.end > start).map(|(&k, _)| k).collect();
        let mut removed = Vec::new();
        for k in touched {
            let a = self.areas.remove(&k).expect("key from the map");
            if a.start < start {
                self.areas.insert(a.start, a.clip(a.start, start));
            }
            if a.end > end {
                self.areas.insert(end, a.clip(end, a.end));
            }
            removed.push(a.clip(start, end));
        }
        removed
    }

    /// Changes the protection of `[start, end)`, which must be covered by areas.
    pub fn protect(&mut self, start: u64, end: u64, protection: Protection) -> Result<(), AreaError> {
        if !self.covers(start, end) {
            return Err(AreaError::NotMapped);
        }
        for mut piece in self.remove(start, end) {
            piece.protection = protection;
            self.areas.insert(piece.start, piece);
        }
        self.coalesce(start, end);
        Ok(())
    }

    /// A free range of `len` bytes: top-down below [`MMAP_TOP`], or at `hint` if it is free.
    pub fn find_free(&self, len: u64, align: u64, hint: u64) -> Option<u64> {
        if hint >= PAGE
            && hint.is_multiple_of(PAGE)
            && let Some(end) = hint.checked_add(len)
            && end <= USER_END
            && !self.overlaps(hint, end)
        {
            return Some(hint);
        }
        let mut top = MMAP_TOP;
        // Walk the areas downward from the top, trying the gap above each one.
        for (_, a) in self.areas.range(..MMAP_TOP).rev().chain(core::iter::once((&0, &Area::floor()))) {
            let floor = a.end.max(MMAP_BOTTOM);
            if top >= floor + len {
                let start = (top - len) & !(align - 1);
                if start >= floor {
                    return Some(start);
                }
            }
            top = top.min(a.start);
            if top <= MMAP_BOTTOM {
                return None;
            }
        }
        None
    }

    /// `/proc/self/maps` text.
    pub fn maps_text(&self) -> String {
        let mut s = String::new();
        let mut segment_path;
        for a in self.areas.values() {
            let p = a.protection;
            let (offset, name) = match &a.kind {
                AreaKind::Image(path) => (0, path.as_str()),
                AreaKind::Heap => (0, "[heap]"),
                AreaKind::Stack => (0, "[stack]"),
                AreaKind::Anonymous => (0, ""),
                AreaKind::File { path, offset } => (*offset, path.as_str()),
                AreaKind::Segment { name, offset, .. } => {
                    segment_path = alloc::format!("/dev/manul/seg/{name}");
                    (*offset, segment_path.as_str())
                }
            };
            let _ = writeln!(
                s,
                "{:08x}-{:08x} {}{}{}{} {offset:08x} 00:00 0 {name}",
                a.start,
                a.end,
                if p.read { 'r' } else { '-' },
                if p.write { 'w' } else { '-' },
                if p.execute { 'x' } else { '-' },
                if a.shared { 's' } else { 'p' },
            );
        }
        s
    }
}

/// Whether `b` continues `a` so that the two can be one area: adjacent, private, same protection,
/// same contents (for a file, the next bytes of it). Shared areas stay apart, as Linux keeps
/// separate shared mappings apart.
fn continues(a: &Area, b: &Area) -> bool {
    a.end == b.start
        && a.protection == b.protection
        && !a.shared
        && !b.shared
        && match (&a.kind, &b.kind) {
            (AreaKind::File { path, offset }, AreaKind::File { path: next_path, offset: next_offset }) => {
                path == next_path && offset.checked_add(a.end - a.start) == Some(*next_offset)
            }
            (kind, next_kind) => kind == next_kind,
        }
}

impl Area {
    /// A sentinel below every real area, ending the top-down search.
    fn floor() -> Area {
        Area {
            start: 0,
            end: 0,
            protection: Protection { read: false, write: false, execute: false },
            shared: false,
            kind: AreaKind::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: Protection = Protection { read: true, write: true, execute: false };
    const R: Protection = Protection { read: true, write: false, execute: false };

    fn anon(start: u64, end: u64) -> Area {
        Area { start, end, protection: RW, shared: false, kind: AreaKind::Anonymous }
    }

    #[test]
    fn remove_splits_and_reports() {
        let mut v = VmAreas::default();
        v.insert(anon(0x1000, 0x9000)).unwrap();
        let file = Area { kind: AreaKind::File { path: "/f".into(), offset: 0 }, ..anon(0x10000, 0x14000) };
        v.insert(file).unwrap();
        assert!(v.insert(anon(0x8000, 0xa000)).is_err());
        let removed = v.remove(0x3000, 0x12000);
        assert_eq!(removed.len(), 2);
        assert_eq!((removed[0].start, removed[0].end), (0x3000, 0x9000));
        let spans: Vec<_> = v.iter().map(|a| (a.start, a.end)).collect();
        assert_eq!(spans, [(0x1000, 0x3000), (0x12000, 0x14000)]);
        assert_eq!(v.find(0x12000).unwrap().kind, AreaKind::File { path: "/f".into(), offset: 0x2000 });
        assert!(v.find(0x5000).is_none());
    }

    #[test]
    fn a_segment_area_keeps_its_physical_place_when_split() {
        let mut v = VmAreas::default();
        let kind = AreaKind::Segment { name: "results".into(), phys: 0x4000_0000, offset: 0, writable: true };
        v.insert(Area { shared: true, kind, ..anon(0x10000, 0x14000) }).unwrap();
        v.remove(0x10000, 0x11000);
        let rest = v.find(0x11000).unwrap();
        assert_eq!(
            rest.kind,
            AreaKind::Segment { name: "results".into(), phys: 0x4000_1000, offset: 0x1000, writable: true }
        );
        assert!(
            v.maps_text().contains("00011000-00014000 rw-s 00001000 00:00 0 /dev/manul/seg/results"),
            "{}",
            v.maps_text()
        );
    }

    #[test]
    fn protect_needs_full_coverage() {
        let mut v = VmAreas::default();
        v.insert(anon(0x1000, 0x5000)).unwrap();
        assert!(v.protect(0x2000, 0x6000, R).is_err());
        v.protect(0x2000, 0x3000, R).unwrap();
        let prots: Vec<_> = v.iter().map(|a| (a.start, a.protection.write)).collect();
        assert_eq!(prots, [(0x1000, true), (0x2000, false), (0x3000, true)]);
        assert!(v.maps_text().contains("00002000-00003000 r--p"));
    }

    #[test]
    fn neighbours_that_continue_each_other_merge() {
        let mut v = VmAreas::default();
        v.insert(anon(0x1000, 0x3000)).unwrap();
        // Growing piece by piece (brk, mremap in place) gives one area.
        v.insert(anon(0x3000, 0x4000)).unwrap();
        v.insert(Area { kind: AreaKind::Heap, ..anon(0x4000, 0x5000) }).unwrap();
        v.insert(Area { kind: AreaKind::Heap, ..anon(0x5000, 0x6000) }).unwrap();
        let spans: Vec<_> = v.iter().map(|a| (a.start, a.end)).collect();
        assert_eq!(spans, [(0x1000, 0x4000), (0x4000, 0x6000)], "different kinds stay apart");
        // Filling a gap between two areas merges all three.
        v.insert(anon(0x8000, 0x9000)).unwrap();
        v.insert(anon(0x6000, 0x8800)).unwrap_err();
        v.insert(anon(0x7000, 0x8000)).unwrap();
        v.insert(anon(0x6000, 0x7000)).unwrap();
        assert_eq!(v.find(0x6000).map(|a| (a.start, a.end)), Some((0x6000, 0x9000)));
        // Shared areas, other protections and discontinuous file offsets stay apart.
        v.insert(Area { shared: true, ..anon(0x9000, 0xa000) }).unwrap();
        v.insert(Area { shared: true, ..anon(0xa000, 0xb000) }).unwrap();
        v.insert(Area { protection: R, ..anon(0xb000, 0xc000) }).unwrap();
        let file = |start, end, offset| Area { kind: AreaKind::File { path: "/f".into(), offset }, ..anon(start, end) };
        v.insert(file(0x10000, 0x11000, 0)).unwrap();
        v.insert(file(0x11000, 0x12000, 0x1000)).unwrap();
        v.insert(file(0x12000, 0x13000, 0x5000)).unwrap();
        let spans: Vec<_> = v.iter().filter(|a| a.start >= 0x9000).map(|a| (a.start, a.end)).collect();
        assert_eq!(
            spans,
            [(0x9000, 0xa000), (0xa000, 0xb000), (0xb000, 0xc000), (0x10000, 0x12000), (0x12000, 0x13000)]
        );
    }

    #[test]
    fn protecting_back_merges_again() {
        let mut v = VmAreas::default();
        v.insert(anon(0x1000, 0x5000)).unwrap();
        v.protect(0x2000, 0x3000, R).unwrap();
        assert_eq!(v.iter().count(), 3);
        v.protect(0x2000, 0x3000, RW).unwrap();
        let spans: Vec<_> = v.iter().map(|a| (a.start, a.end)).collect();
        assert_eq!(spans, [(0x1000, 0x5000)]);
    }

    #[test]
    fn free_ranges_top_down_with_hints() {
        let mut v = VmAreas::default();
        let a = v.find_free(0x200000, 0x200000, 0).unwrap();
        assert_eq!(a, MMAP_TOP - 0x200000);
        v.insert(anon(a, a + 0x200000)).unwrap();
        let b = v.find_free(0x1000, PAGE, 0).unwrap();
        assert_eq!(b, a - 0x1000);
        assert_eq!(v.find_free(0x1000, PAGE, 0x40_0000), Some(0x40_0000));
        assert_ne!(v.find_free(0x1000, PAGE, a), Some(a), "a taken hint is not used");
        assert_eq!(v.find_free(MMAP_TOP, PAGE, 0), None);
    }
}
