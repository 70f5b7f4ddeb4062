//! SVM on one physical CPU: detection, enabling (EFER.SVME and the host save area) and the VMRUN
//! stub. The stub loads the guest's general registers (the VMCB holds only RAX and RSP), saves
//! and restores the host's hidden segment state with VMSAVE/VMLOAD (VMRUN does not restore FS,
//! GS, TR, LDTR or the syscall MSRs), and runs with GIF clear around the switch.

use core::arch::x86_64::__cpuid_count;
use core::arch::{asm, global_asm};

use x86::msr::IA32_EFER as MSR_EFER;
const MSR_VM_CR: u32 = 0xc001_0114;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// What the CPU offers, from CPUID 0x8000_000A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvmSupport {
    pub revision: u32,
    pub asids: u32,
    pub nested_paging: bool,
    pub next_rip_save: bool,
    pub decode_assists: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// CPUID says the CPU has no SVM.
    NotSupported,
    /// The firmware disabled SVM (VM_CR.SVMDIS).
    DisabledByFirmware,
    /// SVM without nested paging: the VMM needs it.
    NoNestedPaging,
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only architectural MSRs of CPUs that report SVM are read here.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// As for any MSR write: the value must be valid for the MSR.
unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// Checks that this CPU can run guests.
pub fn detect() -> Result<SvmSupport, SvmError> {
    if __cpuid_count(0x8000_0000, 0).eax < 0x8000_000a || __cpuid_count(0x8000_0001, 0).ecx & (1 << 2) == 0 {
        return Err(SvmError::NotSupported);
    }
    if rdmsr(MSR_VM_CR) & VM_CR_SVMDIS != 0 {
        return Err(SvmError::DisabledByFirmware);
    }
    let leaf = __cpuid_count(0x8000_000a, 0);
    let support = SvmSupport {
        revision: leaf.eax & 0xff,
        asids: leaf.ebx,
        nested_paging: leaf.edx & 1 != 0,
        next_rip_save: leaf.edx & (1 << 3) != 0,
        decode_assists: leaf.edx & (1 << 7) != 0,
    };
    if !support.nested_paging {
        return Err(SvmError::NoNestedPaging);
    }
    Ok(support)
}

/// Turns SVM on for this CPU with `host_save_pa` (a 4 KiB page) as the area VMRUN keeps the
/// host's state in.
///
/// # Safety
/// `host_save_pa` must be a page owned by the caller for as long as SVM stays enabled, and
/// [`detect`] must have succeeded on this CPU.
pub unsafe fn enable(host_save_pa: u64) {
    // SAFETY: forwarded to the caller; EFER.SVME only enables the SVM instructions.
    unsafe {
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
        wrmsr(MSR_VM_HSAVE_PA, host_save_pa);
    }
}

/// Turns SVM off again on this CPU.
///
/// # Safety
/// No guest may be running on this CPU.
pub unsafe fn disable() {
    // SAFETY: forwarded to the caller.
    unsafe {
        wrmsr(MSR_VM_HSAVE_PA, 0);
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) & !EFER_SVME);
    }
}

/// The guest's general registers that the VMCB does not hold (RAX and RSP are in the VMCB).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

global_asm!(
    r#"
    .section .text.svm_run, "ax"
    .global manul_svm_run
manul_svm_run:
    /* rdi = VMCB physical address, rsi = &mut GuestRegisters, rdx = host VMSAVE area (phys) */
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    pushq %rsi
    pushq %rdi
    pushq %rdx
    clgi
    movq %rdx, %rax
    vmsave %rax
    movq 16(%rsp), %rax
    movq 0(%rax), %rbx
    movq 8(%rax), %rcx
    movq 16(%rax), %rdx
    movq 32(%rax), %rdi
    movq 40(%rax), %rbp
    movq 48(%rax), %r8
    movq 56(%rax), %r9
    movq 64(%rax), %r10
    movq 72(%rax), %r11
    movq 80(%rax), %r12
    movq 88(%rax), %r13
    movq 96(%rax), %r14
    movq 104(%rax), %r15
    movq 24(%rax), %rsi
    movq 8(%rsp), %rax
    vmload %rax
    vmrun %rax
    vmsave %rax
    movq 16(%rsp), %rax
    movq %rbx, 0(%rax)
    movq %rcx, 8(%rax)
    movq %rdx, 16(%rax)
    movq %rsi, 24(%rax)
    movq %rdi, 32(%rax)
    movq %rbp, 40(%rax)
    movq %r8, 48(%rax)
    movq %r9, 56(%rax)
    movq %r10, 64(%rax)
    movq %r11, 72(%rax)
    movq %r12, 80(%rax)
    movq %r13, 88(%rax)
    movq %r14, 96(%rax)
    movq %r15, 104(%rax)
    popq %rax
    vmload %rax
    stgi
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn manul_svm_run(vmcb_pa: u64, registers: *mut GuestRegisters, host_area_pa: u64);
}

/// Runs the guest until its next #VMEXIT.
///
/// # Safety
/// SVM must be enabled on this CPU ([`enable`]); `vmcb_pa` must be a valid VMCB describing a
/// guest whose memory the caller owns; `host_area_pa` a page for the host's VMSAVE state.
pub unsafe fn run(vmcb_pa: u64, registers: &mut GuestRegisters, host_area_pa: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { manul_svm_run(vmcb_pa, registers, host_area_pa) };
}
