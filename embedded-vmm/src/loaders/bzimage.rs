//! The Linux x86 boot protocol (`Documentation/arch/x86/boot.rst`) for a bzImage, entered
//! through its 64-bit entry point: the protected-mode kernel loaded at its preferred address,
//! `boot_params` (the zero page) with the setup header copied from the image, the e820 map, the
//! command line and the initrd, and a long-mode CPU with identity page tables and the boot GDT
//! (`__BOOT_CS` 0x10, `__BOOT_DS` 0x18), RSI pointing at the zero page.
//!
//! The image is untrusted: every header field used is checked against the file and guest RAM.

use super::pvh::memory_map;
use crate::machine::{ACPI_RSDP, LINUX_BOOT_GDT, LINUX_CMDLINE, LINUX_PD, LINUX_PDPT, LINUX_PML4, LINUX_ZERO_PAGE};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

const CMDLINE_MAX: usize = 4095;
const HEADER_START: usize = 0x1f1;
const XLF_KERNEL_64: u16 = 1 << 0;
const LOADED_HIGH: u8 = 1 << 0;
const CAN_USE_HEAP: u8 = 1 << 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BzImageError {
    NotBzImage,
    TooOld(u16),
    Not64Bit,
    Truncated,
    DoesNotFit(&'static str),
    CommandLineTooLong,
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BzImageError::NotBzImage => write!(f, "not a bzImage (no \"HdrS\" setup header)"),
            BzImageError::TooOld(v) => write!(f, "boot protocol {}.{:02} is older than 2.12", v >> 8, v & 0xff),
            BzImageError::Not64Bit => write!(f, "the kernel has no 64-bit entry point (XLF_KERNEL_64)"),
            BzImageError::Truncated => write!(f, "the image is shorter than its setup header says"),
            BzImageError::DoesNotFit(what) => write!(f, "{what} does not fit in guest RAM"),
            BzImageError::CommandLineTooLong => write!(f, "command line longer than {CMDLINE_MAX} bytes"),
        }
    }
}

/// Whether `file` looks like a bzImage (so the VM picks this loader).
pub fn is_bzimage(file: &[u8]) -> bool {
    file.get(0x202..0x206) == Some(b"HdrS")
}

/// A checked bzImage: what to write where, and the entry state.
pub struct LinuxBoot<'f> {
    /// The protected-mode kernel, borrowed from the image (never copied on the host), and where
    /// it goes.
    pub payload: (u64, &'f [u8]),
    /// The boot data the loader makes: zero page, command line, GDT, page tables.
    pub writes: Vec<(u64, Vec<u8>)>,
    pub entry: u64,
    pub zero_page: u64,
    pub cr3: u64,
    pub kernel_end: u64,
}

