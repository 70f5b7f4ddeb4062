//! x86-64 four-level page tables: mapping ranges with the largest pages alignment allows and
//! translating addresses. Tables are reached through [`TableMemory`], so the kernel works on real
//! frames through its direct map and host tests work on plain arrays.

use bitflags::bitflags;

bitflags! {
    /// Bits of a page-table entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PageFlags: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        const WRITE_THROUGH = 1 << 3;
        const NO_CACHE = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        /// In a PDPT or PD entry: this entry maps a 1 GiB or 2 MiB page.
        const HUGE = 1 << 7;
        const GLOBAL = 1 << 8;
        const NO_EXECUTE = 1 << 63;
    }
}

pub const PAGE_4K: u64 = x86::bits64::paging::BASE_PAGE_SIZE as u64;
pub const PAGE_2M: u64 = x86::bits64::paging::LARGE_PAGE_SIZE as u64;
pub const PAGE_1G: u64 = x86::bits64::paging::HUGE_PAGE_SIZE as u64;
/// The physical address bits of a page-table entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Access to page-table frames by physical address.
pub trait TableMemory {
    /// A zeroed 4 KiB frame for a new table, or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<u64>;
    fn table(&mut self, phys: u64) -> &mut [u64; 512];
    /// Takes back a table frame that [`unmap`] emptied.
    fn free_table(&mut self, phys: u64);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// An address or length is not 4 KiB aligned.
    Unaligned,
    /// The virtual range is not canonical or wraps around.
    NonCanonical(u64),
    /// Something is already mapped at this virtual address.
    AlreadyMapped(u64),
    OutOfMemory,
}

/// Which page sizes the mapping may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSizes {
    pub use_2m: bool,
    /// Needs CPUID 0x80000001 EDX bit 26 (pdpe1gb).
    pub use_1g: bool,
}

/// A translated address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub phys: u64,
    pub page_size: u64,
    pub flags: PageFlags,
}

fn is_canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1ffff
}

fn index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Maps `[virt, virt + len)` to `[phys, phys + len)` with `flags` (PRESENT is added). Each step
/// uses the largest page the alignment of both addresses, the remaining length and `sizes` allow.
/// On error, the pages mapped before the error stay mapped.
pub fn map<M: TableMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    phys: u64,
    len: u64,
    flags: PageFlags,
    sizes: PageSizes,
) -> Result<(), MapError> {
    if (virt | phys | len) & (PAGE_4K - 1) != 0 {
        return Err(MapError::Unaligned);
    }
    let last = virt.checked_add(len.saturating_sub(1)).ok_or(MapError::NonCanonical(virt))?;
    if !is_canonical(virt) || !is_canonical(last) || (virt >> 63) != (last >> 63) {
        return Err(MapError::NonCanonical(virt));
    }
    let mut done = 0;
    while done < len {
        let (v, p, rest) = (virt + done, phys + done, len - done);
        let fits = |size: u64| (v | p) & (size - 1) == 0 && rest >= size;
        let (level, size) = if sizes.use_1g && fits(PAGE_1G) {
            (2, PAGE_1G)
        } else if sizes.use_2m && fits(PAGE_2M) {
            (1, PAGE_2M)
        } else {
            (0, PAGE_4K)
        };
        map_one(mem, root, v, p, level, flags)?;
        done += size;
    }
    Ok(())
}

/// Installs one leaf at `level` (0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB).
fn map_one<M: TableMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    phys: u64,
    level: u32,
    flags: PageFlags,
) -> Result<(), MapError> {
    let table_flags = PageFlags::PRESENT | PageFlags::WRITABLE | (flags & PageFlags::USER);
    let mut table = root;
    for l in (level + 1..=3).rev() {
        let i = index(virt, l);
        let entry = mem.table(table)[i];
        if entry & PageFlags::PRESENT.bits() == 0 {
            let new = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
            mem.table(table)[i] = new | table_flags.bits();
            table = new;
        } else if entry & PageFlags::HUGE.bits() != 0 {
            return Err(MapError::AlreadyMapped(virt));
        } else {
            mem.table(table)[i] = entry | table_flags.bits();
            table = entry & ADDRESS_MASK;
        }
    }
    let i = index(virt, level);
    let slot = &mut mem.table(table)[i];
    if *slot & PageFlags::PRESENT.bits() != 0 {
        return Err(MapError::AlreadyMapped(virt));
    }
    let huge = if level > 0 { PageFlags::HUGE } else { PageFlags::empty() };
    *slot = phys | (flags | PageFlags::PRESENT | huge).bits();
    Ok(())
}

