//! A virtual machine: built from its configuration (guest memory, shared regions, the kernel
//! and its boot data, devices, permission maps), run one vCPU per physical CPU
//! ([`crate::vcpu`]), paused, stopped, and asked for its statistics and console. Everything the
//! guest does is handled or ends this VM: nothing reaches a host panic.

use crate::devices::Devices;
use crate::devices::pci_host::PciHost;
use crate::exit_stats::ExitStats;
use crate::exits::{Context, VmState};
use crate::guest_memory::{GuestMemory, MemoryError};
use crate::host::{LogLevel, VmmHost};
use crate::loaders::bzimage::BzImageError;
use crate::loaders::pvh::PvhError;
use crate::loaders::{self, Image, LoadError};
use crate::paging::PAGE_4K as PAGE;
use crate::shared_regions::{self, SharedRegion, SharedRegionError};
use crate::svm::cpu::{self, PermissionMaps, SvmCpu, SvmError};
use crate::svm::state::VmTables;
use crate::vcpu::{self, Gate, Start};
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::sync::atomic::Ordering;

pub use crate::end::VmEnd;
pub use crate::exits::hypercall;
pub use crate::loaders::linux_cmdline;
pub use crate::vcpu::CONSOLE_HELP_AFTER_NS;

/// What to boot.
pub struct VmConfig<'a> {
    pub name: &'a str,
    pub memory_bytes: u64,
    pub vcpus: usize,
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
    /// Host memory shared with the guest (see [`crate::shared_regions`]).
    pub shared: &'a [SharedRegion],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmError {
    Svm(SvmError),
    Memory(MemoryError),
    Image(PvhError),
    BzImage(BzImageError),
    Shared(SharedRegionError),
    Config(&'static str),
}

impl From<LoadError> for VmError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Memory(e) => VmError::Memory(e),
            LoadError::Pvh(e) => VmError::Image(e),
            LoadError::BzImage(e) => VmError::BzImage(e),
        }
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            VmError::Svm(e) => write!(f, "SVM: {e:?}"),
            VmError::Memory(e) => write!(f, "guest memory: {e:?}"),
            VmError::Image(e) => write!(f, "kernel image: {e}"),
            VmError::BzImage(e) => write!(f, "bzImage: {e}"),
            VmError::Shared(e) => e.fmt(f),
            VmError::Config(e) => f.write_str(e),
        }
    }
}

pub struct Vm {
    host: &'static dyn VmmHost,
    pub name: String,
    state: VmState,
    gate: Gate,
    /// I/O and MSR permission maps (every access intercepted), shared by the vCPUs.
    maps: PermissionMaps,
    start: Start,
}

impl Vm {
    /// Builds the VM and loads its kernel. Nothing runs until [`Vm::run_vcpu`].
    pub fn new(host: &'static dyn VmmHost, config: &VmConfig) -> Result<Vm, VmError> {
        cpu::detect().map_err(VmError::Svm)?;
        if config.vcpus == 0 || config.vcpus > 64 {
            return Err(VmError::Config("a VM has 1 to 64 vCPUs"));
        }
        let placements = shared_regions::place(config.shared).map_err(VmError::Shared)?;
        let mut memory = GuestMemory::new(host, config.memory_bytes).map_err(VmError::Memory)?;
        for (region, at) in config.shared.iter().zip(&placements) {
            memory.map_shared(at.gpa, region.host_phys, region.bytes, region.writable).map_err(VmError::Memory)?;
        }
        let image = Image {
            kernel: config.kernel,
            initrd: config.initrd,
            cmdline: config.cmdline,
            vcpus: config.vcpus as u32,
            tsc_hz: host.tsc_hz(),
        };
        let boot = loaders::load(&memory, &image)?;
        let maps = PermissionMaps::intercept_all(host).ok_or(VmError::Memory(MemoryError::OutOfHostMemory))?;
        let tables = VmTables { iopm: maps.iopm.phys, msrpm: maps.msrpm.phys, npt_root: memory.npt_root() };
        let devices = Devices::with_pci(PciHost::with_shared(&placements));
        Ok(Vm {
            host,
            name: String::from(config.name),
            state: VmState::new(host, memory, devices, config.vcpus),
            gate: Gate::default(),
            maps,
            start: Start { boot, tables },
        })
    }

