//! A fake [`VmmHost`] for host tests: its "physical" memory is the test process's heap
//! (physical address = pointer), its clock is set by the test, and it records what the VMM
//! asks of it.

use crate::host::{HostBlock, LogLevel, VmmHost};
use std::collections::BTreeMap;
use std::string::String;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::vec::Vec;

pub const TSC_HZ: u64 = 1_000_000_000;

#[derive(Default)]
pub struct FakeHost {
    /// The largest block it hands out (0: any size).
    max_block: u64,
    /// Live blocks by physical address, each in a buffer of its own (aligned within it).
    blocks: Mutex<BTreeMap<u64, Vec<u8>>>,
    pub now_ns: AtomicU64,
    pub kicks: AtomicUsize,
    pub console_waiting: AtomicUsize,
    pub log: Mutex<Vec<String>>,
    pub console: Mutex<Vec<u8>>,
}

impl FakeHost {
    /// A host that lives for ever (as the VMM wants; one per test).
    pub fn leak(self) -> &'static FakeHost {
        std::boxed::Box::leak(std::boxed::Box::new(self))
    }

    /// A host that hands out blocks of at most `bytes`.
    pub fn with_max_block(bytes: u64) -> FakeHost {
        FakeHost { max_block: bytes, ..FakeHost::default() }
    }

    pub fn live_blocks(&self) -> usize {
        self.blocks.lock().unwrap().len()
    }
}

impl VmmHost for FakeHost {
    fn alloc_contiguous(&self, bytes: u64, align: u64) -> Option<HostBlock> {
        if self.max_block != 0 && bytes > self.max_block {
            return None;
        }
        let mut buffer = std::vec![0u8; (bytes + align) as usize];
        let phys = (buffer.as_mut_ptr() as u64).next_multiple_of(align);
        self.blocks.lock().unwrap().insert(phys, buffer);
        Some(HostBlock { phys, bytes })
    }

    fn free_contiguous(&self, block: HostBlock) {
        self.blocks.lock().unwrap().remove(&block.phys).expect("a block this host gave");
    }

    fn phys_to_virt(&self, phys: u64) -> *mut u8 {
        phys as *mut u8
    }

    fn tsc_hz(&self) -> u64 {
        TSC_HZ
    }

    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::SeqCst)
    }

    fn unix_time_ns_at(&self, now_ns: u64) -> u64 {
        1_700_000_000_000_000_000 + now_ns
    }

    fn set_wakeup(&self, _at_ns: Option<u64>) {}

    fn kick_cpu(&self, _cpu: usize) {
        self.kicks.fetch_add(1, Ordering::SeqCst);
    }

    fn wait_for_event(&self, _until_ns: Option<u64>, _woken: &AtomicBool) {}

    fn log(&self, _level: LogLevel, args: core::fmt::Arguments) {
        self.log.lock().unwrap().push(std::format!("{args}"));
    }

    fn console_output(&self, _vm: &str, bytes: &[u8]) {
        self.console.lock().unwrap().extend_from_slice(bytes);
    }

    fn console_waiting(&self) {
        self.console_waiting.fetch_add(1, Ordering::SeqCst);
    }
}
