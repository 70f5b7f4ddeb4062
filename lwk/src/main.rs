//! Manul's lightweight kernel.
//!
//! On `x86_64-unknown-none` this is the kernel itself, booted through PVH. On the host only the
//! hardware-independent modules are built, for `cargo test`.
#![cfg_attr(target_os = "none", no_std, no_main)]
// On the host the hardware-independent modules have no kernel to call them outside their tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

// Hardware-independent logic, tested on the host.
mod acpi_tables;
mod cmdline;
mod event;
mod frame_allocator;
mod kernel_heap;
mod memory_map;
mod page_table;
mod start_info;

/// Declares the modules that only exist in the kernel binary (they touch the hardware).
macro_rules! kernel_modules {
    ($($module:ident),* $(,)?) => { $( #[cfg(target_os = "none")] mod $module; )* };
}

// The kernel proper. The console is declared on its own: its `println!` macros are exported to
// the crate root, which macro-declared modules cannot do.
#[cfg(target_os = "none")]
mod serial_console;
kernel_modules!(
    backtrace,
    clock,
    console_commands,
    cpu,
    descriptor_tables,
    exceptions,
    interrupt_entry,
    io_apic,
    kernel_main,
    kernel_memory,
    local_apic,
    logging,
    panic,
    per_cpu,
    power,
    pvh_entry,
    smp,
);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("lwk is a kernel: build it with `cargo xtask build` and boot it with `cargo xtask run`");
    std::process::exit(2);
}
