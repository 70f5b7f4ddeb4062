//! Floating-point and vector state (x87, SSE, AVX, AVX-512 as the CPU has them). The kernel
//! itself never uses these registers, so a thread's state stays in the CPU across system calls
//! and interrupts and is saved and restored only when the CPU switches threads (XSAVE when
//! available, FXSAVE otherwise).

use crate::cpu;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::arch::asm;
use core::arch::x86_64::__cpuid_count;
use core::sync::atomic::{AtomicU64, Ordering};

/// XCR0 bits the kernel enables when present: x87, SSE, AVX, AVX-512 (opmask, ZMM_Hi256,
/// Hi16_ZMM), and PKRU: not for the kernel's own use (its CR4.PKE is off), but so that loading
/// the reset state clears the protection keys a guest left on its core.
const WANTED_XCR0: u64 = 0b10_1110_0111;
static XCR0: AtomicU64 = AtomicU64::new(0);
/// Bytes of a save area (512 for FXSAVE).
static AREA_BYTES: AtomicU64 = AtomicU64::new(512);

fn has_xsave() -> bool {
    __cpuid_count(1, 0).ecx & (1 << 26) != 0
}

/// Enables SSE and, when present, XSAVE with every supported component. Same on every CPU.
pub fn init_this_cpu() {
    // SAFETY: CR0.MP set and CR0.EM clear (no FPU emulation); CR4.OSFXSR and OSXMMEXCPT tell the
    // CPU the OS saves SSE state; OSXSAVE only when CPUID reports XSAVE, and XCR0 only gets
    // components CPUID 0xD reports.
    unsafe {
        let mut cr0: u64;
        asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
        cr0 = (cr0 | cpu::CR0_MP) & !cpu::CR0_EM;
        asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        let mut cr4 = cpu::read_cr4() | cpu::CR4_OSFXSR | cpu::CR4_OSXMMEXCPT;
        if has_xsave() {
            cr4 |= cpu::CR4_OSXSAVE;
        }
        cpu::write_cr4(cr4);
        if has_xsave() {
            let supported = __cpuid_count(0xd, 0);
            let xcr0 = (supported.eax as u64 | (supported.edx as u64) << 32) & WANTED_XCR0;
            asm!("xsetbv", in("ecx") 0, in("eax") xcr0 as u32, in("edx") (xcr0 >> 32) as u32, options(nomem, nostack));
            XCR0.store(xcr0, Ordering::Relaxed);
            // EBX: bytes needed for the components now enabled in XCR0.
            AREA_BYTES.store(__cpuid_count(0xd, 0).ebx as u64, Ordering::Relaxed);
        }
    }
}

/// The enabled XSAVE components (0 without XSAVE).
#[inline]
pub fn xcr0() -> u64 {
    XCR0.load(Ordering::Relaxed)
}

/// The state of a reset CPU as a save area: x87 control word 0x37f (offset 0), MXCSR 0x1f80
/// (offset 24), everything else zero; a zero XSAVE header (offset 512) means every component in
/// its initial state. XRSTOR reads only this legacy region and the header when the header says
/// so, FXRSTOR only the legacy region.
#[repr(C, align(64))]
struct ResetArea([u8; 576]);

static RESET: ResetArea = {
    let mut area = [0u8; 576];
    let fcw = 0x37fu16.to_le_bytes();
    let mxcsr = 0x1f80u32.to_le_bytes();
    (area[0], area[1]) = (fcw[0], fcw[1]);
    (area[24], area[25], area[26], area[27]) = (mxcsr[0], mxcsr[1], mxcsr[2], mxcsr[3]);
    ResetArea(area)
};

/// Loads the state of a reset CPU into this CPU's registers (for a guest's first entry: nothing
/// the core's last owner left in them may show through). Allocates nothing.
pub fn load_reset_state() {
    // SAFETY: `RESET` is 64-byte aligned and holds a valid legacy region and a zero XSAVE
    // header (standard form), so XRSTOR initialises every component it is asked for.
    unsafe { load(RESET.0.as_ptr()) };
}

/// XRSTOR (or FXRSTOR) of the area at `area`.
///
/// # Safety
/// `area` is 64-byte aligned and holds a state saved by XSAVE/FXSAVE, or a legacy region and a
/// zero XSAVE header.
unsafe fn load(area: *const u8) {
    let mask = xcr0();
    // SAFETY: the caller's contract.
    unsafe {
        if mask != 0 {
            asm!("xrstor64 [{}]", in(reg) area, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack));
        } else {
            asm!("fxrstor64 [{}]", in(reg) area, options(nostack));
        }
    }
}

/// Whether XRSTOR (FXRSTOR without XSAVE) can load `image` without faulting: no MXCSR bit
/// outside `mxcsr_mask`, and an XSAVE header that names only enabled components, in standard
/// form, with its reserved bytes zero.
fn image_loadable(image: &[u8], mxcsr_mask: u32) -> bool {
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |o: usize| u64::from_le_bytes(image[o..o + 8].try_into().unwrap_or_default());
    if image.len() < 512 || u32_at(24) & !mxcsr_mask != 0 {
        return false;
    }
    xcr0() == 0
        || (image.len() >= 576
            && u64_at(512) & !xcr0() == 0
            && u64_at(520) == 0
            && image[528..576].iter().all(|&b| b == 0))
}

/// One thread's saved registers: a 64-byte aligned save area.
pub struct FpuState {
    area: *mut u8,
    layout: Layout,
}

