//! SVM on one physical CPU: detection, enabling (EFER.SVME and the host save area) and the VMRUN
//! stub. The stub loads the guest's general registers (the VMCB holds only RAX and RSP), saves
//! and restores the host's hidden segment state with VMSAVE/VMLOAD (VMRUN does not restore FS,
//! GS, TR, LDTR or the syscall MSRs), and runs with GIF clear around the switch.

use super::bits::{EFER_SVME, XCR0_AVX, XCR0_SSE, XCR0_X87};
use super::vmcb::Vmcb;
use crate::host::{HostBlock, VmmHost};
use crate::paging::PAGE_4K as PAGE;
use core::arch::x86_64::{__cpuid_count, _rdtsc};
use core::arch::{asm, global_asm};

use x86::msr::IA32_EFER as MSR_EFER;
const MSR_VM_CR: u32 = 0xc001_0114;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
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

/// Turns SVM on for this CPU with `host_save_pa` (a 4 KiB page) as the area VMRUN keeps the
/// host's state in.
///
/// # Safety
/// `host_save_pa` must be a page owned by the caller for as long as SVM stays enabled, and
/// [`detect`] must have succeeded on this CPU.
unsafe fn enable(host_save_pa: u64) {
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
unsafe fn disable() {
    // SAFETY: forwarded to the caller.
    unsafe {
        wrmsr(MSR_VM_HSAVE_PA, 0);
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) & !EFER_SVME);
    }
}

/// A physical CPU with SVM on, running one vCPU: the vCPU's VMCB, the host save area VMRUN
/// uses, and the page the host's hidden state is VMSAVEd to, all from the host. Dropping it
/// turns SVM off again and gives the pages back.
pub struct SvmCpu {
    host: &'static dyn VmmHost,
    vmcb: HostBlock,
    host_save: HostBlock,
    host_state: HostBlock,
    /// The VMCB through the host's mapping (looked up once: the exit path reads it often).
    vmcb_ptr: *mut Vmcb,
}

impl SvmCpu {
    /// The host pages one vCPU holds.
    pub const PAGES: u64 = 3;

    /// Turns SVM on for the calling CPU with new pages from `host`; the error says why it could
    /// not.
    pub fn enable(host: &'static dyn VmmHost) -> Result<SvmCpu, &'static str> {
        detect().map_err(|_| "SVM is not usable on this CPU")?;
        let mut pages = [None; 3];
        for page in &mut pages {
            *page = host.alloc_contiguous(PAGE, PAGE);
        }
        let [Some(vmcb), Some(host_save), Some(host_state)] = pages else {
            pages.into_iter().flatten().for_each(|b| host.free_contiguous(b));
            return Err("no host memory for the vCPU");
        };
        // SAFETY: the host save page is this CPU's own until `drop` turns SVM off, and SVM was
        // detected on this CPU just now.
        unsafe { enable(host_save.phys) };
        let vmcb_ptr = host.phys_to_virt(vmcb.phys).cast::<Vmcb>();
        Ok(SvmCpu { host, vmcb, host_save, host_state, vmcb_ptr })
    }

    /// The vCPU's VMCB.
    #[inline]
    pub fn vmcb(&mut self) -> &mut Vmcb {
        // SAFETY: the VMCB page (zeroed, 4 KiB, aligned) belongs to this vCPU until drop; only
        // this CPU touches it, and never while VMRUN runs (`run` takes `self` mutably).
        unsafe { &mut *self.vmcb_ptr }
    }

    /// Runs the guest until its next #VMEXIT.
    #[inline]
    pub fn run(&mut self, registers: &mut GuestRegisters) {
        // SAFETY: SVM is on for this CPU (`enable`), the VMCB and host pages belong to this vCPU,
        // and the VMCB's state (nested page tables, permission maps) is the VMM's own, set by
        // `svm::state` for a VM whose memory the VMM owns.
        unsafe { manul_svm_run(self.vmcb.phys, registers, self.host_state.phys) };
    }
}

impl Drop for SvmCpu {
    fn drop(&mut self) {
        // SAFETY: no guest runs on this CPU any more (`run` has returned).
        unsafe { disable() };
        for b in [self.vmcb, self.host_save, self.host_state] {
            self.host.free_contiguous(b);
        }
    }
}

/// The I/O and MSR permission maps of a VM (3 and 2 pages), every access intercepted, shared by
/// its vCPUs; given back to the host when dropped.
pub struct PermissionMaps {
    host: &'static dyn VmmHost,
    pub iopm: HostBlock,
    pub msrpm: HostBlock,
}

impl PermissionMaps {
    pub fn intercept_all(host: &'static dyn VmmHost) -> Option<PermissionMaps> {
        let iopm = host.alloc_contiguous(3 * PAGE, PAGE)?;
        let Some(msrpm) = host.alloc_contiguous(2 * PAGE, PAGE) else {
            host.free_contiguous(iopm);
            return None;
        };
        for block in [iopm, msrpm] {
            // SAFETY: the block was just allocated for this VM and is reached through the host's
            // mapping of physical memory.
            unsafe { core::ptr::write_bytes(host.phys_to_virt(block.phys), 0xff, block.bytes as usize) };
        }
        Some(PermissionMaps { host, iopm, msrpm })
    }

    pub fn bytes(&self) -> u64 {
        self.iopm.bytes + self.msrpm.bytes
    }
}

impl Drop for PermissionMaps {
    fn drop(&mut self) {
        self.host.free_contiguous(self.iopm);
        self.host.free_contiguous(self.msrpm);
    }
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { _rdtsc() }
}

/// XCR0, or 0 when the OS has not enabled XSAVE (CR4.OSXSAVE, as CPUID reports it).
pub fn xgetbv() -> u64 {
    if __cpuid_count(1, 0).ecx & (1 << 27) == 0 {
        return 0;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV(0) is allowed when CR4.OSXSAVE is set (CPUID bit 27 checked above).
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

/// Whether a guest may have `value` in XCR0 on a host whose XCR0 is `host_xcr0`: only what the
/// host enabled, x87 always, AVX only with SSE.
pub fn xcr0_allowed(value: u64, host_xcr0: u64) -> bool {
    value & XCR0_X87 != 0 && value & !host_xcr0 == 0 && (value & XCR0_AVX == 0 || value & XCR0_SSE != 0)
}

/// Loads XCR0 with `value` if [`xcr0_allowed`] says so; returns whether it did.
pub fn xsetbv(value: u64, host_xcr0: u64) -> bool {
    if !xcr0_allowed(value, host_xcr0) {
        return false;
    }
    // SAFETY: a subset of the host's own XCR0 with x87, and AVX only with SSE: the CPU accepts it.
    unsafe {
        asm!("xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack))
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_xcr0_is_a_subset_of_the_hosts_with_x87_and_avx_only_with_sse() {
        let host = 0b111; // x87, SSE, AVX
        assert!(xcr0_allowed(0b001, host));
        assert!(xcr0_allowed(0b011, host));
        assert!(xcr0_allowed(0b111, host));
        assert!(!xcr0_allowed(0b110, host), "no x87");
        assert!(!xcr0_allowed(0b101, host), "AVX without SSE");
        assert!(!xcr0_allowed(0b1011, host), "more than the host has");
        assert!(!xcr0_allowed(0, 0), "a host without XSAVE");
    }
}
