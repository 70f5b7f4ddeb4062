//! Nested page faults: an access to device memory (local APIC, I/O APIC) is emulated, by
//! fetching the instruction at RIP through the guest's page tables, decoding it, and carrying it
//! out on the device's register ([`super::mmio`]). Any other fault ends the VM.

use super::{Context, mmio, paging_state};
use crate::decoder::{self, CpuMode};
use crate::devices::{MmioDevice, mmio_device_at};
use crate::end::VmEnd;
use crate::guest_paging;
use crate::host::LogLevel;
use crate::svm::bits::{CR0_PE, EFER_LMA};
use crate::svm::cpu::GuestRegisters;
use crate::svm::vmcb::Vmcb;
use x86::apic::xapic::XAPIC_EOI;

/// A segment's attributes in the VMCB: the L (64-bit code) and D (32-bit default) bits.
const CS_L: u16 = 1 << 9;
const CS_D: u16 = 1 << 10;

/// How the guest executes now: from EFER.LMA, CS.L, CR0.PE and CS.D.
fn cpu_mode(v: &Vmcb) -> CpuMode {
    if v.save.efer & EFER_LMA != 0 && v.save.cs.attrib & CS_L != 0 {
        CpuMode::Long64
    } else if v.save.cr0 & CR0_PE != 0 && v.save.cs.attrib & CS_D != 0 {
        CpuMode::Protected32
    } else {
        CpuMode::Real16
    }
}

/// A nested page fault of vCPU `index` at `gpa`.
pub fn handle(ctx: &Context, v: &mut Vmcb, regs: &mut GuestRegisters, index: usize, gpa: u64) -> Option<VmEnd> {
    let Some((device, offset)) = mmio_device_at(gpa) else { return Some(VmEnd::unhandled(v)) };
    let register = offset & !0xf;
    let mut bytes = [0u8; 15];
    let n = guest_paging::fetch(&ctx.vm.memory, paging_state(v), v.save.cs.base.wrapping_add(v.save.rip), &mut bytes);
    let insn = match decoder::decode(&bytes[..n], cpu_mode(v)) {
        Ok(insn) => insn,
        Err(e) => {
            ctx.log(
                LogLevel::Warn,
                format_args!("cannot emulate the MMIO access at {gpa:#x}: {e:?}, instruction {:02x?}", &bytes[..n]),
            );
            return Some(VmEnd::unhandled(v));
        }
    };
    let now = ctx.host.now_ns();
    let read = || -> u64 {
        match device {
            MmioDevice::LocalApic => ctx.vm.irq.lapics[index].lock().read(register as u32, now) as u64,
            MmioDevice::IoApic => ctx.vm.devices.lock().io_apic.read(register) as u64,
        }
    };
    let write = |value: u64| match device {
        MmioDevice::LocalApic => {
            let (ipi, ended) = {
                let mut l = ctx.vm.irq.lapics[index].lock();
                let ended = if register == XAPIC_EOI as u64 { l.in_service() } else { None };
                (l.write(register as u32, value as u32, now), ended)
            };
            // An EOI lets level-triggered I/O APIC pins with that vector fire again.
            if let Some(vector) = ended {
                ctx.vm.devices.lock().end_of_interrupt(vector);
            }
            if let Some(ipi) = ipi {
                ctx.vm.irq.route(ipi.destination, ipi.delivery, index);
            }
        }
        MmioDevice::IoApic => ctx.vm.devices.lock().io_apic_write(register, value as u32),
    };
    mmio::emulate(v, regs, &insn, read, write);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::test_support::TestVm;
    use crate::svm::vmcb::exit;

    #[test]
    fn the_guest_mode_follows_efer_cs_and_cr0() {
        let mut v = Vmcb::zeroed();
        assert_eq!(cpu_mode(&v), CpuMode::Real16);
        (v.save.cr0, v.save.cs.attrib) = (1, 0xc9b);
        assert_eq!(cpu_mode(&v), CpuMode::Protected32);
        (v.save.efer, v.save.cs.attrib) = (EFER_LMA, 0xa9b);
        assert_eq!(cpu_mode(&v), CpuMode::Long64);
    }

    #[test]
    fn an_io_apic_register_is_written_and_read_back_through_the_guests_instructions() {
        let vm = TestVm::new(1);
        let ctx = vm.context();
        // Paging off, flat 32-bit code at 0x1000: mov dword [0xfec00000], 0x10 (IOREGSEL: pin 0's
        // redirection entry), mov dword [0xfec00010], 0x30 (IOWIN), mov eax, [0xfec00010].
        let code = [
            0xc7, 0x05, 0x00, 0x00, 0xc0, 0xfe, 0x10, 0x00, 0x00, 0x00, // mov [IOREGSEL], 0x10
            0xc7, 0x05, 0x10, 0x00, 0xc0, 0xfe, 0x30, 0x00, 0x01, 0x00, // mov [IOWIN], 0x10030
            0xa1, 0x10, 0x00, 0xc0, 0xfe, // mov eax, [IOWIN]
        ];
        vm.state.memory.write(0x1000, &code).unwrap();
        let mut v = Vmcb::zeroed();
        let mut regs = GuestRegisters::default();
        (v.save.cr0, v.save.cs.attrib, v.save.rip, v.control.exit_code) = (1, 0xc9b, 0x1000, exit::NPF);
        for gpa in [0xfec0_0000, 0xfec0_0010, 0xfec0_0010] {
            assert_eq!(handle(&ctx, &mut v, &mut regs, 0, gpa), None);
        }
        assert_eq!(v.save.rip, 0x1000 + code.len() as u64);
        assert_eq!(v.save.rax, 0x10030, "vector 0x30, masked");
    }

    #[test]
    fn faults_outside_the_devices_and_instructions_not_decoded_end_the_vm() {
        let vm = TestVm::new(1);
        let ctx = vm.context();
        let mut v = Vmcb::zeroed();
        let mut regs = GuestRegisters::default();
        (v.control.exit_code, v.control.exit_info2, v.save.rip) = (exit::NPF, 0xfed0_0000, 0x1000);
        assert_eq!(
            handle(&ctx, &mut v, &mut regs, 0, 0xfed0_0000),
            Some(VmEnd::UnhandledExit { code: exit::NPF, info1: 0, info2: 0xfed0_0000, rip: 0x1000 })
        );
        vm.state.memory.write(0x1000, &[0x0f, 0x0b]).unwrap(); // ud2
        v.control.exit_info2 = 0xfee0_0080;
        assert!(matches!(handle(&ctx, &mut v, &mut regs, 0, 0xfee0_0080), Some(VmEnd::UnhandledExit { .. })));
        assert_eq!(v.save.rip, 0x1000, "nothing done");
    }
}
