//! PCI configuration space through ports 0xcf8/0xcfc (mechanism 1) with one device: a host
//! bridge at 00:00.0. Every other function reads as absent (all ones).

#[derive(Clone, Debug, Default)]
pub struct PciHost {
    address: u32,
}

const ENABLE: u32 = 1 << 31;

impl PciHost {
    pub fn claims(port: u16) -> bool {
        port == 0xcf8 || (0xcfc..=0xcff).contains(&port)
    }

    fn config(&self, offset: u32) -> u32 {
        let bdf = (self.address >> 8) & 0xffff;
        if bdf != 0 {
            return 0xffff_ffff;
        }
        match offset {
            0x00 => 0x1237_8086, // Intel 440FX host bridge
            0x08 => 0x0600_0002, // class: host bridge, revision 2
            0x0c => 0x0000_0000, // header type 0
            _ => 0,
        }
    }

    pub fn read(&mut self, port: u16, size: u8) -> u32 {
        if port == 0xcf8 {
            return if size == 4 { self.address } else { 0xffff_ffff };
        }
        if self.address & ENABLE == 0 {
            return 0xffff_ffff;
        }
        let dword = self.config(self.address & 0xfc);
        let shift = 8 * (port - 0xcfc) as u32;
        let value = dword >> shift;
        match size {
            1 => value & 0xff,
            2 => value & 0xffff,
            _ => value,
        }
    }

    pub fn write(&mut self, port: u16, size: u8, value: u32) {
        if port == 0xcf8 && size == 4 {
            self.address = value;
        }
        // Configuration writes go nowhere: the host bridge has nothing to configure.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bridge_and_absent_devices() {
        let mut p = PciHost::default();
        p.write(0xcf8, 4, 0x8000_0000);
        assert_eq!(p.read(0xcf8, 4), 0x8000_0000);
        assert_eq!(p.read(0xcfc, 4), 0x1237_8086);
        assert_eq!(p.read(0xcfe, 2), 0x1237);
        p.write(0xcf8, 4, 0x8000_0800); // device 1
        assert_eq!(p.read(0xcfc, 4), 0xffff_ffff);
    }
}
