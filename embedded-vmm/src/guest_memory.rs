//! Guest RAM: a few large physically contiguous host blocks, mapped by nested page tables with
//! the largest pages their alignment allows (1 GiB, 2 MiB). Guest-physical addresses with no RAM
//! (device registers) stay unmapped, so guest accesses there exit as nested page faults.
//!
//! Layout ([`crate::machine`]): RAM from 0 up to 3 GiB, the rest above 4 GiB; the hole in
//! between holds the emulated devices.

use crate::host::{HostBlock, VmmHost};
use crate::machine::{HIGH_RAM_START, LOW_RAM_END};
use crate::paging::{self, PAGE_4K as PAGE, PageFlags, PageSizes, TableMemory};
use alloc::vec::Vec;

const LARGE: u64 = 2 << 20;

/// A stretch of guest RAM backed by one host block.
#[derive(Clone, Copy, Debug)]
struct Region {
    gpa: u64,
    block: HostBlock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryError {
    /// The host could not provide the memory (RAM or page tables).
    OutOfHostMemory,
    /// A guest-physical range that is not RAM.
    NotRam(u64),
}

pub struct GuestMemory {
    host: &'static dyn VmmHost,
    regions: Vec<Region>,
    tables: Vec<HostBlock>,
    npt_root: u64,
    bytes: u64,
}

/// Nested page-table frames from the host.
struct NestedTables<'a> {
    host: &'static dyn VmmHost,
    owned: &'a mut Vec<HostBlock>,
}

impl TableMemory for NestedTables<'_> {
    fn alloc_table(&mut self) -> Option<u64> {
        let block = self.host.alloc_contiguous(PAGE, PAGE)?;
        self.owned.push(block);
        Some(block.phys)
    }

    fn table(&mut self, phys: u64) -> &mut [u64; 512] {
        // SAFETY: `phys` is a table frame this memory allocated from the host (zeroed, 4 KiB,
        // owned until drop) and reached through the host's mapping of physical memory.
        unsafe { &mut *(self.host.phys_to_virt(phys) as *mut [u64; 512]) }
    }

    fn free_table(&mut self, _phys: u64) {
        // Guest RAM is never unmapped while the VM lives; every table goes at drop.
    }
}

impl GuestMemory {
    /// `bytes` of guest RAM (rounded up to 2 MiB), zeroed, with its nested page tables.
    pub fn new(host: &'static dyn VmmHost, bytes: u64) -> Result<GuestMemory, MemoryError> {
        let bytes = bytes.next_multiple_of(LARGE);
        let mut memory = GuestMemory { host, regions: Vec::new(), tables: Vec::new(), npt_root: 0, bytes };
        let mut tables = NestedTables { host, owned: &mut memory.tables };
        memory.npt_root = tables.alloc_table().ok_or(MemoryError::OutOfHostMemory)?;
        let ranges = [(0, bytes.min(LOW_RAM_END)), (HIGH_RAM_START, bytes.saturating_sub(LOW_RAM_END))];
        for (start, len) in ranges {
            let mut done = 0;
            while done < len {
                // Large blocks first, halving until the host has one.
                let mut want = (len - done).min(1 << 30);
                let block = loop {
                    let align = if want >= 1 << 30 { 1 << 30 } else { LARGE.min(want) };
                    if let Some(b) = host.alloc_contiguous(want, align) {
                        break b;
                    }
                    if want <= LARGE {
                        return Err(MemoryError::OutOfHostMemory);
                    }
                    want = (want / 2).next_multiple_of(LARGE);
                };
                let gpa = start + done;
                memory.regions.push(Region { gpa, block });
                let mut tables = NestedTables { host, owned: &mut memory.tables };
                let flags = PageFlags::WRITABLE | PageFlags::USER;
                let sizes = PageSizes { use_2m: true, use_1g: true };
                paging::map(&mut tables, memory.npt_root, gpa, block.phys, want, flags, sizes)
                    .map_err(|_| MemoryError::OutOfHostMemory)?;
                done += want;
            }
        }
        Ok(memory)
    }

    /// Maps `bytes` of the host's memory at `host_phys` (not guest RAM: the host keeps it, and
    /// it is never freed with the VM) at guest-physical `gpa`, writable or read-only; a guest
    /// write to a read-only mapping exits as a nested page fault.
    pub fn map_shared(&mut self, gpa: u64, host_phys: u64, bytes: u64, writable: bool) -> Result<(), MemoryError> {
        let mut tables = NestedTables { host: self.host, owned: &mut self.tables };
        let flags = if writable { PageFlags::WRITABLE | PageFlags::USER } else { PageFlags::USER };
        let sizes = PageSizes { use_2m: true, use_1g: true };
        paging::map(&mut tables, self.npt_root, gpa, host_phys, bytes, flags, sizes)
            .map_err(|_| MemoryError::OutOfHostMemory)
    }

