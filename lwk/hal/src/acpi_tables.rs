//! ACPI table parsing from raw bytes: the RSDP, the root table (XSDT or RSDT), the MADT (CPUs,
//! I/O APICs, interrupt overrides) and what power-off needs from the FADT and the DSDT (`\_S5`).
//!
//! Every length and checksum is checked; a corrupt table is an error naming the table, never a
//! panic. Memory is reached through [`PhysRead`], so host tests build tables in a byte array.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub use crate::memory_map::PhysRead;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcpiError {
    Unreadable { what: &'static str, phys: u64 },
    BadSignature { what: &'static str },
    BadChecksum { table: [u8; 4] },
    BadLength { table: [u8; 4], length: u32 },
    Missing { table: &'static str },
    BadMadtEntry { offset: usize, entry_type: u8, length: u8 },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let name =
            |t: &[u8; 4]| core::str::from_utf8(t).unwrap_or("????").replace(|c: char| !c.is_ascii_graphic(), "?");
        match self {
            AcpiError::Unreadable { what, phys } => write!(f, "cannot read the {what} at {phys:#x}"),
            AcpiError::BadSignature { what } => write!(f, "the {what} has a bad signature"),
            AcpiError::BadChecksum { table } => write!(f, "table {} has a bad checksum", name(table)),
            AcpiError::BadLength { table, length } => {
                write!(f, "table {} has an impossible length {length}", name(table))
            }
            AcpiError::Missing { table } => write!(f, "no {table} table"),
            AcpiError::BadMadtEntry { offset, entry_type, length } => {
                write!(f, "MADT entry at offset {offset} (type {entry_type}) has a bad length {length}")
            }
        }
    }
}

/// A processor from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadtCpu {
    pub apic_id: u32,
    /// Enabled now (disabled entries are hot-plug slots and are not started).
    pub enabled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    pub id: u8,
    pub address: u64,
    pub gsi_base: u32,
}

/// An ISA interrupt routed to another global system interrupt, with its polarity and trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOverride {
    pub isa_irq: u8,
    pub gsi: u32,
    pub flags: u16,
}

impl InterruptOverride {
    pub fn active_low(&self) -> bool {
        self.flags & 0b11 == 0b11
    }
    pub fn level_triggered(&self) -> bool {
        (self.flags >> 2) & 0b11 == 0b11
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Madt {
    pub local_apic_address: u64,
    /// PC-AT compatible dual 8259 present (it must then be masked).
    pub has_8259: bool,
    pub cpus: Vec<MadtCpu>,
    pub io_apics: Vec<IoApic>,
    pub overrides: Vec<InterruptOverride>,
}

impl Madt {
    /// The global system interrupt an ISA IRQ arrives on, with its override if any.
    pub fn isa_route(&self, irq: u8) -> (u32, Option<InterruptOverride>) {
        match self.overrides.iter().find(|o| o.isa_irq == irq) {
            Some(o) => (o.gsi, Some(*o)),
            None => (irq as u32, None),
        }
    }
}

/// What ACPI power-off needs: write `SLP_TYP | SLP_EN` to PM1a (and PM1b) control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerOff {
    pub pm1a_control: u16,
    pub pm1b_control: u16,
    pub slp_typ_a: u8,
    pub slp_typ_b: u8,
    /// SMI command port and the value that switches the chipset to ACPI mode (0 = not needed).
    pub smi_command: u16,
    pub acpi_enable: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiInfo {
    pub madt: Madt,
    /// `None` when the FADT or `\_S5` is missing: power-off then has to use another way.
    pub power_off: Option<PowerOff>,
    /// Signatures of every table the root table lists.
    pub tables: Vec<[u8; 4]>,
}

const HEADER: usize = 36;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}
fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |s, x| s.wrapping_add(*x)) == 0
}

