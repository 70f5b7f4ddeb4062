//! RDMSR and WRMSR: the state the VMCB holds, the TSC, the APIC base and TSC deadline, x2APIC
//! registers, the paravirtual clock's MSRs, a few harmless identification MSRs, and #GP for
//! everything else (logged once per MSR).

use super::{Context, CpuState, GP, inject_exception};
use crate::devices::local_apic::{X2APIC_FIRST_MSR, X2APIC_LAST_MSR};
use crate::host::LogLevel;
use crate::machine;
use crate::pv_clock::{self, MSR_SYSTEM_TIME, MSR_WALL_CLOCK};
use crate::svm::bits::{ApicBase, EFER_LMA, EFER_SVME, Efer};
use crate::svm::cpu::{GuestRegisters, rdtsc};
use crate::svm::vmcb::Vmcb;
use amd::*;
use x86::msr::{
    IA32_APIC_BASE, IA32_BIOS_SIGN_ID, IA32_BIOS_UPDT_TRIG, IA32_CSTAR, IA32_DEBUGCTL, IA32_EFER, IA32_FMASK,
    IA32_FS_BASE, IA32_GS_BASE, IA32_KERNEL_GSBASE, IA32_LSTAR, IA32_MISC_ENABLE, IA32_PAT, IA32_STAR,
    IA32_SYSENTER_CS, IA32_SYSENTER_EIP, IA32_SYSENTER_ESP, IA32_TIME_STAMP_COUNTER, IA32_TSC_DEADLINE,
};

/// AMD's MSRs Linux reads that the `x86` crate does not name: zero, writes ignored.
mod amd {
    pub const AMD_HWCR: u32 = 0xc001_0015;
    pub const AMD_NB_CFG: u32 = 0xc001_001f;
    pub const AMD_DE_CFG: u32 = 0xc001_1029;
    pub const AMD_OSVW_ID_LENGTH: u32 = 0xc001_0140;
    pub const AMD_OSVW_STATUS: u32 = 0xc001_0141;
    pub const AMD_SYSCFG: u32 = 0xc001_0010;
    pub const AMD_INT_PENDING: u32 = 0xc001_0055;
}

/// EFER bits the guest may write (LMA is kept as the CPU has it).
const EFER_WRITABLE: u64 = Efer::SCE.union(Efer::LME).union(Efer::LMA).union(Efer::NXE).union(Efer::FFXSR).bits();

/// IA32_MISC_ENABLE as read: fast strings.
const MISC_ENABLE_FAST_STRINGS: u64 = 1;

