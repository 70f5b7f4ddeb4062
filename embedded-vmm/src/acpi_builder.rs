//! ACPI tables for a guest, generated for its configuration: RSDP, XSDT, FADT (with the PM block
//! of `devices::acpi_pm` and a reset register), FACS, a DSDT holding `\_S5` so that the guest's
//! power-off reaches the VMM, and, when the VM has local APICs, a MADT. They live in the
//! reserved BIOS area at 0xe0000, where a guest looking for the RSDP finds it.

use crate::machine::{
    ACPI_DSDT as DSDT_GPA, ACPI_FACS as FACS_GPA, ACPI_FADT as FADT_GPA, ACPI_MADT as MADT_GPA, ACPI_RSDP as RSDP_GPA,
    ACPI_XSDT as XSDT_GPA, IO_APIC, LOCAL_APIC, PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA, PCI_MEMORY_WINDOW, PIT_GSI,
    PM_TIMER, PM1A_CONTROL, PM1A_EVENT, PVPANIC, RESET_CONTROL, S5_SLEEP_TYPE, SCI_IRQ,
};
use alloc::vec;
use alloc::vec::Vec;

const OEM_ID: &[u8; 6] = b"MANUL ";
const OEM_TABLE: &[u8; 8] = b"MANULVMM";

/// What the tables describe.
#[derive(Clone, Copy, Debug)]
pub struct AcpiConfig {
    pub vcpus: u32,
    /// Describe local APICs and an I/O APIC (MADT); without, the guest uses the 8259 pair.
    pub apic: bool,
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b)))
}

/// A table with its standard 36-byte header and a fixed checksum.
fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"MANL");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure for system I/O.
fn gas_io(port: u16, bits: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O
    g[1] = bits;
    g[3] = match bits {
        8 => 1,
        16 => 2,
        _ => 3,
    };
    g[4..12].copy_from_slice(&(port as u64).to_le_bytes());
    g
}

fn fadt() -> Vec<u8> {
    let mut b = vec![0u8; 276 - 36];
    let at = |offset: usize| offset - 36;
    b[at(36)..at(40)].copy_from_slice(&(FACS_GPA as u32).to_le_bytes());
    b[at(40)..at(44)].copy_from_slice(&(DSDT_GPA as u32).to_le_bytes());
    b[at(46)..at(48)].copy_from_slice(&(SCI_IRQ as u16).to_le_bytes());
    // SMI_CMD = 0: ACPI is always on, nothing to enable.
    b[at(56)..at(60)].copy_from_slice(&(PM1A_EVENT as u32).to_le_bytes());
    b[at(64)..at(68)].copy_from_slice(&(PM1A_CONTROL as u32).to_le_bytes());
    b[at(76)..at(80)].copy_from_slice(&(PM_TIMER as u32).to_le_bytes());
    b[at(88)] = 4; // PM1_EVT_LEN
    b[at(89)] = 2; // PM1_CNT_LEN
    b[at(91)] = 4; // PM_TMR_LEN
    b[at(96)..at(98)].copy_from_slice(&0x0fffu16.to_le_bytes()); // P_LVL2_LAT: C2 unsupported
    b[at(98)..at(100)].copy_from_slice(&0x0fffu16.to_le_bytes()); // P_LVL3_LAT: C3 unsupported
    // IAPC_BOOT_ARCH: no VGA, and no 8042 announced. The i8042 model is there for the reset line
    // and for guests that probe it anyway, but its AUX port has no loopback, and Linux's probe
    // of an announced 8042 waits out that loopback test: 10,000 polls of port 0x64.
    b[at(109)..at(111)].copy_from_slice(&IAPC_BOOT_ARCH_NO_VGA.to_le_bytes());
    // Flags: WBINVD, PROC_C1, SLP_BUTTON, RTC_S4, RESET_REG_SUP.
    let flags: u32 = (1 << 0) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 10);
    b[at(112)..at(116)].copy_from_slice(&flags.to_le_bytes());
    b[at(116)..at(128)].copy_from_slice(&gas_io(RESET_CONTROL, 8));
    b[at(128)] = 0x06; // RESET_VALUE
    b[at(131)] = 1; // FADT minor version
    b[at(132)..at(140)].copy_from_slice(&FACS_GPA.to_le_bytes());
    b[at(140)..at(148)].copy_from_slice(&DSDT_GPA.to_le_bytes());
    b[at(148)..at(160)].copy_from_slice(&gas_io(PM1A_EVENT, 32));
    b[at(172)..at(184)].copy_from_slice(&gas_io(PM1A_CONTROL, 16));
    b[at(208)..at(220)].copy_from_slice(&gas_io(PM_TIMER, 32));
    table(b"FACP", 6, &b)
}

fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version
    f
}

/// An AML package: `op`, its PkgLength (which counts itself), then `body`.
fn aml_package(op: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = op.to_vec();
    // One byte holds lengths below 64; two bytes below 4096 (low nibble, then the next byte).
    let len = body.len() + 1;
    if len < 64 {
        out.push(len as u8);
    } else {
        let len = len + 1;
        out.extend_from_slice(&[0x40 | (len & 0xf) as u8, (len >> 4) as u8]);
    }
    out.extend_from_slice(body);
    out
}

/// The DSDT: `Name (_S5, Package (4) { 5, 5, 0, 0 })`, the guest-panic device, the PCI root.
fn dsdt() -> Vec<u8> {
    let typ = S5_SLEEP_TYPE as u8;
    let mut aml = alloc::vec![0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, typ, 0x0a, typ, 0x00, 0x00];
    // Device (\_SB.PEVT): the guest-panic device Linux's pvpanic-mmio driver binds to (_HID
    // "QEMU0001"), one I/O port. Name (_HID, "QEMU0001"); Name (_CRS, ResourceTemplate () {
    // IO (Decode16, 0x505, 0x505, 1, 1) }).
    let mut resources = io_ports(PVPANIC, 1).to_vec();
    resources.extend_from_slice(&[0x79, 0x00]);
    let mut crs = alloc::vec![0x0a, resources.len() as u8];
    crs.extend_from_slice(&resources);
    let mut device = b"PEVT".to_vec();
    device.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0d]);
    device.extend_from_slice(b"QEMU0001\0");
    device.extend_from_slice(&[0x08, b'_', b'C', b'R', b'S']);
    device.extend(aml_package(&[0x11], &crs));
    let mut scope = b"\\_SB_".to_vec();
    scope.extend(aml_package(&[0x5b, 0x82], &device));
    scope.extend(aml_package(&[0x5b, 0x82], &pci_root()));
    aml.extend(aml_package(&[0x10], &scope));
    table(b"DSDT", 2, &aml)
}

/// An ACPI I/O Port descriptor (small item 0x47): `count` ports from `first`, 16-bit decode.
fn io_ports(first: u16, count: u8) -> [u8; 8] {
    let [lo, hi] = first.to_le_bytes();
    [0x47, 0x01, lo, hi, lo, hi, 0x01, count]
}

/// An ACPI Word or DWord Address Space descriptor (large items 0x88, 0x87): a range the root
/// bridge produces (minimum and maximum fixed), of `kind` (0 memory, 1 I/O, 2 bus numbers).
fn address_space(dword: bool, kind: u8, type_flags: u8, min: u64, max: u64) -> Vec<u8> {
    let (tag, width) = if dword { (0x87, 4) } else { (0x88, 2) };
    let mut d = alloc::vec![tag, 0, 0, kind, 0x0c, type_flags];
    for value in [0, min, max, 0, max - min + 1] {
        d.extend_from_slice(&value.to_le_bytes()[..width]);
    }
    let len = (d.len() - 3) as u16;
    d[1..3].copy_from_slice(&len.to_le_bytes());
    d
}

