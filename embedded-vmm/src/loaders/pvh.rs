//! The PVH boot protocol for a guest: load the ELF's segments at their physical addresses, build
//! `hvm_start_info` (command line, memory map, the initrd as a module, the RSDP), and start the
//! vCPU in flat 32-bit protected mode at the note's entry with EBX pointing at start_info.
//!
//! The image is untrusted input: every segment and the note are checked against the file and
//! against guest RAM before anything is copied.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use goblin::elf::{Elf, program_header};

use crate::machine::{
    BIOS_AREA, EBDA, HIGH_MEMORY_START, PVH_BOOT_DATA_END, PVH_CMDLINE, PVH_MEMMAP, PVH_MODLIST, PVH_START_INFO,
};

/// Where the boot data goes in guest memory (below the usual 1 MiB kernel load address).
const CMDLINE_MAX: usize = 4095;
const MAGIC: u32 = 0x336e_c578;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// E820 memory types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PvhError {
    NotElf(String),
    NoPvhNote,
    BadNote,
    Segment { index: usize, reason: &'static str },
    CommandLineTooLong,
    InitrdDoesNotFit,
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            PvhError::NotElf(e) => write!(f, "not a loadable ELF: {e}"),
            PvhError::NoPvhNote => write!(f, "no PVH entry note (Xen note 18): not a PVH kernel"),
            PvhError::BadNote => write!(f, "malformed PVH entry note"),
            PvhError::Segment { index, reason } => write!(f, "program header {index}: {reason}"),
            PvhError::CommandLineTooLong => write!(f, "command line longer than {CMDLINE_MAX} bytes"),
            PvhError::InitrdDoesNotFit => write!(f, "the initrd does not fit in guest RAM"),
        }
    }
}

/// A segment to copy: `file[offset..offset + file_bytes]` to `gpa`, zero up to `memory_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    pub gpa: u64,
    pub offset: u64,
    pub file_bytes: u64,
    pub memory_bytes: u64,
}

/// A checked PVH image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhImage {
    pub entry: u32,
    pub segments: Vec<LoadSegment>,
}

/// Checks `file` and finds its segments and PVH entry. `ram` lists guest RAM as (start, length).
pub fn inspect(file: &[u8], ram: &[(u64, u64)]) -> Result<PvhImage, PvhError> {
    let elf = Elf::parse(file).map_err(|e| PvhError::NotElf(alloc::format!("{e}")))?;
    let mut entry = None;
    if let Some(notes) = elf.iter_note_headers(file) {
        for note in notes {
            let note = note.map_err(|_| PvhError::BadNote)?;
            if note.name == "Xen" && note.n_type == XEN_ELFNOTE_PHYS32_ENTRY {
                entry = Some(match note.desc.len() {
                    4 => u32::from_le_bytes(note.desc.try_into().map_err(|_| PvhError::BadNote)?) as u64,
                    8 => u64::from_le_bytes(note.desc.try_into().map_err(|_| PvhError::BadNote)?),
                    _ => return Err(PvhError::BadNote),
                });
            }
        }
    }
    let entry = entry.ok_or(PvhError::NoPvhNote)?;
    let entry = u32::try_from(entry).map_err(|_| PvhError::BadNote)?;
    let mut segments = Vec::new();
    for (index, ph) in elf.program_headers.iter().enumerate() {
        if ph.p_type != program_header::PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        let bad = |reason| PvhError::Segment { index, reason };
        if ph.p_filesz > ph.p_memsz {
            return Err(bad("file size larger than memory size"));
        }
        if ph.p_offset.checked_add(ph.p_filesz).is_none_or(|end| end > file.len() as u64) {
            return Err(bad("runs past the end of the file"));
        }
        let end = ph.p_paddr.checked_add(ph.p_memsz).ok_or(bad("address range overflows"))?;
        if !ram.iter().any(|&(s, l)| ph.p_paddr >= s && end <= s + l) {
            return Err(bad("not inside guest RAM"));
        }
        if ph.p_paddr < PVH_BOOT_DATA_END {
            return Err(bad("overlaps the boot data below 32 KiB"));
        }
        segments.push(LoadSegment {
            gpa: ph.p_paddr,
            offset: ph.p_offset,
            file_bytes: ph.p_filesz,
            memory_bytes: ph.p_memsz,
        });
    }
    if segments.is_empty() {
        return Err(PvhError::Segment { index: 0, reason: "no loadable segment" });
    }
    if !segments.iter().any(|s| (s.gpa..s.gpa + s.memory_bytes).contains(&(entry as u64))) {
        return Err(PvhError::BadNote);
    }
    Ok(PvhImage { entry, segments })
}

