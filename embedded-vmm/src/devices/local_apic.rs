//! A local APIC in xAPIC mode (the register page at 0xfee0_0000): ID, version, TPR, PPR, EOI,
//! LDR/DFR, SVR, ISR/TMR/IRR, ESR, ICR, the LVT entries, and the timer (one-shot and periodic,
//! with the divide configuration) computed from the VM's clock. Interrupts arrive through
//! [`LocalApic::accept`]; the VM asks for the vector to inject. IPIs written to the ICR come back
//! as an [`Ipi`] for the VM to route.

use x86::apic::xapic::{
    XAPIC_EOI as EOI, XAPIC_ESR as ESR, XAPIC_ICR0 as ICR_LOW, XAPIC_ICR1 as ICR_HIGH, XAPIC_ID as ID,
    XAPIC_IRR0 as IRR, XAPIC_ISR0 as ISR, XAPIC_LDR as LDR, XAPIC_LVT_LINT0 as LVT_LINT0, XAPIC_LVT_TIMER as LVT_TIMER,
    XAPIC_PPR as PPR, XAPIC_SVR as SVR, XAPIC_TIMER_CURRENT_COUNT as TIMER_CURRENT,
    XAPIC_TIMER_DIV_CONF as TIMER_DIVIDE, XAPIC_TIMER_INIT_COUNT as TIMER_INITIAL, XAPIC_TMR0 as TMR, XAPIC_TPR as TPR,
    XAPIC_VERSION as VERSION,
};

/// The timer's input clock (the APIC bus), as the Manul CPUID leaf advertises it.
pub const BUS_HZ: u64 = 100_000_000;

/// The x2APIC's registers as MSRs: `X2APIC_FIRST_MSR + offset / 16`.
pub const X2APIC_FIRST_MSR: u32 = 0x800;
pub const X2APIC_LAST_MSR: u32 = 0x8ff;

/// The destination format register (the `x86` crate has no constant for it).
const DFR: u32 = 0xe0;
const MASKED: u32 = 1 << 16;
const SOFTWARE_ENABLE: u32 = 1 << 8;

/// How an IPI is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Physical(u8),
    /// Flat logical mode: the bitmask compared with each APIC's LDR.
    Logical(u8),
    /// x2APIC cluster mode: APICs with ID `cluster * 16 + n` for each bit n of `mask`.
    Cluster {
        cluster: u16,
        mask: u16,
    },
    SelfOnly,
    All,
    AllButSelf,
}

/// A write to an x2APIC register that is read-only or absent in x2APIC mode (the guest gets #GP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOnlyRegister;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Fixed(u8),
    LowestPriority(u8),
    Nmi,
    Init,
    Startup(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub destination: Destination,
    pub delivery: Delivery,
}

#[derive(Clone, Debug)]
pub struct LocalApic {
    id: u8,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    esr: u32,
    icr_low: u32,
    icr_high: u32,
    /// LVT: timer, thermal, performance, LINT0, LINT1, error.
    lvt: [u32; 6],
    irr: [u32; 8],
    isr: [u32; 8],
    timer_initial: u32,
    timer_divide: u32,
    /// When the current count started (VM ns).
    timer_start: Option<u64>,
    /// Timer periods already delivered since `timer_start`.
    timer_delivered: u64,
    /// TSC-deadline mode: when the timer fires (VM ns), if armed.
    deadline: Option<u64>,
    /// x2APIC mode (registers as MSRs 0x800-0x8ff), chosen through the APIC base MSR.
    pub x2apic: bool,
}

fn set(bits: &mut [u32; 8], v: u8, on: bool) {
    let w = &mut bits[(v / 32) as usize];
    if on {
        *w |= 1 << (v % 32);
    } else {
        *w &= !(1 << (v % 32));
    }
}
fn highest(bits: &[u32; 8]) -> Option<u8> {
    (0..8).rev().find(|&i| bits[i] != 0).map(|i| (i * 32 + 31 - bits[i].leading_zeros() as usize) as u8)
}

