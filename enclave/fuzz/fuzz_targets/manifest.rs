//! The node manifest (`/etc/manul/node.conf`, and the console's `create`) on arbitrary bytes:
//! never a panic; every accepted manifest prints (`to_text`) to text that parses back to the
//! same manifest; and placing it on a node (`Registry::compose`) either works or says why,
//! never panics.
#![no_main]

use enclave::{CpuSet, Node, NodeManifest, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = NodeManifest::parse(data) else { return };
    let text = manifest.to_text();
    let again = NodeManifest::parse(text.as_bytes()).expect("a printed manifest parses");
    assert_eq!(again, manifest, "{text}");
    let node = Node::new(CpuSet::first_n(8), 4 << 30);
    if let Ok(registry) = Registry::compose(node, &manifest) {
        assert_eq!(registry.records().len(), manifest.enclaves.len());
    }
});
