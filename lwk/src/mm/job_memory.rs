//! A job's memory: reserved at launch from the kernel's allocator as a few large physically
//! contiguous blocks, then handed out to the job's mappings by a buddy allocator of its own. What
//! a job unmaps goes back to its pool (not to the kernel), and a job can never take more than its
//! reservation: beyond it, `mmap` and `brk` fail with ENOMEM. When the last holder lets go, the
//! blocks go to the control plane, which scrubs them (zeroes) on core 0 before the kernel may
//! give them to anyone else.

use crate::hal::frame_allocator::{FRAME_SIZE, FrameAllocator, order_size};
use crate::hal::kernel_memory::{self, DirectMapMetadata};
use crate::util::errno::Errno;
use crate::util::hook::Hook;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use lwk_hal::lent_memory;

pub struct JobMemory {
    frames: spin::Mutex<FrameAllocator<DirectMapMetadata<Vec<u8>>>>,
    blocks: Vec<(u64, u64)>,
    pub bytes: u64,
    /// The enclave it belongs to (named in the `enclave_scrubbed` event).
    owner: String,
}

impl JobMemory {
    /// Reserves `bytes` (rounded up to 2 MiB) from the kernel for the enclave `owner`.
    pub fn reserve(owner: &str, bytes: u64) -> Result<JobMemory, Errno> {
        let bytes = bytes.next_multiple_of(1 << 21);
        let blocks = kernel_memory::reserve_blocks(bytes).map_err(|_| Errno::ENOMEM)?;
        let base = blocks.iter().map(|b| b.0).min().unwrap_or(0);
        let end = blocks.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
        let frames = ((end - base) / FRAME_SIZE) as usize;
        let mut allocator = FrameAllocator::new(DirectMapMetadata { tags: vec![0u8; frames] }, base, frames);
        for &(start, len) in &blocks {
            if allocator.add_range(start, start + len).is_err() {
                for (s, l) in blocks {
                    let _ = kernel_memory::free_frames(s, l);
                }
                return Err(Errno::ENOMEM);
            }
        }
        Ok(JobMemory { frames: spin::Mutex::new(allocator), blocks, bytes, owner: owner.into() })
    }

    /// `len` bytes of zeroed memory, as few contiguous pieces as the pool allows (2 MiB aligned
    /// where the size permits, so mappings can use large pages). All or nothing.
    pub fn alloc(&self, len: u64) -> Result<Vec<(u64, u64)>, Errno> {
        let mut pieces = Vec::new();
        let mut left = len.next_multiple_of(FRAME_SIZE);
        let mut frames = self.frames.lock();
        while left > 0 {
            let largest = frames.largest_free_order().map_or(0, order_size);
            let take = left.min(largest);
            let align = if take >= 1 << 21 { 1 << 21 } else { FRAME_SIZE };
            match (take > 0).then(|| frames.alloc_bytes(take, align)) {
                Some(Ok(phys)) => {
                    pieces.push((phys, take));
                    left -= take;
                }
                _ => {
                    for (p, l) in pieces {
                        let _ = frames.free_bytes(p, l);
                    }
                    return Err(Errno::ENOMEM);
                }
            }
        }
        drop(frames);
        // The pool's blocks are lendable RAM, so zeroing cannot be refused; if it were, the
        // memory goes back rather than out with an earlier owner's data.
        if pieces.iter().any(|&(phys, l)| lent_memory::zero(phys, l as usize).is_err()) {
            pieces.iter().for_each(|&(phys, l)| self.free(phys, l));
            return Err(Errno::ENOMEM);
        }
        Ok(pieces)
    }

    /// Returns memory to the pool.
    pub fn free(&self, phys: u64, len: u64) {
        if let Err(e) = self.frames.lock().free_bytes(phys, len) {
            log::error!("job memory: freeing {phys:#x}+{len:#x}: {e:?}");
        }
    }

    /// Whether the frame at `phys` is part of this pool (and not, say, a shared segment's).
    pub fn owns(&self, phys: u64) -> bool {
        self.blocks.iter().any(|&(start, len)| phys >= start && phys - start < len)
    }

    pub fn free_bytes(&self) -> u64 {
        self.frames.lock().free_total()
    }
}

/// Where an ended pool's blocks go (owner, blocks): the control plane scrubs them on core 0 and
/// reports the enclave's memory back. Without it the blocks are scrubbed and freed at once.
pub static RELEASE: Hook<Release> = Hook::new();

/// Takes an ended pool's owner and blocks.
pub type Release = fn(String, Vec<(u64, u64)>);

impl Drop for JobMemory {
    fn drop(&mut self) {
        let blocks = core::mem::take(&mut self.blocks);
        match RELEASE.get() {
            Some(release) => release(core::mem::take(&mut self.owner), blocks),
            None => blocks.into_iter().for_each(|(phys, len)| {
                let _ = kernel_memory::scrub_and_free(phys, len);
            }),
        }
    }
}