impl LocalApic {
    pub fn new(id: u8) -> LocalApic {
        LocalApic {
            id,
            tpr: 0,
            ldr: 0,
            dfr: 0xffff_ffff,
            svr: 0xff,
            esr: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [MASKED; 6],
            irr: [0; 8],
            isr: [0; 8],
            timer_initial: 0,
            timer_divide: 0,
            timer_start: None,
            timer_delivered: 0,
            deadline: None,
            x2apic: false,
        }
    }

    fn tsc_deadline_mode(&self) -> bool {
        (self.lvt[0] >> 17) & 3 == 2
    }

    /// Arms (or, with 0, disarms) the TSC-deadline timer; `at_ns` is the deadline on the VM's
    /// clock. Ignored unless the LVT timer is in TSC-deadline mode.
    pub fn set_deadline(&mut self, at_ns: Option<u64>) {
        if self.tsc_deadline_mode() {
            self.deadline = at_ns;
        }
    }

    /// Whether a TSC deadline is armed and has not fired yet.
    pub fn deadline_armed(&self) -> bool {
        self.deadline.is_some()
    }

    /// An x2APIC register read (MSR 0x800 + offset / 16); `None` for a register x2APIC lacks.
    pub fn read_msr(&mut self, msr: u32, now: u64) -> Option<u64> {
        let offset = (msr - X2APIC_FIRST_MSR) << 4;
        match offset {
            ID => Some(self.id as u64),
            LDR => Some(((self.id as u64 >> 4) << 16) | (1 << (self.id & 0xf))),
            ICR_LOW => Some(((self.icr_high as u64) << 32) | (self.icr_low & !(1 << 12)) as u64),
            DFR | ICR_HIGH | EOI => None,
            _ => Some(self.read(offset, now) as u64),
        }
    }

    /// An x2APIC register write; returns an IPI for ICR (and SELF IPI) writes.
    pub fn write_msr(&mut self, msr: u32, value: u64, now: u64) -> Result<Option<Ipi>, ReadOnlyRegister> {
        let offset = (msr - X2APIC_FIRST_MSR) << 4;
        match offset {
            ICR_LOW => {
                self.icr_high = (value >> 32) as u32;
                self.icr_low = value as u32 & !(1 << 12);
                // The xAPIC decoding, with the destination widened to the x2APIC's 32 bits.
                let mut ipi = self.ipi(value as u32);
                let dest = (value >> 32) as u32;
                ipi.destination = match ipi.destination {
                    Destination::Physical(_) if dest == u32::MAX => Destination::All,
                    Destination::Physical(_) => match u8::try_from(dest) {
                        Ok(id) if id != 0xff => Destination::Physical(id),
                        // No vCPU has an ID this large: nobody is addressed.
                        _ => return Ok(None),
                    },
                    Destination::Logical(_) => Destination::Cluster { cluster: (dest >> 16) as u16, mask: dest as u16 },
                    other => other,
                };
                Ok(Some(ipi))
            }
            0x3f0 => Ok(Some(Ipi { destination: Destination::SelfOnly, delivery: Delivery::Fixed(value as u8) })),
            ID | LDR | DFR | ICR_HIGH | PPR | VERSION => Err(ReadOnlyRegister),
            _ => Ok(self.write(offset, value as u32, now)),
        }
    }

