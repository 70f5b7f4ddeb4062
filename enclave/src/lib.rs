//! Pure logic of enclaves: the partition of a node into cores, memory and devices; the node
//! manifest that composes enclaves at boot; the lifecycle state machine; isolation policies and
//! their error-zone meaning; shared segments; health (heartbeats and progress).
//!
//! `no_std` + `alloc`, no `unsafe`, tested on the host. Nothing here touches hardware or reads a
//! clock: the LWK (or the Linux tool) passes times in nanoseconds and carries out what the
//! functions decide. Every input may be hostile (a manifest comes from the initrd): no function
//! panics on any input, and every refusal is a typed error whose `Display` says what was wrong.
//! `docs/enclaves.md` is the plan and the manifest reference.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod health;
pub mod isolation;
pub mod kernel_budget;
pub mod lifecycle;
pub mod manifest;
pub mod partition;
pub mod registry;
pub mod segments;
pub mod values;

pub use health::{HealthEvent, Monitor, ThreadSample};
pub use isolation::{Policy, Reach, Zone};
pub use kernel_budget::{Account, Charge, OverBudget};
pub use lifecycle::{Event, IllegalTransition, State};
pub use manifest::{EnclaveSpec, Image, Kind, ManifestError, ManifestErrors, NodeManifest, SegmentSpec};
pub use partition::{Assignment, CoreRequest, MemRange, MemoryRequest, Node, Partition, PartitionError};
pub use registry::{Outcome, Record, Registry, RegistryError};
pub use segments::{Access, SegmentError, SegmentTable};
pub use values::CpuSet;

/// Longest enclave or segment name, in bytes.
pub const MAX_NAME: usize = 64;

/// An enclave or segment name: 1 to [`MAX_NAME`] ASCII letters, digits, `-` and `_`
/// (the rule of the kernel command line's `job.NAME=` and `vm=NAME`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/enclaves.md` shows the tables the code has, and its example manifest parses.
    #[test]
    fn docs_match_the_code() {
        let doc = include_str!("../../docs/enclaves.md");
        assert!(doc.contains(&lifecycle::markdown_table()), "lifecycle table");
        assert!(doc.contains(&isolation::markdown_table()), "isolation table");
        let mut examples = 0;
        for block in doc.split("```ini\n").skip(1) {
            let text = block.split("```").next().unwrap_or("");
            NodeManifest::parse(text.as_bytes()).unwrap();
            examples += 1;
        }
        assert!(examples >= 1);
        assert!(doc.contains(manifest::MANIFEST_PATH));
    }

    #[test]
    fn names() {
        assert!(valid_name("sim"));
        assert!(valid_name("a-b_C9"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("é"));
        assert!(!valid_name("a.b"));
        assert!(valid_name(&"x".repeat(MAX_NAME)));
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
    }
}