/// Device (\_SB.PCI0): the PCI root bridge (_HID PNP0A03, bus 0), so that Linux scans bus 0
/// through ACPI and finds the shared regions' functions. Its _CRS: bus 0, the I/O ports but
/// 0xcf8-0xcff (which it consumes), and the BAR window below the I/O APIC.
fn pci_root() -> Vec<u8> {
    let mut crs = address_space(false, 2, 0, 0, 0);
    crs.extend_from_slice(&io_ports(PCI_CONFIG_ADDRESS, (PCI_CONFIG_DATA.end - PCI_CONFIG_ADDRESS) as u8));
    crs.extend(address_space(false, 1, 0x03, 0, PCI_CONFIG_ADDRESS as u64 - 1));
    crs.extend(address_space(false, 1, 0x03, PCI_CONFIG_DATA.end as u64, 0xffff));
    // Read-write, cacheable memory.
    crs.extend(address_space(true, 0, 0x03, PCI_MEMORY_WINDOW.start, PCI_MEMORY_WINDOW.end - 1));
    crs.extend_from_slice(&[0x79, 0x00]);
    let mut buffer = alloc::vec![0x0a, crs.len() as u8];
    buffer.extend(crs);
    let mut device = b"PCI0".to_vec();
    // Name (_HID, EisaId ("PNP0A03")), Name (_UID, Zero)
    device.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03]);
    device.extend_from_slice(&[0x08, b'_', b'U', b'I', b'D', 0x00]);
    device.extend_from_slice(&[0x08, b'_', b'C', b'R', b'S']);
    device.extend(aml_package(&[0x11], &buffer));
    device
}

