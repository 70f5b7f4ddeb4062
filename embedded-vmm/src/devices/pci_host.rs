//! PCI configuration space through ports 0xcf8/0xcfc (mechanism 1): a host bridge at 00:00.0
//! and, at slot 3 and up, one ivshmem-style function per shared region
//! ([`crate::shared_regions`]) whose 64-bit prefetchable BAR 2 is the region. Every other
//! function reads as absent (all ones).

use crate::machine::{PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA};
use crate::shared_regions::{FIRST_SLOT, Placement};
use alloc::vec::Vec;

/// A shared region's PCI function: its fixed BAR and what the guest wrote.
#[derive(Clone, Debug)]
struct SharedFunction {
    bar: Placement,
    command: u16,
    /// All ones were written to BAR 2 (low) / BAR 3 (high): they read back the size mask.
    sizing: [bool; 2],
}

#[derive(Clone, Debug, Default)]
pub struct PciHost {
    address: u32,
    shared: Vec<SharedFunction>,
}

const ENABLE: u32 = 1 << 31;
/// Red Hat's vendor ID and the "Inter-VM shared memory" device (ivshmem).
const IVSHMEM_ID: u32 = 0x1110_1af4;
const IVSHMEM_SUBSYSTEM: u32 = 0x1100_1af4;
/// BAR 2 flags: memory, 64-bit (type 2), prefetchable.
const BAR_64_PREFETCH: u32 = 0b1100;

impl PciHost {
    /// A host bridge, and a function for each placed shared region (slots 3, 4, ...).
    pub fn with_shared(placements: &[Placement]) -> PciHost {
        let shared = placements.iter().map(|&bar| SharedFunction { bar, command: 0, sizing: [false; 2] }).collect();
        PciHost { address: 0, shared }
    }

    /// The shared function the address selects (bus 0, function 0, its slot).
    fn shared_function(&self) -> Option<usize> {
        let (bus, slot, function) = ((self.address >> 16) & 0xff, (self.address >> 11) & 0x1f, (self.address >> 8) & 7);
        let index = (slot as usize).checked_sub(FIRST_SLOT as usize)?;
        (bus == 0 && function == 0 && index < self.shared.len()).then_some(index)
    }

