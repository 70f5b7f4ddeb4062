//! Memory a host shares with a VM (Manul's shared segments). Each region is the host's own
//! physically contiguous memory, mapped into the guest by the nested page tables (read-only when
//! the host says so) in the hole below 4 GiB, and announced to the guest as an ivshmem-style PCI
//! device (vendor 1af4, device 1110, "Inter-VM shared memory") at slot 3 and up of bus 0, whose
//! BAR 2 is the region. Guest user space maps it through the BAR's sysfs file
//! (`/sys/bus/pci/devices/0000:00:03.0/resource2`); no guest driver is needed.
//!
//! The BAR is where the VMM placed it: sizing works (all ones written, the size mask read back),
//! but another address written is ignored, as firmware-fixed BARs are. A BAR's size is the
//! region's, rounded up to a power of two; the part beyond the region is not mapped.

use crate::paging::PAGE_4K as PAGE;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A region the host shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedRegion {
    /// Its name (for messages).
    pub name: String,
    /// Host-physical address, 4 KiB aligned.
    pub host_phys: u64,
    /// Bytes, a non-zero multiple of 4 KiB.
    pub bytes: u64,
    pub writable: bool,
}

/// Where a region sits in the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Guest-physical address of the BAR (and of the region's first byte).
    pub gpa: u64,
    /// The BAR's size: a power of two, at least 4 KiB.
    pub bar_size: u64,
    pub bytes: u64,
}

/// The PCI slot of the first region on bus 0 (0 is the host bridge).
pub const FIRST_SLOT: u8 = 3;
/// Most regions one VM can be given.
pub const MAX_REGIONS: usize = 8;
/// The part of the hole below 4 GiB given to BARs (the I/O APIC and local APIC sit above it):
/// the PCI root bridge's memory window in the DSDT.
const WINDOW: core::ops::Range<u64> = crate::machine::PCI_MEMORY_WINDOW;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedRegionError {
    TooMany(usize),
    /// Not page aligned, empty or wrapping.
    BadRegion(String),
    /// The regions do not fit the BAR window.
    NoRoom(String),
}

impl fmt::Display for SharedRegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany(n) => write!(f, "{n} shared regions, at most {MAX_REGIONS}"),
            Self::BadRegion(name) => write!(f, "shared region {name}: not whole pages"),
            Self::NoRoom(name) => write!(f, "shared region {name}: no room left below 4 GiB for its BAR"),
        }
    }
}

/// Places the regions, in order, each at the next address aligned to its BAR size.
pub fn place(regions: &[SharedRegion]) -> Result<Vec<Placement>, SharedRegionError> {
    if regions.len() > MAX_REGIONS {
        return Err(SharedRegionError::TooMany(regions.len()));
    }
    let mut next = WINDOW.start;
    let mut out = Vec::with_capacity(regions.len());
    for r in regions {
        let whole = r.bytes > 0
            && r.bytes.is_multiple_of(PAGE)
            && r.host_phys.is_multiple_of(PAGE)
            && r.host_phys.checked_add(r.bytes).is_some();
        if !whole {
            return Err(SharedRegionError::BadRegion(r.name.clone()));
        }
        let bar_size = r.bytes.checked_next_power_of_two().ok_or_else(|| SharedRegionError::NoRoom(r.name.clone()))?;
        let gpa = next.checked_next_multiple_of(bar_size).ok_or_else(|| SharedRegionError::NoRoom(r.name.clone()))?;
        let end = gpa.checked_add(bar_size).filter(|&e| e <= WINDOW.end);
        let end = end.ok_or_else(|| SharedRegionError::NoRoom(r.name.clone()))?;
        out.push(Placement { gpa, bar_size, bytes: r.bytes });
        next = end;
    }
    Ok(out)
}

/// The guest's PCI address of region `index`, as Linux's sysfs names it.
pub fn pci_address(index: usize) -> String {
    alloc::format!("0000:00:{:02x}.0", FIRST_SLOT as usize + index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, bytes: u64) -> SharedRegion {
        SharedRegion { name: name.into(), host_phys: 0x40_0000, bytes, writable: true }
    }

    #[test]
    fn bars_are_naturally_aligned_powers_of_two_in_the_window() {
        let placed = place(&[region("a", 64 << 10), region("b", 3 << 20), region("c", 4096)]).unwrap();
        assert_eq!(placed[0], Placement { gpa: 0xc000_0000, bar_size: 64 << 10, bytes: 64 << 10 });
        assert_eq!(placed[1], Placement { gpa: 0xc040_0000, bar_size: 4 << 20, bytes: 3 << 20 });
        assert_eq!(placed[2], Placement { gpa: 0xc080_0000, bar_size: 4096, bytes: 4096 });
        assert_eq!(pci_address(0), "0000:00:03.0");
        assert_eq!(pci_address(7), "0000:00:0a.0");
    }

    #[test]
    fn bad_regions_are_refused() {
        assert_eq!(place(&[region("x", 100)]), Err(SharedRegionError::BadRegion("x".into())));
        assert_eq!(place(&[region("x", 0)]), Err(SharedRegionError::BadRegion("x".into())));
        let odd = SharedRegion { host_phys: 0x1001, ..region("x", 4096) };
        assert_eq!(place(&[odd]), Err(SharedRegionError::BadRegion("x".into())));
        assert_eq!(place(&[region("big", 1 << 30)]), Err(SharedRegionError::NoRoom("big".into())));
        let nine: Vec<SharedRegion> = (0..9).map(|i| region(&alloc::format!("r{i}"), 4096)).collect();
        assert_eq!(place(&nine), Err(SharedRegionError::TooMany(9)));
        let wraps = SharedRegion { host_phys: !0xfff, ..region("w", 8192) };
        assert_eq!(place(&[wraps]), Err(SharedRegionError::BadRegion("w".into())));
    }
}
