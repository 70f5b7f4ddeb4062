//! The VM's devices behind its port bus. Each model is a state machine tested on the host; this
//! module routes port accesses to them and reports what a guest access asks of the VM (power off,
//! reset).

pub mod acpi_pm;
pub mod uart16550;

use alloc::vec::Vec;
use acpi_pm::{AcpiPm, PmRequest};
use uart16550::Uart16550;

pub const COM1: u16 = 0x3f8;
/// Port 0x80: POST codes, a delay port for old drivers.
const POST: u16 = 0x80;

/// What a port access asks the VM to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Console output, a line at a time.
    Console(Vec<u8>),
    PowerOff,
    Reset,
}

#[derive(Default)]
pub struct Devices {
    pub com1: Uart16550,
    pub pm: AcpiPm,
    /// Ports accessed that nothing implements (reads give all ones, writes are dropped).
    pub unclaimed: u64,
}

impl Devices {
    pub fn port_in(&mut self, port: u16, size: u8) -> u32 {
        match port {
            COM1..=0x3ff if size == 1 => self.com1.read(port - COM1) as u32,
            p if AcpiPm::claims(p) => self.pm.read(p, size),
            POST => 0xff,
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

    pub fn port_out(&mut self, port: u16, size: u8, value: u32) -> Effect {
        match port {
            COM1..=0x3ff if size == 1 => match self.com1.write(port - COM1, value as u8) {
                Some(line) => Effect::Console(line),
                None => Effect::None,
            },
            p if AcpiPm::claims(p) => match self.pm.write(p, size, value) {
                Some(PmRequest::SoftOff) => Effect::PowerOff,
                None => Effect::None,
            },
            // The keyboard controller's reset line, a common way for a guest to reboot.
            0x64 if value as u8 == 0xfe => Effect::Reset,
            // Port 0xcf9 (reset control): bit 2 with bit 1 resets.
            0xcf9 if value & 0x06 == 0x06 => Effect::Reset,
            POST => Effect::None,
            _ => {
                self.unclaimed += 1;
                Effect::None
            }
        }
    }
}