fn madt(vcpus: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(LOCAL_APIC.start as u32).to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes()); // PC-AT compatible 8259s present
    for i in 0..vcpus.min(255) {
        b.extend_from_slice(&[0, 8, i as u8, i as u8]);
        b.extend_from_slice(&1u32.to_le_bytes());
    }
    b.extend_from_slice(&[1, 12, vcpus.min(254) as u8, 0]);
    b.extend_from_slice(&(IO_APIC.start as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    // ISA IRQ 0 arrives on GSI 2; the SCI is level-triggered, active high.
    b.extend_from_slice(&[2, 10, 0, 0]);
    b.extend_from_slice(&(PIT_GSI as u32).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&[2, 10, 0, SCI_IRQ]);
    b.extend_from_slice(&(SCI_IRQ as u32).to_le_bytes());
    b.extend_from_slice(&0x000du16.to_le_bytes());
    table(b"APIC", 4, &b)
}

/// FADT IAPC_BOOT_ARCH: VGA not present (bit 2); LEGACY_DEVICES and 8042 (bits 0, 1) clear.
const IAPC_BOOT_ARCH_NO_VGA: u16 = 1 << 2;

/// The tables and where they go: (guest-physical address, bytes).
pub fn build(config: AcpiConfig) -> Vec<(u64, Vec<u8>)> {
    let mut entries = vec![FADT_GPA];
    let mut out = vec![(FADT_GPA, fadt()), (FACS_GPA, facs()), (DSDT_GPA, dsdt())];
    if config.apic {
        entries.push(MADT_GPA);
        out.push((MADT_GPA, madt(config.vcpus)));
    }
    let body: Vec<u8> = entries.iter().flat_map(|a| a.to_le_bytes()).collect();
    out.push((XSDT_GPA, table(b"XSDT", 1, &body)));
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(OEM_ID);
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&XSDT_GPA.to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);
    out.push((RSDP_GPA, rsdp));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    fn find(tables: &[(u64, Vec<u8>)], gpa: u64) -> &[u8] {
        &tables.iter().find(|t| t.0 == gpa).unwrap().1
    }

    #[test]
    fn checksums_and_links() {
        let t = build(AcpiConfig { vcpus: 2, apic: true });
        let rsdp = find(&t, RSDP_GPA);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0);
        assert_eq!(sum(rsdp), 0);
        let xsdt = find(&t, u64::from_le_bytes(rsdp[24..32].try_into().unwrap()));
        assert_eq!(sum(xsdt), 0);
        let entries: Vec<u64> = xsdt[36..].chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(entries, [FADT_GPA, MADT_GPA]);
        for &(gpa, ref bytes) in &t {
            if gpa != RSDP_GPA && gpa != FACS_GPA {
                assert_eq!(sum(bytes), 0, "table at {gpa:#x}");
                assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len());
            }
        }
        // Nothing overlaps the next table.
        let mut spans: Vec<(u64, u64)> = t.iter().map(|(g, b)| (*g, *g + b.len() as u64)).collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:x?}");
    }

    #[test]
    fn fadt_points_at_the_pm_block_and_dsdt_has_s5() {
        let t = build(AcpiConfig { vcpus: 1, apic: false });
        let fadt = find(&t, FADT_GPA);
        assert_eq!(u32::from_le_bytes(fadt[64..68].try_into().unwrap()), PM1A_CONTROL as u32);
        assert_eq!(u64::from_le_bytes(fadt[140..148].try_into().unwrap()), DSDT_GPA);
        // IAPC_BOOT_ARCH: no 8042 announced (Linux then skips the probe), no VGA.
        assert_eq!(u16::from_le_bytes(fadt[109..111].try_into().unwrap()), 1 << 2);
        let dsdt = find(&t, DSDT_GPA);
        let at = dsdt.windows(4).position(|w| w == b"_S5_").unwrap();
        assert_eq!(dsdt[at + 4..at + 9], [0x12, 0x08, 0x04, 0x0a, 0x05]);
        assert!(t.iter().all(|(g, _)| *g != MADT_GPA), "no MADT without APICs");
        // Scope (\_SB) { Device (PEVT) { _HID "QEMU0001", _CRS: I/O port 0x505 }, Device (PCI0)
        // }, lengths counted by hand: PEVT 39, its Buffer 13 (each PkgLength counts itself);
        // the Scope's two-byte PkgLength covers the rest of the table.
        let scope = dsdt.windows(5).position(|w| w == b"\\_SB_").unwrap();
        assert_eq!(dsdt[scope - 3], 0x10);
        let scope_len = (dsdt[scope - 2] & 0xf) as usize | (dsdt[scope - 1] as usize) << 4;
        assert_eq!(scope - 3 + 1 + scope_len, dsdt.len(), "the scope ends the table");
        assert_eq!(dsdt[scope + 5..scope + 12], [0x5b, 0x82, 39, b'P', b'E', b'V', b'T']);
        let hid = dsdt.windows(8).position(|w| w == b"QEMU0001").unwrap();
        assert_eq!(dsdt[hid - 1], 0x0d);
        let crs = dsdt.windows(4).position(|w| w == b"_CRS").unwrap();
        assert_eq!(dsdt[crs + 4..crs + 18], [0x11, 13, 0x0a, 10, 0x47, 1, 5, 5, 5, 5, 1, 1, 0x79, 0]);
        // The root bridge: PNP0A03, and a memory window from 0xc0000000 to 0xfdffffff.
        let pci = dsdt.windows(4).position(|w| w == b"PCI0").unwrap();
        assert_eq!(dsdt[pci + 4..pci + 14], [0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03]);
        let window = [0x87, 23, 0, 0, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff, 0xff, 0xfd];
        assert!(dsdt.windows(window.len()).any(|w| w == window), "memory window");
    }

    #[test]
    fn aml_package_lengths_count_themselves() {
        assert_eq!(aml_package(&[0x10], &[7; 3]), [0x10, 4, 7, 7, 7]);
        assert_eq!(aml_package(&[0x10], &[0; 62])[1], 63);
        // 63 bytes of body: 65 with a two-byte PkgLength, 0x41 then 0x04.
        assert_eq!(aml_package(&[0x10], &[0; 63])[1..3], [0x41, 0x04]);
    }
}