    /// The vector an EOI written now would end (the highest in service).
    pub fn in_service(&self) -> Option<u8> {
        highest(&self.isr)
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub fn software_enabled(&self) -> bool {
        self.svr & SOFTWARE_ENABLE != 0
    }

    /// Whether LINT0 passes the 8259's interrupts through (virtual wire mode), or the APIC is
    /// still disabled (then the 8259 reaches the CPU directly).
    pub fn accepts_extint(&self) -> bool {
        !self.software_enabled() || (self.lvt[3] & MASKED == 0 && (self.lvt[3] >> 8) & 7 == 7)
    }

    /// Whether `mask` (flat logical) or `id` (physical) addresses this APIC.
    pub fn matches(&self, destination: Destination) -> bool {
        match destination {
            Destination::Physical(id) => id == self.id || id == 0xff,
            Destination::Logical(mask) => (self.ldr >> 24) as u8 & mask != 0,
            Destination::Cluster { cluster, mask } => {
                u16::from(self.id >> 4) == cluster && mask & (1 << (self.id & 0xf)) != 0
            }
            _ => false,
        }
    }

    fn divisor(&self) -> u64 {
        let d = self.timer_divide;
        let code = (d & 3) | ((d >> 1) & 4);
        if code == 7 { 1 } else { 2 << code }
    }

    fn timer_ticks(&self, now: u64) -> Option<u64> {
        self.timer_start
            .map(|s| (now.saturating_sub(s) as u128 * BUS_HZ as u128 / 1_000_000_000) as u64 / self.divisor())
    }

    fn periodic(&self) -> bool {
        (self.lvt[0] >> 17) & 3 == 1
    }

    /// An interrupt arrives (IRR).
    pub fn accept(&mut self, vector: u8) {
        if vector >= 16 {
            set(&mut self.irr, vector, true);
        }
    }

    /// Delivers timer expiries due by `now` into the IRR.
    pub fn update_timer(&mut self, now: u64) {
        if self.tsc_deadline_mode() {
            if self.deadline.is_some_and(|d| now >= d) {
                self.deadline = None;
                if self.lvt[0] & MASKED == 0 {
                    self.accept(self.lvt[0] as u8);
                }
            }
            return;
        }
        let Some(ticks) = self.timer_ticks(now) else { return };
        let period = self.timer_initial as u64;
        if period == 0 {
            return;
        }
        let due = if self.periodic() { ticks / period } else { (ticks >= period) as u64 };
        if due > self.timer_delivered {
            self.timer_delivered = due;
            if self.lvt[0] & MASKED == 0 {
                self.accept(self.lvt[0] as u8);
            }
            if !self.periodic() {
                self.timer_start = None;
            }
        }
    }

    /// When the timer next expires (VM ns).
    pub fn next_timer_ns(&self) -> Option<u64> {
        if self.tsc_deadline_mode() {
            return self.deadline.filter(|_| self.lvt[0] & MASKED == 0);
        }
        let start = self.timer_start?;
        let period = self.timer_initial as u64;
        if period == 0 || self.lvt[0] & MASKED != 0 {
            return None;
        }
        let ticks = (self.timer_delivered + 1) * period * self.divisor();
        Some(start + (ticks as u128 * 1_000_000_000 / BUS_HZ as u128) as u64)
    }

    fn ppr(&self) -> u32 {
        let isr_class = highest(&self.isr).map_or(0, |v| v as u32 & 0xf0);
        (self.tpr & 0xf0).max(isr_class)
    }

    /// The vector to inject now, if any.
    pub fn pending(&self) -> Option<u8> {
        if !self.software_enabled() {
            return None;
        }
        let v = highest(&self.irr)?;
        ((v as u32 & 0xf0) > self.ppr()).then_some(v)
    }

    /// The CPU takes `vector`: IRR to ISR.
    pub fn acknowledge(&mut self, vector: u8) {
        set(&mut self.irr, vector, false);
        set(&mut self.isr, vector, true);
    }

    pub fn read(&mut self, offset: u32, now: u64) -> u32 {
        match offset {
            ID => (self.id as u32) << 24,
            VERSION => 0x0005_0014, // version 0x14, 6 LVT entries
            TPR => self.tpr,
            PPR => self.ppr(),
            LDR => self.ldr,
            DFR => self.dfr,
            SVR => self.svr,
            o if (ISR..ISR + 0x80).contains(&o) => self.isr[((o - ISR) / 0x10) as usize],
            o if (TMR..TMR + 0x80).contains(&o) => 0,
            o if (IRR..IRR + 0x80).contains(&o) => self.irr[((o - IRR) / 0x10) as usize],
            ESR => self.esr,
            ICR_LOW => self.icr_low & !(1 << 12),
            ICR_HIGH => self.icr_high,
            o if (LVT_TIMER..=0x370).contains(&o) => self.lvt[((o - LVT_TIMER) / 0x10) as usize],
            TIMER_INITIAL => self.timer_initial,
            TIMER_CURRENT => match self.timer_ticks(now) {
                Some(t) if self.timer_initial != 0 => {
                    let p = self.timer_initial as u64;
                    if self.periodic() { (p - t % p) as u32 } else { p.saturating_sub(t) as u32 }
                }
                _ => 0,
            },
            TIMER_DIVIDE => self.timer_divide,
            _ => 0,
        }
    }

    /// Writes a register; an ICR write returns the IPI to send.
    pub fn write(&mut self, offset: u32, value: u32, now: u64) -> Option<Ipi> {
        match offset {
            TPR => self.tpr = value & 0xff,
            EOI => {
                if let Some(v) = highest(&self.isr) {
                    set(&mut self.isr, v, false);
                }
            }
            LDR => self.ldr = value & 0xff00_0000,
            DFR => self.dfr = value | 0x0fff_ffff,
            SVR => self.svr = value & 0x13ff,
            ESR => self.esr = 0,
            ICR_HIGH => self.icr_high = value & 0xff00_0000,
            ICR_LOW => {
                self.icr_low = value & !(1 << 12);
                return Some(self.ipi(value));
            }
            o if (LVT_TIMER..=0x370).contains(&o) => {
                let i = ((o - LVT_TIMER) / 0x10) as usize;
                self.lvt[i] = if self.software_enabled() { value } else { value | MASKED };
            }
            TIMER_INITIAL => {
                self.timer_initial = value;
                self.timer_delivered = 0;
                self.timer_start = (value != 0).then_some(now);
            }
            TIMER_DIVIDE => self.timer_divide = value & 0xb,
            _ => {}
        }
        None
    }

    fn ipi(&self, low: u32) -> Ipi {
        let vector = low as u8;
        let delivery = match (low >> 8) & 7 {
            1 => Delivery::LowestPriority(vector),
            4 => Delivery::Nmi,
            5 => Delivery::Init,
            6 => Delivery::Startup(vector),
            _ => Delivery::Fixed(vector),
        };
        let dest = (self.icr_high >> 24) as u8;
        let destination = match (low >> 18) & 3 {
            1 => Destination::SelfOnly,
            2 => Destination::All,
            3 => Destination::AllButSelf,
            _ if low & (1 << 11) != 0 => Destination::Logical(dest),
            _ => Destination::Physical(dest),
        };
        Ipi { destination, delivery }
    }

    /// INIT: back to the power-on state (keeping the ID and the mode).
    pub fn reset(&mut self) {
        let x2apic = self.x2apic;
        *self = LocalApic::new(self.id);
        self.x2apic = x2apic;
    }
}

/// Whether `offset` within the page is the LVT LINT0 register (for the 8259's virtual wire).
pub const fn is_lint0(offset: u32) -> bool {
    offset == LVT_LINT0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn enabled() -> LocalApic {
        let mut a = LocalApic::new(0);
        a.write(SVR, 0x1ff, 0);
        a
    }

    #[test]
    fn priorities_and_eoi() {
        let mut a = enabled();
        a.accept(0x31);
        a.accept(0x51);
        assert_eq!(a.pending(), Some(0x51));
        a.acknowledge(0x51);
        assert_eq!(a.pending(), None, "0x31 is below the in-service class");
        a.write(EOI, 0, 0);
        assert_eq!(a.pending(), Some(0x31));
        a.write(TPR, 0x40, 0);
        assert_eq!(a.pending(), None, "masked by TPR");
        assert_eq!(LocalApic::new(0).pending(), None, "software-disabled");
    }

    #[test]
    fn one_shot_and_periodic_timer() {
        let mut a = enabled();
        a.write(TIMER_DIVIDE, 0xb, 0); // divide by 1
        a.write(LVT_TIMER, 0xec, 0);
        a.write(TIMER_INITIAL, 100_000, 0); // 1 ms at 100 MHz
        assert_eq!(a.next_timer_ns(), Some(MS));
        a.update_timer(MS / 2);
        assert_eq!(a.pending(), None);
        assert!((49_000..51_000).contains(&a.read(TIMER_CURRENT, MS / 2)));
        a.update_timer(MS + 1);
        assert_eq!(a.pending(), Some(0xec));
        assert_eq!(a.next_timer_ns(), None, "one-shot done");
        a.acknowledge(0xec);
        a.write(EOI, 0, 0);
        a.write(LVT_TIMER, 0xec | (1 << 17), 2 * MS);
        a.write(TIMER_INITIAL, 100_000, 2 * MS);
        a.update_timer(4 * MS + 1);
        assert_eq!(a.pending(), Some(0xec));
        assert_eq!(a.next_timer_ns(), Some(5 * MS));
    }

    #[test]
    fn tsc_deadline_and_x2apic_registers() {
        let mut a = enabled();
        a.write(LVT_TIMER, 0xef | (2 << 17), 0);
        a.set_deadline(Some(5 * MS));
        assert_eq!(a.next_timer_ns(), Some(5 * MS));
        a.update_timer(4 * MS);
        assert_eq!(a.pending(), None);
        a.update_timer(5 * MS);
        assert_eq!(a.pending(), Some(0xef));
        assert_eq!(a.next_timer_ns(), None);
        assert_eq!(a.read_msr(0x802, 0), Some(0));
        assert_eq!(
            a.write_msr(0x830, (3u64 << 32) | 0x4031, 0),
            Ok(Some(Ipi { destination: Destination::Physical(3), delivery: Delivery::Fixed(0x31) }))
        );
        assert_eq!(a.write_msr(0x83f, 0x55, 0).unwrap().unwrap().destination, Destination::SelfOnly);
        assert_eq!(a.write_msr(0x802, 1, 0), Err(ReadOnlyRegister));
        let logical = a.write_msr(0x830, (0x0001_0004u64 << 32) | 0x0831, 0).unwrap().unwrap();
        assert_eq!(logical.destination, Destination::Cluster { cluster: 1, mask: 4 });
        assert!(LocalApic::new(18).matches(logical.destination));
        assert!(!LocalApic::new(2).matches(logical.destination));
    }

    #[test]
    fn icr_writes_become_ipis() {
        let mut a = enabled();
        a.write(ICR_HIGH, 1 << 24, 0);
        assert_eq!(
            a.write(ICR_LOW, 0x4500, 0),
            Some(Ipi { destination: Destination::Physical(1), delivery: Delivery::Init })
        );
        assert_eq!(a.write(ICR_LOW, 0x4608, 0).unwrap().delivery, Delivery::Startup(8));
        assert_eq!(a.write(ICR_LOW, 0x000c_00fd, 0).unwrap().destination, Destination::AllButSelf);
        a.write(ICR_HIGH, 0x03 << 24, 0);
        assert_eq!(
            a.write(ICR_LOW, 0x0800 | 0x41, 0),
            Some(Ipi { destination: Destination::Logical(3), delivery: Delivery::Fixed(0x41) })
        );
        let mut b = LocalApic::new(1);
        b.write(LDR, 0x02 << 24, 0);
        assert!(b.matches(Destination::Logical(3)) && !b.matches(Destination::Logical(1)));
    }
}
