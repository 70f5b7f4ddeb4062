//! The VM's devices behind its port bus. Each model is a state machine tested on the host; this
//! module routes port accesses to them through the bus (ranges of `machine`'s ports, each
//! belonging to one device), drives their interrupt lines into the 8259 pair, and reports what a
//! guest access asks of the VM (power off, reset).

pub mod acpi_pm;
pub mod cmos_rtc;
pub mod i8042;
pub mod io_apic;
pub mod local_apic;
pub mod pci_host;
pub mod pic8259;
pub mod pit8254;
pub mod uart16550;

use acpi_pm::{AcpiPm, PmRequest};
use alloc::vec::Vec;
use cmos_rtc::CmosRtc;
use i8042::{I8042, I8042Effect};
use io_apic::{IoApic, Message};
use pci_host::PciHost;
use pic8259::Pic8259Pair;
use pit8254::Pit8254;
use uart16550::{Output, Uart16550};

use crate::machine::{self, COM1, COM1_IRQ, PIT_GSI, POST, PVPANIC, RESET_CONTROL};
use core::ops::Range;

/// Guest-panic events: the guest panicked; a crash kernel is loaded (it goes on into it).
const PVPANIC_PANICKED: u32 = 1 << 0;
const PVPANIC_CRASH_LOADED: u32 = 1 << 1;

/// A device on the port bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortDevice {
    Com1,
    Pm,
    Pic,
    Pit,
    Rtc,
    Keyboard,
    Pci,
    Reset,
    Post,
    Pvpanic,
}

const fn one(port: u16) -> Range<u16> {
    port..port + 1
}

/// The port bus: which device answers which ports, the busiest first (the UART's ports are the
/// guest's console, the PIC's and the PIT's its interrupts and clock).
const PORT_BUS: [(Range<u16>, PortDevice); 14] = [
    (COM1, PortDevice::Com1),
    (machine::PIC_MASTER, PortDevice::Pic),
    (machine::PIT, PortDevice::Pit),
    (machine::PM_BASE..machine::PM_END, PortDevice::Pm),
    (machine::PIC_SLAVE, PortDevice::Pic),
    (one(machine::PORT_B), PortDevice::Pit),
    (machine::CMOS, PortDevice::Rtc),
    (machine::PCI_CONFIG_DATA, PortDevice::Pci),
    (one(machine::PCI_CONFIG_ADDRESS), PortDevice::Pci),
    (one(POST), PortDevice::Post),
    (one(machine::I8042_DATA), PortDevice::Keyboard),
    (one(machine::I8042_COMMAND), PortDevice::Keyboard),
    (one(RESET_CONTROL), PortDevice::Reset),
    (one(PVPANIC), PortDevice::Pvpanic),
];

/// The device that answers `port`, if one does.
#[inline]
fn device_at(port: u16) -> Option<PortDevice> {
    PORT_BUS.iter().find(|(ports, _)| ports.contains(&port)).map(|&(_, device)| device)
}

/// A device on the MMIO bus (its registers exit as nested page faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDevice {
    /// The local APIC of the vCPU that accesses it.
    LocalApic,
    IoApic,
}

/// The MMIO bus: which device answers which guest-physical range.
const MMIO_BUS: [(Range<u64>, MmioDevice); 2] =
    [(machine::LOCAL_APIC, MmioDevice::LocalApic), (machine::IO_APIC, MmioDevice::IoApic)];

/// The device at guest-physical `gpa`, and the offset into its range.
pub fn mmio_device_at(gpa: u64) -> Option<(MmioDevice, u64)> {
    MMIO_BUS.iter().find(|(range, _)| range.contains(&gpa)).map(|(range, device)| (*device, gpa - range.start))
}

/// What a port access asks the VM to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The UART holds a finished line for the host's console.
    ConsoleLine,
    /// The UART refused a byte (its transmitter is busy): the guest waits and writes it again.
    ConsoleFull,
    PowerOff,
    Reset,
    /// The guest kernel reported a panic through the guest-panic port.
    GuestPanic,
}

