//! A VM on the host for tests of exit handling: the state of a VM over a [`FakeHost`].

use super::{Context, VmState};
use crate::devices::Devices;
use crate::fake_host::FakeHost;
use crate::guest_memory::GuestMemory;

/// The guest RAM a test VM has.
pub const RAM: u64 = 4 << 20;

pub struct TestVm {
    pub host: &'static FakeHost,
    pub state: VmState,
}

impl TestVm {
    /// `vcpus` vCPUs and [`RAM`] of memory in one block.
    pub fn new(vcpus: usize) -> TestVm {
        TestVm::on(FakeHost::default(), vcpus)
    }

    pub fn on(host: FakeHost, vcpus: usize) -> TestVm {
        let host = host.leak();
        let memory = GuestMemory::new(host, RAM).expect("guest memory");
        TestVm { host, state: VmState::new(host, memory, Devices::default(), vcpus) }
    }

    pub fn context(&self) -> Context<'_> {
        Context { host: self.host, name: "test", vm: &self.state }
    }
}
