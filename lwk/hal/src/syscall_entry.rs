//! The way into and out of user mode: `syscall` enters through [`syscall_entry`] (swapgs, the
//! running thread's kernel stack, a [`TrapFrame`] like an interrupt's), the kernel's handler runs
//! with interrupts enabled, and the way back is `sysret` when the frame allows it, `iretq` otherwise.
//!
//! The `sysret` pitfall: on Intel CPUs `sysret` to a non-canonical RIP faults in ring 0 with the
//! user's stack. The return path only uses `sysret` when RIP is a canonical user address and the
//! registers `sysret` clobbers (RCX, R11) need not be restored; everything else leaves by
//! `iretq`, which restores every register and faults, if at all, in user mode.

use crate::cpu::{self, EFER_SCE, MSR_EFER, MSR_FMASK, MSR_LSTAR, MSR_STAR, RFlags};
use crate::descriptor_tables::{KERNEL_CODE, USER_CODE, USER_DATA};
use crate::per_cpu::{OFFSET_KERNEL_STACK_TOP, OFFSET_USER_RSP};
use crate::trap::TrapFrame;
use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Flags cleared on `syscall`: TF, IF, DF, IOPL, NT, AC.
const FMASK: u64 = RFlags::FLAGS_TF
    .union(RFlags::FLAGS_IF)
    .union(RFlags::FLAGS_DF)
    .union(RFlags::FLAGS_IOPL3)
    .union(RFlags::FLAGS_NT)
    .union(RFlags::FLAGS_AC)
    .bits();
/// The `vector` a system call's frame carries (no interrupt vector is this large).
pub const SYSCALL_FRAME: u64 = 0x100;
/// User RFLAGS: IF set, reserved bit 1 set.
pub const USER_RFLAGS: u64 = RFlags::FLAGS_IF.union(RFlags::FLAGS_A1).bits();

global_asm!(
    r#"
    .section .text.syscall_entry, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:{user_rsp}
    movq %gs:{kernel_stack}, %rsp
    pushq ${user_data}
    pushq %gs:{user_rsp}
    pushq %r11
    pushq ${user_code}
    pushq %rcx
    pushq $0
    pushq ${syscall_frame}
    "#,
    save_registers!(),
    r#"
    movq %rsp, %rdi
    cld
    sti
    call *{dispatch}(%rip)
    cli
    testq %rax, %rax
    jnz trap_return                 /* the full restore through iretq */
    "#,
    restore_registers!(),
    r#"
    addq $16, %rsp                  /* vector, error code */
    movq 0(%rsp), %rcx              /* RIP */
    movq 16(%rsp), %r11             /* RFLAGS */
    movq 24(%rsp), %rsp             /* user RSP */
    swapgs
    sysretq

    .global thread_first_entry
thread_first_entry:
    /* A new thread's first run: the switch "returned" here with RSP at its user frame. */
    call *{finish_switch}(%rip)
    cli
    jmp trap_return
    "#,
    user_rsp = const OFFSET_USER_RSP,
    kernel_stack = const OFFSET_KERNEL_STACK_TOP,
    user_data = const USER_DATA,
    user_code = const USER_CODE,
    syscall_frame = const SYSCALL_FRAME,
    dispatch = sym SYSCALL_HANDLER,
    finish_switch = sym FINISH_SWITCH,
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    /// Where a new thread's kernel stack first returns to (see `thread::Thread::new`).
    pub fn thread_first_entry();
}

/// What the entry stub calls with the saved frame; it returns non-zero when the way back must
/// be `iretq` (set by [`init_this_cpu`] before `syscall` is enabled).
static SYSCALL_HANDLER: AtomicUsize = AtomicUsize::new(0);
/// What a new thread runs first, on its own stack, before it returns to user mode.
static FINISH_SWITCH: AtomicUsize = AtomicUsize::new(0);

/// Enables `syscall` on this CPU: `handler` gets every system call's frame; `first_run` is
/// what a new thread runs first (the scheduler's end of a switch).
pub fn init_this_cpu(handler: extern "C" fn(&mut TrapFrame) -> u64, first_run: extern "C" fn()) {
    SYSCALL_HANDLER.store(handler as usize, Ordering::Release);
    FINISH_SWITCH.store(first_run as usize, Ordering::Release);
    let star = (0x10u64 << 48) | ((KERNEL_CODE as u64) << 32);
    // SAFETY: STAR/LSTAR/FMASK describe the kernel's own segments and entry stub; EFER.SCE
    // enables the instruction. The GDT layout matches what STAR implies (descriptor_tables).
    unsafe {
        cpu::wrmsr(MSR_STAR, star);
        cpu::wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        cpu::wrmsr(MSR_FMASK, FMASK);
        cpu::wrmsr(MSR_EFER, cpu::rdmsr(MSR_EFER) | EFER_SCE);
    }
}
