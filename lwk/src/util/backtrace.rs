//! Frame-pointer backtraces (the kernel is built with frame pointers). The walk never leaves the
//! stack it starts on, so a corrupt chain ends the trace instead of faulting.

use crate::hal::kernel_memory::{self, Stack};
use crate::hal::per_cpu;
use core::fmt::Write;

const MAX_FRAMES: usize = 32;

/// The stack that contains `rbp`, if it is a CPU's kernel stack or the boot stack.
fn stack_of(rbp: u64) -> Option<Stack> {
    let mut candidates = per_cpu::cpus().map(|c| c.stack).chain([kernel_memory::boot_stack()]);
    candidates.find(|s| rbp >= s.bottom() && rbp < s.top())
}

/// Writes `rip` and then the return address of every frame in the `rbp` chain.
pub fn write(out: &mut dyn Write, rip: u64, rbp: u64) {
    let _ = writeln!(out, "backtrace (resolve with: addr2line -f -e target/manul/lwk ADDRESS):");
    let _ = writeln!(out, "  #0  {rip:#018x}");
    let Some(stack) = stack_of(rbp) else {
        return;
    };
    let mut frame = rbp;
    for depth in 1..MAX_FRAMES {
        let (Some(next), Some(ret)) = (stack.word(frame), stack.word(frame + 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        let _ = writeln!(out, "  #{depth:<2} {ret:#018x}");
        if next <= frame {
            break;
        }
        frame = next;
    }
}
