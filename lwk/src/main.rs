//! Manul's lightweight kernel.
//!
//! On `x86_64-unknown-none` this is the kernel itself, booted through PVH. On the host only the
//! hardware-independent modules are built, for `cargo test`.
#![cfg_attr(target_os = "none", no_std, no_main)]
// On the host the hardware-independent modules have no kernel to call them outside their tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

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

// The kernel proper.
#[cfg(target_os = "none")]
mod backtrace;
#[cfg(target_os = "none")]
mod clock;
#[cfg(target_os = "none")]
mod console_commands;
#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod descriptor_tables;
#[cfg(target_os = "none")]
mod exceptions;
#[cfg(target_os = "none")]
mod interrupt_entry;
#[cfg(target_os = "none")]
mod io_apic;
#[cfg(target_os = "none")]
mod kernel_main;
#[cfg(target_os = "none")]
mod kernel_memory;
#[cfg(target_os = "none")]
mod local_apic;
#[cfg(target_os = "none")]
mod logging;
#[cfg(target_os = "none")]
mod panic;
#[cfg(target_os = "none")]
mod per_cpu;
#[cfg(target_os = "none")]
mod power;
#[cfg(target_os = "none")]
mod pvh_entry;
#[cfg(target_os = "none")]
#[macro_use]
mod serial_console;
#[cfg(target_os = "none")]
mod smp;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("lwk is a kernel: build it with `cargo xtask build` and boot it with `cargo xtask run`");
    std::process::exit(2);
}
