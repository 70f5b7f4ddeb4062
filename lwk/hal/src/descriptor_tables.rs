//! Per-CPU GDT and TSS. The TSS gives NMI, double fault and machine check their own stacks
//! (IST 1-3), so a kernel stack overflow or a fault during a fault still gets reported.
//!
//! Selector layout (fixed; `syscall`/`sysret` rely on it): 0x08 kernel code, 0x10 kernel data,
//! 0x18 user data, 0x20 user code (64-bit), 0x28 TSS.

use crate::kernel_memory::{MemoryError, alloc_stack};
use alloc::boxed::Box;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const IST_NMI: u8 = 1;
pub const IST_DOUBLE_FAULT: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;
const IST_STACK_BYTES: u64 = 16 * 1024;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;

/// The boot CPU's first GDT, in the higher half, used until its per-CPU GDT is built (the
/// PVH entry's GDT sits in the lower half, which the kernel's own page tables do not map).
static EARLY_GDT: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];

pub fn load_early_gdt() {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of_val(&EARLY_GDT) - 1) as u16,
        base: VirtAddr::new(EARLY_GDT.as_ptr() as u64),
    };
    // SAFETY: EARLY_GDT is static and has the same code/data selectors as the boot GDT, so the
    // loaded segment registers stay valid.
    unsafe { x86_64::instructions::tables::lgdt(&pointer) };
}

/// Builds and loads this CPU's GDT and TSS. Called once per CPU. Returns the TSS's address, for
/// [`set_kernel_stack`].
pub fn init_this_cpu() -> Result<u64, MemoryError> {
    let mut tss = TaskStateSegment::new();
    for ist in [IST_NMI, IST_DOUBLE_FAULT, IST_MACHINE_CHECK] {
        let stack = alloc_stack(IST_STACK_BYTES)?;
        tss.interrupt_stack_table[ist as usize - 1] = VirtAddr::new(stack.top());
    }
    let tss: &'static mut TaskStateSegment = Box::leak(Box::new(tss));
    let tss_address = tss as *mut TaskStateSegment as u64;
    let tss: &'static TaskStateSegment = tss;
    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    gdt.append(Descriptor::user_data_segment());
    gdt.append(Descriptor::user_code_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!((code.0, data.0, tss_selector.0), (KERNEL_CODE, KERNEL_DATA, 0x28));
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded and describe flat 64-bit kernel
    // segments; the TSS is leaked, so it lives as long as the CPU uses it.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_selector);
    }
    Ok(tss_address)
}

/// Sets the stack the CPU switches to on an interrupt from user mode (TSS RSP0).
pub fn set_kernel_stack(tss: u64, top: u64) {
    let tss = tss as *mut TaskStateSegment;
    // SAFETY: `tss` is this CPU's leaked TSS (from `init_this_cpu`); only this CPU writes it, and
    // the CPU reads RSP0 only on a privilege change, which cannot happen during this write.
    unsafe { core::ptr::addr_of_mut!((*tss).privilege_stack_table[0]).write_volatile(VirtAddr::new(top)) };
}

pub const USER_DATA: u16 = 0x18 | 3;
pub const USER_CODE: u16 = 0x20 | 3;
