//! Guest loaders: a PVH ELF (Xen's PHYS32 entry note, as QEMU `-kernel` boots Manul itself and
//! Debian's vmlinux) and a bzImage (the Linux x86 boot protocol); which one an image is, the
//! Linux command line, and the firmware tables that go with either.

pub mod bzimage;
pub mod pvh;

use crate::acpi_builder::{self, AcpiConfig};
use crate::guest_memory::{GuestMemory, MemoryError};
use crate::machine;
use crate::svm::state::Entry;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use bzimage::BzImageError;
use pvh::PvhError;

/// What to load.
pub struct Image<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// The command line as the host gives it ([`linux_cmdline`] adds to it).
    pub cmdline: &'a str,
    pub vcpus: u32,
    pub tsc_hz: u64,
}

/// How the boot vCPU starts: where, and the boot data's address in a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    pub entry: Entry,
    /// PVH: EBX holds the start_info's address.
    pub rbx: u64,
    /// Linux: RSI holds the zero page's address.
    pub rsi: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    Memory(MemoryError),
    Pvh(PvhError),
    BzImage(BzImageError),
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> Self {
        LoadError::Memory(e)
    }
}

/// Loads the kernel (a bzImage, or else a PVH ELF), its boot data, the initrd and the ACPI
/// tables into guest memory.
pub fn load(memory: &GuestMemory, image: &Image) -> Result<Boot, LoadError> {
    let ram = memory.ram_ranges();
    let initrd_len = image.initrd.map(|i| i.len() as u64);
    let cmdline = linux_cmdline(image.cmdline, image.tsc_hz);
    let cmdline = cmdline.as_str();
    let (writes, initrd_gpa, boot) = if bzimage::is_bzimage(image.kernel) {
        let (linux, initrd_gpa) =
            bzimage::prepare(image.kernel, &ram, cmdline, initrd_len).map_err(LoadError::BzImage)?;
        let entry = Entry::Long64 { rip: linux.entry, cr3: linux.cr3, gdt: bzimage::BOOT_GDT };
        let (at, payload) = linux.payload;
        memory.write(at, payload)?;
        (linux.writes, initrd_gpa, Boot { entry, rbx: 0, rsi: linux.zero_page })
    } else {
        let pvh_image = pvh::inspect(image.kernel, &ram).map_err(LoadError::Pvh)?;
        let mut kernel_end = 0;
        // Straight from the image into guest RAM (`inspect` checked both ranges): nothing the
        // header asks for is allocated on the host's heap.
        for s in &pvh_image.segments {
            let bytes = image.kernel.get(s.offset as usize..(s.offset + s.file_bytes) as usize).unwrap_or_default();
            memory.write(s.gpa, bytes)?;
            memory.zero(s.gpa + s.file_bytes, s.memory_bytes - s.file_bytes)?;
            kernel_end = kernel_end.max(s.gpa + s.memory_bytes);
        }
        let mut writes = Vec::new();
        let data = pvh::boot_data(&ram, kernel_end, cmdline, initrd_len, machine::ACPI_RSDP).map_err(LoadError::Pvh)?;
        writes.extend(data.writes);
        let entry = Entry::Protected32 { rip: pvh_image.entry as u64 };
        (writes, data.initrd_gpa, Boot { entry, rbx: machine::PVH_START_INFO, rsi: 0 })
    };
    for (gpa, bytes) in &writes {
        memory.write(*gpa, bytes)?;
    }
    for (gpa, bytes) in acpi_builder::build(AcpiConfig { vcpus: image.vcpus, apic: true }) {
        memory.write(gpa, &bytes)?;
    }
    if let (Some(at), Some(initrd)) = (initrd_gpa, image.initrd) {
        memory.write(at, initrd)?;
    }
    Ok(boot)
}

