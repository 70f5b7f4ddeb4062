//! The PVH boot handoff (`struct hvm_start_info` from Xen's public `arch-x86/hvm/start_info.h`):
//! command line, memory map, boot modules (QEMU's `-initrd`) and the ACPI RSDP address. Everything
//! is copied into a [`BootInfo`] of fixed size before the kernel touches low memory.

use crate::memory_map::{PhysRead, Range};

pub const MAGIC: u32 = 0x336e_c578;
pub const MAX_CMDLINE: usize = 4096;
pub const MAX_MEMMAP: usize = 128;
pub const MAX_MODULES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

#[derive(Clone, Debug)]
pub struct BootInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    memmap: [MemmapEntry; MAX_MEMMAP],
    memmap_len: usize,
    modules: [Range; MAX_MODULES],
    modules_len: usize,
    pub rsdp: u64,
    /// The command line was longer than [`MAX_CMDLINE`] and was cut.
    pub cmdline_truncated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    Unreadable(&'static str),
    BadMagic(u32),
    /// Version 0 has no memory map, and the kernel needs one.
    NoMemoryMap,
    TooMany(&'static str, u32),
    NotUtf8,
}

impl BootInfo {
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap[..self.memmap_len]
    }
    pub fn modules(&self) -> &[Range] {
        &self.modules[..self.modules_len]
    }

    /// Copies the start_info at `phys` out of guest memory.
    pub fn read<R: PhysRead>(mem: &R, phys: u64) -> Result<BootInfo, StartInfoError> {
        let mut si = [0u8; 56];
        if !mem.read(phys, &mut si) {
            return Err(StartInfoError::Unreadable("start_info"));
        }
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let magic = u32_at(&si, 0);
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        if u32_at(&si, 4) < 1 {
            return Err(StartInfoError::NoMemoryMap);
        }
        let mut info = BootInfo {
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            memmap: [MemmapEntry::default(); MAX_MEMMAP],
            memmap_len: 0,
            modules: [Range::default(); MAX_MODULES],
            modules_len: 0,
            rsdp: u64_at(&si, 32),
            cmdline_truncated: false,
        };
        let cmdline = u64_at(&si, 24);
        if cmdline != 0 {
            // Read byte by byte up to the NUL: the string may end right before unreadable memory.
            let mut b = [0u8; 1];
            while info.cmdline_len < MAX_CMDLINE && mem.read(cmdline + info.cmdline_len as u64, &mut b) && b[0] != 0 {
                info.cmdline[info.cmdline_len] = b[0];
                info.cmdline_len += 1;
            }
            info.cmdline_truncated = info.cmdline_len == MAX_CMDLINE;
            if core::str::from_utf8(&info.cmdline[..info.cmdline_len]).is_err() {
                return Err(StartInfoError::NotUtf8);
            }
        }
        let (memmap, entries) = (u64_at(&si, 40), u32_at(&si, 48));
        if entries as usize > MAX_MEMMAP {
            return Err(StartInfoError::TooMany("memory map entries", entries));
        }
        for i in 0..entries as usize {
            let mut e = [0u8; 24];
            if !mem.read(memmap + 24 * i as u64, &mut e) {
                return Err(StartInfoError::Unreadable("memory map"));
            }
            info.memmap[i] = MemmapEntry { addr: u64_at(&e, 0), size: u64_at(&e, 8), kind: u32_at(&e, 16) };
        }
        info.memmap_len = entries as usize;
        let (modules, count) = (u64_at(&si, 16), u32_at(&si, 12));
        if count as usize > MAX_MODULES {
            return Err(StartInfoError::TooMany("boot modules", count));
        }
        for i in 0..count as usize {
            let mut m = [0u8; 32];
            if !mem.read(modules + 32 * i as u64, &mut m) {
                return Err(StartInfoError::Unreadable("module list"));
            }
            let (start, size) = (u64_at(&m, 0), u64_at(&m, 8));
            let end = start.checked_add(size).ok_or(StartInfoError::Unreadable("module list"))?;
            info.modules[i] = Range { start, end };
        }
        info.modules_len = count as usize;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flat(Vec<u8>);
    impl PhysRead for Flat {
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            let p = phys as usize;
            match self.0.get(p..p + buf.len()) {
                Some(s) => {
                    buf.copy_from_slice(s);
                    true
                }
                None => false,
            }
        }
    }

    fn put(m: &mut [u8], at: usize, bytes: &[u8]) {
        m[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn image() -> Flat {
        let mut m = vec![0u8; 0x2000];
        put(&mut m, 0x100, &MAGIC.to_le_bytes());
        put(&mut m, 0x104, &1u32.to_le_bytes());
        put(&mut m, 0x10c, &1u32.to_le_bytes()); // one module
        put(&mut m, 0x110, &0x400u64.to_le_bytes());
        put(&mut m, 0x118, &0x800u64.to_le_bytes()); // cmdline
        put(&mut m, 0x120, &0xe0000u64.to_le_bytes()); // rsdp
        put(&mut m, 0x128, &0xc00u64.to_le_bytes()); // memmap
        put(&mut m, 0x130, &2u32.to_le_bytes());
        put(&mut m, 0x400, &0x80_0000u64.to_le_bytes());
        put(&mut m, 0x408, &0x1234u64.to_le_bytes());
        put(&mut m, 0x800, b"then=poweroff log=debug\0");
        put(&mut m, 0xc00, &0u64.to_le_bytes());
        put(&mut m, 0xc08, &0x9fc00u64.to_le_bytes());
        put(&mut m, 0xc10, &1u32.to_le_bytes());
        put(&mut m, 0xc18, &0x10_0000u64.to_le_bytes());
        put(&mut m, 0xc20, &0x700_0000u64.to_le_bytes());
        put(&mut m, 0xc28, &1u32.to_le_bytes());
        Flat(m)
    }

    #[test]
    fn reads_everything() {
        let b = BootInfo::read(&image(), 0x100).unwrap();
        assert_eq!(b.cmdline(), "then=poweroff log=debug");
        assert_eq!(b.rsdp, 0xe0000);
        assert_eq!(b.memmap().len(), 2);
        assert_eq!(b.memmap()[1], MemmapEntry { addr: 0x10_0000, size: 0x700_0000, kind: 1 });
        assert_eq!(b.modules(), [Range { start: 0x80_0000, end: 0x80_1234 }]);
    }

    #[test]
    fn bad_handoffs_are_errors() {
        assert_eq!(BootInfo::read(&image(), 0x200).unwrap_err(), StartInfoError::BadMagic(0));
        let mut m = image();
        put(&mut m.0, 0x130, &1000u32.to_le_bytes());
        assert_eq!(BootInfo::read(&m, 0x100).unwrap_err(), StartInfoError::TooMany("memory map entries", 1000));
        let mut m = image();
        put(&mut m.0, 0x128, &0x1ff0u64.to_le_bytes());
        assert_eq!(BootInfo::read(&m, 0x100).unwrap_err(), StartInfoError::Unreadable("memory map"));
        let mut m = image();
        put(&mut m.0, 0x800, b"\xff\xfe\0");
        assert_eq!(BootInfo::read(&m, 0x100).unwrap_err(), StartInfoError::NotUtf8);
        let mut m = image();
        put(&mut m.0, 0x104, &0u32.to_le_bytes());
        assert_eq!(BootInfo::read(&m, 0x100).unwrap_err(), StartInfoError::NoMemoryMap);
        assert_eq!(BootInfo::read(&image(), 0x1ff0).unwrap_err(), StartInfoError::Unreadable("start_info"));
    }

    #[test]
    fn cmdline_at_the_end_of_memory_stops_cleanly() {
        let mut m = image();
        let end = m.0.len() - 3;
        put(&mut m.0, end, b"abc");
        put(&mut m.0, 0x118, &(end as u64).to_le_bytes());
        assert_eq!(BootInfo::read(&m, 0x100).unwrap().cmdline(), "abc");
    }
}
