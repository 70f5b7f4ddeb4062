//! Manul's lightweight kernel.
//!
//! On `x86_64-unknown-none` this is the kernel itself, booted through PVH. On the host it is a
//! stub: the hardware-independent half is the library (`lib.rs`), tested with `cargo test`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

extern crate alloc;

// The hardware-independent modules live in the library half of the crate (host-tested, fuzzed);
// naming them here lets the kernel modules write `crate::page_table` and so on.
#[cfg(target_os = "none")]
use lwk::{acpi_tables, cmdline, event, frame_allocator, memory_map, page_table, start_info};
// The hardware layer's modules, at the paths the kernel modules name them by.
#[cfg(target_os = "none")]
use lwk_hal::{
    cmos, cpu, descriptor_tables, fpu_state, io_apic, kernel_heap, kernel_memory, local_apic, pit, power_off, random,
    uart, vectors,
};

/// Declares the modules that only exist in the kernel binary (they touch the hardware).
macro_rules! kernel_modules {
    ($($module:ident),* $(,)?) => { $( #[cfg(target_os = "none")] mod $module; )* };
}

// The kernel proper. The console is declared on its own: its `println!` macros are exported to
// the crate root, which macro-declared modules cannot do.
#[cfg(target_os = "none")]
mod serial_console;
kernel_modules!(
    address_space,
    backtrace,
    clock,
    console_commands,
    enclaves,
    exceptions,
    files,
    fork_copy,
    futex,
    interrupt_entry,
    job_memory,
    jobs,
    kernel_main,
    open_files,
    logging,
    node_health,
    panic,
    per_cpu,
    pipe,
    power,
    process,
    process_lifecycle,
    program_loader,
    pvh_entry,
    scheduler,
    signals,
    smp,
    syscalls,
    synthetic_files,
    thread,
    user_entry,
    vms,
    wait_queue,
);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("lwk is a kernel: build it with `cargo xtask build` and boot it with `cargo xtask run`");
    std::process::exit(2);
}