/// Reads the RSDP at `rsdp_phys` and every table that matters for the kernel.
pub fn discover<R: PhysRead>(mem: &R, rsdp_phys: u64) -> Result<AcpiInfo, AcpiError> {
    let mut rsdp = [0u8; 36];
    if !mem.read(rsdp_phys, &mut rsdp[..20]) {
        return Err(AcpiError::Unreadable { what: "RSDP", phys: rsdp_phys });
    }
    if &rsdp[..8] != b"RSD PTR " {
        return Err(AcpiError::BadSignature { what: "RSDP" });
    }
    if !checksum_ok(&rsdp[..20]) {
        return Err(AcpiError::BadChecksum { table: *b"RSDP" });
    }
    let (root, entry_size) = if rsdp[15] >= 2 {
        if !mem.read(rsdp_phys, &mut rsdp) {
            return Err(AcpiError::Unreadable { what: "RSDP", phys: rsdp_phys });
        }
        if !checksum_ok(&rsdp) {
            return Err(AcpiError::BadChecksum { table: *b"RSDP" });
        }
        (u64_at(&rsdp, 24), 8)
    } else {
        (u32_at(&rsdp, 16) as u64, 4)
    };
    let root = read_table(mem, root, "root table (XSDT/RSDT)")?;
    let addrs: Vec<u64> = root[HEADER..]
        .chunks_exact(entry_size)
        .map(|c| if entry_size == 8 { u64_at(c, 0) } else { u32_at(c, 0) as u64 })
        .collect();
    let mut tables = Vec::new();
    let mut madt = None;
    let mut fadt = None;
    for addr in addrs {
        let t = read_table(mem, addr, "table listed in the root table")?;
        let sig: [u8; 4] = t[..4].try_into().expect("header");
        tables.push(sig);
        match &sig {
            b"APIC" => madt = Some(parse_madt(&t)?),
            b"FACP" => fadt = Some(t),
            _ => {}
        }
    }
    let madt = madt.ok_or(AcpiError::Missing { table: "MADT (APIC)" })?;
    let power_off = match fadt {
        Some(f) => power_off_from_fadt(mem, &f)?,
        None => None,
    };
    Ok(AcpiInfo { madt, power_off, tables })
}

/// Reads a whole table (header first for its length) and checks it.
fn read_table<R: PhysRead>(mem: &R, phys: u64, what: &'static str) -> Result<Vec<u8>, AcpiError> {
    let mut header = [0u8; HEADER];
    if !mem.read(phys, &mut header) {
        return Err(AcpiError::Unreadable { what, phys });
    }
    let sig: [u8; 4] = header[..4].try_into().expect("header");
    let length = u32_at(&header, 4);
    if (length as usize) < HEADER || length > 1 << 20 {
        return Err(AcpiError::BadLength { table: sig, length });
    }
    let mut t = vec![0u8; length as usize];
    if !mem.read(phys, &mut t) {
        return Err(AcpiError::Unreadable { what, phys });
    }
    if !checksum_ok(&t) {
        return Err(AcpiError::BadChecksum { table: sig });
    }
    Ok(t)
}

/// Parses a complete MADT (header included, checksum already verified or not).
pub fn parse_madt(t: &[u8]) -> Result<Madt, AcpiError> {
    let sig = *b"APIC";
    if t.len() < HEADER + 8 || &t[..4] != b"APIC" || u32_at(t, 4) as usize != t.len() {
        return Err(AcpiError::BadLength { table: sig, length: t.len() as u32 });
    }
    let mut madt = Madt {
        local_apic_address: u32_at(t, HEADER) as u64,
        has_8259: u32_at(t, HEADER + 4) & 1 != 0,
        ..Madt::default()
    };
    let mut o = HEADER + 8;
    while o < t.len() {
        let bad = |length| AcpiError::BadMadtEntry { offset: o, entry_type: t[o], length };
        if o + 2 > t.len() {
            return Err(bad(0));
        }
        let (kind, len) = (t[o], t[o + 1]);
        let min = match kind {
            0 => 8,
            1 => 12,
            2 => 10,
            5 => 12,
            9 => 16,
            _ => 2,
        };
        if (len as usize) < min || o + len as usize > t.len() {
            return Err(bad(len));
        }
        let e = &t[o..o + len as usize];
        match kind {
            0 => madt.cpus.push(MadtCpu { apic_id: e[3] as u32, enabled: u32_at(e, 4) & 1 != 0 }),
            1 => madt.io_apics.push(IoApic { id: e[2], address: u32_at(e, 4) as u64, gsi_base: u32_at(e, 8) }),
            2 => madt.overrides.push(InterruptOverride { isa_irq: e[3], gsi: u32_at(e, 4), flags: u16_at(e, 8) }),
            5 => madt.local_apic_address = u64_at(e, 4),
            9 => madt.cpus.push(MadtCpu { apic_id: u32_at(e, 4), enabled: u32_at(e, 8) & 1 != 0 }),
            _ => {}
        }
        o += len as usize;
    }
    Ok(madt)
}