/// An RDMSR (`write` false) or WRMSR of vCPU `cpu`.
pub fn handle(ctx: &Context, v: &mut Vmcb, regs: &mut GuestRegisters, cpu: &mut CpuState, write: bool) {
    let msr = regs.rcx as u32;
    let value = (regs.rdx << 32) | (v.save.rax & 0xffff_ffff);
    let index = cpu.index as usize;
    let s = &mut v.save;
    let result: Option<u64> = match (msr, write) {
        (IA32_EFER, false) => Some(s.efer & !EFER_SVME),
        (IA32_EFER, true) => {
            // SVME stays set for VMRUN.
            if value & !EFER_WRITABLE != 0 {
                None
            } else {
                s.efer = (value & !EFER_LMA) | (s.efer & EFER_LMA) | EFER_SVME;
                Some(0)
            }
        }
        (IA32_STAR, _) => Some(access(&mut s.star, write, value)),
        (IA32_LSTAR, _) => Some(access(&mut s.lstar, write, value)),
        (IA32_CSTAR, _) => Some(access(&mut s.cstar, write, value)),
        (IA32_FMASK, _) => Some(access(&mut s.sfmask, write, value)),
        (IA32_FS_BASE, _) => Some(access(&mut s.fs.base, write, value)),
        (IA32_GS_BASE, _) => Some(access(&mut s.gs.base, write, value)),
        (IA32_KERNEL_GSBASE, _) => Some(access(&mut s.kernel_gs_base, write, value)),
        (IA32_SYSENTER_CS, _) => Some(access(&mut s.sysenter_cs, write, value)),
        (IA32_SYSENTER_ESP, _) => Some(access(&mut s.sysenter_esp, write, value)),
        (IA32_SYSENTER_EIP, _) => Some(access(&mut s.sysenter_eip, write, value)),
        (IA32_PAT, _) => Some(access(&mut s.g_pat, write, value)),
        (IA32_DEBUGCTL, _) => Some(access(&mut s.dbgctl, write, value)),
        (IA32_TIME_STAMP_COUNTER, false) => Some(rdtsc().wrapping_add(v.control.tsc_offset)),
        (IA32_TIME_STAMP_COUNTER, true) => {
            v.control.tsc_offset = value.wrapping_sub(rdtsc());
            Some(0)
        }
        (IA32_APIC_BASE, false) => {
            let x2 = ctx.vm.irq.lapics[index].lock().x2apic;
            let mut flags = ApicBase::GLOBAL_ENABLE;
            flags.set(ApicBase::EXTD, x2);
            flags.set(ApicBase::BSP, index == 0);
            Some(machine::LOCAL_APIC.start | flags.bits())
        }
        (IA32_APIC_BASE, true) => {
            // The base stays where it is; EXTD switches the APIC to x2APIC mode.
            ctx.vm.irq.lapics[index].lock().x2apic = ApicBase::from_bits_retain(value).contains(ApicBase::EXTD);
            Some(0)
        }
        // A deadline that has fired (or was never armed) reads as 0.
        (IA32_TSC_DEADLINE, false) => {
            Some(if ctx.vm.irq.lapics[index].lock().deadline_armed() { cpu.tsc_deadline } else { 0 })
        }
        (IA32_TSC_DEADLINE, true) => {
            cpu.tsc_deadline = value;
            let now_tsc = rdtsc().wrapping_add(v.control.tsc_offset);
            let at = (value != 0).then(|| {
                let ticks = value.saturating_sub(now_tsc) as u128;
                // Any deadline the guest writes, however far, is a valid (saturated) time.
                let ns = u64::try_from(ticks * 1_000_000_000 / ctx.host.tsc_hz().max(1) as u128).unwrap_or(u64::MAX);
                ctx.host.now_ns().saturating_add(ns)
            });
            ctx.vm.irq.lapics[index].lock().set_deadline(at);
            Some(0)
        }
        (X2APIC_FIRST_MSR..=X2APIC_LAST_MSR, false) if ctx.vm.irq.lapics[index].lock().x2apic => {
            ctx.vm.irq.lapics[index].lock().read_msr(msr, ctx.host.now_ns())
        }
        (X2APIC_FIRST_MSR..=X2APIC_LAST_MSR, true) if ctx.vm.irq.lapics[index].lock().x2apic => {
            let result = ctx.vm.irq.lapics[index].lock().write_msr(msr, value, ctx.host.now_ns());
            match result {
                Ok(Some(ipi)) => {
                    ctx.vm.irq.route(ipi.destination, ipi.delivery, index);
                    Some(0)
                }
                Ok(None) => Some(0),
                Err(_read_only) => None,
            }
        }
        (MSR_SYSTEM_TIME, false) => Some(cpu.system_time_msr),
        (MSR_WALL_CLOCK, false) => Some(cpu.wall_clock_msr),
        (MSR_SYSTEM_TIME | MSR_WALL_CLOCK, true) => {
            write_clock_record(ctx, msr, value, v.control.tsc_offset).map(|()| {
                if msr == MSR_SYSTEM_TIME {
                    cpu.system_time_msr = value;
                } else {
                    cpu.wall_clock_msr = value;
                }
                0
            })
        }
        (IA32_MISC_ENABLE, false) => Some(MISC_ENABLE_FAST_STRINGS),
        // Identification and AMD configuration MSRs Linux reads: zero, writes ignored.
        (
            IA32_MISC_ENABLE | IA32_BIOS_SIGN_ID | IA32_BIOS_UPDT_TRIG | AMD_HWCR | AMD_NB_CFG | AMD_DE_CFG
            | AMD_OSVW_ID_LENGTH | AMD_OSVW_STATUS | AMD_SYSCFG | AMD_INT_PENDING,
            _,
        ) => Some(0),
        _ => None,
    };
    match result {
        Some(r) => {
            if !write {
                v.save.rax = r & 0xffff_ffff;
                regs.rdx = r >> 32;
            }
            v.save.rip += 2;
        }
        None => {
            if !cpu.reported_msrs.contains(&msr) {
                cpu.reported_msrs.push(msr);
                let what = if write { "write" } else { "read" };
                ctx.log(LogLevel::Debug, format_args!("{what} of MSR {msr:#x}: #GP"));
            }
            inject_exception(v, GP, Some(0));
        }
    }
}

/// Reads or writes a VMCB field for RDMSR/WRMSR; returns the value read.
#[inline]
fn access(field: &mut u64, write: bool, value: u64) -> u64 {
    if write {
        *field = value;
    }
    *field
}

