//! Interrupt and exception entry: one 16-byte assembly stub per vector pushes the vector (and a
//! zero where the CPU pushes no error code), a common stub saves every general register into a
//! [`TrapFrame`], swaps GS when coming from user mode, and calls the kernel's handler (given to
//! [`load_idt`]). The IDT is shared by all CPUs. `trap_return` is also the way back to user mode
//! for the system-call entry's full restore and a new thread's first run.

use crate::descriptor_tables::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};
use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};
use static_assertions::const_assert_eq;

/// The interrupted context, as the entry stubs leave it on the stack.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}
const_assert_eq!(size_of::<TrapFrame>(), 22 * 8);

global_asm!(
    r#"
    .section .text.interrupt_entry, "ax"
    .balign 16
    .global interrupt_stubs
interrupt_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    pushq $0
    .endif
    pushq $vector
    jmp interrupt_common
    .set vector, vector + 1
    .endr

interrupt_common:
    testb $3, 24(%rsp)              /* CS of the interrupted context */
    jz 1f
    swapgs
1:
    "#,
    save_registers!(),
    r#"
    movq %rsp, %rdi
    cld
    call *{dispatch}(%rip)
    .global trap_return
trap_return:
    "#,
    restore_registers!(),
    r#"
    testb $3, 24(%rsp)
    jz 2f
    swapgs
2:  addq $16, %rsp
    iretq
    "#,
    dispatch = sym TRAP_HANDLER,
    options(att_syntax)
);

unsafe extern "C" {
    static interrupt_stubs: u8;
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}
const_assert_eq!(size_of::<Gate>(), 16);

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: spin::Once<Idt> = spin::Once::new();

/// What the interrupt stubs call with the saved frame (set by [`load_idt`], before any gate can
/// be taken).
static TRAP_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Builds the IDT (once) and loads it on this CPU; every interrupt and exception then calls
/// `handler` with the interrupted context (the same handler on every CPU).
pub fn load_idt(handler: extern "C" fn(&mut TrapFrame)) {
    TRAP_HANDLER.store(handler as usize, Ordering::Release);
    let idt = IDT.call_once(|| {
        let stubs = (&raw const interrupt_stubs) as u64;
        let mut gates = [Gate::default(); 256];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let handler = stubs + 16 * vector as u64;
            let ist = match vector {
                2 => IST_NMI,
                8 => IST_DOUBLE_FAULT,
                18 => IST_MACHINE_CHECK,
                _ => 0,
            };
            *gate = Gate {
                offset_low: handler as u16,
                selector: KERNEL_CODE,
                ist,
                type_attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate
                offset_middle: (handler >> 16) as u16,
                offset_high: (handler >> 32) as u32,
                reserved: 0,
            };
        }
        Idt(gates)
    });
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: x86_64::VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the IDT is a static that lives forever and every gate points at a stub above.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}