/// The time a device access happens at: the VM's clock and the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub ns: u64,
    /// The wall clock, which only the RTC reads: filled for accesses to its ports, 0 for the
    /// others (asking the host for it on every port access cost 18 instructions an exit).
    pub unix_seconds: u64,
}

pub struct Devices {
    pub com1: Uart16550,
    pub pm: AcpiPm,
    pub pic: Pic8259Pair,
    pub pit: Pit8254,
    pub rtc: CmosRtc,
    pub keyboard: I8042,
    pub pci: PciHost,
    pub io_apic: IoApic,
    /// Ports accessed that nothing implements (reads give all ones, writes are dropped).
    pub unclaimed: u64,
    /// An interrupt line may have changed since [`Devices::update_lines`] last looked: set by
    /// every port access and by the VMM's own changes to the UART and the I/O APIC.
    lines_stale: bool,
    /// When the PIT's next IRQ 0 edge is due (host ns, rounded down).
    pit_due: Option<u64>,
    /// The PIT was written since `pit_due` was computed: its schedule may have changed. (The
    /// schedule also moves when an edge is taken.) Computing it costs a 128-bit division, which
    /// the exits that do not touch the PIT, most of them, no longer pay.
    pit_written: bool,
}

impl Default for Devices {
    fn default() -> Self {
        Devices::with_pci(PciHost::default())
    }
}

impl Devices {
    /// The devices, with `pci` as the PCI host (and the shared regions' functions).
    pub fn with_pci(pci: PciHost) -> Devices {
        Devices {
            com1: Uart16550::default(),
            pm: AcpiPm::default(),
            pic: Pic8259Pair::default(),
            pit: Pit8254::default(),
            rtc: CmosRtc::default(),
            keyboard: I8042::default(),
            pci,
            io_apic: IoApic::default(),
            unclaimed: 0,
            lines_stale: true,
            pit_due: None,
            pit_written: true,
        }
    }

    pub fn port_in(&mut self, port: u16, size: u8, now: Now) -> u32 {
        self.lines_stale = true;
        match device_at(port) {
            Some(PortDevice::Com1) if size == 1 => self.com1.read(port - COM1.start) as u32,
            Some(PortDevice::Pm) => {
                // The PM timer runs at 3.579545 MHz from the VM's clock.
                self.pm.timer = (now.ns as u128 * 3_579_545 / 1_000_000_000) as u32;
                self.pm.read(port, size)
            }
            Some(PortDevice::Pic) => self.pic.read(port) as u32,
            Some(PortDevice::Pit) => self.pit.read(port, now.ns) as u32,
            Some(PortDevice::Rtc) => self.rtc.read(port, now.unix_seconds) as u32,
            Some(PortDevice::Keyboard) => self.keyboard.read(port) as u32,
            Some(PortDevice::Pci) => self.pci.read(port, size),
            Some(PortDevice::Post) => 0xff,
            // The events this device reports.
            Some(PortDevice::Pvpanic) if size == 1 => PVPANIC_PANICKED | PVPANIC_CRASH_LOADED,
            _ => {
                self.unclaimed += 1;
                match size {
                    1 => 0xff,
                    2 => 0xffff,
                    _ => 0xffff_ffff,
                }
            }
        }
    }