    fn config(&self, offset: u32) -> u32 {
        let bdf = (self.address >> 8) & 0xffff;
        if bdf == 0 {
            return match offset {
                0x00 => 0x1237_8086, // Intel 440FX host bridge
                0x08 => 0x0600_0002, // class: host bridge, revision 2
                _ => 0,              // header type 0, no BARs
            };
        }
        let Some(f) = self.shared_function().map(|i| &self.shared[i]) else { return 0xffff_ffff };
        let size_mask = !(f.bar.bar_size - 1);
        match offset {
            0x00 => IVSHMEM_ID,
            0x04 => f.command as u32,
            0x08 => 0x0500_0001, // class: memory controller, RAM; revision 1
            0x18 if f.sizing[0] => (size_mask as u32 & !0xf) | BAR_64_PREFETCH,
            0x18 => (f.bar.gpa as u32 & !0xf) | BAR_64_PREFETCH,
            0x1c if f.sizing[1] => (size_mask >> 32) as u32,
            0x1c => (f.bar.gpa >> 32) as u32,
            0x2c => IVSHMEM_SUBSYSTEM,
            _ => 0, // header type 0, no other BAR, no ROM, no interrupt pin
        }
    }

    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        if port == PCI_CONFIG_ADDRESS {
            return if size == 4 { self.address } else { 0xffff_ffff };
        }
        if self.address & ENABLE == 0 {
            return 0xffff_ffff;
        }
        let dword = self.config(self.address & 0xfc);
        let shift = 8 * (port - PCI_CONFIG_DATA.start) as u32;
        let value = dword >> shift;
        match size {
            1 => value & 0xff,
            2 => value & 0xffff,
            _ => value,
        }
    }

    pub fn write(&mut self, port: u16, size: u8, value: u32) {
        if port == PCI_CONFIG_ADDRESS {
            if size == 4 {
                self.address = value;
            }
            return;
        }
        if self.address & ENABLE == 0 {
            return;
        }
        // Only a shared function takes writes: its command register and its BAR sizing. The
        // host bridge has nothing to configure.
        let Some(i) = self.shared_function() else { return };
        let offset = (self.address & 0xfc) + (port - PCI_CONFIG_DATA.start) as u32;
        let f = &mut self.shared[i];
        match (offset, size) {
            (0x04, 2 | 4) => f.command = value as u16,
            (0x18, 4) => f.sizing[0] = value == 0xffff_ffff,
            (0x1c, 4) => f.sizing[1] = value == 0xffff_ffff,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(p: &mut PciHost, slot: u32, offset: u32) {
        p.write(0xcf8, 4, ENABLE | (slot << 11) | offset);
    }

    #[test]
    fn host_bridge_and_absent_devices() {
        let mut p = PciHost::default();
        p.write(0xcf8, 4, 0x8000_0000);
        assert_eq!(p.read(0xcf8, 4), 0x8000_0000);
        assert_eq!(p.read(0xcfc, 4), 0x1237_8086);
        assert_eq!(p.read(0xcfe, 2), 0x1237);
        p.write(0xcf8, 4, 0x8000_0800); // device 1
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff);
        select(&mut p, 3, 0); // no shared region: slot 3 is empty too
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff);
    }

    #[test]
    fn a_shared_region_is_an_ivshmem_function_with_a_sizable_fixed_bar() {
        let bar = Placement { gpa: 0xc040_0000, bar_size: 4 << 20, bytes: 3 << 20 };
        let mut p = PciHost::with_shared(&[Placement { gpa: 0xc000_0000, bar_size: 4096, bytes: 4096 }, bar]);
        select(&mut p, 4, 0x00);
        assert_eq!(p.read(0xcfc, 2), 0x1af4);
        assert_eq!(p.read(0xcfe, 2), 0x1110);
        select(&mut p, 4, 0x08);
        assert_eq!(p.read(0xcfc, 4) >> 8, 0x05_0000, "class: RAM");
        select(&mut p, 4, 0x18);
        assert_eq!(p.read(0xcfc, 4), 0xc040_000c, "64-bit prefetchable at its address");
        // Linux sizes a BAR: all ones in, the size mask out, the old value back in.
        p.write(0xcfc, 4, 0xffff_ffff);
        assert_eq!(p.read(0xcfc, 4), 0xffc0_000c, "4 MiB");
        p.write(0xcfc, 4, 0xc040_000c);
        assert_eq!(p.read(0xcfc, 4), 0xc040_000c);
        select(&mut p, 4, 0x1c);
        p.write(0xcfc, 4, 0xffff_ffff);
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff, "upper half of the mask");
        p.write(0xcfc, 4, 0);
        assert_eq!(p.read(0xcfc, 4), 0);
        // Another address is ignored: the BAR is fixed.
        select(&mut p, 4, 0x18);
        p.write(0xcfc, 4, 0xd000_0000);
        assert_eq!(p.read(0xcfc, 4), 0xc040_000c);
        select(&mut p, 4, 0x04);
        p.write(0xcfc, 2, 0x0006);
        assert_eq!(p.read(0xcfc, 4), 0x0006, "command: memory decode, bus master");
        select(&mut p, 4, 0x10);
        p.write(0xcfc, 4, 0xffff_ffff);
        assert_eq!(p.read(0xcfc, 4), 0, "BAR 0 absent");
        select(&mut p, 5, 0);
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff, "no third region");
        p.write(0xcf8, 4, ENABLE | (3 << 11) | (1 << 8)); // function 1 of slot 3
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff);
    }
}