/// An e820 map for guest RAM: low RAM minus the EBDA and BIOS area, the reserved ROM area (where
/// the ACPI tables live), and RAM above 1 MiB.
pub fn memory_map(ram: &[(u64, u64)]) -> Vec<(u64, u64, u32)> {
    let mut map = Vec::new();
    for &(start, len) in ram {
        if start == 0 {
            map.push((0, EBDA.start, E820_RAM));
            map.push((EBDA.start, EBDA.end - EBDA.start, E820_RESERVED));
            map.push((BIOS_AREA.start, BIOS_AREA.end - BIOS_AREA.start, E820_RESERVED));
            if len > HIGH_MEMORY_START {
                map.push((HIGH_MEMORY_START, len - HIGH_MEMORY_START, E820_RAM));
            }
        } else {
            map.push((start, len, E820_RAM));
        }
    }
    map
}

/// The boot data: (guest-physical address, bytes) pairs to write, and where the initrd goes.
pub struct BootData {
    pub writes: Vec<(u64, Vec<u8>)>,
    pub initrd_gpa: Option<u64>,
}

/// Lays out start_info, the module list, the memory map and the command line, and chooses the
/// initrd's place (the top of low RAM, page aligned, above the kernel).
pub fn boot_data(
    ram: &[(u64, u64)],
    kernel_end: u64,
    cmdline: &str,
    initrd_bytes: Option<u64>,
    rsdp: u64,
) -> Result<BootData, PvhError> {
    if cmdline.len() > CMDLINE_MAX {
        return Err(PvhError::CommandLineTooLong);
    }
    let map = memory_map(ram);
    let low_end = ram.iter().find(|r| r.0 == 0).map_or(0, |r| r.1);
    let initrd_gpa = match initrd_bytes {
        Some(n) => {
            let at = low_end.checked_sub(n).ok_or(PvhError::InitrdDoesNotFit)? & !0xfff;
            if at < kernel_end.next_multiple_of(0x1000) {
                return Err(PvhError::InitrdDoesNotFit);
            }
            Some(at)
        }
        None => None,
    };
    let mut si = Vec::with_capacity(56);
    si.extend_from_slice(&MAGIC.to_le_bytes());
    si.extend_from_slice(&1u32.to_le_bytes()); // version 1: has the memory map
    si.extend_from_slice(&0u32.to_le_bytes()); // flags
    si.extend_from_slice(&(initrd_gpa.is_some() as u32).to_le_bytes());
    si.extend_from_slice(&PVH_MODLIST.to_le_bytes());
    si.extend_from_slice(&PVH_CMDLINE.to_le_bytes());
    si.extend_from_slice(&rsdp.to_le_bytes());
    si.extend_from_slice(&PVH_MEMMAP.to_le_bytes());
    si.extend_from_slice(&(map.len() as u32).to_le_bytes());
    si.extend_from_slice(&0u32.to_le_bytes());
    let mut writes = vec![(PVH_START_INFO, si)];
    if let (Some(at), Some(n)) = (initrd_gpa, initrd_bytes) {
        let mut m = Vec::with_capacity(32);
        m.extend_from_slice(&at.to_le_bytes());
        m.extend_from_slice(&n.to_le_bytes());
        m.extend_from_slice(&[0u8; 16]);
        writes.push((PVH_MODLIST, m));
    }
    let mut mm = Vec::new();
    for (start, len, kind) in &map {
        mm.extend_from_slice(&start.to_le_bytes());
        mm.extend_from_slice(&len.to_le_bytes());
        mm.extend_from_slice(&kind.to_le_bytes());
        mm.extend_from_slice(&0u32.to_le_bytes());
    }
    writes.push((PVH_MEMMAP, mm));
    let mut c = cmdline.as_bytes().to_vec();
    c.push(0);
    writes.push((PVH_CMDLINE, c));
    Ok(BootData { writes, initrd_gpa })
}

