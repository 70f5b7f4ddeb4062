//! Small, named wrappers around privileged instructions: CPUID features, MSRs, control
//! registers, port I/O, interrupts on and off, halting. Every `unsafe` for these lives here.

use core::arch::asm;
use core::arch::x86_64::__cpuid_count;
use x86::controlregs::{Cr0, Cr4};

/// End of the user half of the address space (the canonical lower half of 4-level paging): the
/// one definition every user-address check uses.
pub const USER_END: u64 = 0x0000_8000_0000_0000;

/// Loads the running thread's FS base (its TLS). A base outside the user half is refused
/// (`false`, nothing loaded): WRMSR would fault in the kernel on a non-canonical one, and user
/// code has no business with a kernel address.
pub fn set_user_fs_base(base: u64) -> bool {
    if base >= USER_END {
        return false;
    }
    // SAFETY: a user-half address; FS base matters only to user code (the kernel does not use FS).
    unsafe { wrmsr(MSR_FS_BASE, base) };
    true
}

/// Loads the running thread's inactive GS base, which `swapgs` hands to user mode on the way
/// back (the active one is the kernel's per-CPU block). Refused as [`set_user_fs_base`].
pub fn set_user_gs_base(base: u64) -> bool {
    if base >= USER_END {
        return false;
    }
    // SAFETY: a user-half address into the inactive GS base, which the kernel never uses while
    // it runs (it swaps the user's out on entry and back in on exit).
    unsafe { wrmsr(MSR_KERNEL_GS_BASE, base) };
    true
}

/// The MSRs the kernel uses, by their architectural numbers (the `x86` crate's).
pub use x86::msr::{
    IA32_APIC_BASE as MSR_APIC_BASE, IA32_EFER as MSR_EFER, IA32_FMASK as MSR_FMASK, IA32_FS_BASE as MSR_FS_BASE,
    IA32_GS_BASE as MSR_GS_BASE, IA32_KERNEL_GSBASE as MSR_KERNEL_GS_BASE, IA32_LSTAR as MSR_LSTAR,
    IA32_STAR as MSR_STAR,
};

/// Bits of EFER, CR0, CR4, RFLAGS and the APIC base MSR the kernel uses, as `u64`: the VMM's
/// where it has them, else the `x86` crate's.
pub use embedded_vmm::svm::bits::{
    ApicBase, CR0_PE, CR0_PG, CR4_OSXSAVE, CR4_PAE, EFER_LME, EFER_NXE, EFER_SCE, RFLAGS_IF,
};
/// RFLAGS, the `x86` crate's.
pub use x86::bits64::rflags::RFlags;
/// CR0.MP: WAIT/FWAIT honour CR0.TS.
pub const CR0_MP: u64 = Cr0::CR0_MONITOR_COPROCESSOR.bits() as u64;
/// CR0.EM: x87 instructions fault (emulation).
pub const CR0_EM: u64 = Cr0::CR0_EMULATE_COPROCESSOR.bits() as u64;
/// CR0 as the boot CPU's and the others' entry code load it on the way to long mode: paging,
/// write protection (also in ring 0), protected mode.
pub const ENTRY_CR0: u64 = CR0_PG | Cr0::CR0_WRITE_PROTECT.bits() as u64 | CR0_PE;
/// CR4.PGE: global pages.
pub const CR4_PGE: u64 = Cr4::CR4_ENABLE_GLOBAL_PAGES.bits() as u64;
/// CR4.OSFXSR: the OS saves SSE state with FXSAVE.
pub const CR4_OSFXSR: u64 = Cr4::CR4_ENABLE_SSE.bits() as u64;
/// CR4.OSXMMEXCPT: SIMD floating-point exceptions raise #XM.
pub const CR4_OSXMMEXCPT: u64 = Cr4::CR4_UNMASKED_SSE.bits() as u64;

/// Turns on no-execute pages (EFER.NXE) if the CPU has them; the kernel's page tables use the
/// NX bit from then on.
pub fn enable_no_execute(features: &Features) {
    if features.nx {
        // SAFETY: NX is supported (CPUID); setting NXE only makes the NX bit meaningful.
        unsafe { wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE) };
    }
}

/// CPU features the kernel cares about, read once with CPUID.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub x2apic: bool,
    pub tsc_deadline: bool,
    pub invariant_tsc: bool,
    pub nx: bool,
    pub pages_1g: bool,
    pub global_pages: bool,
    pub svm: bool,
    pub hypervisor: bool,
    /// TSC frequency from CPUID leaf 0x15 or a hypervisor leaf, when the CPU states it.
    pub tsc_hz: Option<u64>,
}

