//! The general registers in a `TrapFrame`'s order (`trap.rs`), saved and restored by the
//! interrupt entry and the `syscall` entry alike: one list, as assembly text for their
//! `global_asm!` templates.

/// Pushes RAX ... R15, so that R15 ends at the lowest address (the frame's first field).
macro_rules! save_registers {
    () => {
        "pushq %rax\npushq %rbx\npushq %rcx\npushq %rdx\npushq %rsi\npushq %rdi\npushq %rbp\n\
         pushq %r8\npushq %r9\npushq %r10\npushq %r11\npushq %r12\npushq %r13\npushq %r14\npushq %r15"
    };
}

/// Pops what [`save_registers`] pushed.
macro_rules! restore_registers {
    () => {
        "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %r11\npopq %r10\npopq %r9\npopq %r8\n\
         popq %rbp\npopq %rdi\npopq %rsi\npopq %rdx\npopq %rcx\npopq %rbx\npopq %rax"
    };
}
