//! Walking the guest's own page tables (guest-virtual to guest-physical), to fetch the
//! instruction at the guest's RIP when an MMIO access needs decoding. Long mode with four or five
//! levels (1 GiB and 2 MiB pages too); 32-bit paging is not needed by the guests Manul runs; with
//! paging off the address is physical.

use crate::guest_memory::GuestMemory;

const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

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
    let paging = s.cr0 & (1 << 31) != 0;
    if !paging {
        return Some(gva & 0xffff_ffff);
    }
    let long_mode = s.efer & (1 << 10) != 0;
    if !long_mode {
        return None;
    }
    // CR4.LA57: five levels (Linux turns it on when the CPU has it).
    let levels = if s.cr4 & (1 << 12) != 0 { 5 } else { 4 };
    let mut table = s.cr3 & ADDRESS;
    for level in (0..levels).rev() {
        let index = (gva >> (12 + 9 * level)) & 0x1ff;
        let entry = memory.read_u64(table + index * 8).ok()?;
        if entry & PRESENT == 0 {
            return None;
        }
        let size = 1u64 << (12 + 9 * level);
        if level == 0 || (level <= 2 && entry & HUGE != 0) {
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
