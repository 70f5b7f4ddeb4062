//! Checks an executable before the kernel maps it: only static (ET_EXEC) and static-PIE (ET_DYN
//! without PT_INTERP) x86-64 ELF files are accepted, and every loadable segment must be sane (in
//! the user half, inside the file, not overlapping another). The result says what to map where;
//! the kernel then copies the bytes. Parsing uses `goblin`; every number read from the file is
//! checked before use, so a hostile file gets an error, never a panic.

use crate::hal::cpu::USER_END;
use crate::mm::vm_areas::{PAGE, Protection};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use goblin::container::{Container, Ctx, Endian};
use goblin::elf::{Elf, ProgramHeader, header, program_header};

/// Where a static-PIE executable is placed (1 GiB aligned, so its segments can use large pages).
pub const PIE_BASE: u64 = 0x5555_4000_0000;
/// Most bytes of ELF header and program headers the kernel reads before loading (a file whose
/// program headers end later is refused): the headers are read, the segments streamed.
pub const MAX_HEADERS: usize = 64 * 1024;
/// The ELF64 header's size: what [`headers_len`] needs to see.
pub const ELF64_HEADER: usize = 64;

/// One PT_LOAD segment, with addresses already relocated by the load base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub protection: Protection,
}

impl Segment {
    /// The page-aligned virtual range the segment occupies.
    pub fn pages(&self) -> (u64, u64) {
        (self.vaddr & !(PAGE - 1), (self.vaddr + self.mem_size).next_multiple_of(PAGE))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutableKind {
    Static,
    StaticPie,
}

/// A checked executable: what to map and where to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    pub kind: ExecutableKind,
    /// 0 for static executables, [`PIE_BASE`] for static-PIE.
    pub load_base: u64,
    pub entry: u64,
    /// Address of the program headers in memory (for AT_PHDR), and their count and size.
    pub phdr: u64,
    pub phnum: u64,
    pub phent: u64,
    pub segments: Vec<Segment>,
    /// Highest address any segment uses (the program break starts above it).
    pub end: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Bits32,
    WrongMachine(u16),
    /// ET_REL, ET_CORE or an unknown type.
    NotExecutable(u16),
    /// It asks for a program interpreter (a dynamically linked executable).
    Dynamic(String),
    Corrupt(String),
    NoLoadableSegment,
    BadSegment {
        index: usize,
        reason: &'static str,
    },
    NoPhdrInMemory,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::Bits32 => write!(f, "32-bit ELF: only x86-64 executables run here"),
            ElfError::WrongMachine(m) => write!(f, "ELF for machine {m}, not x86-64"),
            ElfError::NotExecutable(t) => write!(f, "ELF type {t} is not an executable"),
            ElfError::Dynamic(interp) => {
                write!(f, "dynamically linked (interpreter {interp}): build it with -static or -static-pie")
            }
            ElfError::Corrupt(why) => write!(f, "corrupt ELF: {why}"),
            ElfError::NoLoadableSegment => write!(f, "no loadable segment"),
            ElfError::BadSegment { index, reason } => write!(f, "program header {index}: {reason}"),
            ElfError::NoPhdrInMemory => write!(f, "the program headers are not inside any loadable segment"),
        }
    }
}

fn corrupt(e: goblin::error::Error) -> ElfError {
    ElfError::Corrupt(alloc::format!("{e}"))
}