    /// The nested page tables' root (the VMCB's N_CR3).
    pub fn npt_root(&self) -> u64 {
        self.npt_root
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The host memory the nested page tables take.
    pub fn table_bytes(&self) -> u64 {
        self.tables.iter().map(|block| block.bytes).sum()
    }

    /// Guest RAM as (start, length) ranges, for the firmware memory map.
    pub fn ram_ranges(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for r in &self.regions {
            match out.last_mut() {
                Some(last) if last.0 + last.1 == r.gpa => last.1 += r.block.bytes,
                _ => out.push((r.gpa, r.block.bytes)),
            }
        }
        out
    }

    /// The host pointer for `[gpa, gpa + len)` if it lies inside one region.
    fn host_ptr(&self, gpa: u64, len: u64) -> Result<*mut u8, MemoryError> {
        let r = self
            .regions
            .iter()
            .find(|r| gpa >= r.gpa && gpa.checked_add(len).is_some_and(|end| end <= r.gpa + r.block.bytes))
            .ok_or(MemoryError::NotRam(gpa))?;
        // SAFETY: the offset stays inside the host block (checked above).
        Ok(unsafe { self.host.phys_to_virt(r.block.phys).add((gpa - r.gpa) as usize) })
    }

    /// Copies guest memory out, region by region.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.each_piece(gpa, buf.len(), |ptr, at, n| {
            // SAFETY: `ptr` addresses `n` bytes of guest RAM in a host block this VM owns.
            unsafe { core::ptr::copy_nonoverlapping(ptr, buf[at..].as_mut_ptr(), n) }
        })
    }

    /// Copies into guest memory.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.each_piece(gpa, data.len(), |ptr, at, n| {
            // SAFETY: as in `read`; the guest may race with this write, which it cannot use to
            // harm the host (it is its own memory).
            unsafe { core::ptr::copy_nonoverlapping(data[at..].as_ptr(), ptr, n) }
        })
    }

    /// Zeroes `len` bytes of guest memory from `gpa`.
    pub fn zero(&self, gpa: u64, len: u64) -> Result<(), MemoryError> {
        let len = usize::try_from(len).map_err(|_| MemoryError::NotRam(gpa))?;
        self.each_piece(gpa, len, |ptr, _, n| {
            // SAFETY: as in `write`.
            unsafe { core::ptr::write_bytes(ptr, 0, n) }
        })
    }

    fn each_piece(&self, gpa: u64, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) -> Result<(), MemoryError> {
        let mut done = 0usize;
        while done < len {
            let at = gpa.checked_add(done as u64).ok_or(MemoryError::NotRam(gpa))?;
            let r = self
                .regions
                .iter()
                .find(|r| at >= r.gpa && at < r.gpa + r.block.bytes)
                .ok_or(MemoryError::NotRam(at))?;
            let n = ((r.gpa + r.block.bytes - at) as usize).min(len - done);
            f(self.host_ptr(at, n as u64)?, done, n);
            done += n;
        }
        Ok(())
    }

    pub fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for r in self.regions.drain(..) {
            self.host.free_contiguous(r.block);
        }
        for t in self.tables.drain(..) {
            self.host.free_contiguous(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    #[test]
    fn reads_and_writes_cross_host_blocks() {
        // Blocks of 2 MiB at most: 6 MiB of RAM is three blocks, anywhere in the host.
        let host = FakeHost::with_max_block(LARGE).leak();
        let memory = GuestMemory::new(host, 5 << 20).unwrap();
        assert_eq!(memory.bytes(), 6 << 20, "rounded up to 2 MiB");
        assert_eq!(memory.regions.len(), 3);
        assert_eq!(memory.ram_ranges(), [(0, 6 << 20)], "one range for the guest");
        let data: Vec<u8> = (0..=255).cycle().take(LARGE as usize + 64).collect();
        memory.write(LARGE - 32, &data).unwrap();
        let mut back = alloc::vec![0u8; data.len()];
        memory.read(LARGE - 32, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(memory.read_u64(LARGE - 32).unwrap(), u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]));
        memory.zero(LARGE - 16, 32).unwrap();
        assert_eq!(memory.read_u64(LARGE - 8).unwrap(), 0);
        assert_eq!(memory.read_u64(LARGE + 16).unwrap(), u64::from_le_bytes([48, 49, 50, 51, 52, 53, 54, 55]));
    }

    #[test]
    fn what_is_not_ram_is_refused() {
        let host = FakeHost::default().leak();
        let memory = GuestMemory::new(host, 4 << 20).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(memory.read(4 << 20, &mut b), Err(MemoryError::NotRam(4 << 20)));
        assert_eq!(memory.write((4 << 20) - 4, &b), Err(MemoryError::NotRam(4 << 20)), "runs off the end");
        assert_eq!(memory.read(u64::MAX - 3, &mut b), Err(MemoryError::NotRam(u64::MAX - 3)));
        assert_eq!(memory.zero(0, u64::MAX), Err(MemoryError::NotRam(4 << 20)));
    }

    #[test]
    fn ram_above_3_gib_starts_at_4_gib_and_everything_is_given_back() {
        let host = FakeHost::with_max_block(1 << 30).leak();
        let memory = GuestMemory::new(host, (3 << 30) + LARGE).unwrap();
        assert_eq!(memory.ram_ranges(), [(0, LOW_RAM_END), (HIGH_RAM_START, LARGE)]);
        assert!(memory.table_bytes() >= 3 * PAGE, "a PML4, a PDPT and a page directory at least");
        drop(memory);
        assert_eq!(host.live_blocks(), 0);
    }

    #[test]
    fn a_host_without_memory_is_an_error_and_keeps_nothing() {
        let host = FakeHost::with_max_block(PAGE).leak();
        assert!(matches!(GuestMemory::new(host, 4 << 20), Err(MemoryError::OutOfHostMemory)));
        assert_eq!(host.live_blocks(), 0);
    }
}
