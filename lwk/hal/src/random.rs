//! Random bytes for AT_RANDOM, `getrandom` and `/dev/urandom`: RDRAND when the CPU has it, else
//! a SplitMix64 stream seeded from the TSC (fine for stack canaries and hash seeds, not for keys).

use crate::cpu;
use core::arch::x86_64::__cpuid_count;
use core::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(0);

fn rdrand() -> Option<u64> {
    if __cpuid_count(1, 0).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let (value, ok): (u64, u8);
        // SAFETY: RDRAND is present (CPUID); it only writes the output register and CF.
        unsafe { core::arch::asm!("rdrand {}", "setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack)) };
        if ok != 0 {
            return Some(value);
        }
    }
    None
}

fn splitmix() -> u64 {
    let seed = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) ^ cpu::rdtsc();
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn fill(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = rdrand().unwrap_or_else(splitmix).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}