/// Size of the region one entry at `level` maps (0 = 4 KiB page ... 3 = 512 GiB).
fn entry_size(level: u32) -> u64 {
    PAGE_4K << (9 * level)
}

/// Replaces the huge leaf at `table[i]` (at `level` 1 or 2) by a table of smaller leaves with
/// the same flags.
fn split<M: TableMemory>(mem: &mut M, table: u64, i: usize, level: u32) -> Result<(), MapError> {
    let entry = mem.table(table)[i];
    let child = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
    let size = entry_size(level - 1);
    let base = entry & ADDRESS_MASK & !(entry_size(level) - 1);
    let mut flags = PageFlags::from_bits_truncate(entry);
    if level == 1 {
        flags -= PageFlags::HUGE;
    }
    let children = mem.table(child);
    for (k, slot) in children.iter_mut().enumerate() {
        *slot = (base + k as u64 * size) | flags.bits();
    }
    // The new table's entry limits nothing the leaves do not (as a table entry from `map_one`):
    // a split read-only or PROT_NONE page must not keep its parts read-only once `protect`
    // opens them.
    let table_flags =
        PageFlags::PRESENT | PageFlags::WRITABLE | (PageFlags::from_bits_truncate(entry) & PageFlags::USER);
    mem.table(table)[i] = child | table_flags.bits();
    Ok(())
}

/// What [`walk`] does to each leaf wholly inside the range.
enum LeafAction<'a> {
    /// Remove it, reporting `(phys, size)` to the callback.
    Unmap(&'a mut dyn FnMut(u64, u64)),
    /// Replace its flags (HUGE is kept as the entry needs).
    Protect(PageFlags),
}

/// Applies `action` to `[start, end)` under `table` (which maps from `base` at `level`), splitting
/// huge pages that the range covers only in part. Returns whether `table` is now empty.
fn walk<M: TableMemory>(
    mem: &mut M,
    table: u64,
    level: u32,
    base: u64,
    start: u64,
    end: u64,
    action: &mut LeafAction,
) -> Result<bool, MapError> {
    let size = entry_size(level);
    let first = ((start - base) / size) as usize;
    let last = ((end - 1 - base) / size) as usize;
    for i in first..=last {
        let entry = mem.table(table)[i];
        if entry & PageFlags::PRESENT.bits() == 0 {
            continue;
        }
        let lo = base + i as u64 * size;
        let hi = lo + size;
        let whole = start <= lo && hi <= end;
        let leaf = level == 0 || entry & PageFlags::HUGE.bits() != 0;
        if leaf && whole {
            match action {
                LeafAction::Unmap(release) => {
                    mem.table(table)[i] = 0;
                    release(entry & ADDRESS_MASK & !(size - 1), size);
                }
                LeafAction::Protect(flags) => {
                    let huge = entry & PageFlags::HUGE.bits();
                    let phys = entry & ADDRESS_MASK;
                    mem.table(table)[i] = phys | (*flags | PageFlags::PRESENT).bits() | huge;
                }
            }
            continue;
        }
        if leaf {
            split(mem, table, i, level)?;
        }
        if let LeafAction::Protect(flags) = action {
            // A table's entry limits every page below it: pages made user-accessible need the
            // user bit on the way down too (a range first mapped PROT_NONE was mapped without).
            mem.table(table)[i] |= (PageFlags::WRITABLE | (*flags & PageFlags::USER)).bits();
        }
        let child = mem.table(table)[i] & ADDRESS_MASK;
        let empty = walk(mem, child, level - 1, lo, start.max(lo), end.min(hi), action)?;
        if empty {
            mem.table(table)[i] = 0;
            mem.free_table(child);
        }
    }
    Ok(mem.table(table).iter().all(|e| e & PageFlags::PRESENT.bits() == 0))
}

fn check_range(virt: u64, len: u64) -> Result<u64, MapError> {
    if (virt | len) & (PAGE_4K - 1) != 0 {
        return Err(MapError::Unaligned);
    }
    let end = virt.checked_add(len).ok_or(MapError::NonCanonical(virt))?;
    if !is_canonical(virt) || (len > 0 && !is_canonical(end - 1)) || (len > 0 && (virt >> 63) != ((end - 1) >> 63)) {
        return Err(MapError::NonCanonical(virt));
    }
    Ok(end)
}

