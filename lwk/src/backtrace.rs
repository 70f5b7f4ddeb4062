//! Frame-pointer backtraces (the kernel is built with frame pointers). The walk never leaves the
//! stack it starts on, so a corrupt chain ends the trace instead of faulting.

use crate::per_cpu;
use crate::pvh_entry::{BOOT_STACK, BOOT_STACK_SIZE};
use core::fmt::Write;

const MAX_FRAMES: usize = 32;

/// The bounds of the stack that contains `rbp`, if it is a kernel stack the kernel knows.
fn stack_bounds(rbp: u64) -> Option<(u64, u64)> {
    let boot = (&raw const BOOT_STACK) as u64;
    let candidates =
        per_cpu::all().iter().map(|c| (c.stack.bottom, c.stack.top)).chain([(boot, boot + BOOT_STACK_SIZE as u64)]);
    candidates.into_iter().find(|&(lo, hi)| rbp >= lo && rbp < hi)
}

/// Writes `rip` and then the return address of every frame in the `rbp` chain.
pub fn write(out: &mut dyn Write, rip: u64, rbp: u64) {
    let _ = writeln!(out, "backtrace (resolve with: addr2line -f -e target/manul/lwk ADDRESS):");
    let _ = writeln!(out, "  #0  {rip:#018x}");
    let Some((lo, hi)) = stack_bounds(rbp) else {
        return;
    };
    let mut frame = rbp;
    for depth in 1..MAX_FRAMES {
        if !frame.is_multiple_of(8) || frame < lo || frame + 16 > hi {
            break;
        }
        // SAFETY: `frame` and `frame + 8` lie inside a mapped kernel stack (checked above).
        let (next, ret) = unsafe { ((frame as *const u64).read(), ((frame + 8) as *const u64).read()) };
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