    pub fn port_out(&mut self, port: u16, size: u8, value: u32, now: Now) -> Effect {
        self.lines_stale = true;
        match device_at(port) {
            Some(PortDevice::Com1) if size == 1 => match self.com1.write(port - COM1.start, value as u8, now.ns) {
                Output::None => Effect::None,
                Output::LineHeld => Effect::ConsoleLine,
                Output::Full => Effect::ConsoleFull,
            },
            Some(PortDevice::Pm) => match self.pm.write(port, size, value) {
                Some(PmRequest::SoftOff) => Effect::PowerOff,
                None => Effect::None,
            },
            Some(PortDevice::Pic) => {
                self.pic.write(port, value as u8);
                Effect::None
            }
            Some(PortDevice::Pit) => {
                self.pit.write(port, value as u8, now.ns);
                self.pit_written = true;
                Effect::None
            }
            Some(PortDevice::Rtc) => {
                self.rtc.write(port, value as u8);
                Effect::None
            }
            Some(PortDevice::Keyboard) => match self.keyboard.write(port, value as u8) {
                I8042Effect::Reset => Effect::Reset,
                I8042Effect::None => Effect::None,
            },
            Some(PortDevice::Pci) => {
                self.pci.write(port, size, value);
                Effect::None
            }
            // Reset control: bit 2 with bit 1 resets.
            Some(PortDevice::Reset) if value & 0x06 == 0x06 => Effect::Reset,
            Some(PortDevice::Post) => Effect::None,
            Some(PortDevice::Pvpanic) if size == 1 && value & PVPANIC_PANICKED != 0 => Effect::GuestPanic,
            Some(PortDevice::Pvpanic) if size == 1 => Effect::None,
            _ => {
                self.unclaimed += 1;
                Effect::None
            }
        }
    }

    /// A write to an I/O APIC register (a redirection entry unmasked may fire).
    pub fn io_apic_write(&mut self, offset: u64, value: u32) {
        self.io_apic.write(offset, value);
        self.lines_stale = true;
    }