use alloc::vec;

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A 32-bit ELF with one PT_LOAD at 1 MiB and a PT_NOTE holding the PVH entry.
    pub(crate) fn elf32(entry: u32, paddr: u32, with_note: bool) -> Vec<u8> {
        let phnum: u16 = if with_note { 2 } else { 1 };
        let mut f = vec![0u8; 52];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&3u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..28].copy_from_slice(&paddr.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes());
        f[40..42].copy_from_slice(&52u16.to_le_bytes());
        f[42..44].copy_from_slice(&32u16.to_le_bytes());
        f[44..46].copy_from_slice(&phnum.to_le_bytes());
        let ph = |t: u32, off: u32, addr: u32, size: u32| {
            let mut p = vec![0u8; 32];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[4..8].copy_from_slice(&off.to_le_bytes());
            p[8..12].copy_from_slice(&addr.to_le_bytes());
            p[12..16].copy_from_slice(&addr.to_le_bytes());
            p[16..20].copy_from_slice(&size.to_le_bytes());
            p[20..24].copy_from_slice(&size.to_le_bytes());
            p[24..28].copy_from_slice(&5u32.to_le_bytes());
            p
        };
        f.extend(ph(1, 0x100, paddr, 0x100));
        if with_note {
            f.extend(ph(4, 0x200, 0, 20));
        }
        f.resize(0x200, 0x90);
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&18u32.to_le_bytes());
        f.extend_from_slice(b"Xen\0");
        f.extend_from_slice(&entry.to_le_bytes());
        f
    }

    const RAM: [(u64, u64); 1] = [(0, 64 << 20)];

    #[test]
    fn a_pvh_elf_is_described() {
        let img = inspect(&elf32(0x10_0010, 0x10_0000, true), &RAM).unwrap();
        assert_eq!(img.entry, 0x10_0010);
        assert_eq!(
            img.segments,
            [LoadSegment { gpa: 0x10_0000, offset: 0x100, file_bytes: 0x100, memory_bytes: 0x100 }]
        );
    }

    #[test]
    fn bad_images_are_refused() {
        assert_eq!(inspect(&elf32(0x10_0010, 0x10_0000, false), &RAM), Err(PvhError::NoPvhNote));
        assert_eq!(inspect(&elf32(0x50_0000, 0x10_0000, true), &RAM), Err(PvhError::BadNote));
        assert!(matches!(inspect(&elf32(0x10_0010, 0x4000_0000, true), &RAM), Err(PvhError::Segment { .. })));
        assert!(matches!(inspect(&elf32(0x1010, 0x1000, true), &RAM), Err(PvhError::Segment { .. })));
        assert!(matches!(inspect(b"MZ\x90\x00", &RAM), Err(PvhError::NotElf(_))));
        let mut truncated = elf32(0x10_0010, 0x10_0000, true);
        truncated.truncate(0x150);
        assert!(inspect(&truncated, &RAM).is_err());
    }

    #[test]
    fn boot_data_layout() {
        let d = boot_data(&RAM, 0x20_0000, "console=ttyS0", Some(0x1234), 0xe0000).unwrap();
        assert_eq!(d.initrd_gpa, Some((64 << 20) - 0x2000));
        let si = &d.writes[0].1;
        assert_eq!(u32::from_le_bytes(si[0..4].try_into().unwrap()), MAGIC);
        assert_eq!(u32::from_le_bytes(si[12..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(si[32..40].try_into().unwrap()), 0xe0000);
        assert_eq!(u32::from_le_bytes(si[48..52].try_into().unwrap()), 4);
        assert_eq!(d.writes.last().unwrap().1, b"console=ttyS0\0");
        assert_eq!(boot_data(&RAM, 0x20_0000, &"x".repeat(5000), None, 0).err(), Some(PvhError::CommandLineTooLong));
        assert_eq!(boot_data(&RAM, 63 << 20, "", Some(2 << 20), 0).err(), Some(PvhError::InitrdDoesNotFit));
    }
}