/// Writes the paravirtual clock's record that a write of `value` to `msr` asks for: the vCPU's
/// time record (when bit 0 enables it) or the wall clock, at the guest-physical address in
/// `value`. The guest's system time is its TSC in nanoseconds. `None` (a #GP for the guest)
/// when the record would not lie in its RAM.
fn write_clock_record(ctx: &Context, msr: u32, value: u64, tsc_offset: u64) -> Option<()> {
    let tsc_hz = ctx.host.tsc_hz();
    let guest_tsc = rdtsc().wrapping_add(tsc_offset);
    let system_time = pv_clock::scale(guest_tsc, pv_clock::time_scale(tsc_hz));
    let written = if msr == MSR_SYSTEM_TIME {
        if value & 1 == 0 {
            return Some(());
        }
        ctx.vm.memory.write(value & !1, &pv_clock::time_record(guest_tsc, system_time, tsc_hz))
    } else {
        let unix_now = ctx.host.unix_time_ns_at(ctx.host.now_ns());
        ctx.vm.memory.write(value, &pv_clock::wall_clock_record(unix_now.saturating_sub(system_time)))
    };
    written.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::test_support::{RAM, TestVm};
    use crate::svm::bits::{EFER_LME, EFER_NXE, EFER_SCE};
    use crate::svm::vmcb::Event;

    /// RDMSR (`value` None) or WRMSR of `msr` on vCPU 0; the guest's RIP goes back to 0.
    fn access_msr(vm: &TestVm, v: &mut Vmcb, cpu: &mut CpuState, msr: u32, value: Option<u64>) -> Result<u64, ()> {
        let mut regs = GuestRegisters { rcx: msr as u64, ..GuestRegisters::default() };
        let (write, value) = (value.is_some(), value.unwrap_or_default());
        (v.save.rax, regs.rdx, v.save.rip, v.control.event_injection) =
            (value & 0xffff_ffff, value >> 32, 0, Event::empty());
        handle(&vm.context(), v, &mut regs, cpu, write);
        if v.control.event_injection != Event::empty() {
            assert_eq!(v.save.rip, 0, "a #GP leaves RIP on the instruction");
            return Err(());
        }
        assert_eq!(v.save.rip, 2);
        Ok((regs.rdx << 32) | v.save.rax)
    }

    fn read(vm: &TestVm, v: &mut Vmcb, cpu: &mut CpuState, msr: u32) -> Result<u64, ()> {
        access_msr(vm, v, cpu, msr, None)
    }

    fn write(vm: &TestVm, v: &mut Vmcb, cpu: &mut CpuState, msr: u32, value: u64) -> Result<(), ()> {
        access_msr(vm, v, cpu, msr, Some(value)).map(|_| ())
    }

    #[test]
    fn vmcb_msrs_read_back_what_the_guest_wrote() {
        let (vm, mut v, mut cpu) = (TestVm::new(1), Vmcb::zeroed(), CpuState::new(0, 0));
        for (msr, value) in
            [(IA32_LSTAR, 0xffff_ffff_8100_0000), (IA32_STAR, 0x0023_0010_0000_0000), (IA32_PAT, 0x0407)]
        {
            write(&vm, &mut v, &mut cpu, msr, value).unwrap();
            assert_eq!(read(&vm, &mut v, &mut cpu, msr), Ok(value), "{msr:#x}");
        }
        assert_eq!(v.save.lstar, 0xffff_ffff_8100_0000);
        assert_eq!(read(&vm, &mut v, &mut cpu, IA32_MISC_ENABLE), Ok(1));
        assert_eq!(read(&vm, &mut v, &mut cpu, AMD_HWCR), Ok(0));
    }

    #[test]
    fn efer_keeps_svme_and_lma_and_refuses_other_bits() {
        let (vm, mut v, mut cpu) = (TestVm::new(1), Vmcb::zeroed(), CpuState::new(0, 0));
        v.save.efer = EFER_SVME;
        assert_eq!(read(&vm, &mut v, &mut cpu, IA32_EFER), Ok(0), "SVME is the VMM's");
        write(&vm, &mut v, &mut cpu, IA32_EFER, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE).unwrap();
        assert_eq!(v.save.efer, EFER_SVME | EFER_SCE | EFER_LME | EFER_NXE, "LMA is the CPU's to set");
        assert_eq!(write(&vm, &mut v, &mut cpu, IA32_EFER, EFER_SCE | (1 << 13)), Err(()));
        assert_eq!(v.save.efer, EFER_SVME | EFER_SCE | EFER_LME | EFER_NXE);
    }

    #[test]
    fn unknown_msrs_are_a_gp_logged_once() {
        let (vm, mut v, mut cpu) = (TestVm::new(1), Vmcb::zeroed(), CpuState::new(0, 0));
        assert_eq!(read(&vm, &mut v, &mut cpu, 0xc001_0299), Err(()));
        assert_eq!(v.control.event_injection.bits(), 13 | (3 << 8) | (1 << 11) | (1 << 31));
        assert_eq!(read(&vm, &mut v, &mut cpu, 0xc001_0299), Err(()));
        assert_eq!(write(&vm, &mut v, &mut cpu, 0x3a, 1), Err(()));
        let log = vm.host.log.lock().unwrap();
        assert_eq!(*log, ["vm test: read of MSR 0xc0010299: #GP", "vm test: write of MSR 0x3a: #GP"]);
    }

    #[test]
    fn the_apic_base_switches_to_x2apic_and_its_registers_appear() {
        let vm = TestVm::new(2);
        let (mut v, mut bsp, mut ap) = (Vmcb::zeroed(), CpuState::new(0, 0), CpuState::new(1, 0));
        assert_eq!(read(&vm, &mut v, &mut bsp, IA32_APIC_BASE), Ok(0xfee0_0900), "enabled, the BSP");
        assert_eq!(read(&vm, &mut v, &mut ap, IA32_APIC_BASE), Ok(0xfee0_0800));
        assert_eq!(read(&vm, &mut v, &mut ap, 0x802), Err(()), "no x2APIC registers in xAPIC mode");
        write(&vm, &mut v, &mut ap, IA32_APIC_BASE, 0xfee0_0c00).unwrap();
        assert_eq!(read(&vm, &mut v, &mut ap, IA32_APIC_BASE), Ok(0xfee0_0c00));
        assert_eq!(read(&vm, &mut v, &mut ap, 0x802), Ok(1), "the x2APIC ID");
        // A fixed IPI (vector 0x40) from vCPU 1 to vCPU 0 (its APIC enabled) through the ICR.
        vm.state.irq.lapics[0].lock().write(0xf0, 0x1ff, 0);
        write(&vm, &mut v, &mut ap, 0x830, 0x40).unwrap();
        assert_eq!(vm.state.irq.lapics[0].lock().pending(), Some(0x40));
    }

    #[test]
    fn the_tsc_and_its_deadline() {
        let (vm, mut v, mut cpu) = (TestVm::new(1), Vmcb::zeroed(), CpuState::new(0, 0));
        write(&vm, &mut v, &mut cpu, IA32_TIME_STAMP_COUNTER, 1 << 40).unwrap();
        let tsc = read(&vm, &mut v, &mut cpu, IA32_TIME_STAMP_COUNTER).unwrap();
        assert!((1 << 40..(1 << 40) + TSC_TOLERANCE).contains(&tsc), "{tsc:#x}");
        assert_eq!(read(&vm, &mut v, &mut cpu, IA32_TSC_DEADLINE), Ok(0), "never armed");
        vm.state.irq.lapics[0].lock().write(0x320, (2 << 17) | 0x30, 0); // LVT timer: TSC deadline
        write(&vm, &mut v, &mut cpu, IA32_TSC_DEADLINE, u64::MAX).unwrap();
        assert!(vm.state.irq.lapics[0].lock().deadline_armed());
        assert_eq!(read(&vm, &mut v, &mut cpu, IA32_TSC_DEADLINE), Ok(u64::MAX));
    }

    /// Host TSC ticks a test may take between two reads.
    const TSC_TOLERANCE: u64 = 1 << 36;

    #[test]
    fn the_paravirtual_clock_is_written_into_guest_ram_or_refused() {
        let (vm, mut v, mut cpu) = (TestVm::new(1), Vmcb::zeroed(), CpuState::new(0, 0));
        write(&vm, &mut v, &mut cpu, MSR_SYSTEM_TIME, 0x5000 | 1).unwrap();
        assert_eq!(read(&vm, &mut v, &mut cpu, MSR_SYSTEM_TIME), Ok(0x5001));
        let mut record = [0u8; 32];
        vm.state.memory.read(0x5000, &mut record).unwrap();
        assert_ne!(record, [0; 32], "the time record is there");
        write(&vm, &mut v, &mut cpu, MSR_WALL_CLOCK, 0x6000).unwrap();
        assert_eq!(write(&vm, &mut v, &mut cpu, MSR_WALL_CLOCK, RAM), Err(()), "outside guest RAM");
        assert_eq!(read(&vm, &mut v, &mut cpu, MSR_WALL_CLOCK), Ok(0x6000));
    }
}
