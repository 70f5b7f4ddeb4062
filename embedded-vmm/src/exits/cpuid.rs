//! CPUID: the host's answer, sanitised for the guest ([`crate::cpuid`]).

use super::{Context, CpuState};
use crate::cpuid::{GuestCpu, guest_cpuid};
use crate::svm::bits::CR4_OSXSAVE;
use crate::svm::cpu::GuestRegisters;
use crate::svm::vmcb::Vmcb;
use core::arch::x86_64::__cpuid_count;

/// CPUID is 0f a2.
const CPUID_LENGTH: u64 = 2;

#[inline]
pub fn handle(ctx: &Context, v: &mut Vmcb, regs: &mut GuestRegisters, cpu: &CpuState) {
    let g = GuestCpu {
        vcpu: cpu.index,
        vcpus: ctx.vm.irq.vcpus() as u32,
        osxsave: v.save.cr4 & CR4_OSXSAVE != 0,
        apic: true,
        tsc_khz: (ctx.host.tsc_hz() / 1000) as u32,
    };
    let host = |leaf, subleaf| {
        let r = __cpuid_count(leaf, subleaf);
        (r.eax, r.ebx, r.ecx, r.edx)
    };
    let (a, b, c, d) = guest_cpuid(v.save.rax as u32, regs.rcx as u32, host, g);
    v.save.rax = a as u64;
    regs.rbx = b as u64;
    regs.rcx = c as u64;
    regs.rdx = d as u64;
    v.save.rip += CPUID_LENGTH;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpuid::SIGNATURE;
    use crate::exits::test_support::TestVm;

    #[test]
    fn the_guest_finds_the_manul_leaf_and_its_vcpu_count() {
        let vm = TestVm::new(2);
        let ctx = vm.context();
        let (mut v, mut regs) = (Vmcb::zeroed(), GuestRegisters::default());
        v.save.rax = 0x4000_0000;
        handle(&ctx, &mut v, &mut regs, &CpuState::new(1, 0));
        assert_eq!([regs.rbx as u32, regs.rcx as u32, regs.rdx as u32], SIGNATURE);
        assert_eq!(v.save.rip, 2);
        v.save.rax = 1;
        handle(&ctx, &mut v, &mut regs, &CpuState::new(1, 0));
        assert_ne!(regs.rcx & (1 << 31), 0, "the hypervisor bit");
        assert_eq!(regs.rbx >> 24, 1, "vCPU 1's initial APIC ID");
    }
}
