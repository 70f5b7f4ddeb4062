//! The ACPI power-management block the VM's FADT describes (as on QEMU's PIIX4: PM1a event at
//! 0x600, control at 0x604, timer at 0x608). Writing SLP_TYP = 5 (S5) with SLP_EN powers off.

use crate::machine::{PM_TIMER, PM1A_CONTROL, PM1A_EVENT, S5_SLEEP_TYPE};

const SLP_EN: u16 = 1 << 13;
const SCI_EN: u16 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmRequest {
    SoftOff,
}

#[derive(Debug, Default)]
pub struct AcpiPm {
    status: u16,
    enable: u16,
    control: u16,
    /// The 3.579545 MHz PM timer, as a count the VM advances from its clock.
    pub timer: u32,
}

impl AcpiPm {
    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        let v = match port {
            PM1A_EVENT => self.status as u32 | (self.enable as u32) << 16,
            p if p == PM1A_EVENT + 2 => self.enable as u32,
            PM1A_CONTROL => (self.control | SCI_EN) as u32,
            PM_TIMER => self.timer & 0x00ff_ffff,
            _ => 0,
        };
        match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            _ => v,
        }
    }

    pub fn write(&mut self, port: u16, size: u8, value: u32) -> Option<PmRequest> {
        match (port, size) {
            (PM1A_EVENT, 2) => self.status &= !(value as u16),
            (PM1A_EVENT, 4) => {
                self.status &= !(value as u16);
                self.enable = (value >> 16) as u16;
            }
            (p, 2) if p == PM1A_EVENT + 2 => self.enable = value as u16,
            (PM1A_CONTROL, 2 | 4) => {
                let v = value as u16;
                self.control = v & !SLP_EN;
                // Only S5 exists here; other sleep states are refused by doing nothing.
                if v & SLP_EN != 0 && (v >> 10) & 7 == S5_SLEEP_TYPE {
                    return Some(PmRequest::SoftOff);
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_with_slp_en_powers_off() {
        let mut pm = AcpiPm::default();
        assert_eq!(pm.write(PM1A_CONTROL, 2, 5 << 10), None);
        assert_eq!(pm.write(PM1A_CONTROL, 2, (5 << 10) | SLP_EN as u32), Some(PmRequest::SoftOff));
        assert_eq!(pm.read(PM1A_CONTROL, 2) & 1, 1);
    }
}