fn u16_at(f: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([f[o], f[o + 1]])
}
fn u32_at(f: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(f[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(f: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(f[o..o + 8].try_into().expect("8 bytes"))
}

/// Lays out a boot of `file` in guest RAM `ram`, with `cmdline` and an initrd of `initrd_len`
/// bytes (whose place is returned in the zero page and in `initrd_gpa`).
pub fn prepare<'f>(
    file: &'f [u8],
    ram: &[(u64, u64)],
    cmdline: &str,
    initrd_len: Option<u64>,
) -> Result<(LinuxBoot<'f>, Option<u64>), BzImageError> {
    if file.len() < 0x270 || !is_bzimage(file) {
        return Err(BzImageError::NotBzImage);
    }
    let version = u16_at(file, 0x206);
    if version < 0x020c {
        return Err(BzImageError::TooOld(version));
    }
    if u16_at(file, 0x236) & XLF_KERNEL_64 == 0 {
        return Err(BzImageError::Not64Bit);
    }
    if cmdline.len() > CMDLINE_MAX {
        return Err(BzImageError::CommandLineTooLong);
    }
    let setup_sects = match file[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let kernel_offset = (setup_sects + 1) * 512;
    if kernel_offset >= file.len() {
        return Err(BzImageError::Truncated);
    }
    let payload = &file[kernel_offset..];
    let header_end = 0x202 + file[0x201] as usize;
    if header_end > file.len() || header_end > 0x1000 {
        return Err(BzImageError::Truncated);
    }
    let alignment = u32_at(file, 0x230).max(0x20_0000) as u64;
    let preferred = u64_at(file, 0x258);
    let load = if preferred >= 0x10_0000 { preferred } else { 0x100_0000 }.next_multiple_of(alignment.min(1 << 30));
    let init_size = (u32_at(file, 0x260) as u64).max(payload.len() as u64);
    let low_end = ram.iter().find(|r| r.0 == 0).map_or(0, |r| r.1);
    let kernel_end = load.checked_add(init_size).ok_or(BzImageError::DoesNotFit("the kernel"))?;
    if kernel_end > low_end {
        return Err(BzImageError::DoesNotFit("the kernel"));
    }
    let initrd_max = match u32_at(file, 0x22c) {
        0 => 0x37ff_ffff,
        m => m as u64,
    };
    let initrd_gpa = match initrd_len {
        Some(n) => {
            let top = low_end.min(initrd_max + 1);
            let at = top.checked_sub(n).ok_or(BzImageError::DoesNotFit("the initrd"))? & !0xfff;
            if at < kernel_end {
                return Err(BzImageError::DoesNotFit("the initrd"));
            }
            Some(at)
        }
        None => None,
    };

    // The zero page: the image's setup header, then what the loader fills in.
    let mut zp = vec![0u8; 4096];
    zp[HEADER_START..header_end].copy_from_slice(&file[HEADER_START..header_end]);
    zp[0x210] = 0xff; // type_of_loader: undefined
    zp[0x211] |= LOADED_HIGH | CAN_USE_HEAP;
    zp[0x228..0x22c].copy_from_slice(&(LINUX_CMDLINE as u32).to_le_bytes());
    if let (Some(at), Some(n)) = (initrd_gpa, initrd_len) {
        zp[0x218..0x21c].copy_from_slice(&(at as u32).to_le_bytes());
        zp[0x21c..0x220].copy_from_slice(&(n as u32).to_le_bytes());
    }
    zp[0x70..0x78].copy_from_slice(&ACPI_RSDP.to_le_bytes());
    let map = memory_map(ram);
    zp[0x1e8] = map.len().min(128) as u8;
    for (i, (start, len, kind)) in map.iter().take(128).enumerate() {
        let at = 0x2d0 + 20 * i;
        zp[at..at + 8].copy_from_slice(&start.to_le_bytes());
        zp[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
        zp[at + 16..at + 20].copy_from_slice(&kind.to_le_bytes());
    }

    // Identity page tables for the first 4 GiB with 2 MiB pages, and the boot GDT.
    let mut pml4 = vec![0u8; 4096];
    pml4[..8].copy_from_slice(&(LINUX_PDPT | 3).to_le_bytes());
    let mut pdpt = vec![0u8; 4096];
    let mut pds = vec![0u8; 4 * 4096];
    for g in 0..4u64 {
        pdpt[g as usize * 8..g as usize * 8 + 8].copy_from_slice(&((LINUX_PD + g * 4096) | 3).to_le_bytes());
        for e in 0..512u64 {
            let at = (g * 512 + e) as usize * 8;
            let phys = (g << 30) | (e << 21);
            pds[at..at + 8].copy_from_slice(&(phys | 0x83).to_le_bytes());
        }
    }
    let gdt: Vec<u8> =
        [0u64, 0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff].iter().flat_map(|d| d.to_le_bytes()).collect();
    let mut cmd = cmdline.as_bytes().to_vec();
    cmd.push(0);
    let writes = vec![
        (LINUX_ZERO_PAGE, zp),
        (LINUX_CMDLINE, cmd),
        (LINUX_BOOT_GDT, gdt),
        (LINUX_PML4, pml4),
        (LINUX_PDPT, pdpt),
        (LINUX_PD, pds),
    ];
    let payload = (load, payload);
    Ok((
        LinuxBoot { payload, writes, entry: load + 0x200, zero_page: LINUX_ZERO_PAGE, cr3: LINUX_PML4, kernel_end },
        initrd_gpa,
    ))
}

/// The GDT's address and limit, for the guest's GDTR.
pub const BOOT_GDT: (u64, u32) = (LINUX_BOOT_GDT, 31);

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A bzImage's first 8 KiB: the setup header of boot protocol `version` with `flags`
    /// (xloadflags), "KERN" at the start of the kernel (loaded at 16 MiB, 4 MiB to run).
    pub(crate) fn image(version: u16, flags: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x2000];
        f[0x1f1] = 3; // setup sectors: the kernel starts at 0x800
        f[0x201] = 0x6a; // header length
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        f[0x211] = LOADED_HIGH;
        f[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        f[0x236..0x238].copy_from_slice(&flags.to_le_bytes());
        f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[0x260..0x264].copy_from_slice(&0x40_0000u32.to_le_bytes());
        f[0x800..0x804].copy_from_slice(b"KERN");
        f
    }

    const RAM: [(u64, u64); 1] = [(0, 256 << 20)];

    #[test]
    fn a_64_bit_boot_is_laid_out() {
        let file = image(0x020f, XLF_KERNEL_64);
        let (boot, initrd) = prepare(&file, &RAM, "console=ttyS0", Some(0x10_0000)).unwrap();
        assert_eq!(boot.entry, 0x100_0200);
        assert_eq!(boot.payload.0, 0x100_0000);
        assert_eq!(&boot.payload.1[..4], b"KERN");
        let zp = &boot.writes.iter().find(|w| w.0 == LINUX_ZERO_PAGE).unwrap().1;
        assert_eq!(&zp[0x202..0x206], b"HdrS");
        assert_eq!(zp[0x210], 0xff);
        assert_eq!(u32_at(zp, 0x228) as u64, LINUX_CMDLINE);
        assert_eq!(u32_at(zp, 0x218) as u64, initrd.unwrap());
        assert_eq!(u32_at(zp, 0x21c), 0x10_0000);
        assert_eq!(zp[0x1e8], 4);
        assert!(initrd.unwrap() >= boot.kernel_end);
    }

    #[test]
    fn bad_images_are_refused() {
        assert_eq!(prepare(b"\x7fELF", &RAM, "", None).err(), Some(BzImageError::NotBzImage));
        assert_eq!(prepare(&image(0x0209, XLF_KERNEL_64), &RAM, "", None).err(), Some(BzImageError::TooOld(0x0209)));
        assert_eq!(prepare(&image(0x020f, 0), &RAM, "", None).err(), Some(BzImageError::Not64Bit));
        let mut f = image(0x020f, XLF_KERNEL_64);
        f[0x1f1] = 200;
        assert_eq!(prepare(&f, &RAM, "", None).err(), Some(BzImageError::Truncated));
        let small = [(0u64, 16u64 << 20)];
        assert!(matches!(prepare(&image(0x020f, XLF_KERNEL_64), &small, "", None), Err(BzImageError::DoesNotFit(_))));
        assert!(matches!(
            prepare(&image(0x020f, XLF_KERNEL_64), &RAM, "", Some(1 << 30)),
            Err(BzImageError::DoesNotFit(_))
        ));
        assert_eq!(
            prepare(&image(0x020f, XLF_KERNEL_64), &RAM, &"x".repeat(5000), None).err(),
            Some(BzImageError::CommandLineTooLong)
        );
    }
}
