//! XSETBV: the guest may load XCR0 (only XCR0) with what the host enabled, x87 always, AVX only
//! with SSE; anything else is a #GP.

use super::{CpuState, GP, inject_exception};
use crate::svm::cpu::{self, GuestRegisters};
use crate::svm::vmcb::Vmcb;

/// XSETBV is 0f 01 d1.
const XSETBV_LENGTH: u64 = 3;

pub fn handle(v: &mut Vmcb, regs: &GuestRegisters, state: &CpuState) {
    let value = (regs.rdx << 32) | (v.save.rax & 0xffff_ffff);
    if regs.rcx == 0 && cpu::xsetbv(value, state.host_xcr0) {
        v.save.rip += XSETBV_LENGTH;
    } else {
        inject_exception(v, GP, Some(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::vmcb::Event;

    #[test]
    fn what_the_host_would_refuse_is_a_gp_and_the_guest_stays_put() {
        let state = CpuState::new(0, 0b111);
        let mut v = Vmcb::zeroed();
        let mut regs = GuestRegisters::default();
        for (xcr, value) in [(1, 0b111), (0, 0b110), (0, 0b1111)] {
            (regs.rcx, v.save.rax, v.control.event_injection) = (xcr, value, Event::empty());
            handle(&mut v, &regs, &state);
            assert_eq!(v.control.event_injection.bits(), 13 | (3 << 8) | (1 << 11) | (1 << 31));
            assert_eq!(v.save.rip, 0);
        }
    }
}
