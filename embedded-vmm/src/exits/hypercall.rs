//! The hypercall interface: `VMMCALL` with the number in RAX, the result in RAX (from any
//! privilege level: a guest user program may make it). A guest finds the VMM by CPUID leaf
//! 0x4000_0000 ("ManulVMM") first.

use super::Context;
use crate::svm::vmcb::Vmcb;
use core::sync::atomic::{AtomicU64, Ordering};

/// "I am alive": the host's health monitor counts it (an enclave's heartbeat).
pub const HEARTBEAT: u64 = 1;
pub const OK: u64 = 0;
/// Any other number.
pub const UNKNOWN: u64 = u64::MAX;

/// VMMCALL is 0f 01 d9 (QEMU's SVM saves no next RIP to read the length from).
const VMMCALL_LENGTH: u64 = 3;

/// Heartbeat hypercalls so far, and the host time of the last one (0: none yet).
#[derive(Debug, Default)]
pub struct Heartbeats {
    count: AtomicU64,
    last_ns: AtomicU64,
}

impl Heartbeats {
    /// (how many, the host time in ns of the last).
    pub fn get(&self) -> (u64, u64) {
        (self.count.load(Ordering::SeqCst), self.last_ns.load(Ordering::SeqCst))
    }
}

pub fn handle(ctx: &Context, v: &mut Vmcb) {
    v.save.rax = match v.save.rax {
        HEARTBEAT => {
            ctx.vm.heartbeats.last_ns.store(ctx.host.now_ns(), Ordering::SeqCst);
            ctx.vm.heartbeats.count.fetch_add(1, Ordering::SeqCst);
            OK
        }
        _ => UNKNOWN,
    };
    v.save.rip += VMMCALL_LENGTH;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::test_support::TestVm;

    #[test]
    fn heartbeats_are_counted_with_their_time_and_other_numbers_refused() {
        let vm = TestVm::new(1);
        let ctx = vm.context();
        let mut v = Vmcb::zeroed();
        assert_eq!(vm.state.heartbeats.get(), (0, 0));
        vm.host.now_ns.store(5_000, Ordering::SeqCst);
        v.save.rax = HEARTBEAT;
        handle(&ctx, &mut v);
        assert_eq!((v.save.rax, v.save.rip), (OK, 3));
        assert_eq!(vm.state.heartbeats.get(), (1, 5_000));
        v.save.rax = 42;
        handle(&ctx, &mut v);
        assert_eq!((v.save.rax, v.save.rip), (UNKNOWN, 6));
        assert_eq!(vm.state.heartbeats.get(), (1, 5_000));
    }
}
