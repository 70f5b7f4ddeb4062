//! The virtual machine's layout in one place: where guest RAM, the boot data, the firmware
//! tables and the devices sit in guest-physical memory, which I/O ports the devices answer and
//! which ISA interrupts they raise. Everything else (devices, loaders, the ACPI tables, guest
//! memory) takes its addresses from here, so no two modules need each other for an address.

use core::ops::Range;
use static_assertions::const_assert;

// Guest-physical memory, from the bottom.

/// The PVH loader's boot data: `hvm_start_info`, the module list, the memory map, the command
/// line; nothing may load below its end.
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6100;
pub const PVH_MEMMAP: u64 = 0x6200;
pub const PVH_CMDLINE: u64 = 0x7000;
pub const PVH_BOOT_DATA_END: u64 = 0x8000;

/// The Linux boot protocol's data: the boot GDT, the zero page (`boot_params`), identity page
/// tables for the first 4 GiB (four page directories at 0xb000..0xf000), the command line.
pub const LINUX_BOOT_GDT: u64 = 0x6000;
pub const LINUX_ZERO_PAGE: u64 = 0x7000;
pub const LINUX_PML4: u64 = 0x9000;
pub const LINUX_PDPT: u64 = 0xa000;
pub const LINUX_PD: u64 = 0xb000;
pub const LINUX_CMDLINE: u64 = 0x2_0000;

/// The extended BIOS data area, reserved in the memory map, up to 640 KiB.
pub const EBDA: Range<u64> = 0x9_fc00..0xa_0000;
/// The BIOS ROM area, reserved in the memory map; the ACPI tables live in it.
pub const BIOS_AREA: Range<u64> = 0xe_0000..0x10_0000;
/// RAM above the BIOS area.
pub const HIGH_MEMORY_START: u64 = 0x10_0000;

/// The ACPI tables, at the bottom of the BIOS area where a guest looking for the RSDP finds it.
pub const ACPI_RSDP: u64 = BIOS_AREA.start;
pub const ACPI_XSDT: u64 = 0xe_0040;
pub const ACPI_FADT: u64 = 0xe_0100;
pub const ACPI_FACS: u64 = 0xe_0240;
pub const ACPI_DSDT: u64 = 0xe_0300;
pub const ACPI_MADT: u64 = 0xe_0400;

/// Guest RAM runs from 0 to 3 GiB, the rest from 4 GiB; the hole in between holds the PCI
/// window and the APICs.
pub const LOW_RAM_END: u64 = 3 << 30;
pub const HIGH_RAM_START: u64 = 4 << 30;

/// PCI memory BARs (the shared regions' BARs): the PCI root bridge's memory window in the DSDT,
/// below the I/O APIC.
pub const PCI_MEMORY_WINDOW: Range<u64> = 0xc000_0000..0xfe00_0000;

/// The I/O APIC's registers (IOREGSEL, IOWIN).
pub const IO_APIC: Range<u64> = 0xfec0_0000..0xfec0_0020;
/// Each local APIC's register page (xAPIC mode).
pub const LOCAL_APIC: Range<u64> = 0xfee0_0000..0xfee0_1000;

// I/O ports (the port bus in `devices` maps them to the devices).

/// The 8259 pair: each chip's command and data port.
pub const PIC_MASTER: Range<u16> = 0x20..0x22;
pub const PIC_SLAVE: Range<u16> = 0xa0..0xa2;
/// The 8254: channels 0 to 2, then the mode register.
pub const PIT: Range<u16> = 0x40..0x44;
/// System control port B: PIT channel 2's gate and output (and the speaker).
pub const PORT_B: u16 = 0x61;
/// The i8042: data, and status/command.
pub const I8042_DATA: u16 = 0x60;
pub const I8042_COMMAND: u16 = 0x64;
/// CMOS: index, then data.
pub const CMOS: Range<u16> = 0x70..0x72;
/// The 16550 UART COM1: eight registers.
pub const COM1: Range<u16> = 0x3f8..0x400;
/// Port 0x80: POST codes, a delay port for old drivers.
pub const POST: u16 = 0x80;
/// The guest-panic device's port (the DSDT's `QEMU0001` device, as QEMU's `pvpanic` ISA device).
pub const PVPANIC: u16 = 0x505;
/// The ACPI PM block: PM1a event (4 bytes), PM1a control (4), the PM timer (4).
pub const PM_BASE: u16 = 0x600;
pub const PM1A_EVENT: u16 = PM_BASE;
pub const PM1A_CONTROL: u16 = PM_BASE + 4;
pub const PM_TIMER: u16 = PM_BASE + 8;
pub const PM_END: u16 = PM_BASE + 12;
/// The sleep type (SLP_TYP) of S5, soft off: the DSDT's `\_S5` says it, the PM block obeys it.
pub const S5_SLEEP_TYPE: u16 = 5;
/// PCI configuration mechanism 1: the address register (32 bits wide; its byte at 0xcf9 is
/// the reset control register) and the data window.
pub const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
pub const PCI_CONFIG_DATA: Range<u16> = 0xcfc..0xd00;
/// The reset control register (bit 2 with bit 1 resets), also the FADT's reset register.
pub const RESET_CONTROL: u16 = 0xcf9;

// ISA interrupts (8259 inputs; the I/O APIC's pins of the same number, but IRQ 0 on pin 2).

pub const COM1_IRQ: u8 = 4;
/// The SCI (the ACPI PM block's interrupt).
pub const SCI_IRQ: u8 = 9;
/// The I/O APIC pin the PIT's IRQ 0 arrives on, as the MADT's override says.
pub const PIT_GSI: u8 = 2;

// Linux's four page directories end before its command line, all below the EBDA; the BIOS
// area ends where high memory starts; the PCI window, the I/O APIC and the local APIC in order.
const_assert!(LINUX_PD + 4 * 0x1000 <= LINUX_CMDLINE && LINUX_CMDLINE + 4096 <= EBDA.start);
const_assert!(EBDA.end <= BIOS_AREA.start && BIOS_AREA.end == HIGH_MEMORY_START);
const_assert!(PCI_MEMORY_WINDOW.end <= IO_APIC.start && IO_APIC.end <= LOCAL_APIC.start);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_data_stays_below_what_it_must_not_touch() {
        // PVH: all of its boot data below its end, which lies under the first 1 MiB.
        for gpa in [PVH_START_INFO, PVH_MODLIST, PVH_MEMMAP, PVH_CMDLINE] {
            assert!(gpa < PVH_BOOT_DATA_END);
        }
        for gpa in [ACPI_RSDP, ACPI_XSDT, ACPI_FADT, ACPI_FACS, ACPI_DSDT, ACPI_MADT] {
            assert!(BIOS_AREA.contains(&gpa));
        }
    }

    #[test]
    fn device_memory_sits_in_the_hole_below_4_gib() {
        let hole = LOW_RAM_END..HIGH_RAM_START;
        for r in [&PCI_MEMORY_WINDOW, &IO_APIC, &LOCAL_APIC] {
            assert!(hole.start <= r.start && r.end <= hole.end, "{r:x?} outside the hole");
        }
    }
}
