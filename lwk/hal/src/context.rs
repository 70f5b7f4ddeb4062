//! Switching kernel stacks between threads: a switched-out context is its kernel stack pointer
//! ([`SavedContext`]), below which `switch_stacks` left the callee-saved registers and the
//! return address. A new thread's context is made on its fresh stack so that its first switch
//! "returns" into `thread_first_entry`, which leaves for user mode through its [`TrapFrame`].

use crate::kernel_memory::Stack;
use crate::trap::TrapFrame;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

global_asm!(
    r#"
    .section .text.switch_stacks, "ax"
    .global switch_stacks
switch_stacks:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
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
    /// Saves the callee-saved registers and RSP into `*save`, loads RSP from `load` and returns
    /// into the context saved there.
    fn switch_stacks(save: *mut u64, load: u64);
}

/// A context switched away from: the stack pointer `switch_stacks` saved, or the one a new
/// thread's stack was prepared with. Only this module writes it.
#[derive(Debug, Default)]
pub struct SavedContext(AtomicU64);

impl SavedContext {
    /// A context that has not run yet: the idle context of a CPU, saved when it first switches
    /// away (it is never loaded before).
    pub const fn empty() -> Self {
        SavedContext(AtomicU64::new(0))
    }

    /// The first context of a thread whose kernel stack is `stack` (fresh, used by nobody): its
    /// first switch enters user mode with `frame`.
    pub fn first(stack: &Stack, frame: TrapFrame) -> Self {
        let frame_at = stack.top() - size_of::<TrapFrame>() as u64;
        // Below the frame: the return address for `switch_stacks` and its six saved registers.
        let entry_at = frame_at - 8;
        let saved_rsp = entry_at - 6 * 8;
        // SAFETY: the stack is mapped and writable from `bottom` to `top`, and the caller owns
        // it (fresh, not running); the writes stay inside its top 240 bytes.
        unsafe {
            (frame_at as *mut TrapFrame).write(frame);
            (entry_at as *mut u64).write(crate::syscall_entry::thread_first_entry as *const () as u64);
            core::ptr::write_bytes(saved_rsp as *mut u64, 0, 6);
        }
        SavedContext(AtomicU64::new(saved_rsp))
    }
}

/// Where [`switch`] saves the running context: a [`SavedContext`]'s slot, taken before the
/// caller lets go of the thread that owns it.
pub struct SaveSlot(*mut u64);

/// The context [`switch`] continues: a [`SavedContext`]'s stack pointer.
pub struct LoadTarget(u64);

impl SavedContext {
    /// Where to save the context that switches away.
    pub fn slot(&self) -> SaveSlot {
        SaveSlot(self.0.as_ptr())
    }

    /// The context to continue.
    pub fn target(&self) -> LoadTarget {
        LoadTarget(self.0.load(Ordering::Relaxed))
    }
}

/// Saves the running context into `save` and continues the one in `load`; returns when a later
/// switch continues the saved context.
///
/// Both contexts must stay allocated until then: the scheduler keeps an ended thread until the
/// next context has switched in (`PerCpu::dead`), and the kernel never frees a running thread.
#[inline]
pub fn switch(save: SaveSlot, load: LoadTarget) {
    assert!(load.0 != 0, "switching to a context that never ran");
    // SAFETY: `load.0` is a stack pointer only this module wrote (saved by `switch_stacks` or
    // prepared by `SavedContext::first`) on a stack that is still allocated, and `save.0` a live
    // `SavedContext` (the kernel's protocol above).
    unsafe { switch_stacks(save.0, load.0) };
}
