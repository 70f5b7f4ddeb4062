//! Manul's embedded virtual machine monitor: an OS-independent `no_std` + `alloc` library that
//! boots guests with AMD SVM and nested paging. It reaches its host only through [`VmmHost`], so
//! the same code runs inside the LWK and inside the Linux module.
//!
//! Modules from the bottom up (none imports one above it): `svm` (VMCB, initial state, VMRUN),
//! `machine` (the layout), `host`, `paging`; guest memory and paging, the decoder, CPUID,
//! the paravirtual clock, statistics, shared regions, the VM's end; `devices`; `loaders` and the
//! ACPI tables; `irq` (the router); `exits`; `vcpu`; `vm`.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod acpi_builder;
pub mod cpuid;
pub mod decoder;
pub mod devices;
pub mod end;
pub mod exit_stats;
pub mod exits;
#[cfg(test)]
pub(crate) mod fake_host;
pub mod guest_memory;
pub mod guest_paging;
pub mod host;
pub mod irq;
pub mod loaders;
pub mod machine;
pub mod paging;
pub mod pv_clock;
pub mod shared_regions;
pub mod svm;
pub mod vcpu;
pub mod vm;

pub use host::{HostBlock, LogLevel, VmmHost};
pub use shared_regions::SharedRegion;
pub use vm::{CONSOLE_HELP_AFTER_NS, Vm, VmConfig, VmEnd, VmError, hypercall, linux_cmdline};

/// The layers of the crate, bottom first: a module may import its own layer and those below.
#[cfg(test)]
mod layers {
    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, fs};

    const LAYERS: &[&[&str]] = &[
        &["svm", "machine", "host", "paging"],
        &[
            "guest_memory",
            "guest_paging",
            "decoder",
            "cpuid",
            "pv_clock",
            "exit_stats",
            "shared_regions",
            "end",
            "fake_host",
        ],
        &["devices"],
        &["loaders", "acpi_builder"],
        &["irq"],
        &["exits"],
        &["vcpu"],
        &["vm"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// The `.rs` files below `dir`, as paths relative to `src`.
    fn sources(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                sources(&path, &format!("{prefix}{name}/"), out);
            } else if name.ends_with(".rs") {
                out.push((format!("{prefix}{name}"), fs::read_to_string(&path).unwrap()));
            }
        }
    }

    #[test]
    fn no_module_imports_one_above_it() {
        let mut files = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut files);
        let mut upward = Vec::new();
        for (path, text) in &files {
            let top = path.split('/').next().unwrap().trim_end_matches(".rs");
            if top == "lib" {
                continue;
            }
            let own = layer(top).unwrap_or_else(|| panic!("{path}: its module is in no layer"));
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for used in line.split("crate::").skip(1) {
                    let module: String = used.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if layer(&module).is_some_and(|l| l > own) {
                        upward.push(format!("{path} imports {module}"));
                    }
                }
            }
        }
        assert!(upward.is_empty(), "imports that point up: {upward:?}");
    }
}
