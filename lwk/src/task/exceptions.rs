//! CPU exceptions in the kernel are fatal: a report (vector, name, error code, RIP, CR2, every
//! register, a backtrace) on the console, an `exception` event, and a failure exit.

use crate::task::interrupt_entry::TrapFrame;
use crate::util::power::{ExitStatus, shutdown};
use crate::{hal::cpu, task::per_cpu, util::backtrace, util::logging, util::serial_console};

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point error",
    "virtualization exception",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security exception",
    "reserved",
];

pub fn fatal(f: &TrapFrame) -> ! {
    let cr2 = cpu::read_cr2();
    let cpu_index = per_cpu::try_current().map_or(u64::MAX, |c| c.index as u64);
    let name = NAMES.get(f.vector as usize).copied().unwrap_or("unknown");
    serial_console::with_console_for_fault(|c| {
        let _ = writeln!(
            c,
            "\nEXCEPTION: {name} (vector {}) on cpu {cpu_index}, error code {:#x}\n  RIP {:#018x}  CS {:#x}  RFLAGS {:#x}  RSP {:#018x}  SS {:#x}  CR2 {cr2:#018x}",
            f.vector, f.error_code, f.rip, f.cs, f.rflags, f.rsp, f.ss
        );
        let _ = writeln!(c, "  RAX {:#018x} RBX {:#018x} RCX {:#018x} RDX {:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
        let _ = writeln!(c, "  RSI {:#018x} RDI {:#018x} RBP {:#018x} R8  {:#018x}", f.rsi, f.rdi, f.rbp, f.r8);
        let _ = writeln!(c, "  R9  {:#018x} R10 {:#018x} R11 {:#018x} R12 {:#018x}", f.r9, f.r10, f.r11, f.r12);
        let _ = writeln!(c, "  R13 {:#018x} R14 {:#018x} R15 {:#018x}", f.r13, f.r14, f.r15);
        backtrace::write(c, f.rip, f.rbp);
    });
    logging::emit_from_fault("exception", |e| {
        e.u64("vector", f.vector)
            .str("name", name)
            .u64("cpu", cpu_index)
            .u64("error_code", f.error_code)
            .u64("rip", f.rip)
            .u64("cr2", cr2)
            .u64("rsp", f.rsp)
            .u64("rflags", f.rflags);
        for (reg, v) in [
            ("rax", f.rax),
            ("rbx", f.rbx),
            ("rcx", f.rcx),
            ("rdx", f.rdx),
            ("rsi", f.rsi),
            ("rdi", f.rdi),
            ("rbp", f.rbp),
            ("r8", f.r8),
            ("r9", f.r9),
            ("r10", f.r10),
            ("r11", f.r11),
            ("r12", f.r12),
            ("r13", f.r13),
            ("r14", f.r14),
            ("r15", f.r15),
        ] {
            e.u64(reg, v);
        }
    });
    shutdown(ExitStatus::Failure)
}
