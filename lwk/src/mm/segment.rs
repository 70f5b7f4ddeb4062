//! Shared segments as memory: a segment's block, and the view an enclave granted it maps. The
//! control plane owns the segments and answers which one an enclave may map
//! ([`SEGMENT_FOR`]).

use crate::util::errno::Errno;
use crate::util::hook::Hook;

/// A shared segment's memory: one physically contiguous, zeroed block.
#[derive(Clone, Copy, Debug)]
pub struct SegmentMemory {
    pub phys: u64,
    pub bytes: u64,
}

/// A segment as an enclave may map it.
#[derive(Clone, Copy, Debug)]
pub struct SegmentView {
    pub memory: SegmentMemory,
    pub writable: bool,
}

/// Segment `segment` as enclave `enclave` may map it (ENOENT without a grant): the control
/// plane's answer.
pub static SEGMENT_FOR: Hook<SegmentFor> = Hook::new();

/// (enclave, segment) to the view the enclave may map.
pub type SegmentFor = fn(&str, &str) -> Result<SegmentView, Errno>;
