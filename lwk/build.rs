//! Links the kernel with its own linker script, but only for the bare-metal target: on the host
//! the same crate builds its hardware-independent modules for `cargo test`.

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{manifest_dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=--orphan-handling=warn");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
    }
}