// SAFETY: the area is owned by one thread's state and only touched by the CPU running it.
unsafe impl Send for FpuState {}
// SAFETY: as above; shared references never touch the area.
unsafe impl Sync for FpuState {}

impl FpuState {
    /// The initial state of a new program: x87 control word 0x37f, MXCSR 0x1f80, the rest zero.
    pub fn new() -> Option<FpuState> {
        let layout = Layout::from_size_align(AREA_BYTES.load(Ordering::Relaxed) as usize, 64).ok()?;
        // SAFETY: the layout has a non-zero size.
        let area = unsafe { alloc_zeroed(layout) };
        if area.is_null() {
            return None;
        }
        let initial = RESET.0.len().min(layout.size());
        // SAFETY: the area has `layout.size()` bytes; `RESET` is a separate static.
        unsafe { core::ptr::copy_nonoverlapping(RESET.0.as_ptr(), area, initial) };
        Some(FpuState { area, layout })
    }

    /// A copy (for fork).
    pub fn duplicate(&self) -> Option<FpuState> {
        let copy = FpuState::new()?;
        // SAFETY: both areas have `layout.size()` bytes and do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.area, copy.area, self.layout.size()) };
        Some(copy)
    }

    /// The saved registers as bytes (for a signal frame).
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the area holds `layout.size()` initialised bytes owned by `self`.
        unsafe { core::slice::from_raw_parts(self.area, self.layout.size()) }
    }

    /// Replaces the saved registers with an image from user memory (rt_sigreturn): `fill`
    /// copies it straight into the area, then everything that would make the CPU fault when
    /// loading it is checked there, where user code can no longer change it: XRSTOR faults in
    /// the kernel on a bad header or reserved MXCSR bits, and user memory must never be able to
    /// do that. On any failure the area is saved again from this CPU, whose registers are the
    /// thread's (it runs), so nothing of a refused image stays. `fill`'s error is returned as it
    /// is; an image that would fault is `invalid`.
    pub fn load_checked<E>(&mut self, fill: impl FnOnce(&mut [u8]) -> Result<(), E>, invalid: E) -> Result<(), E> {
        // MXCSR_MASK (offset 28) as the CPU wrote it on the last save; 0 means the default.
        let mask = match u32::from_le_bytes(self.bytes()[28..32].try_into().unwrap_or_default()) {
            0 => 0xffbf,
            m => m,
        };
        // SAFETY: the area holds `layout.size()` bytes owned by `self`, borrowed mutably here.
        let area = unsafe { core::slice::from_raw_parts_mut(self.area, self.layout.size()) };
        let valid = fill(area).and_then(|()| if image_loadable(area, mask) { Ok(()) } else { Err(invalid) });
        if valid.is_err() {
            self.save();
        }
        valid
    }

    /// Saves this CPU's registers into the area.
    #[inline]
    pub fn save(&mut self) {
        let mask = xcr0();
        // SAFETY: the area is 64-byte aligned and large enough for the enabled components.
        unsafe {
            if mask != 0 {
                asm!("xsave64 [{}]", in(reg) self.area, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack));
            } else {
                asm!("fxsave64 [{}]", in(reg) self.area, options(nostack));
            }
        }
    }

    /// Loads the area into this CPU's registers.
    #[inline]
    pub fn restore(&self) {
        // SAFETY: the area is 64-byte aligned and holds a state saved by `save` or built by `new`
        // from `RESET`.
        unsafe { load(self.area) };
    }
}

impl Drop for FpuState {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.area, self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A standard-form image: MXCSR at offset 24, the XSAVE header at 512.
    fn image(mxcsr: u32, xstate_bv: u64, xcomp_bv: u64) -> [u8; 576] {
        let mut image = [0u8; 576];
        image[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        image[512..520].copy_from_slice(&xstate_bv.to_le_bytes());
        image[520..528].copy_from_slice(&xcomp_bv.to_le_bytes());
        image
    }

    /// What XRSTOR would fault on is refused: reserved MXCSR bits; with XSAVE, components the
    /// kernel did not enable, the compacted form, reserved header bytes. (One test: it sets the
    /// enabled components, which every check reads.)
    #[test]
    fn images_that_would_fault_are_refused() {
        XCR0.store(0, Ordering::Relaxed);
        assert!(image_loadable(&image(0x1f80, 0, 0), 0xffbf));
        assert!(!image_loadable(&image(0x1f80 | 1 << 16, 0, 0), 0xffbf), "a reserved MXCSR bit");
        assert!(image_loadable(&image(0x1f80 | 1 << 6, 0, 0), 0xffff), "DAZ where the CPU has it");
        assert!(!image_loadable(&image(0x1f80 | 1 << 6, 0, 0), 0xffbf), "DAZ where it does not");
        assert!(!image_loadable(&[0u8; 100], 0xffbf), "shorter than the legacy region");
        XCR0.store(0b111, Ordering::Relaxed);
        assert!(image_loadable(&image(0x1f80, 0b111, 0), 0xffbf));
        assert!(!image_loadable(&image(0x1f80, 0b1111, 0), 0xffbf), "a component not enabled");
        assert!(!image_loadable(&image(0x1f80, 0b11, 1 << 63), 0xffbf), "the compacted form");
        let mut reserved = image(0x1f80, 0b11, 0);
        reserved[560] = 1;
        assert!(!image_loadable(&reserved, 0xffbf), "a reserved header byte");
        assert!(!image_loadable(&image(0x1f80, 0, 0)[..520], 0xffbf), "no whole header");
        XCR0.store(0, Ordering::Relaxed);
    }
}
