//! Manul's lightweight kernel.
//!
//! On `x86_64-unknown-none` this is the kernel itself, booted through PVH: the hardware layer's
//! entry code calls [`lwk::boot::kernel_main::kernel_main`]. On the host it is a stub: the
//! library (`lib.rs`) is what `cargo test` builds there.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
lwk_hal::pvh_entry!(lwk::boot::kernel_main::kernel_main);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("lwk is a kernel: build it with `cargo xtask build` and boot it with `cargo xtask run`");
    std::process::exit(2);
}