impl Features {
    pub fn detect() -> Features {
        let max_basic = __cpuid_count(0, 0).eax;
        let l1 = __cpuid_count(1, 0);
        let max_ext = __cpuid_count(0x8000_0000, 0).eax;
        let e1 = if max_ext >= 0x8000_0001 { __cpuid_count(0x8000_0001, 0) } else { __cpuid_count(0, 0) };
        let invariant_tsc = max_ext >= 0x8000_0007 && __cpuid_count(0x8000_0007, 0).edx & (1 << 8) != 0;
        let mut tsc_hz = None;
        if max_basic >= 0x15 {
            let l15 = __cpuid_count(0x15, 0);
            if l15.eax != 0 && l15.ebx != 0 && l15.ecx != 0 {
                tsc_hz = Some(l15.ecx as u64 * l15.ebx as u64 / l15.eax as u64);
            }
        }
        let hypervisor = l1.ecx & (1 << 31) != 0;
        if tsc_hz.is_none() && hypervisor && __cpuid_count(0x4000_0000, 0).eax >= 0x4000_0010 {
            // The VMware/KVM "timing information" leaf: TSC frequency in kHz.
            let khz = __cpuid_count(0x4000_0010, 0).eax as u64;
            tsc_hz = (khz != 0).then_some(khz * 1000);
        }
        Features {
            x2apic: l1.ecx & (1 << 21) != 0,
            tsc_deadline: l1.ecx & (1 << 24) != 0,
            invariant_tsc,
            nx: e1.edx & (1 << 20) != 0,
            pages_1g: e1.edx & (1 << 26) != 0,
            global_pages: l1.edx & (1 << 13) != 0,
            svm: e1.ecx & (1 << 2) != 0,
            hypervisor,
            tsc_hz,
        }
    }
}

#[inline]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the kernel only names architectural MSRs that exist on every x86-64 CPU it boots on
    // (or that CPUID said exist); reading one has no side effect.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (hi as u64) << 32 | lo as u64
}

/// # Safety
/// Writing an MSR changes CPU behaviour; the caller must know what the value does.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads the time-stamp counter and has no other effect.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[inline]
pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// # Safety
/// `root` must be a valid PML4 that maps the running code, its stack and its data.
#[inline]
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

#[inline]
pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Drops every non-global TLB entry of this CPU (reloads CR3).
pub fn flush_tlb() {
    // SAFETY: writing back the current CR3 only flushes cached translations.
    unsafe { write_cr3(read_cr3()) };
}

/// Drops every TLB entry of this CPU, global ones (the kernel's) included: clearing CR4.PGE
/// flushes them, setting it again restores global pages.
pub fn flush_tlb_global() {
    let cr4 = read_cr4();
    if cr4 & CR4_PGE == 0 {
        flush_tlb();
        return;
    }
    // SAFETY: toggling PGE, which the CPU supports (it is set), only flushes the TLB.
    unsafe {
        write_cr4(cr4 & !CR4_PGE);
        write_cr4(cr4);
    }
}

#[inline]
pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Zeroes the debug address registers DR0-3. A guest reads and writes them directly (the VMM
/// does not intercept debug-register access; DR6 and DR7 are in the VMCB), so they keep the
/// last guest's values on its core: a VM's first entry clears them for the next one.
pub fn clear_debug_addresses() {
    // SAFETY: the kernel sets no breakpoints (its DR7 enables none), so DR0-3 are unused; writing
    // them changes nothing else.
    unsafe {
        asm!(
            "mov dr0, {z}",
            "mov dr1, {z}",
            "mov dr2, {z}",
            "mov dr3, {z}",
            z = in(reg) 0u64,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// # Safety
/// The caller must only set bits the CPU supports and that keep the running state valid.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

#[inline]
pub fn read_rbp() -> u64 {
    let v;
    // SAFETY: copies a register.
    unsafe { asm!("mov {}, rbp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// # Safety
/// Port I/O reaches devices; the caller must own the device behind `port`.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: forwarded to the caller.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags)) };
}

/// # Safety
/// As for [`outb`]; reading some device registers has side effects.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let v;
    // SAFETY: forwarded to the caller.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags)) };
    v
}

#[inline]
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & RFLAGS_IF != 0
}

#[inline]
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

#[inline]
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before any code path enables interrupts.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Enables interrupts and halts until one arrives, without a window in which a wake-up could be
/// lost (`sti` takes effect after the next instruction). Returns with interrupts disabled.
pub fn wait_for_interrupt() {
    // SAFETY: as for enable_interrupts; the handler runs and returns before `cli`.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: hlt with interrupts off only waits for NMI/SMI/INIT.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

/// Runs `f` with interrupts disabled, restoring the previous state afterwards.
#[inline]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    disable_interrupts();
    let r = f();
    if was {
        enable_interrupts();
    }
    r
}

/// A spin lock that also keeps interrupts off while held, so an interrupt handler on the same
/// CPU can never spin on a lock its own CPU holds.
pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

pub struct IrqGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    restore: bool,
}

impl<T> IrqMutex<T> {
    pub const fn new(v: T) -> Self {
        IrqMutex { inner: spin::Mutex::new(v) }
    }

    #[inline]
    pub fn lock(&self) -> IrqGuard<'_, T> {
        let restore = interrupts_enabled();
        disable_interrupts();
        IrqGuard { guard: Some(self.inner.lock()), restore }
    }

    /// Like [`Self::lock`] but gives up after `spins` attempts (for panic and fault paths, where
    /// the holder may be the CPU that failed).
    pub fn try_lock_for(&self, spins: usize) -> Option<IrqGuard<'_, T>> {
        let restore = interrupts_enabled();
        disable_interrupts();
        for _ in 0..spins {
            if let Some(g) = self.inner.try_lock() {
                return Some(IrqGuard { guard: Some(g), restore });
            }
            core::hint::spin_loop();
        }
        if restore {
            enable_interrupts();
        }
        None
    }
}

impl<T> core::ops::Deref for IrqGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard is present until drop")
    }
}

impl<T> core::ops::DerefMut for IrqGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard is present until drop")
    }
}

impl<T> Drop for IrqGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.restore {
            enable_interrupts();
        }
    }
}
