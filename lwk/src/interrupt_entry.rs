//! Interrupt and exception entry: one 16-byte assembly stub per vector pushes the vector (and a
//! zero where the CPU pushes no error code), a common stub saves every general register into a
//! [`TrapFrame`], swaps GS when coming from user mode, and calls [`trap_dispatch`]. The IDT is
//! shared by all CPUs.

use crate::descriptor_tables::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE};
use crate::vectors::{CROSS_CALL_VECTOR, RESCHEDULE_VECTOR, SERIAL_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::{exceptions, local_apic, per_cpu, scheduler, serial_console, signals, smp};
use core::arch::global_asm;
use core::sync::atomic::Ordering;
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
1:  pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call {dispatch}
    .global trap_return
trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    testb $3, 24(%rsp)
    jz 2f
    swapgs
2:  addq $16, %rsp
    iretq
    "#,
    dispatch = sym trap_dispatch,
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

/// Builds the IDT (once) and loads it on this CPU.
pub fn load_idt() {
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

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    handle(frame);
    if frame.cs & 3 == 3 {
        signals::on_return_to_user(frame);
    }
}

fn handle(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        0..=31 if frame.cs & 3 == 3 => signals::user_fault(frame),
        0..=31 => exceptions::fatal(frame),
        TIMER_VECTOR => {
            let cpu = per_cpu::current();
            cpu.timer_interrupts.fetch_add(1, Ordering::Relaxed);
            cpu.timer_fired.store(true, Ordering::Release);
            cpu.timer_deadline.store(crate::clock::TIMER_STOPPED, Ordering::Release);
            local_apic::end_of_interrupt();
            scheduler::on_timer(frame);
        }
        RESCHEDULE_VECTOR => {
            per_cpu::current().cross_call_interrupts.fetch_add(1, Ordering::Relaxed);
            local_apic::end_of_interrupt();
            scheduler::preempt(frame);
        }
        CROSS_CALL_VECTOR => {
            per_cpu::current().cross_call_interrupts.fetch_add(1, Ordering::Relaxed);
            local_apic::end_of_interrupt();
            smp::run_pending_calls();
        }
        SERIAL_VECTOR => {
            serial_console::on_receive_interrupt();
            local_apic::end_of_interrupt();
        }
        SPURIOUS_VECTOR => {
            per_cpu::current().spurious_interrupts.fetch_add(1, Ordering::Relaxed);
        }
        other => {
            per_cpu::current().other_interrupts.fetch_add(1, Ordering::Relaxed);
            log::warn!("unexpected interrupt vector {other:#x}");
            local_apic::end_of_interrupt();
        }
    }
}