/// Removes every mapping in `[virt, virt + len)` (holes are fine), calling `release(phys, size)`
/// for each piece of physical memory unmapped, and frees the tables that become empty (never the
/// root). A huge page covered only in part is split first, so only the covered part goes.
pub fn unmap<M: TableMemory>(
    mem: &mut M,
    root: u64,
    virt: u64,
    len: u64,
    release: &mut dyn FnMut(u64, u64),
) -> Result<(), MapError> {
    let end = check_range(virt, len)?;
    if len == 0 {
        return Ok(());
    }
    // The root's entry 0 would map from here: 0 for the lower half, 0xffff_0000_0000_0000 for
    // the upper half (whose entries are 256..512).
    let base = virt & !(entry_size(4) - 1);
    walk(mem, root, 3, base, virt, end, &mut LeafAction::Unmap(release)).map(|_| ())
}

/// Sets the flags of every page mapped in `[virt, virt + len)` to `flags` (PRESENT is added);
/// huge pages covered only in part are split.
pub fn protect<M: TableMemory>(mem: &mut M, root: u64, virt: u64, len: u64, flags: PageFlags) -> Result<(), MapError> {
    let end = check_range(virt, len)?;
    if len == 0 {
        return Ok(());
    }
    let base = virt & !(entry_size(4) - 1);
    walk(mem, root, 3, base, virt, end, &mut LeafAction::Protect(flags)).map(|_| ())
}

/// Moves the pages mapped in `[from, from + len)` to `[to, to + len)` (which must not overlap it
/// and must be unmapped), keeping their physical memory and flags; holes stay holes. The target
/// uses the largest pages the alignment allows. On error nothing has changed: what was mapped at
/// the target is unmapped again and the source is left as it was.
pub fn move_range<M: TableMemory>(
    mem: &mut M,
    root: u64,
    from: u64,
    to: u64,
    len: u64,
    sizes: PageSizes,
) -> Result<(), MapError> {
    let from_end = check_range(from, len)?;
    let to_end = check_range(to, len)?;
    if len == 0 {
        return Ok(());
    }
    if from < to_end && to < from_end {
        return Err(MapError::AlreadyMapped(to));
    }
    let mut done = 0;
    while done < len {
        let at = from + done;
        let Some(t) = translate(mem, root, at) else {
            done += PAGE_4K;
            continue;
        };
        let piece = (t.page_size - (at & (t.page_size - 1))).min(len - done);
        let flags = t.flags - (PageFlags::PRESENT | PageFlags::ACCESSED | PageFlags::DIRTY);
        if let Err(e) = map(mem, root, to + done, t.phys, piece, flags, sizes) {
            // Take back what was mapped at the target; the frames still belong to the source.
            let _ = unmap(mem, root, to, done + piece, &mut |_, _| {});
            return Err(e);
        }
        done += piece;
    }
    unmap(mem, root, from, len, &mut |_, _| {})
}

