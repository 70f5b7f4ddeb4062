//! Pure logic of enclaves: the partition of a node into cores and memory, and the CPU sets both
//! the LWK and the VMM use. `no_std` + `alloc`, tested on the host.
#![cfg_attr(not(test), no_std)]
