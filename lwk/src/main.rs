//! Manul's lightweight kernel.
//!
//! On `x86_64-unknown-none` this is the kernel itself, booted through PVH. On the host only the
//! hardware-independent modules are built, for `cargo test`.
#![cfg_attr(target_os = "none", no_std, no_main)]
// On the host the hardware-independent modules have no kernel to call them outside their tests.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

mod acpi_tables;
mod cmdline;
mod event;
mod frame_allocator;
mod memory_map;
mod page_table;
mod start_info;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("lwk is a kernel: build it with `cargo xtask build` and boot it with `cargo xtask run`");
    std::process::exit(2);
}