/// Translates `virt`, or `None` if it is not mapped.
pub fn translate<M: TableMemory>(mem: &mut M, root: u64, virt: u64) -> Option<Translation> {
    if !is_canonical(virt) {
        return None;
    }
    let mut table = root;
    for level in (0..=3).rev() {
        let entry = mem.table(table)[index(virt, level)];
        if entry & PageFlags::PRESENT.bits() == 0 {
            return None;
        }
        let page_size = PAGE_4K << (9 * level);
        if level == 0 || (level <= 2 && entry & PageFlags::HUGE.bits() != 0) {
            let flags = PageFlags::from_bits_truncate(entry) - PageFlags::HUGE;
            let base = entry & ADDRESS_MASK & !(page_size - 1);
            return Some(Translation { phys: base + (virt & (page_size - 1)), page_size, flags });
        }
        table = entry & ADDRESS_MASK;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables in a vector; "physical" address = (index + 1) * 4 KiB.
    #[derive(Default)]
    struct Frames(Vec<Box<[u64; 512]>>);

    impl TableMemory for Frames {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.0.len() >= 64 {
                return None;
            }
            self.0.push(Box::new([0; 512]));
            Some(self.0.len() as u64 * PAGE_4K)
        }
        fn table(&mut self, phys: u64) -> &mut [u64; 512] {
            &mut self.0[(phys / PAGE_4K - 1) as usize]
        }
        fn free_table(&mut self, phys: u64) {
            // Mark freed tables so a use after free shows up as garbage entries.
            self.table(phys).fill(0xdead_0000_0001);
        }
    }

    const ALL: PageSizes = PageSizes { use_2m: true, use_1g: true };
    const RW: PageFlags = PageFlags::WRITABLE;

    fn setup() -> (Frames, u64) {
        let mut f = Frames::default();
        let root = f.alloc_table().unwrap();
        (f, root)
    }

    #[test]
    fn direct_map_uses_the_largest_pages() {
        let (mut f, root) = setup();
        let base = 0xffff_8000_0000_0000;
        // 0x1000..0x8020_0000: 4K pages up to 2M, 2M pages up to 1G, a 1G page, then one 2M page.
        map(&mut f, root, base + 0x1000, 0x1000, 0x8020_0000 - 0x1000, RW, ALL).unwrap();
        let t = |f: &mut Frames, v: u64| translate(f, root, base + v).unwrap();
        assert_eq!(t(&mut f, 0x1234), Translation { phys: 0x1234, page_size: PAGE_4K, flags: RW | PageFlags::PRESENT });
        assert_eq!(t(&mut f, 0x20_0000).page_size, PAGE_2M);
        assert_eq!(
            t(&mut f, 0x4000_0123),
            Translation { phys: 0x4000_0123, page_size: PAGE_1G, flags: RW | PageFlags::PRESENT }
        );
        assert_eq!(t(&mut f, 0x8010_0000).page_size, PAGE_2M);
        assert_eq!(translate(&mut f, root, base), None);
        assert_eq!(translate(&mut f, root, base + 0x8020_0000), None);
    }

    #[test]
    fn without_1g_pages_2m_pages_are_used() {
        let (mut f, root) = setup();
        let sizes = PageSizes { use_2m: true, use_1g: false };
        map(&mut f, root, 0x4000_0000, 0x4000_0000, PAGE_1G, RW, sizes).unwrap();
        assert_eq!(translate(&mut f, root, 0x7fff_ffff).unwrap().page_size, PAGE_2M);
    }

    #[test]
    fn misaligned_physical_forces_small_pages() {
        let (mut f, root) = setup();
        map(&mut f, root, 0x20_0000, 0x1000, PAGE_2M, RW, ALL).unwrap();
        let tr = translate(&mut f, root, 0x3f_ffff).unwrap();
        assert_eq!((tr.phys, tr.page_size), (0x20_0fff, PAGE_4K));
    }

    #[test]
    fn flags_reach_the_leaf_and_user_reaches_the_path() {
        let (mut f, root) = setup();
        let nx = PageFlags::NO_EXECUTE | PageFlags::USER;
        map(&mut f, root, 0x40_0000, 0x9000, PAGE_4K, nx, ALL).unwrap();
        let tr = translate(&mut f, root, 0x40_0000).unwrap();
        assert_eq!(tr.flags, nx | PageFlags::PRESENT);
        assert_ne!(f.table(root)[0] & PageFlags::USER.bits(), 0);
    }

    #[test]
    fn unmap_splits_huge_pages_and_reports_what_it_frees() {
        let (mut f, root) = setup();
        map(&mut f, root, 0x4000_0000, 0x4000_0000, PAGE_1G, RW, ALL).unwrap();
        let mut freed = Vec::new();
        unmap(&mut f, root, 0x4020_1000, 0x3000, &mut |p, s| freed.push((p, s))).unwrap();
        assert_eq!(freed, [(0x4020_1000, PAGE_4K), (0x4020_2000, PAGE_4K), (0x4020_3000, PAGE_4K)]);
        assert_eq!(translate(&mut f, root, 0x4020_2000), None);
        let t = translate(&mut f, root, 0x4020_4000).unwrap();
        assert_eq!((t.phys, t.page_size), (0x4020_4000, PAGE_4K));
        assert_eq!(translate(&mut f, root, 0x4040_0000).unwrap().page_size, PAGE_2M);
        assert_eq!(translate(&mut f, root, 0x4000_0000).unwrap().page_size, PAGE_2M);
        // Unmapping everything frees every piece once and leaves no table behind.
        let mut total = 0;
        unmap(&mut f, root, 0, 0x8000_0000, &mut |_, s| total += s).unwrap();
        assert_eq!(total, PAGE_1G - 3 * PAGE_4K);
        assert!(f.table(root).iter().all(|&e| e == 0));
        assert_eq!(translate(&mut f, root, 0x4040_0000), None);
    }

    #[test]
    fn unmap_in_the_upper_half() {
        let (mut f, root) = setup();
        let stack = 0xffff_c000_0000_1000;
        map(&mut f, root, stack, 0x7000, 4 * PAGE_4K, RW, ALL).unwrap();
        map(&mut f, root, 0xffff_ffff_8000_0000, 0x20_0000, PAGE_2M, RW, ALL).unwrap();
        let mut freed = Vec::new();
        unmap(&mut f, root, stack, 4 * PAGE_4K, &mut |p, s| freed.push((p, s))).unwrap();
        assert_eq!(freed.len(), 4);
        assert_eq!(freed[0], (0x7000, PAGE_4K));
        assert_eq!(translate(&mut f, root, stack), None);
        assert_eq!(translate(&mut f, root, 0xffff_ffff_8000_1000).unwrap().phys, 0x20_1000);
    }

    #[test]
    fn protect_changes_only_the_range() {
        let (mut f, root) = setup();
        let user_rw = PageFlags::USER | PageFlags::WRITABLE;
        map(&mut f, root, 0x20_0000, 0x20_0000, PAGE_2M, user_rw, ALL).unwrap();
        protect(&mut f, root, 0x20_0000, PAGE_4K, PageFlags::USER).unwrap();
        assert_eq!(translate(&mut f, root, 0x20_0000).unwrap().flags, PageFlags::USER | PageFlags::PRESENT);
        let rest = translate(&mut f, root, 0x20_1000).unwrap();
        assert_eq!((rest.flags, rest.page_size), (user_rw | PageFlags::PRESENT, PAGE_4K));
        // A whole huge page keeps its size.
        map(&mut f, root, 0x40_0000, 0x40_0000, PAGE_2M, user_rw, ALL).unwrap();
        protect(&mut f, root, 0x40_0000, PAGE_2M, PageFlags::USER | PageFlags::NO_EXECUTE).unwrap();
        let t = translate(&mut f, root, 0x40_0000).unwrap();
        assert_eq!((t.page_size, t.flags), (PAGE_2M, PageFlags::USER | PageFlags::NO_EXECUTE | PageFlags::PRESENT));
        assert_eq!(protect(&mut f, root, 0x1001, PAGE_4K, RW), Err(MapError::Unaligned));
    }

    #[test]
    fn protect_opens_the_path_to_pages_mapped_without_the_user_bit() {
        let (mut f, root) = setup();
        // PROT_NONE: mapped, but without the user bit, so the tables above lack it too.
        map(&mut f, root, 0x100_0000_0000, 0x40_0000, 2 * PAGE_2M, PageFlags::NO_EXECUTE, ALL).unwrap();
        assert_eq!(f.table(root)[index(0x100_0000_0000, 3)] & PageFlags::USER.bits(), 0);
        let user_rw = PageFlags::USER | PageFlags::WRITABLE | PageFlags::NO_EXECUTE;
        protect(&mut f, root, 0x100_0010_0000, PAGE_2M, user_rw).unwrap();
        // Every entry on the way to a page made accessible (through the 2 MiB pages split) has
        // the user and the writable bit.
        let virt = 0x100_0010_0000;
        let mut table = root;
        for level in (1..=3).rev() {
            let entry = f.table(table)[index(virt, level)];
            assert_ne!(entry & PageFlags::USER.bits(), 0, "level {level}");
            assert_ne!(entry & PageFlags::WRITABLE.bits(), 0, "level {level}");
            table = entry & ADDRESS_MASK;
        }
        assert_eq!(translate(&mut f, root, virt).unwrap().page_size, PAGE_4K);
        assert_eq!(translate(&mut f, root, virt).unwrap().flags, user_rw | PageFlags::PRESENT);
        assert_eq!(translate(&mut f, root, 0x100_0000_0000).unwrap().flags, PageFlags::NO_EXECUTE | PageFlags::PRESENT);
    }

    #[test]
    fn move_range_keeps_frames_and_flags() {
        let (mut f, root) = setup();
        let user_rw = PageFlags::USER | PageFlags::WRITABLE;
        // A 2 MiB page, a hole, then two 4 KiB pages, one read-only.
        map(&mut f, root, 0x20_0000, 0x80_0000, PAGE_2M, user_rw, ALL).unwrap();
        map(&mut f, root, 0x40_1000, 0x9000, PAGE_4K, user_rw, ALL).unwrap();
        map(&mut f, root, 0x40_2000, 0xa000, PAGE_4K, PageFlags::USER, ALL).unwrap();
        // To a target aligned like the source: the 2 MiB page stays one.
        move_range(&mut f, root, 0x20_0000, 0x1000_0000, 0x20_3000, ALL).unwrap();
        assert_eq!(translate(&mut f, root, 0x20_0000), None);
        assert_eq!(translate(&mut f, root, 0x40_1000), None);
        let big = translate(&mut f, root, 0x1000_1234).unwrap();
        assert_eq!((big.phys, big.page_size, big.flags), (0x80_1234, PAGE_2M, user_rw | PageFlags::PRESENT));
        assert_eq!(translate(&mut f, root, 0x1020_0000), None, "the hole stays a hole");
        assert_eq!(translate(&mut f, root, 0x1020_1000).unwrap().phys, 0x9000);
        assert_eq!(translate(&mut f, root, 0x1020_2000).unwrap().flags, PageFlags::USER | PageFlags::PRESENT);
        // To a target that is not 2 MiB aligned: 4 KiB pages of the same frames.
        move_range(&mut f, root, 0x1000_0000, 0x3000_3000, PAGE_2M, ALL).unwrap();
        let small = translate(&mut f, root, 0x3000_3000 + 0x1f_f000).unwrap();
        assert_eq!((small.phys, small.page_size), (0x80_0000 + 0x1f_f000, PAGE_4K));
        // Overlapping ranges are refused, and nothing moves.
        assert_eq!(
            move_range(&mut f, root, 0x3000_3000, 0x3000_4000, PAGE_2M, ALL),
            Err(MapError::AlreadyMapped(0x3000_4000))
        );
        assert_eq!(translate(&mut f, root, 0x3000_3000).unwrap().phys, 0x80_0000);
    }

    #[test]
    fn a_failed_move_changes_nothing() {
        let (mut f, root) = setup();
        map(&mut f, root, 0x1000, 0x5000, 4 * PAGE_4K, RW, ALL).unwrap();
        // Leave no table for the target's path.
        while f.alloc_table().is_some() {}
        assert_eq!(move_range(&mut f, root, 0x1000, 0x7f00_0000_0000, 4 * PAGE_4K, ALL), Err(MapError::OutOfMemory));
        assert_eq!(translate(&mut f, root, 0x4000).unwrap().phys, 0x8000);
        assert_eq!(translate(&mut f, root, 0x7f00_0000_0000), None);
    }

    #[test]
    fn errors_are_reported() {
        let (mut f, root) = setup();
        assert_eq!(map(&mut f, root, 0x1001, 0, PAGE_4K, RW, ALL), Err(MapError::Unaligned));
        assert_eq!(
            map(&mut f, root, 0x8000_0000_0000, 0, PAGE_4K, RW, ALL),
            Err(MapError::NonCanonical(0x8000_0000_0000))
        );
        assert_eq!(
            map(&mut f, root, 0x7fff_ffff_f000, 0, 2 * PAGE_4K, RW, ALL),
            Err(MapError::NonCanonical(0x7fff_ffff_f000))
        );
        map(&mut f, root, 0x20_0000, 0x20_0000, PAGE_2M, RW, ALL).unwrap();
        assert_eq!(map(&mut f, root, 0x20_1000, 0, PAGE_4K, RW, ALL), Err(MapError::AlreadyMapped(0x20_1000)));
        map(&mut f, root, 0x1000, 0, PAGE_4K, RW, ALL).unwrap();
        assert_eq!(map(&mut f, root, 0x1000, 0, PAGE_4K, RW, ALL), Err(MapError::AlreadyMapped(0x1000)));
        assert_eq!(
            map(&mut f, root, 0x7f00_0000_0000, 0, 70 * PAGE_1G, RW, PageSizes { use_2m: false, use_1g: false }),
            Err(MapError::OutOfMemory)
        );
        assert_eq!(translate(&mut f, root, 0x8000_0000_0000), None);
    }
}