    /// An EOI for `vector`: level-triggered I/O APIC pins with it may fire again.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        self.io_apic.end_of_interrupt(vector);
        self.lines_stale = true;
    }

    /// The host wrote the line it took: the UART's transmitter is free (THRE).
    pub fn console_written(&mut self, now: u64) {
        self.com1.written(now);
        self.lines_stale = true;
    }

    /// Brings the interrupt lines up to date (timer edges, the UART's level) on the 8259 pair
    /// and the I/O APIC (ISA IRQ 0 is its pin 2, as the MADT says); returns the I/O APIC's
    /// messages for the local APICs. The lines change only when the guest or the VMM touched a
    /// device, or when the PIT's next edge is due: otherwise there is nothing to look at (and
    /// nothing is, on most exits).
    #[inline(always)]
    pub fn update_lines(&mut self, now: u64) -> Vec<Message> {
        if !self.lines_stale && self.pit_due.is_none_or(|due| now < due) {
            return Vec::new();
        }
        self.lines_stale = false;
        let (messages, edge) = self.look_at_lines(now);
        if edge {
            self.pit_written = true;
        }
        self.refresh_pit_due();
        messages
    }

    /// Recomputes when the PIT's next edge is due if its schedule may have moved (the PIT was
    /// written or an edge was taken since).
    #[inline]
    fn refresh_pit_due(&mut self) {
        if self.pit_written {
            self.pit_written = false;
            self.pit_due = self.pit.next_irq0_ns();
        }
    }

    /// The messages for the local APICs, and whether the PIT's IRQ 0 edge was taken.
    #[inline(always)]
    fn look_at_lines(&mut self, now: u64) -> (Vec<Message>, bool) {
        let mut messages = Vec::new();
        let edge = self.pit.take_irq0(now);
        if edge {
            self.pic.set_irq(0, true);
            self.pic.set_irq(0, false);
            messages.extend(self.io_apic.set_pin(PIT_GSI as usize, true));
            self.io_apic.set_pin(PIT_GSI as usize, false);
        }
        let uart = self.com1.interrupt_pending();
        self.pic.set_irq(COM1_IRQ, uart);
        messages.extend(self.io_apic.set_pin(COM1_IRQ as usize, uart));
        (messages, edge)
    }

    /// When a device next raises an interrupt on its own (host uptime ns): the PIT's next edge,
    /// kept from the last time its schedule moved (asked before every guest entry, it would
    /// otherwise cost a 128-bit division each time).
    #[inline]
    pub fn next_event_ns(&mut self) -> Option<u64> {
        self.refresh_pit_due();
        self.pit_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Now = Now { ns: 0, unix_seconds: 0 };

    #[test]
    fn the_guest_panic_port_reports_its_events_and_ends_on_a_panic() {
        let mut d = Devices::default();
        assert_eq!(d.port_in(PVPANIC, 1, NOW), 0x3, "panicked and crash-loaded supported");
        assert_eq!(d.port_out(PVPANIC, 1, PVPANIC_CRASH_LOADED, NOW), Effect::None, "kdump goes on");
        assert_eq!(d.port_out(PVPANIC, 1, PVPANIC_PANICKED, NOW), Effect::GuestPanic);
        assert_eq!(d.port_out(PVPANIC, 1, 0x3, NOW), Effect::GuestPanic);
        // Other widths are not the device's: unclaimed, and no panic.
        assert_eq!(d.port_out(PVPANIC, 2, 1, NOW), Effect::None);
        assert_eq!(d.port_in(PVPANIC, 4, NOW), 0xffff_ffff);
        assert_eq!(d.unclaimed, 2);
    }

    #[test]
    fn every_port_belongs_to_one_device_at_most() {
        for (i, (a, _)) in PORT_BUS.iter().enumerate() {
            for (b, _) in &PORT_BUS[i + 1..] {
                assert!(a.end <= b.start || b.end <= a.start, "{a:x?} and {b:x?} overlap");
            }
        }
        let claimed = |ports: &[u16]| ports.iter().map(|&p| device_at(p)).collect::<Vec<_>>();
        let (pic, pit, pci) = (Some(PortDevice::Pic), Some(PortDevice::Pit), Some(PortDevice::Pci));
        assert_eq!(claimed(&[0x20, 0x21, 0xa0, 0xa1, 0x22, 0x9f]), [pic, pic, pic, pic, None, None]);
        assert_eq!(claimed(&[0x40, 0x43, 0x61, 0x44]), [pit, pit, pit, None]);
        assert_eq!(claimed(&[0xcf8, 0xcf9, 0xcfa, 0xcfc, 0xcff]), [pci, Some(PortDevice::Reset), None, pci, pci]);
        assert_eq!(claimed(&[0x3f8, 0x3ff, 0x400]), [Some(PortDevice::Com1), Some(PortDevice::Com1), None]);
        assert_eq!(claimed(&[0x600, 0x60b, 0x60c]), [Some(PortDevice::Pm), Some(PortDevice::Pm), None]);
    }

    /// What a guest does to the devices, step by step: (host ns, action).
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Out(u16, u8),
        In(u16),
        IoApic(u64, u32),
        Eoi(u8),
        Acknowledge,
        /// The host writes the lines the UART holds.
        Host,
        Nothing,
    }

    /// Lines looked at only when stale or the PIT is due give what looking on every entry gave:
    /// the same messages, the same 8259 state, step by step.
    #[test]
    fn lines_looked_at_on_change_match_lines_looked_at_always() {
        use Step::*;
        let mut setup = alloc::vec![
            // 8259: vectors 0x30/0x38, all unmasked. I/O APIC: pin 2 edge (0x40), pin 4 level
            // (0x44), both to APIC 0. PIT: channel 0 periodic, 1193 ticks (1 ms). UART: THRE
            // interrupt on.
            Out(0x20, 0x11),
            Out(0x21, 0x30),
            Out(0x21, 0x04),
            Out(0x21, 0x01),
            Out(0x21, 0x00),
            IoApic(0, 0x14),
            IoApic(0x10, 0x40),
            IoApic(0, 0x18),
            IoApic(0x10, 0x8044),
            Out(0x43, 0x34),
            Out(0x40, 0xa9),
            Out(0x40, 0x04),
            Out(0x3f9, 0x02),
        ];
        // Then a guest at work: exits at irregular times, console output, EOIs, acknowledges.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let step = match seed % 14 {
                0 => Out(0x3f8, b'x'),
                1 => In(0x3fa),
                2 => Eoi(0x44),
                3 => Acknowledge,
                4 => Out(0x20, 0x20),
                5 => Eoi(0x40),
                6 => Out(0x3f8, b'\n'),
                // Pin 4 masked and unmasked (IOREGSEL still selects its entry).
                7 => IoApic(0x10, 0x1_8044),
                8 => IoApic(0x10, 0x8044),
                9 => Host,
                // The PIT reprogrammed: a period of 1,068 + 256 * (seed & 7) ticks (about 1-2.5 ms).
                10 => {
                    setup.extend([Out(0x43, 0x34), Out(0x40, 0x2c)]);
                    Out(0x40, 4 + (seed as u8 & 7))
                }
                _ => Nothing,
            };
            setup.push(step);
        }
        let steps = setup.len();
        let (mut gated, mut always) = (Devices::default(), Devices::default());
        let (mut now, mut skipped, mut vectors) = (0, 0, alloc::collections::BTreeSet::new());
        for (i, step) in setup.into_iter().enumerate() {
            now += (i as u64 * 7919) % 400_000;
            let at = Now { ns: now, unix_seconds: 0 };
            for d in [&mut gated, &mut always] {
                match step {
                    Out(port, value) => _ = d.port_out(port, 1, value as u32, at),
                    In(port) => _ = d.port_in(port, 1, at),
                    IoApic(offset, value) => d.io_apic_write(offset, value),
                    Eoi(vector) => d.end_of_interrupt(vector),
                    Acknowledge => _ = d.pic.acknowledge(),
                    Host => {
                        while d.com1.take_held().is_some() {
                            d.console_written(now);
                        }
                    }
                    Nothing => {}
                }
            }
            skipped += usize::from(!gated.lines_stale && gated.pit_due.is_some_and(|due| now < due));
            let messages = gated.update_lines(now);
            assert_eq!(messages, always.look_at_lines(now).0, "step {i}: {step:?}");
            assert_eq!(gated.next_event_ns(), always.pit.next_irq0_ns(), "step {i}: {step:?}");
            vectors.extend(messages.iter().map(|m| m.vector));
            assert_eq!(gated.pic.has_pending(), always.pic.has_pending(), "step {i}: {step:?}");
        }
        assert!(skipped > steps / 5, "the lines were looked at on {} of {steps} steps", steps - skipped);
        assert_eq!(vectors.into_iter().collect::<Vec<_>>(), [0x40, 0x44], "both pins fired");
    }

    #[test]
    fn device_memory_is_found_by_address() {
        assert_eq!(mmio_device_at(0xfee0_00b0), Some((MmioDevice::LocalApic, 0xb0)));
        assert_eq!(mmio_device_at(0xfec0_0010), Some((MmioDevice::IoApic, 0x10)));
        assert_eq!(mmio_device_at(0xfec0_0020), None);
        assert_eq!(mmio_device_at(0xfed0_0000), None, "no HPET");
    }

    #[test]
    fn resets_and_unclaimed_ports() {
        let mut d = Devices::default();
        assert_eq!(d.port_out(RESET_CONTROL, 1, 0x06, NOW), Effect::Reset);
        assert_eq!(d.port_out(RESET_CONTROL, 1, 0x02, NOW), Effect::None);
        assert_eq!(d.port_out(POST, 1, 0x55, NOW), Effect::None);
        assert_eq!(d.port_in(0x1234, 2, NOW), 0xffff);
        assert_eq!(d.unclaimed, 2, "0xcf9 without the reset bits and 0x1234");
    }
}