/// The magic and class checks every entry point makes first.
fn check_identity(head: &[u8]) -> Result<(), ElfError> {
    if head.len() < 4 || &head[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if head.get(4) == Some(&header::ELFCLASS32) {
        return Err(ElfError::Bits32);
    }
    Ok(())
}

/// How many bytes from the file's start hold its ELF header and program headers (what
/// [`inspect_head`] must be given), read from the file's first [`ELF64_HEADER`] bytes (or all of
/// it, if shorter). Refuses program headers that end past [`MAX_HEADERS`].
pub fn headers_len(first: &[u8]) -> Result<usize, ElfError> {
    check_identity(first)?;
    let header = Elf::parse_header(first).map_err(corrupt)?;
    let table = u64::from(header.e_phnum) * u64::from(header.e_phentsize);
    let end = header.e_phoff.checked_add(table).ok_or(ElfError::Corrupt("program headers overflow".into()))?;
    let end = usize::try_from(end).unwrap_or(usize::MAX).max(ELF64_HEADER);
    if end > MAX_HEADERS {
        return Err(ElfError::Corrupt(alloc::format!("program headers end at byte {end}, past the first 64 KiB")));
    }
    Ok(end)
}

/// Checks a whole file held in memory and describes how to load it.
pub fn inspect(file: &[u8]) -> Result<Executable, ElfError> {
    inspect_head(file, file.len() as u64)
}

/// Checks an executable of `file_len` bytes from its start, `head` (at least its ELF header and
/// program headers: [`headers_len`] bytes), and describes how to load it. The segments' bytes
/// are not looked at: the loader streams them from the file afterwards.
pub fn inspect_head(head: &[u8], file_len: u64) -> Result<Executable, ElfError> {
    check_identity(head)?;
    let header = Elf::parse_header(head).map_err(corrupt)?;
    let elf = Elf::lazy_parse(header).map_err(corrupt)?;
    let phoff =
        usize::try_from(elf.header.e_phoff).map_err(|_| ElfError::Corrupt("program headers overflow".into()))?;
    if !elf.is_64 {
        return Err(ElfError::Bits32);
    }
    let endian = if elf.little_endian { Endian::Little } else { Endian::Big };
    let ctx = Ctx::new(Container::Big, endian);
    let program_headers = ProgramHeader::parse(head, phoff, elf.header.e_phnum as usize, ctx).map_err(corrupt)?;
    if elf.header.e_machine != header::EM_X86_64 {
        return Err(ElfError::WrongMachine(elf.header.e_machine));
    }
    if let Some(interp) = program_headers.iter().find(|p| p.p_type == program_header::PT_INTERP) {
        // The interpreter's name, when the headers' bytes hold it.
        let name = usize::try_from(interp.p_offset)
            .ok()
            .zip(usize::try_from(interp.p_filesz).ok())
            .and_then(|(start, len)| head.get(start..start.checked_add(len)?))
            .and_then(|bytes| core::str::from_utf8(bytes.split(|&b| b == 0).next()?).ok())
            .unwrap_or("(its name lies past the headers)");
        return Err(ElfError::Dynamic(String::from(name)));
    }
    let (kind, load_base) = match elf.header.e_type {
        header::ET_EXEC => (ExecutableKind::Static, 0),
        header::ET_DYN => (ExecutableKind::StaticPie, PIE_BASE),
        other => return Err(ElfError::NotExecutable(other)),
    };
    let mut segments: Vec<Segment> = Vec::new();
    for (index, ph) in program_headers.iter().enumerate() {
        if ph.p_type != program_header::PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        let bad = |reason| ElfError::BadSegment { index, reason };
        if ph.p_filesz > ph.p_memsz {
            return Err(bad("file size larger than memory size"));
        }
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(bad("file range overflows"))?;
        if file_end > file_len {
            return Err(bad("file range runs past the end of the file"));
        }
        if ph.p_offset % PAGE != ph.p_vaddr % PAGE {
            return Err(bad("file offset and address differ modulo the page size"));
        }
        let vaddr = ph.p_vaddr.checked_add(load_base).ok_or(bad("address overflows"))?;
        let end = vaddr.checked_add(ph.p_memsz).ok_or(bad("address range overflows"))?;
        if vaddr < PAGE || end > USER_END - PAGE {
            return Err(bad("outside the user address range"));
        }
        let segment = Segment {
            vaddr,
            mem_size: ph.p_memsz,
            file_offset: ph.p_offset,
            file_size: ph.p_filesz,
            protection: Protection { read: ph.is_read(), write: ph.is_write(), execute: ph.is_executable() },
        };
        let (start, stop) = segment.pages();
        if segments.iter().any(|s| {
            let (a, b) = s.pages();
            start < b && a < stop
        }) {
            return Err(bad("overlaps another loadable segment"));
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    let entry = elf.header.e_entry.checked_add(load_base).ok_or(ElfError::Corrupt("entry overflows".into()))?;
    if !segments.iter().any(|s| s.protection.execute && entry >= s.vaddr && entry < s.vaddr + s.mem_size) {
        return Err(ElfError::Corrupt(alloc::format!("entry point {entry:#x} is not in an executable segment")));
    }
    // AT_PHDR: PT_PHDR if present, else the loaded segment that holds the header table.
    let phoff = elf.header.e_phoff;
    let phdr = match program_headers.iter().find(|p| p.p_type == program_header::PT_PHDR) {
        Some(p) => p.p_vaddr.checked_add(load_base).ok_or(ElfError::NoPhdrInMemory)?,
        None => segments
            .iter()
            .find(|s| phoff >= s.file_offset && phoff < s.file_offset + s.file_size)
            .map(|s| s.vaddr + (phoff - s.file_offset))
            .ok_or(ElfError::NoPhdrInMemory)?,
    };
    let end = segments.iter().map(|s| s.pages().1).max().unwrap_or(0);
    Ok(Executable {
        kind,
        load_base,
        entry,
        phdr,
        phnum: elf.header.e_phnum as u64,
        phent: elf.header.e_phentsize as u64,
        segments,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable: header, `phnum` program headers, then code.
    fn elf(e_type: u16, phdrs: &[(u32, u32, u64, u64, u64, u64)], entry: u64) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // 64-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&header::EM_X86_64.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // phentsize
        f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(p_type, flags, offset, vaddr, filesz, memsz) in phdrs {
            let mut ph = vec![0u8; 56];
            ph[0..4].copy_from_slice(&p_type.to_le_bytes());
            ph[4..8].copy_from_slice(&flags.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
            ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&PAGE.to_le_bytes());
            f.extend_from_slice(&ph);
        }
        f.resize(0x2000, 0x90);
        f
    }

    const RX: u32 = 5;
    const RW: u32 = 6;
    const LOAD: u32 = program_header::PT_LOAD;

    fn good() -> Vec<u8> {
        elf(
            header::ET_EXEC,
            &[(LOAD, RX, 0, 0x40_0000, 0x1000, 0x1000), (LOAD, RW, 0x1000, 0x40_1000, 0x800, 0x3000)],
            0x40_0100,
        )
    }

    #[test]
    fn a_static_executable_is_described() {
        let x = inspect(&good()).unwrap();
        assert_eq!(x.kind, ExecutableKind::Static);
        assert_eq!((x.entry, x.phdr, x.phnum, x.phent, x.end), (0x40_0100, 0x40_0040, 2, 56, 0x40_4000));
        assert_eq!(x.segments[1].protection, Protection { read: true, write: true, execute: false });
    }

    #[test]
    fn static_pie_is_placed_at_the_pie_base() {
        let f = elf(header::ET_DYN, &[(LOAD, RX, 0, 0, 0x2000, 0x2000)], 0x100);
        let x = inspect(&f).unwrap();
        assert_eq!((x.kind, x.entry, x.phdr), (ExecutableKind::StaticPie, PIE_BASE + 0x100, PIE_BASE + 64));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert_eq!(inspect(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let mut f = good();
        f[4] = 1;
        assert_eq!(inspect(&f), Err(ElfError::Bits32));
        let mut f = good();
        f[18] = 3;
        assert_eq!(inspect(&f), Err(ElfError::WrongMachine(3)));
        assert!(matches!(inspect(&good()[..100]), Err(ElfError::Corrupt(_))));
        let f = elf(1, &[(LOAD, RX, 0, 0x40_0000, 0x1000, 0x1000)], 0x40_0000);
        assert_eq!(inspect(&f), Err(ElfError::NotExecutable(1)));
        let f = elf(header::ET_EXEC, &[(LOAD, RX, 0, 0x40_0000, 0x9000, 0x9000)], 0x40_0000);
        assert!(matches!(inspect(&f), Err(ElfError::BadSegment { index: 0, .. })));
        let f = elf(header::ET_EXEC, &[(LOAD, RX, 0, 0xffff_8000_0000_0000, 0x1000, 0x1000)], 0x40_0000);
        assert!(matches!(inspect(&f), Err(ElfError::BadSegment { reason: "outside the user address range", .. })));
        let f = elf(
            header::ET_EXEC,
            &[(LOAD, RX, 0, 0x40_0000, 0x1000, 0x1000), (LOAD, RW, 0, 0x40_0000, 0x10, 0x10)],
            0x40_0000,
        );
        assert!(matches!(inspect(&f), Err(ElfError::BadSegment { index: 1, .. })));
        let f = elf(header::ET_EXEC, &[(LOAD, RW, 0, 0x40_0000, 0x1000, 0x1000)], 0x40_0000);
        assert!(matches!(inspect(&f), Err(ElfError::Corrupt(_))), "entry in a non-executable segment");
        let f = elf(header::ET_EXEC, &[(LOAD, RX, 0x10, 0x40_0000, 0x100, 0x100)], 0x40_0000);
        assert!(matches!(inspect(&f), Err(ElfError::BadSegment { index: 0, .. })));
        let f = elf(header::ET_EXEC, &[], 0x40_0000);
        assert_eq!(inspect(&f), Err(ElfError::NoLoadableSegment));
    }

    #[test]
    fn an_interpreter_means_dynamic() {
        let mut f = elf(
            header::ET_DYN,
            &[(program_header::PT_INTERP, 4, 0x1800, 0x1800, 0x1c, 0x1c), (LOAD, RX, 0, 0, 0x2000, 0x2000)],
            0x100,
        );
        f[0x1800..0x181c].copy_from_slice(b"/lib64/ld-linux-x86-64.so.2\0");
        assert_eq!(inspect(&f), Err(ElfError::Dynamic("/lib64/ld-linux-x86-64.so.2".into())));
        // Read from the headers only, the name is out of reach; the verdict is the same.
        let head = &f[..headers_len(&f[..ELF64_HEADER]).unwrap()];
        assert!(matches!(inspect_head(head, f.len() as u64), Err(ElfError::Dynamic(_))));
    }

    /// The loader reads the headers, then streams the segments: the headers' length comes from
    /// the first 64 bytes, and the verdict from them and the file's length alone.
    #[test]
    fn headers_then_segments() {
        let f = good();
        assert_eq!(headers_len(&f[..ELF64_HEADER]), Ok(64 + 2 * 56));
        let head = &f[..64 + 2 * 56];
        assert_eq!(inspect_head(head, f.len() as u64), inspect(&f));
        // A segment past the file's end is caught from the length alone.
        assert!(matches!(inspect_head(head, 0x1000), Err(ElfError::BadSegment { index: 1, .. })));
        // Too few bytes for the headers: an error, never a read past the slice.
        assert!(matches!(inspect_head(&f[..100], f.len() as u64), Err(ElfError::Corrupt(_))));
        // Program headers far away, or past 64 KiB.
        let mut far = f.clone();
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(headers_len(&far[..ELF64_HEADER]), Err(ElfError::Corrupt(_))));
        far[32..40].copy_from_slice(&(70_000u64).to_le_bytes());
        assert!(matches!(headers_len(&far[..ELF64_HEADER]), Err(ElfError::Corrupt(_))));
        assert_eq!(headers_len(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert!(matches!(headers_len(&f[..20]), Err(ElfError::Corrupt(_))));
        // The Linux kernel's vmlinux is an x86-64 ELF whose segments lie in the kernel half.
        let kernel =
            elf(header::ET_EXEC, &[(LOAD, RX, 0, 0xffff_ffff_8100_0000, 0x1000, 0x1000)], 0xffff_ffff_8100_0000);
        assert!(matches!(inspect(&kernel), Err(ElfError::BadSegment { index: 0, .. })));
    }
}
