//! The node's own health once the enclaves have ended: every core still answers a cross-CPU
//! call, and the memory they held came back (`node_health` event), with the kernel memory line:
//! what the kernel heap holds and held at most, and what of it the running enclaves are charged.

use crate::{hal::kernel_heap, hal::kernel_memory, hal::local_apic, task::per_cpu, task::smp, util::logging};
use core::sync::atomic::{AtomicU64, Ordering};

/// How long a core has to answer.
const ANSWER_NS: u64 = 100_000_000;

/// Free memory before anything was launched.
static FREE_BEFORE_LAUNCH: AtomicU64 = AtomicU64::new(0);

/// Notes the free memory before the first launch, for [`report`] to compare with.
pub fn mark_before_launch() {
    FREE_BEFORE_LAUNCH.store(kernel_memory::frame_stats().0, Ordering::Relaxed);
}

/// Checks every online core and the free memory and emits `node_health`; true if every core
/// answered with its own APIC ID. `enclaves_kmem` is what the running enclaves' kernel-memory
/// accounts hold.
pub fn report(enclaves_kmem: u64) -> bool {
    let me = per_cpu::current().index;
    let online = per_cpu::all().iter().filter(|c| c.online.load(Ordering::Acquire));
    let (mut cpus, mut answering) = (0u64, 0u64);
    for c in online {
        cpus += 1;
        let answered = c.index == me || smp::call_on(c.index, ANSWER_NS, local_apic::id) == Ok(c.apic_id);
        if answered {
            answering += 1;
        } else {
            log::error!(target: "health", "cpu {} does not answer a cross-CPU call", c.index);
        }
    }
    let free = kernel_memory::frame_stats().0;
    let before = FREE_BEFORE_LAUNCH.load(Ordering::Relaxed);
    logging::emit("node_health", |e| {
        e.u64("cpus", cpus)
            .u64("cpus_answering", answering)
            .u64("free_mib", free >> 20)
            .u64("free_before_launch_mib", before >> 20)
            .u64("unreturned_kib", before.saturating_sub(free) >> 10)
            .u64("heap_kib", kernel_heap::bytes_in_use() >> 10)
            .u64("heap_peak_kib", kernel_heap::peak_bytes() >> 10)
            .u64("enclaves_kmem_kib", enclaves_kmem >> 10)
            .u64("stack_slots", kernel_memory::stack_slots())
            .bool("healthy", answering == cpus);
    });
    answering == cpus
}
