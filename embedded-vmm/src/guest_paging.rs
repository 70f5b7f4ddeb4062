//! Walking the guest's own page tables (guest-virtual to guest-physical), to fetch the
//! instruction at the guest's RIP when an MMIO access needs decoding. Long mode with four or five
//! levels (1 GiB and 2 MiB pages too); 32-bit paging is not needed by the guests Manul runs; with
//! paging off the address is physical.

use crate::guest_memory::GuestMemory;
use crate::paging::{ADDRESS_MASK as ADDRESS, PageFlags};
use crate::svm::bits::{CR0_PG, CR4_LA57, EFER_LMA};

/// The guest's paging state, from its VMCB.
#[derive(Clone, Copy, Debug)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// The guest-physical address of `gva`, or `None` if the guest has it unmapped (or uses a paging
/// mode the walker does not know).
pub fn translate(memory: &GuestMemory, s: PagingState, gva: u64) -> Option<u64> {
    let paging = s.cr0 & CR0_PG != 0;
    if !paging {
        return Some(gva & 0xffff_ffff);
    }
    let long_mode = s.efer & EFER_LMA != 0;
    if !long_mode {
        return None;
    }
    // CR4.LA57: five levels (Linux turns it on when the CPU has it).
    let levels = if s.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
    let mut table = s.cr3 & ADDRESS;
    for level in (0..levels).rev() {
        let index = (gva >> (12 + 9 * level)) & 0x1ff;
        let entry = memory.read_u64(table + index * 8).ok()?;
        let flags = PageFlags::from_bits_retain(entry);
        if !flags.contains(PageFlags::PRESENT) {
            return None;
        }
        let size = 1u64 << (12 + 9 * level);
        if level == 0 || (level <= 2 && flags.contains(PageFlags::HUGE)) {
            return Some((entry & ADDRESS & !(size - 1)) | (gva & (size - 1)));
        }
        table = entry & ADDRESS;
    }
    None
}

/// Reads up to `buf.len()` instruction bytes at `gva`, page by page; returns how many it could.
pub fn fetch(memory: &GuestMemory, s: PagingState, gva: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let at = gva.wrapping_add(done as u64);
        let Some(gpa) = translate(memory, s, at) else { break };
        let in_page = (0x1000 - (at & 0xfff)) as usize;
        let n = in_page.min(buf.len() - done);
        if memory.read(gpa, &mut buf[done..done + n]).is_err() {
            break;
        }
        done += n;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;
    use crate::svm::bits::{CR0_PE, CR4_PAE};

    const PRESENT: u64 = PageFlags::PRESENT.bits();
    const HUGE: u64 = PageFlags::HUGE.bits();

    /// Four-level tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT): gva 0x5000 on
    /// gpa 0x7000, gva 0x6000 on gpa 0x9000, gva 0x7000 not present, 2 MiB page at gva 2 MiB on
    /// gpa 0, and a 1 GiB page at 1 GiB on gpa 0.
    fn guest() -> GuestMemory {
        let memory = GuestMemory::new(FakeHost::default().leak(), 4 << 20).unwrap();
        let entry = |table: u64, index: u64, value: u64| memory.write(table + index * 8, &value.to_le_bytes()).unwrap();
        entry(0x1000, 0, 0x2000 | PRESENT);
        entry(0x2000, 0, 0x3000 | PRESENT);
        entry(0x2000, 1, HUGE | PRESENT);
        entry(0x3000, 0, 0x4000 | PRESENT);
        entry(0x3000, 1, HUGE | PRESENT);
        entry(0x4000, 5, 0x7000 | PRESENT);
        entry(0x4000, 6, 0x9000 | PRESENT);
        entry(0x4000, 7, 0x8000);
        memory
    }

    const LONG: PagingState = PagingState { cr0: CR0_PG | CR0_PE, cr3: 0x1000, cr4: CR4_PAE, efer: EFER_LMA };

    #[test]
    fn long_mode_walks_find_4k_2m_and_1g_pages() {
        let memory = guest();
        assert_eq!(translate(&memory, LONG, 0x5123), Some(0x7123));
        assert_eq!(translate(&memory, LONG, 0x7000), None, "not present");
        assert_eq!(translate(&memory, LONG, 0x20_1234), Some(0x1234));
        assert_eq!(translate(&memory, LONG, (1 << 30) + 0x12_3456), Some(0x12_3456));
        assert_eq!(translate(&memory, LONG, 1 << 39), None, "PML4 entry 1 is empty");
        // Five levels: the PML5 at CR3 is the PML4 here, so gva 0 walks one level more.
        let la57 = PagingState { cr4: CR4_PAE | CR4_LA57, ..LONG };
        assert_eq!(translate(&memory, la57, 0x5000), None, "the PT entry 0 is not present");
    }

    #[test]
    fn without_paging_addresses_are_physical_and_32_bit_paging_is_not_walked() {
        let memory = guest();
        let off = PagingState { cr0: 1, cr3: 0, cr4: 0, efer: 0 };
        assert_eq!(translate(&memory, off, 0x1_2345_6789), Some(0x2345_6789));
        assert_eq!(translate(&memory, PagingState { efer: 0, ..LONG }, 0x5000), None);
    }

    #[test]
    fn fetches_cross_pages_and_stop_at_a_hole() {
        let memory = guest();
        memory.write(0x7ffe, &[1, 2]).unwrap();
        memory.write(0x9000, &[3, 4]).unwrap();
        memory.write(0x8000, &[9, 9]).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(fetch(&memory, LONG, 0x5ffe, &mut buf), 4);
        assert_eq!(buf, [1, 2, 3, 4]);
        let mut buf = [0u8; 4];
        assert_eq!(fetch(&memory, LONG, 0x6ffe, &mut buf), 2, "gva 0x7000 is not mapped");
    }
}
