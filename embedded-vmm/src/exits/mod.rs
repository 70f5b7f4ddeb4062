//! VM exits: [`decode`] reads the VMCB into an [`Exit`] value, and a file per family handles
//! it: port I/O (`io`), device memory (`npf` finds the device and decodes the instruction,
//! `mmio` carries it out), MSRs (`msr`), CPUID (`cpuid`), XSETBV (`xsetbv`) and VMMCALL
//! (`hypercall`). The vCPU's run loop (`vcpu.rs`) matches on the [`Exit`]: HLT and the
//! ends of the VM are its own. Handlers reach their VM through a [`Context`], so they run on
//! the host in tests with a fake VMCB and a fake [`VmmHost`].

pub mod cpuid;
pub mod hypercall;
pub mod io;
pub mod mmio;
pub mod msr;
pub mod npf;
pub mod xsetbv;

use crate::devices::Devices;
use crate::end::VmEnd;
use crate::exit_stats::ExitStats;
use crate::guest_memory::GuestMemory;
use crate::guest_paging::PagingState;
use crate::host::{LogLevel, VmmHost};
use crate::irq::Router;
use crate::svm::vmcb::{Event, EventType, Vmcb, exit};
use alloc::vec::Vec;
use core::fmt;

pub use hypercall::Heartbeats;

/// #UD and #GP.
pub const UD: u8 = 6;
pub const GP: u8 = 13;

/// What an exit asks of the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A physical interrupt, NMI or SMI: the host takes it once the VMM sets GIF again.
    Host,
    /// The guest can take an interrupt now (VINTR).
    InterruptWindow,
    Io(io::PortAccess),
    Hlt,
    /// A triple fault.
    Shutdown,
    Cpuid,
    Msr {
        write: bool,
    },
    Xsetbv,
    Vmmcall,
    /// An instruction the guest does not have (SVM's, RDTSCP, ICEBP, MONITOR, MWAIT): #UD.
    Undefined,
    /// INVD, skipped.
    Invd,
    /// A nested page fault at a guest-physical address.
    Npf {
        gpa: u64,
    },
    /// VMRUN refused the guest state.
    Invalid,
    /// Anything else: the VM ends.
    Unhandled,
}

/// The exit in `v`.
#[inline(always)]
pub fn decode(v: &Vmcb) -> Exit {
    let code = v.control.exit_code;
    if code as u32 == exit::INVALID {
        return Exit::Invalid;
    }
    match code {
        exit::INTR | exit::NMI | exit::SMI => Exit::Host,
        exit::VINTR => Exit::InterruptWindow,
        exit::IOIO => Exit::Io(io::PortAccess::decode(v.control.exit_info1)),
        exit::HLT => Exit::Hlt,
        exit::SHUTDOWN => Exit::Shutdown,
        exit::CPUID => Exit::Cpuid,
        exit::MSR => Exit::Msr { write: v.control.exit_info1 == 1 },
        exit::XSETBV => Exit::Xsetbv,
        exit::VMMCALL => Exit::Vmmcall,
        exit::VMRUN..=exit::SKINIT | exit::RDTSCP | exit::ICEBP | exit::MONITOR | exit::MWAIT => Exit::Undefined,
        exit::INVD => Exit::Invd,
        exit::NPF => Exit::Npf { gpa: v.control.exit_info2 },
        _ => Exit::Unhandled,
    }
}

/// The VM's state that its exits reach, shared by its vCPUs (the VM owns it).
pub struct VmState {
    pub memory: GuestMemory,
    pub devices: spin::Mutex<Devices>,
    pub irq: Router,
    pub stats: spin::Mutex<ExitStats>,
    pub end: spin::Mutex<Option<VmEnd>>,
    pub heartbeats: Heartbeats,
}

impl VmState {
    pub fn new(host: &'static dyn VmmHost, memory: GuestMemory, devices: Devices, vcpus: usize) -> VmState {
        VmState {
            memory,
            devices: spin::Mutex::new(devices),
            irq: Router::new(host, vcpus),
            stats: spin::Mutex::new(ExitStats::default()),
            end: spin::Mutex::new(None),
            heartbeats: Heartbeats::default(),
        }
    }
}

/// What an exit handler works with: the host, the VM's name (for logs and its console) and its
/// state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub host: &'static dyn VmmHost,
    pub name: &'a str,
    pub vm: &'a VmState,
}

