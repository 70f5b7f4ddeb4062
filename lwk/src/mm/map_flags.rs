//! The flags of the memory system calls as x86-64 Linux numbers them (`PROT_`, `MAP_`,
//! `MREMAP_`, `MS_`, `MCL_`), and which of them each call takes.

use crate::mm::vm_areas::Protection;
use bitflags::bitflags;

bitflags! {
    /// mmap's and mprotect's protection.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Prot: u64 {
        const READ = 1;
        const WRITE = 2;
        const EXEC = 4;
        /// Accepted and ignored, as Linux does on x86-64.
        const SEM = 8;
        /// mprotect only: extend the change to the start or end of a stack area (ignored:
        /// stacks are mapped whole).
        const GROWSDOWN = 0x0100_0000;
        const GROWSUP = 0x0200_0000;
    }
}

impl Prot {
    /// mmap's protection: `None` (EINVAL) for a bit it does not take.
    pub fn for_mmap(raw: u64) -> Option<Protection> {
        Prot::from_bits(raw).filter(|p| !p.intersects(Prot::GROWSDOWN | Prot::GROWSUP)).map(Prot::protection)
    }

    /// mprotect's protection: mmap's, and one of GROWSDOWN and GROWSUP (not both).
    pub fn for_mprotect(raw: u64) -> Option<Protection> {
        Prot::from_bits(raw).filter(|p| !p.contains(Prot::GROWSDOWN | Prot::GROWSUP)).map(Prot::protection)
    }

    fn protection(self) -> Protection {
        Protection {
            read: self.contains(Prot::READ),
            write: self.contains(Prot::WRITE),
            execute: self.contains(Prot::EXEC),
        }
    }
}

/// mmap's mapping type: the low four bits of its flags, a number rather than flags.
const MAP_TYPE: u64 = 0x0f;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_SHARED_VALIDATE: u64 = 0x03;

bitflags! {
    /// mmap's flags but the mapping type. Others (MAP_POPULATE, MAP_NORESERVE, MAP_STACK...)
    /// are kept and ignored (`from_bits_retain`): memory is always populated and locked.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MapFlags: u64 {
        const FIXED = 0x10;
        const ANONYMOUS = 0x20;
        const FIXED_NOREPLACE = 0x10_0000;
    }
}

impl MapFlags {
    /// Whether the mapping is shared (MAP_SHARED, MAP_SHARED_VALIDATE) or private; `None`
    /// (EINVAL) for another type.
    pub fn shared(self) -> Option<bool> {
        match self.bits() & MAP_TYPE {
            MAP_SHARED | MAP_SHARED_VALIDATE => Some(true),
            MAP_PRIVATE => Some(false),
            _ => None,
        }
    }
}

bitflags! {
    /// mremap's flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MremapFlags: u64 {
        const MAYMOVE = 1;
        const FIXED = 2;
    }
}

impl MremapFlags {
    /// `None` (EINVAL) for another bit (MREMAP_DONTUNMAP), or FIXED without MAYMOVE.
    pub fn parse(raw: u64) -> Option<MremapFlags> {
        MremapFlags::from_bits(raw).filter(|f| f.contains(MremapFlags::MAYMOVE) || !f.contains(MremapFlags::FIXED))
    }
}

bitflags! {
    /// msync's flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MsyncFlags: u64 {
        const ASYNC = 1;
        const INVALIDATE = 2;
        const SYNC = 4;
    }
}

impl MsyncFlags {
    /// `None` (EINVAL) for another bit, or ASYNC with SYNC.
    pub fn parse(raw: u64) -> Option<MsyncFlags> {
        MsyncFlags::from_bits(raw).filter(|f| !f.contains(MsyncFlags::ASYNC | MsyncFlags::SYNC))
    }
}

bitflags! {
    /// mlockall's flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MlockallFlags: u32 {
        const CURRENT = 1;
        const FUTURE = 2;
        const ONFAULT = 4;
    }
}

impl MlockallFlags {
    /// `None` (EINVAL) for none, another bit, or ONFAULT alone.
    pub fn parse(raw: u32) -> Option<MlockallFlags> {
        MlockallFlags::from_bits(raw).filter(|f| f.intersects(MlockallFlags::CURRENT | MlockallFlags::FUTURE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protection_bits() {
        let rw = Protection { read: true, write: true, execute: false };
        assert_eq!(Prot::for_mmap(3), Some(rw));
        assert_eq!(Prot::for_mmap(3 | Prot::SEM.bits()), Some(rw), "PROT_SEM is ignored");
        assert_eq!(Prot::for_mmap(0), Some(Protection { read: false, write: false, execute: false }));
        assert_eq!(Prot::for_mmap(Prot::GROWSDOWN.bits() | 1), None, "mprotect's only");
        assert_eq!(Prot::for_mmap(0x10), None);
        assert_eq!(Prot::for_mmap(1 << 40), None);
        assert_eq!(Prot::for_mprotect(Prot::GROWSDOWN.bits() | 3), Some(rw));
        assert_eq!(Prot::for_mprotect(Prot::GROWSUP.bits() | 3), Some(rw));
        assert_eq!(Prot::for_mprotect((Prot::GROWSDOWN | Prot::GROWSUP).bits()), None);
        assert_eq!(Prot::for_mprotect(0x10), None);
    }

    #[test]
    fn mapping_types() {
        const MAP_POPULATE: u64 = 0x8000;
        let flags = |raw| MapFlags::from_bits_retain(raw).shared();
        assert_eq!(flags(MAP_PRIVATE | MapFlags::ANONYMOUS.bits() | MAP_POPULATE), Some(false));
        assert_eq!(flags(MAP_SHARED), Some(true));
        assert_eq!(flags(MAP_SHARED_VALIDATE | MapFlags::FIXED.bits()), Some(true));
        assert_eq!(flags(0), None);
        assert_eq!(flags(4 | MapFlags::ANONYMOUS.bits()), None);
        assert_eq!(flags(0x0f), None);
    }

    #[test]
    fn mremap_msync_mlockall_refusals() {
        assert!(MremapFlags::parse(0).is_some() && MremapFlags::parse(1).is_some() && MremapFlags::parse(3).is_some());
        assert_eq!(MremapFlags::parse(2), None, "FIXED needs MAYMOVE");
        assert_eq!(MremapFlags::parse(4), None, "MREMAP_DONTUNMAP");
        assert!(MsyncFlags::parse(0).is_some() && MsyncFlags::parse(1 | 2).is_some() && MsyncFlags::parse(4).is_some());
        assert_eq!(MsyncFlags::parse(1 | 4), None);
        assert_eq!(MsyncFlags::parse(8), None);
        assert!(MlockallFlags::parse(1).is_some() && MlockallFlags::parse(2 | 4).is_some());
        assert_eq!(MlockallFlags::parse(0), None);
        assert_eq!(MlockallFlags::parse(4), None, "ONFAULT alone");
        assert_eq!(MlockallFlags::parse(8 | 1), None);
    }
}