fn power_off_from_fadt<R: PhysRead>(mem: &R, f: &[u8]) -> Result<Option<PowerOff>, AcpiError> {
    if f.len() < 72 {
        return Err(AcpiError::BadLength { table: *b"FACP", length: f.len() as u32 });
    }
    let x_dsdt = if f.len() >= 148 { u64_at(f, 140) } else { 0 };
    let dsdt_addr = if x_dsdt != 0 { x_dsdt } else { u32_at(f, 40) as u64 };
    let pm1a = u32_at(f, 64) as u16;
    if dsdt_addr == 0 || pm1a == 0 {
        return Ok(None);
    }
    let dsdt = read_table(mem, dsdt_addr, "DSDT")?;
    let Some((a, b)) = find_s5(&dsdt[HEADER..]) else {
        return Ok(None);
    };
    Ok(Some(PowerOff {
        pm1a_control: pm1a,
        pm1b_control: u32_at(f, 68) as u16,
        slp_typ_a: a,
        slp_typ_b: b,
        smi_command: u32_at(f, 48) as u16,
        acpi_enable: f[52],
    }))
}

/// Finds `Name (_S5, Package () { SLP_TYPa, SLP_TYPb, ... })` in AML and returns the two values.
pub fn find_s5(aml: &[u8]) -> Option<(u8, u8)> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let mut p = aml.get(at + 4..)?;
    if *p.first()? != 0x12 {
        return None; // PackageOp
    }
    let extra = (p.get(1)? >> 6) as usize; // PkgLength: bits 7:6 count the bytes that follow
    p = p.get(2 + extra + 1..)?; // skip PackageOp, PkgLength, NumElements
    let mut element = || -> Option<u8> {
        let (v, used) = match *p.first()? {
            0x00 => (0, 1),          // ZeroOp
            0x01 => (1, 1),          // OneOp
            0x0a => (*p.get(1)?, 2), // BytePrefix
            _ => return None,
        };
        p = &p[used..];
        Some(v)
    };
    let a = element()?;
    let b = element().unwrap_or(0);
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Physical memory as a map of byte blobs.
    #[derive(Default)]
    struct Mem(BTreeMap<u64, Vec<u8>>);

    impl PhysRead for Mem {
        fn read(&self, phys: u64, buf: &mut [u8]) -> bool {
            let Some((&base, blob)) = self.0.range(..=phys).next_back() else { return false };
            let off = (phys - base) as usize;
            match blob.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        let sum = t.iter().fold(0u8, |s, x| s.wrapping_add(*x));
        t[at] = 0u8.wrapping_sub(sum);
    }

    fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; HEADER];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut t, 9);
        t
    }

    fn madt_body(cpus: &[(u8, bool)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for (i, &(id, en)) in cpus.iter().enumerate() {
            b.extend_from_slice(&[0, 8, i as u8, id]);
            b.extend_from_slice(&(en as u32).to_le_bytes());
        }
        b.extend_from_slice(&[1, 12, 0, 0]);
        b.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[2, 10, 0, 0]); // ISA IRQ 0 -> GSI 2
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&[2, 10, 0, 9]); // IRQ 9 -> GSI 9, active high, level
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&0x000du16.to_le_bytes());
        b.extend_from_slice(&[9, 16, 0, 0]); // x2APIC 300, enabled
        b.extend_from_slice(&300u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&7u32.to_le_bytes());
        b.extend_from_slice(&[0x7f, 3, 0]); // unknown type: skipped
        b
    }

    #[test]
    fn madt_lists_cpus_io_apics_and_overrides() {
        let m = parse_madt(&table(b"APIC", &madt_body(&[(0, true), (1, true), (2, false)]))).unwrap();
        assert_eq!(m.local_apic_address, 0xfee0_0000);
        assert!(m.has_8259);
        let ids: Vec<_> = m.cpus.iter().map(|c| (c.apic_id, c.enabled)).collect();
        assert_eq!(ids, [(0, true), (1, true), (2, false), (300, true)]);
        assert_eq!(m.io_apics, [IoApic { id: 0, address: 0xfec0_0000, gsi_base: 0 }]);
        assert_eq!(m.isa_route(0).0, 2);
        assert_eq!(m.isa_route(4), (4, None));
        let o9 = m.isa_route(9).1.unwrap();
        assert!(o9.level_triggered() && !o9.active_low());
    }

    #[test]
    fn bad_madt_entries_are_errors() {
        let mut body = madt_body(&[(0, true)]);
        body.extend_from_slice(&[0, 0]); // zero-length entry would loop forever
        assert!(matches!(parse_madt(&table(b"APIC", &body)), Err(AcpiError::BadMadtEntry { length: 0, .. })));
        let mut body = madt_body(&[(0, true)]);
        body.extend_from_slice(&[1, 40, 0, 0]); // runs past the end
        assert!(matches!(parse_madt(&table(b"APIC", &body)), Err(AcpiError::BadMadtEntry { length: 40, .. })));
        let mut t = table(b"APIC", &madt_body(&[]));
        t.truncate(20);
        assert!(parse_madt(&t).is_err());
        let mut body = madt_body(&[]);
        body.push(5); // a lone type byte
        assert!(matches!(parse_madt(&table(b"APIC", &body)), Err(AcpiError::BadMadtEntry { .. })));
    }

    fn rsdp(xsdt: u64) -> Vec<u8> {
        let mut r = vec![0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = 2;
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        fix_checksum(&mut r[..20], 8);
        fix_checksum(&mut r, 32);
        r
    }

    fn machine() -> Mem {
        let mut mem = Mem::default();
        mem.0.insert(0xe0000, rsdp(0x10_0000));
        let mut xsdt_body = Vec::new();
        for a in [0x11_0000u64, 0x12_0000] {
            xsdt_body.extend_from_slice(&a.to_le_bytes());
        }
        mem.0.insert(0x10_0000, table(b"XSDT", &xsdt_body));
        mem.0.insert(0x11_0000, table(b"APIC", &madt_body(&[(0, true), (1, true)])));
        let mut fadt = vec![0u8; 244 - HEADER];
        fadt[40 - HEADER..44 - HEADER].copy_from_slice(&0x13_0000u32.to_le_bytes());
        fadt[48 - HEADER..52 - HEADER].copy_from_slice(&0xb2u32.to_le_bytes());
        fadt[52 - HEADER] = 0xf1;
        fadt[64 - HEADER..68 - HEADER].copy_from_slice(&0x604u32.to_le_bytes());
        mem.0.insert(0x12_0000, table(b"FACP", &fadt));
        // AML: Name(_S5_, Package(4){ 5, 5, 0, 0 }) after some noise.
        let aml = [0x10, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00];
        let mut dsdt = vec![0x5b, 0x80, b'X'];
        dsdt.extend_from_slice(&aml[1..]);
        mem.0.insert(0x13_0000, table(b"DSDT", &dsdt));
        mem
    }

    #[test]
    fn discovery_walks_rsdp_xsdt_madt_fadt_and_dsdt() {
        let info = discover(&machine(), 0xe0000).unwrap();
        assert_eq!(info.tables, [*b"APIC", *b"FACP"]);
        assert_eq!(info.madt.cpus.len(), 3);
        let p = info.power_off.unwrap();
        assert_eq!((p.pm1a_control, p.slp_typ_a, p.slp_typ_b, p.smi_command, p.acpi_enable), (0x604, 5, 5, 0xb2, 0xf1));
    }

    #[test]
    fn corrupt_tables_are_named() {
        let mut mem = machine();
        mem.0.get_mut(&0x11_0000).unwrap()[20] ^= 0xff;
        assert_eq!(discover(&mem, 0xe0000), Err(AcpiError::BadChecksum { table: *b"APIC" }));
        let mut mem = machine();
        mem.0.get_mut(&0xe0000).unwrap()[0] = b'X';
        assert_eq!(discover(&mem, 0xe0000), Err(AcpiError::BadSignature { what: "RSDP" }));
        assert!(matches!(discover(&machine(), 0x5000), Err(AcpiError::Unreadable { .. })));
        let mut mem = machine();
        let t = mem.0.get_mut(&0x10_0000).unwrap();
        t[4..8].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(discover(&mem, 0xe0000), Err(AcpiError::BadLength { table: *b"XSDT", length: 4 }));
        assert_eq!(AcpiError::BadChecksum { table: *b"AP\0C" }.to_string(), "table AP?C has a bad checksum");
    }

    #[test]
    fn s5_forms() {
        assert_eq!(find_s5(b"_S5_\x12\x06\x04\x00\x01\x00\x00"), Some((0, 1)));
        assert_eq!(find_s5(b"_S5_\x12\x46\x00\x04\x0a\x07\x0a\x02"), Some((7, 2)));
        assert_eq!(find_s5(b"_S5_\x13"), None);
        assert_eq!(find_s5(b"_S5_\x12"), None);
        assert_eq!(find_s5(b"_S4_"), None);
    }
}
