//! Bits of the CPU registers the VMM reads or sets in a guest's state, as `u64`: CR0, CR4, XCR0
//! and RFLAGS from the `x86` crate, EFER from [`Efer`] and the APIC base MSR's from [`ApicBase`]
//! (the crate has no type for them). The kernel's hardware layer sets its own with these too.

use bitflags::bitflags;
use x86::bits64::rflags::RFlags;
use x86::controlregs::{Cr0, Cr4, Xcr0};

pub const CR0_PE: u64 = Cr0::CR0_PROTECTED_MODE.bits() as u64;
pub const CR0_ET: u64 = Cr0::CR0_EXTENSION_TYPE.bits() as u64;
pub const CR0_NW: u64 = Cr0::CR0_NOT_WRITE_THROUGH.bits() as u64;
pub const CR0_CD: u64 = Cr0::CR0_CACHE_DISABLE.bits() as u64;
pub const CR0_PG: u64 = Cr0::CR0_ENABLE_PAGING.bits() as u64;

pub const CR4_PAE: u64 = Cr4::CR4_ENABLE_PAE.bits() as u64;
pub const CR4_LA57: u64 = Cr4::CR4_ENABLE_LA57.bits() as u64;
pub const CR4_OSXSAVE: u64 = Cr4::CR4_ENABLE_OS_XSAVE.bits() as u64;

pub const XCR0_X87: u64 = Xcr0::XCR0_FPU_MMX_STATE.bits();
pub const XCR0_SSE: u64 = Xcr0::XCR0_SSE_STATE.bits();
pub const XCR0_AVX: u64 = Xcr0::XCR0_AVX_STATE.bits();

bitflags! {
    /// The extended feature enable register's bits (AMD APM vol. 2, 3.1.7).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Efer: u64 {
        /// `syscall` and `sysret`.
        const SCE = 1 << 0;
        /// Long mode enabled.
        const LME = 1 << 8;
        /// Long mode active (the CPU's to set).
        const LMA = 1 << 10;
        /// No-execute pages.
        const NXE = 1 << 11;
        /// SVM on (in the host's EFER, and in every guest's, which VMRUN requires).
        const SVME = 1 << 12;
        /// Fast FXSAVE/FXRSTOR.
        const FFXSR = 1 << 14;
    }
}

bitflags! {
    /// The APIC base MSR's flags (bits 12 and up are the registers' physical address).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ApicBase: u64 {
        /// The bootstrap processor.
        const BSP = 1 << 8;
        /// x2APIC mode.
        const EXTD = 1 << 10;
        /// The APIC is on.
        const GLOBAL_ENABLE = 1 << 11;
    }
}

pub const EFER_SCE: u64 = Efer::SCE.bits();
pub const EFER_LME: u64 = Efer::LME.bits();
pub const EFER_LMA: u64 = Efer::LMA.bits();
pub const EFER_NXE: u64 = Efer::NXE.bits();
pub const EFER_SVME: u64 = Efer::SVME.bits();

pub const RFLAGS_CF: u64 = RFlags::FLAGS_CF.bits();
pub const RFLAGS_PF: u64 = RFlags::FLAGS_PF.bits();
pub const RFLAGS_AF: u64 = RFlags::FLAGS_AF.bits();
pub const RFLAGS_ZF: u64 = RFlags::FLAGS_ZF.bits();
pub const RFLAGS_SF: u64 = RFlags::FLAGS_SF.bits();
pub const RFLAGS_IF: u64 = RFlags::FLAGS_IF.bits();
pub const RFLAGS_DF: u64 = RFlags::FLAGS_DF.bits();
pub const RFLAGS_OF: u64 = RFlags::FLAGS_OF.bits();
