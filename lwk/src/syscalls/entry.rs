//! The kernel's side of `syscall`: the hardware layer's entry (`lwk_hal::syscall_entry`) calls
//! [`syscall_dispatch`], which runs the system call and chooses the way back.

use crate::hal::cpu::USER_END;
use crate::hal::descriptor_tables::USER_CODE;
use crate::syscalls;
use crate::task::interrupt_entry::TrapFrame;

/// Enables `syscall` on this CPU.
pub fn init_this_cpu() {
    lwk_hal::syscall_entry::init_this_cpu(syscall_dispatch, crate::task::scheduler::finish_switch);
}

/// Called by the entry stub. Returns non-zero when the way back must be `iretq`.
extern "C" fn syscall_dispatch(frame: &mut TrapFrame) -> u64 {
    let full_restore = syscalls::dispatch(frame);
    let sysret_ok = !full_restore && frame.rip < USER_END && frame.cs == USER_CODE as u64;
    if sysret_ok {
        // `sysret` loads RFLAGS from R11 and RIP from RCX: the frame's values win.
        frame.rcx = frame.rip;
        frame.r11 = frame.rflags;
    }
    u64::from(!sysret_ok)
}
