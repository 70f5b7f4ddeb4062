//! The CMOS real-time clock (index port 0x70, data 0x71): the date and time of the host's clock,
//! in BCD and 24-hour form as PC firmware keeps them, with status registers that say no update
//! is in progress. Other CMOS bytes read as zero and keep what is written.

use crate::machine::CMOS;

/// The index port (the data port follows it).
const INDEX: u16 = CMOS.start;

#[derive(Clone, Debug)]
pub struct CmosRtc {
    index: u8,
    ram: [u8; 128],
}

impl Default for CmosRtc {
    fn default() -> Self {
        CmosRtc { index: 0, ram: [0; 128] }
    }
}

fn bcd(v: u64) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

/// (year, month, day, hour, minute, second) of a Unix time (UTC).
pub fn civil_from_unix(seconds: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Days to civil (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    (year as u64, month as u64, day as u64, rest / 3600, rest / 60 % 60, rest % 60)
}

impl CmosRtc {
    pub fn read(&mut self, port: u16, unix_seconds: u64) -> u8 {
        if port == INDEX {
            return self.index;
        }
        let (y, mo, d, h, mi, s) = civil_from_unix(unix_seconds);
        match self.index {
            0x00 => bcd(s),
            0x02 => bcd(mi),
            0x04 => bcd(h),
            0x06 => bcd(((unix_seconds / 86_400 + 4) % 7) + 1),
            0x07 => bcd(d),
            0x08 => bcd(mo),
            0x09 => bcd(y % 100),
            0x32 => bcd(y / 100),
            0x0a => 0x26, // no update in progress, 32.768 kHz time base
            0x0b => 0x02, // 24-hour, BCD, no interrupts
            0x0c => 0x00,
            0x0d => 0x80, // valid RAM and time
            i => self.ram[(i & 0x7f) as usize],
        }
    }

    pub fn write(&mut self, port: u16, value: u8) {
        if port == INDEX {
            self.index = value & 0x7f; // bit 7 is the NMI mask
        } else if !matches!(self.index, 0x00..=0x0d | 0x32) {
            self.ram[self.index as usize] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_in_bcd() {
        let mut c = CmosRtc::default();
        let t = 1_795_294_945; // 2026-11-21 21:02:25
        let mut reg = |i| {
            c.write(0x70, i);
            c.read(0x71, t)
        };
        assert_eq!(
            [reg(0x32), reg(0x09), reg(0x08), reg(0x07), reg(0x04), reg(0x02), reg(0x00)],
            [0x20, 0x26, 0x11, 0x21, 0x21, 0x02, 0x25]
        );
        assert_eq!(reg(0x0a) & 0x80, 0);
        assert_eq!(reg(0x0d), 0x80);
        assert_eq!(civil_from_unix(951_868_800), (2000, 3, 1, 0, 0, 0));
    }
}