    fn context(&self) -> Context<'_> {
        Context { host: self.host, name: &self.name, vm: &self.state }
    }

    pub fn vcpus(&self) -> usize {
        self.state.irq.vcpus()
    }

    pub fn guest_memory_bytes(&self) -> u64 {
        self.state.memory.bytes()
    }

    /// The host pages the VMM holds for this VM besides guest RAM and nested page tables: the
    /// I/O and MSR permission maps, and per vCPU its VMCB and two host-state pages (taken when
    /// the vCPU starts).
    pub fn control_page_bytes(&self) -> u64 {
        self.maps.bytes() + SvmCpu::PAGES * PAGE * self.vcpus() as u64
    }

    /// The host memory the nested page tables take.
    pub fn nested_table_bytes(&self) -> u64 {
        self.state.memory.table_bytes()
    }

    /// Exit statistics so far.
    pub fn stats(&self) -> spin::MutexGuard<'_, ExitStats> {
        self.state.stats.lock()
    }

    /// Ends the VM (first reason wins): every vCPU's physical CPU is kicked, so each leaves the
    /// guest at once (a physical interrupt always exits) and returns from [`Vm::run_vcpu`].
    pub fn stop(&self, why: VmEnd) {
        self.context().stop(why);
    }

    /// Pauses the VM: every vCPU leaves the guest at its next exit (each is kicked at once) and
    /// waits outside it, its physical CPU halted, until [`Vm::resume`] or the VM's end. The guest
    /// loses nothing but time: its clocks (TSC, timers) run on, so it sees the pause as time
    /// that passed, and the timer interrupts due during it arrive once, late.
    pub fn pause(&self) {
        self.gate.paused.store(true, Ordering::SeqCst);
        self.state.irq.kick_all();
    }

    pub fn resume(&self) {
        self.gate.paused.store(false, Ordering::SeqCst);
        self.state.irq.kick_all();
    }

    /// Heartbeat hypercalls the guest made so far, and the host time (ns) of the last one.
    pub fn heartbeats(&self) -> (u64, u64) {
        self.state.heartbeats.get()
    }

    /// How many vCPUs are held outside the guest by a pause now.
    pub fn vcpus_held(&self) -> usize {
        self.gate.held.load(Ordering::SeqCst)
    }

    pub fn end_reason(&self) -> Option<VmEnd> {
        self.context().end_reason()
    }

    /// Runs vCPU `index` on the calling physical CPU (`host_cpu`, for kicks) until the VM ends;
    /// returns why it ended.
    pub fn run_vcpu(&self, index: usize, host_cpu: usize) -> VmEnd {
        vcpu::run(&self.context(), &self.gate, &self.start, index, host_cpu)
    }

    /// Writes the line the UART holds for the host's console, and the next one if the guest
    /// finished it meanwhile, then tells the guest (THRE interrupt). The host calls it after
    /// [`VmmHost::console_waiting`], from a CPU of its own; a vCPU calls it when the host is
    /// late or the guest cannot go on without it. Returns whether it wrote anything.
    pub fn transmit_console(&self) -> bool {
        self.context().transmit_console()
    }

    /// At the VM's end: every line still held, then the output the guest left without a final
    /// newline.
    pub fn flush_console(&self) {
        self.context().flush_console();
    }

    /// Console bytes the guest wrote that went out, and bytes its UART refused while busy (the
    /// guest wrote them again).
    pub fn console_counts(&self) -> (u64, u64) {
        let d = self.state.devices.lock();
        (d.com1.bytes_out, d.com1.refused)
    }

    /// A one-line summary of unclaimed port accesses, for the log at the end.
    pub fn summary(&self) -> String {
        let d = self.state.devices.lock();
        let stats = self.state.stats.lock();
        format!(
            "{} exits, {} accesses to unclaimed ports; busiest ports {:x?}",
            stats.total(),
            d.unclaimed,
            stats.busiest_ports(6)
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.context().log(LogLevel::Debug, format_args!("freed"));
    }
}
