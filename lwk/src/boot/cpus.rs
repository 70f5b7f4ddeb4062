//! A CPU's life after boot: what an application processor sets up before it runs anything, and
//! the idle loop every CPU ends in (threads first, then a vCPU's work, else halt until an
//! interrupt).

use crate::task::per_cpu::{self, PerCpu};
use crate::{
    hal::cpu, hal::descriptor_tables, hal::fpu_state, hal::kernel_memory, hal::local_apic, syscalls::entry,
    task::interrupt_entry, task::scheduler,
};
use core::sync::atomic::Ordering;

/// First Rust code on an application processor.
pub extern "C" fn ap_entry(cpu: &'static PerCpu) -> ! {
    // The kernel's tables map everything the trampoline's map in the upper half.
    cpu.load_root(kernel_memory::kernel_root());
    let tss = match descriptor_tables::init_this_cpu() {
        Ok(tss) => tss,
        Err(e) => {
            log::error!("cpu {}: no memory for its TSS stacks: {e}", cpu.index);
            cpu::halt_forever();
        }
    };
    interrupt_entry::load_idt();
    per_cpu::install(cpu);
    cpu.tss.store(tss, Ordering::Relaxed);
    local_apic::init_this_cpu();
    entry::init_this_cpu();
    fpu_state::init_this_cpu();
    cpu.online.store(true, Ordering::Release);
    idle()
}

/// The idle loop of an application processor: runs threads when its queue has some, halts
/// otherwise. Cross-CPU calls run in their interrupt handler.
pub fn idle() -> ! {
    let me = per_cpu::current();
    loop {
        cpu::disable_interrupts();
        if scheduler::has_runnable() {
            scheduler::schedule();
        } else if let Some(work) = crate::vmm_host::vms::take_work() {
            crate::vmm_host::vms::run_work(work);
        } else {
            me.halts.fetch_add(1, Ordering::Relaxed);
            cpu::wait_for_interrupt();
        }
    }
}