/// The command line a Linux guest gets: the host's, plus what a kernel without KVM guest
/// support cannot learn about the TSC (Linux reads a rate only through KVM's, VMware's,
/// Hyper-V's, ACRN's or Jailhouse's interfaces; one with KVM guest support reads it from the
/// paravirtual clock, see `pv_clock`, and these options then change nothing), unless the host's
/// line says it itself:
/// - `tsc_early_khz=` with the TSC rate: under an emulator Linux's calibration against the PIT
///   and the PM timer fails its jitter checks, and Linux then marks the TSC unstable and reads
///   the PM timer (an exit) for every clock read;
/// - `tsc=reliable`: the guest's TSC is the host's own clock, passed through at a constant
///   offset, while its tick (PIT, APIC timer) is emulated and may arrive late: Linux's watchdog
///   would compare the TSC with that tick and distrust the better clock.
pub fn linux_cmdline(cmdline: &str, tsc_hz: u64) -> String {
    let mut out = String::from(cmdline.trim());
    let has = |prefix: &str| cmdline.split_whitespace().any(|word| word.starts_with(prefix));
    let mut add = |option: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(option);
    };
    if tsc_hz >= 1000 && !has("tsc_early_khz=") {
        add(&format!("tsc_early_khz={}", tsc_hz / 1000));
    }
    if !has("tsc=") {
        add("tsc=reliable");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;
    use crate::machine::{ACPI_RSDP, LINUX_CMDLINE, LINUX_PML4, LINUX_ZERO_PAGE, PVH_START_INFO};

    fn guest() -> GuestMemory {
        GuestMemory::new(FakeHost::default().leak(), 32 << 20).unwrap()
    }

    fn read(memory: &GuestMemory, gpa: u64, len: usize) -> Vec<u8> {
        let mut b = alloc::vec![0u8; len];
        memory.read(gpa, &mut b).unwrap();
        b
    }

    #[test]
    fn a_bzimage_is_loaded_with_its_command_line_initrd_and_acpi_tables() {
        let memory = guest();
        let kernel = bzimage::tests::image(0x020f, 1);
        let image =
            Image { kernel: &kernel, initrd: Some(b"INITRD"), cmdline: "quiet", vcpus: 2, tsc_hz: 2_000_000_000 };
        let boot = load(&memory, &image).unwrap();
        let entry = Entry::Long64 { rip: 0x100_0200, cr3: LINUX_PML4, gdt: bzimage::BOOT_GDT };
        assert_eq!(boot, Boot { entry, rbx: 0, rsi: LINUX_ZERO_PAGE });
        assert_eq!(read(&memory, 0x100_0000, 4), b"KERN");
        assert_eq!(read(&memory, LINUX_CMDLINE, 41), b"quiet tsc_early_khz=2000000 tsc=reliable\0");
        assert_eq!(read(&memory, ACPI_RSDP, 8), b"RSD PTR ");
        let initrd = memory.read_u64(LINUX_ZERO_PAGE + 0x218).unwrap() as u32 as u64;
        assert_eq!(read(&memory, initrd, 6), b"INITRD");
    }

    #[test]
    fn a_pvh_elf_is_loaded_and_starts_in_protected_mode_with_its_start_info() {
        let memory = guest();
        let kernel = pvh::tests::elf32(0x10_0010, 0x10_0000, true);
        let image = Image { kernel: &kernel, initrd: None, cmdline: "", vcpus: 1, tsc_hz: 0 };
        let boot = load(&memory, &image).unwrap();
        assert_eq!(boot, Boot { entry: Entry::Protected32 { rip: 0x10_0010 }, rbx: PVH_START_INFO, rsi: 0 });
        assert_eq!(read(&memory, 0x10_0000, 4), [0x90; 4], "the segment's bytes");
        assert_eq!(read(&memory, PVH_START_INFO, 4), 0x336e_c578u32.to_le_bytes(), "the start_info's magic");
        assert_eq!(read(&memory, ACPI_RSDP, 8), b"RSD PTR ");
    }

    #[test]
    fn an_image_that_is_neither_is_refused() {
        let image = Image { kernel: b"MZ not a kernel", initrd: None, cmdline: "", vcpus: 1, tsc_hz: 0 };
        assert!(matches!(load(&guest(), &image), Err(LoadError::Pvh(_))));
    }

    #[test]
    fn linux_gets_the_tsc_rate_unless_it_names_one() {
        assert_eq!(
            linux_cmdline("console=ttyS0 quiet", 2_093_792_200),
            "console=ttyS0 quiet tsc_early_khz=2093792 tsc=reliable"
        );
        assert_eq!(linux_cmdline("", 1_000_000_000), "tsc_early_khz=1000000 tsc=reliable");
        assert_eq!(
            linux_cmdline("a tsc_early_khz=5 tsc=unstable b", 2_000_000_000),
            "a tsc_early_khz=5 tsc=unstable b"
        );
        assert_eq!(linux_cmdline("a", 0), "a tsc=reliable", "no rate known: no rate added");
    }
}