impl Context<'_> {
    #[inline]
    pub fn end_reason(&self) -> Option<VmEnd> {
        self.vm.end.lock().clone()
    }

    /// Ends the VM (first reason wins): every vCPU's physical CPU is kicked, so each leaves the
    /// guest at once (a physical interrupt always exits).
    pub fn stop(&self, why: VmEnd) {
        self.vm.end.lock().get_or_insert(why);
        self.vm.irq.kick_all();
    }

    pub fn log(&self, level: LogLevel, args: fmt::Arguments) {
        self.host.log(level, format_args!("vm {}: {args}", self.name));
    }
}

/// What a vCPU keeps between exits.
pub struct CpuState {
    pub index: u32,
    /// XCR0 as the host had it (restored when the vCPU stops).
    pub host_xcr0: u64,
    /// MSRs already reported as refused (once each).
    pub reported_msrs: Vec<u32>,
    /// IA32_TSC_DEADLINE as the guest wrote it.
    pub tsc_deadline: u64,
    /// The paravirtual clock's MSRs as the guest wrote them (see `pv_clock`).
    pub system_time_msr: u64,
    pub wall_clock_msr: u64,
}

impl CpuState {
    pub fn new(index: usize, host_xcr0: u64) -> CpuState {
        CpuState {
            index: index as u32,
            host_xcr0,
            reported_msrs: Vec::new(),
            tsc_deadline: 0,
            system_time_msr: 0,
            wall_clock_msr: 0,
        }
    }
}

/// Queues an exception for the guest (delivered at the next VMRUN).
pub fn inject_exception(v: &mut Vmcb, vector: u8, error_code: Option<u32>) {
    v.control.event_injection = Event::new(vector, EventType::Exception, error_code);
}

/// The guest's paging registers, for walks of its page tables.
#[inline]
pub fn paging_state(v: &Vmcb) -> PagingState {
    PagingState { cr0: v.save.cr0, cr3: v.save.cr3, cr4: v.save.cr4, efer: v.save.efer }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::vmcb::IoioInfo;

    fn exit_of(code: u64, info1: u64, info2: u64) -> Exit {
        let mut v = Vmcb::zeroed();
        (v.control.exit_code, v.control.exit_info1, v.control.exit_info2) = (code, info1, info2);
        decode(&v)
    }

    #[test]
    fn exit_codes_decode_into_their_families() {
        assert_eq!(exit_of(exit::CPUID, 0, 0), Exit::Cpuid);
        assert_eq!(exit_of(exit::INTR, 0, 0), Exit::Host);
        assert_eq!(exit_of(exit::MSR, 1, 0), Exit::Msr { write: true });
        assert_eq!(exit_of(exit::MSR, 0, 0), Exit::Msr { write: false });
        assert_eq!(exit_of(exit::NPF, 7, 0xfee0_00b0), Exit::Npf { gpa: 0xfee0_00b0 });
        assert_eq!(exit_of(exit::MWAIT, 0, 0), Exit::Undefined);
        assert_eq!(exit_of(exit::CLGI, 0, 0), Exit::Undefined);
        assert_eq!(exit_of(0x0000_0000_ffff_ffff, 0, 0), Exit::Invalid, "QEMU's VMEXIT_INVALID");
        assert_eq!(exit_of(u64::MAX, 0, 0), Exit::Invalid);
        assert_eq!(exit_of(0x40 + 14, 0, 0), Exit::Unhandled, "an exception we do not intercept");
        let Exit::Io(access) = exit_of(exit::IOIO, (0x3f8 << 16) | IoioInfo::SIZE8.bits(), 0) else { panic!() };
        assert_eq!((access.port(), access.size(), access.input(), access.string()), (0x3f8, 1, false, false));
    }

    #[test]
    fn the_first_end_wins_and_every_running_vcpu_is_kicked() {
        let vm = test_support::TestVm::new(3);
        let ctx = vm.context();
        assert!(vm.state.irq.place(0, 4) && vm.state.irq.place(2, 5));
        assert_eq!(ctx.end_reason(), None);
        ctx.stop(VmEnd::PowerOff);
        ctx.stop(VmEnd::Stopped);
        assert_eq!(ctx.end_reason(), Some(VmEnd::PowerOff));
        assert_eq!(vm.host.kicks.load(core::sync::atomic::Ordering::SeqCst), 4, "vCPUs 0 and 2, twice");
    }

    #[test]
    fn exceptions_are_queued_with_their_error_code() {
        let mut v = Vmcb::zeroed();
        inject_exception(&mut v, GP, Some(0));
        assert_eq!(v.control.event_injection.bits(), 13 | (3 << 8) | (1 << 11) | (1 << 31));
        inject_exception(&mut v, UD, None);
        assert_eq!(v.control.event_injection.bits(), 6 | (3 << 8) | (1 << 31));
    }
}
