//! Layer 6: programs. ELF inspection, loading a program into a new address space, the initial
//! user stack.

pub mod elf_loader;
#[cfg(target_os = "none")]
pub(crate) mod program_loader;
pub mod user_stack;
