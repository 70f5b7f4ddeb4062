//! A virtual machine: guest memory, devices, vCPUs on dedicated physical CPUs, exit statistics,
//! and how it ends. Everything the guest does is handled here or ends this VM: nothing reaches a
//! host panic.

use crate::acpi_builder::{self, AcpiConfig};
use crate::cpuid::{GuestCpu, guest_cpuid};
use crate::decoder::{self, AluOp, CpuMode, Operation, Source};
use crate::devices::local_apic::{Delivery, Destination, LocalApic, ReadOnlyRegister};
use crate::devices::pci_host::PciHost;
use crate::devices::{Devices, Effect, Now};
use crate::exit_stats::ExitStats;
use crate::guest_memory::{GuestMemory, MemoryError};
use crate::guest_paging::{self, PagingState};
use crate::host::{HostBlock, LogLevel, VmmHost};
use crate::loaders::bzimage::{self, BzImageError};
use crate::loaders::pvh::{self, PvhError};
use crate::machine;
use crate::paging::PAGE_4K as PAGE;
use crate::pv_clock;
use crate::shared_regions::{self, SharedRegion, SharedRegionError};
use crate::svm::cpu::{self, GuestRegisters, SvmError};
use crate::svm::vmcb::{Segment, Vmcb, exit, misc1, misc2};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use core::arch::x86_64::_rdtsc;
use core::fmt;

/// The host pages each vCPU holds: its VMCB, the host save area, the host state page.
const VCPU_PAGES: u64 = 3;
const EFER_SVME: u64 = 1 << 12;
const RFLAGS_IF: u64 = 1 << 9;
const EVENT_VALID: u64 = 1 << 31;
const EVENT_EXCEPTION: u64 = 3 << 8;
const EVENT_ERROR_CODE: u64 = 1 << 11;
const V_IRQ: u64 = 1 << 8;
const EVENT_NMI: u64 = 2 << 8;
const V_IGN_TPR: u64 = 1 << 20;
const GP: u8 = 13;
const UD: u8 = 6;
/// Guest ASID for every vCPU: each runs on its own physical CPU.
const ASID: u32 = 1;

/// The longest a waiting vCPU sleeps before it looks again for a stop or console input.
const WAIT_SLICE_NS: u64 = 10_000_000;
/// How long a line the guest's UART holds may wait for the host (which writes it from a CPU of
/// its own, [`VmmHost::console_waiting`]) before a vCPU of the VM writes it itself: the host's
/// CPU may be busy (building another VM), and a guest's kernel polls its UART with a timeout.
pub const CONSOLE_HELP_AFTER_NS: u64 = 1_000_000;

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

/// Why a VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// The guest asked for a reset (keyboard controller, 0xcf9); Manul does not reboot guests.
    Reboot,
    /// A triple fault (the SHUTDOWN intercept).
    TripleFault,
    /// The guest kernel panicked and said so through the guest-panic port (Linux's pvpanic).
    GuestPanic,
    /// Every vCPU halted with interrupts off: nothing can ever wake it.
    Halted,
    /// An exit the VMM does not handle.
    UnhandledExit { code: u64, info1: u64, info2: u64, rip: u64 },
    /// The VMM could not go on (VMRUN refused the state, no memory, ...).
    VmmError(String),
    /// The host stopped it ([`Vm::stop`]: an operator's `stop`, or the node going down).
    Stopped,
}

impl VmEnd {
    /// The `reason` of the `vm_exit` event.
    pub fn name(&self) -> &'static str {
        match self {
            VmEnd::PowerOff => "poweroff",
            VmEnd::Reboot => "reboot",
            VmEnd::TripleFault => "triple_fault",
            VmEnd::GuestPanic => "guest_panic",
            VmEnd::Halted => "halted",
            VmEnd::UnhandledExit { .. } => "unhandled_exit",
            VmEnd::VmmError(_) => "vmm_error",
            VmEnd::Stopped => "stopped",
        }
    }
}

impl fmt::Display for VmEnd {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            VmEnd::UnhandledExit { code, info1, info2, rip } => write!(
                f,
                "unhandled exit {} ({code:#x}) at rip {rip:#x}, info1 {info1:#x}, info2 {info2:#x}",
                crate::svm::vmcb::exit_name(*code)
            ),
            VmEnd::VmmError(e) => write!(f, "VMM error: {e}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The hypercall interface: `VMMCALL` with the number in RAX, the result in RAX. A guest finds
/// the VMM by CPUID leaf 0x4000_0000 ("ManulVMM") first.
pub mod hypercall {
    /// "I am alive": the host's health monitor counts it (an enclave's heartbeat).
    pub const HEARTBEAT: u64 = 1;
    pub const OK: u64 = 0;
    /// Any other number.
    pub const UNKNOWN: u64 = u64::MAX;
}

/// The command line a Linux guest gets: the host's, plus what a kernel without KVM guest
/// support cannot learn about the TSC (Linux reads a rate only through KVM's, VMware's,
/// Hyper-V's, ACRN's or Jailhouse's interfaces; one with KVM guest support reads it from the
/// paravirtual clock, see `pv_clock`, and these options then change nothing), unless the host's
/// line says it itself:
/// - `tsc_early_khz=` with the TSC rate: under an emulator Linux's calibration against the PIT
///   and the PM timer fails its jitter checks, and Linux then marks the TSC unstable and reads
///   the PM timer (an exit) for every clock read;
/// - `tsc=reliable`: the guest's TSC is the host's own clock, passed through at a constant
///   offset, while its tick (PIT, APIC timer) is emulated and may arrive late: Linux's watchdog
///   would compare the TSC with that tick and distrust the better clock.
pub fn linux_cmdline(cmdline: &str, tsc_hz: u64) -> String {
    let mut out = String::from(cmdline.trim());
    let has = |prefix: &str| cmdline.split_whitespace().any(|word| word.starts_with(prefix));
    let mut add = |option: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(option);
    };
    if tsc_hz >= 1000 && !has("tsc_early_khz=") {
        add(&format!("tsc_early_khz={}", tsc_hz / 1000));
    }
    if !has("tsc=") {
        add("tsc=reliable");
    }
    out
}

/// VMMCALL is 0f 01 d9 (QEMU's SVM saves no next RIP to read the length from).
const VMMCALL_LENGTH: u64 = 3;

/// How the boot vCPU starts.
#[derive(Clone, Copy, Debug)]
enum BootEntry {
    /// PVH: 32-bit protected mode, paging off, EBX = start_info.
    Pvh { rip: u64, start_info: u64 },
    /// The Linux 64-bit boot protocol: long mode on identity tables, RSI = zero page.
    Linux64 { rip: u64, zero_page: u64, cr3: u64 },
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

/// Per-vCPU host pages: VMCB, the host save area VMRUN uses, and the host VMSAVE area.
struct VcpuPages {
    vmcb: HostBlock,
    host_save: HostBlock,
    host_state: HostBlock,
}

pub struct Vm {
    host: &'static dyn VmmHost,
    pub name: String,
    memory: GuestMemory,
    devices: spin::Mutex<Devices>,
    stats: spin::Mutex<ExitStats>,
    end: spin::Mutex<Option<VmEnd>>,
    /// I/O and MSR permission maps (every access intercepted), shared by the vCPUs.
    iopm: HostBlock,
    msrpm: HostBlock,
    /// How the boot vCPU starts.
    boot: BootEntry,
    vcpus: usize,
    lapics: Vec<spin::Mutex<LocalApic>>,
    /// Per vCPU: the physical CPU it runs on, its start state, a pending NMI.
    cores: Vec<AtomicUsize>,
    start: Vec<spin::Mutex<ApStart>>,
    nmi: Vec<AtomicBool>,
    /// Set for a vCPU before its physical CPU is kicked; cleared by the vCPU before it looks for
    /// work and waits (see `VmmHost::wait_for_event`).
    kicked: Vec<AtomicBool>,
    /// vCPUs stopped by HLT with interrupts off.
    parked: AtomicUsize,
    /// The host asked the vCPUs to stay out of the guest ([`Vm::pause`]).
    paused: AtomicBool,
    /// Heartbeat hypercalls so far, and the host time of the last one (0: none yet).
    heartbeats: AtomicU64,
    last_heartbeat_ns: AtomicU64,
    /// vCPUs waiting outside the guest because of the pause.
    held: AtomicUsize,
}

/// An application processor's way to its first instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApStart {
    WaitForInit,
    WaitForSipi,
    Start(u8),
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
        let ram = memory.ram_ranges();
        let initrd_len = config.initrd.map(|i| i.len() as u64);
        let cmdline = linux_cmdline(config.cmdline, host.tsc_hz());
        let cmdline = cmdline.as_str();
        let (writes, initrd_gpa, boot) = if bzimage::is_bzimage(config.kernel) {
            let (linux, initrd_gpa) =
                bzimage::prepare(config.kernel, &ram, cmdline, initrd_len).map_err(VmError::BzImage)?;
            let entry = BootEntry::Linux64 { rip: linux.entry, zero_page: linux.zero_page, cr3: linux.cr3 };
            let (at, payload) = linux.payload;
            memory.write(at, payload).map_err(VmError::Memory)?;
            (linux.writes, initrd_gpa, entry)
        } else {
            let image = pvh::inspect(config.kernel, &ram).map_err(VmError::Image)?;
            let mut kernel_end = 0;
            // Straight from the image into guest RAM (`inspect` checked both ranges): nothing
            // the header asks for is allocated on the host's heap.
            for s in &image.segments {
                let bytes =
                    config.kernel.get(s.offset as usize..(s.offset + s.file_bytes) as usize).unwrap_or_default();
                memory.write(s.gpa, bytes).map_err(VmError::Memory)?;
                memory.zero(s.gpa + s.file_bytes, s.memory_bytes - s.file_bytes).map_err(VmError::Memory)?;
                kernel_end = kernel_end.max(s.gpa + s.memory_bytes);
            }
            let mut writes = Vec::new();
            let boot =
                pvh::boot_data(&ram, kernel_end, cmdline, initrd_len, machine::ACPI_RSDP).map_err(VmError::Image)?;
            writes.extend(boot.writes);
            (writes, boot.initrd_gpa, BootEntry::Pvh { rip: image.entry as u64, start_info: machine::PVH_START_INFO })
        };
        for (gpa, bytes) in &writes {
            memory.write(*gpa, bytes).map_err(VmError::Memory)?;
        }
        for (gpa, bytes) in acpi_builder::build(AcpiConfig { vcpus: config.vcpus as u32, apic: true }) {
            memory.write(gpa, &bytes).map_err(VmError::Memory)?;
        }
        if let (Some(at), Some(initrd)) = (initrd_gpa, config.initrd) {
            memory.write(at, initrd).map_err(VmError::Memory)?;
        }
        let iopm = host.alloc_contiguous(3 * PAGE, PAGE).ok_or(VmError::Memory(MemoryError::OutOfHostMemory))?;
        let msrpm = host.alloc_contiguous(2 * PAGE, PAGE).ok_or(VmError::Memory(MemoryError::OutOfHostMemory))?;
        // SAFETY: both blocks were just allocated for this VM and are reached through the host's
        // mapping of physical memory.
        unsafe {
            core::ptr::write_bytes(host.phys_to_virt(iopm.phys), 0xff, iopm.bytes as usize);
            core::ptr::write_bytes(host.phys_to_virt(msrpm.phys), 0xff, msrpm.bytes as usize);
        }
        Ok(Vm {
            host,
            name: String::from(config.name),
            memory,
            devices: spin::Mutex::new(Devices { pci: PciHost::with_shared(&placements), ..Devices::default() }),
            stats: spin::Mutex::new(ExitStats::default()),
            end: spin::Mutex::new(None),
            iopm,
            msrpm,
            boot,
            vcpus: config.vcpus,
            lapics: (0..config.vcpus).map(|i| spin::Mutex::new(LocalApic::new(i as u8))).collect(),
            cores: (0..config.vcpus).map(|_| AtomicUsize::new(usize::MAX)).collect(),
            start: (0..config.vcpus)
                .map(|i| spin::Mutex::new(if i == 0 { ApStart::Start(0) } else { ApStart::WaitForInit }))
                .collect(),
            nmi: (0..config.vcpus).map(|_| AtomicBool::new(false)).collect(),
            kicked: (0..config.vcpus).map(|_| AtomicBool::new(false)).collect(),
            parked: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            heartbeats: AtomicU64::new(0),
            last_heartbeat_ns: AtomicU64::new(0),
        })
    }

    pub fn vcpus(&self) -> usize {
        self.vcpus
    }

    pub fn guest_memory_bytes(&self) -> u64 {
        self.memory.bytes()
    }

    /// The host pages the VMM holds for this VM besides guest RAM and nested page tables: the
    /// I/O and MSR permission maps, and per vCPU its VMCB and two host-state pages (taken when
    /// the vCPU starts).
    pub fn control_page_bytes(&self) -> u64 {
        self.iopm.bytes + self.msrpm.bytes + VCPU_PAGES * PAGE * self.vcpus as u64
    }

    /// The host memory the nested page tables take.
    pub fn nested_table_bytes(&self) -> u64 {
        self.memory.table_bytes()
    }

    /// Exit statistics so far.
    pub fn stats(&self) -> spin::MutexGuard<'_, ExitStats> {
        self.stats.lock()
    }

    /// Ends the VM (first reason wins): every vCPU's physical CPU is kicked, so each leaves the
    /// guest at once (a physical interrupt always exits) and returns from [`Vm::run_vcpu`].
    pub fn stop(&self, why: VmEnd) {
        self.end.lock().get_or_insert(why);
        self.kick_all();
    }

    /// Pauses the VM: every vCPU leaves the guest at its next exit (each is kicked at once) and
    /// waits outside it, its physical CPU halted, until [`Vm::resume`] or the VM's end. The guest
    /// loses nothing but time: its clocks (TSC, timers) run on, so it sees the pause as time
    /// that passed, and the timer interrupts due during it arrive once, late.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.kick_all();
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.kick_all();
    }

    /// Heartbeat hypercalls the guest made so far, and the host time (ns) of the last one.
    pub fn heartbeats(&self) -> (u64, u64) {
        (self.heartbeats.load(Ordering::SeqCst), self.last_heartbeat_ns.load(Ordering::SeqCst))
    }

    /// A VMMCALL (any privilege level: a guest user program may make it). RAX is the number;
    /// the result goes back in RAX. See [`hypercall`].
    fn hypercall(&self, number: u64) -> u64 {
        match number {
            hypercall::HEARTBEAT => {
                self.last_heartbeat_ns.store(self.host.now_ns(), Ordering::SeqCst);
                self.heartbeats.fetch_add(1, Ordering::SeqCst);
                hypercall::OK
            }
            _ => hypercall::UNKNOWN,
        }
    }

    /// How many vCPUs are held outside the guest by a pause now.
    pub fn vcpus_held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn kick_all(&self) {
        for (kicked, core) in self.kicked.iter().zip(&self.cores) {
            let core = core.load(Ordering::SeqCst);
            if core != usize::MAX {
                kicked.store(true, Ordering::SeqCst);
                self.host.kick_cpu(core);
            }
        }
    }

    pub fn end_reason(&self) -> Option<VmEnd> {
        self.end.lock().clone()
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments) {
        self.host.log(level, format_args!("vm {}: {args}", self.name));
    }

    /// Runs vCPU `index` on the calling physical CPU (`host_cpu`, for kicks) until the VM ends;
    /// returns why it ended.
    pub fn run_vcpu(&self, index: usize, host_cpu: usize) -> VmEnd {
        let Some(core) = self.cores.get(index) else {
            return VmEnd::VmmError(String::from("no such vCPU"));
        };
        core.store(host_cpu, Ordering::SeqCst);
        // Application processors wait for INIT and SIPI from the boot processor's APIC.
        let sipi = loop {
            if let Some(end) = self.end_reason() {
                return end;
            }
            self.kicked[index].store(false, Ordering::SeqCst);
            if let ApStart::Start(vector) = *self.start[index].lock() {
                break vector;
            }
            self.host.wait_for_event(Some(self.host.now_ns() + 1_000_000), &self.kicked[index]);
        };
        let alloc = |bytes| self.host.alloc_contiguous(bytes, PAGE);
        // The VCPU_PAGES that `control_page_bytes` counts.
        let (Some(vmcb), Some(host_save), Some(host_state)) = (alloc(PAGE), alloc(PAGE), alloc(PAGE)) else {
            self.stop(VmEnd::VmmError(String::from("no host memory for the vCPU")));
            return self.end_reason().unwrap_or(VmEnd::Halted);
        };
        let pages = VcpuPages { vmcb, host_save, host_state };
        // SAFETY: the host save page belongs to this vCPU, which owns this physical CPU while it
        // runs; SVM was detected in `Vm::new`.
        unsafe { cpu::enable(pages.host_save.phys) };
        let end = self.vcpu_loop(index, sipi, &pages);
        // SAFETY: no guest runs on this CPU any more.
        unsafe { cpu::disable() };
        for b in [pages.vmcb, pages.host_save, pages.host_state] {
            self.host.free_contiguous(b);
        }
        end
    }

    fn vmcb(&self, pages: &VcpuPages) -> &'static mut Vmcb {
        // SAFETY: the VMCB page belongs to this vCPU (allocated in `run_vcpu`, freed after the
        // loop); only this CPU touches it, and never while VMRUN runs.
        unsafe { &mut *(self.host.phys_to_virt(pages.vmcb.phys) as *mut Vmcb) }
    }

    fn setup_vmcb(&self, v: &mut Vmcb, index: usize, sipi: u8) {
        *v = Vmcb::zeroed();
        let c = &mut v.control;
        c.intercept_misc1 = misc1::INTR
            | misc1::NMI
            | misc1::SMI
            | misc1::INIT
            | misc1::CPUID
            | misc1::INVD
            | misc1::HLT
            | misc1::INVLPGA
            | misc1::IOIO_PROT
            | misc1::MSR_PROT
            | misc1::TASK_SWITCH
            | misc1::SHUTDOWN;
        c.intercept_misc2 = misc2::VMRUN
            | misc2::VMMCALL
            | misc2::VMLOAD
            | misc2::VMSAVE
            | misc2::STGI
            | misc2::CLGI
            | misc2::SKINIT
            | misc2::ICEBP
            | misc2::MONITOR
            | misc2::MWAIT
            | misc2::XSETBV;
        c.iopm_base_pa = self.iopm.phys;
        c.msrpm_base_pa = self.msrpm.phys;
        c.guest_asid = ASID;
        c.tlb_control = 1;
        c.np_enable = 1;
        c.nested_cr3 = self.memory.npt_root();
        // Physical interrupts exit to the host; the guest's IF is virtualised.
        c.virtual_interrupt = 1 << 24;
        let s = &mut v.save;
        let (code, data) = match self.boot {
            BootEntry::Pvh { .. } => {
                (Segment::new(0x08, 0xc9b, 0xffff_ffff, 0), Segment::new(0x10, 0xc93, 0xffff_ffff, 0))
            }
            BootEntry::Linux64 { .. } => {
                (Segment::new(0x10, 0xa9b, 0xffff_ffff, 0), Segment::new(0x18, 0xc93, 0xffff_ffff, 0))
            }
        };
        s.cs = code;
        s.ds = data;
        s.es = data;
        s.ss = data;
        s.fs = data;
        s.gs = data;
        s.tr = Segment::new(0x18, 0x8b, 0x67, 0);
        s.ldtr = Segment::new(0, 0x82, 0, 0);
        s.gdtr = Segment::new(0, 0, 0xffff, 0);
        s.idtr = Segment::new(0, 0, 0xffff, 0);
        s.rflags = 0x2;
        if index != 0 {
            // An AP after SIPI: real mode at vector * 4 KiB.
            let real = |sel: u16, base: u64, attrib: u16| Segment::new(sel, attrib, 0xffff, base);
            s.cs = real((sipi as u16) << 8, (sipi as u64) << 12, 0x9b);
            for seg in [&mut s.ds, &mut s.es, &mut s.ss, &mut s.fs, &mut s.gs] {
                *seg = real(0, 0, 0x93);
            }
            s.cr0 = 0x6000_0010;
            s.efer = EFER_SVME;
            s.rip = 0;
            return;
        }
        match self.boot {
            BootEntry::Pvh { rip, .. } => {
                s.cr0 = 0x11; // PE, ET: flat protected mode, paging off
                s.efer = EFER_SVME;
                s.rip = rip;
            }
            BootEntry::Linux64 { rip, cr3, .. } => {
                let (gdt, limit) = bzimage::BOOT_GDT;
                s.gdtr = Segment::new(0, 0, limit, gdt);
                s.cr0 = 0x8000_0011; // PG, ET, PE
                s.cr3 = cr3;
                s.cr4 = 0x20; // PAE
                s.efer = EFER_SVME | (1 << 8) | (1 << 10); // LME, LMA
                s.rip = rip;
            }
        }
        s.dr6 = 0xffff_0ff0;
        s.dr7 = 0x400;
        s.g_pat = 0x0007_0406_0007_0406;
    }

    fn now(&self) -> Now {
        let ns = self.host.now_ns();
        Now { ns, unix_seconds: self.host.unix_time_ns_at(ns) / 1_000_000_000 }
    }

    /// Writes the paravirtual clock's record that a write of `value` to `msr` asks for: the
    /// vCPU's time record (when bit 0 enables it) or the wall clock, at the guest-physical
    /// address in `value`. The guest's system time is its TSC in nanoseconds. `None` (a #GP
    /// for the guest) when the record would not lie in its RAM.
    fn write_clock_record(&self, msr: u32, value: u64, tsc_offset: u64) -> Option<()> {
        let tsc_hz = self.host.tsc_hz();
        let guest_tsc = rdtsc().wrapping_add(tsc_offset);
        let system_time = pv_clock::scale(guest_tsc, pv_clock::time_scale(tsc_hz));
        let written = if msr == pv_clock::MSR_SYSTEM_TIME {
            if value & 1 == 0 {
                return Some(());
            }
            self.memory.write(value & !1, &pv_clock::time_record(guest_tsc, system_time, tsc_hz))
        } else {
            let unix_now = self.host.unix_time_ns_at(self.host.now_ns());
            self.memory.write(value, &pv_clock::wall_clock_record(unix_now.saturating_sub(system_time)))
        };
        written.ok()
    }

    fn vcpu_loop(&self, index: usize, sipi: u8, pages: &VcpuPages) -> VmEnd {
        let vmcb = self.vmcb(pages);
        self.setup_vmcb(vmcb, index, sipi);
        let mut regs = GuestRegisters::default();
        if index == 0 {
            match self.boot {
                BootEntry::Pvh { start_info, .. } => regs.rbx = start_info,
                BootEntry::Linux64 { zero_page, .. } => regs.rsi = zero_page,
            }
        }
        let mut vcpu = VcpuState {
            index: index as u32,
            host_xcr0: xgetbv(),
            reported_msrs: Vec::new(),
            tsc_deadline: 0,
            system_time_msr: 0,
            wall_clock_msr: 0,
        };
        let end = loop {
            if let Some(end) = self.end_reason() {
                break end;
            }
            if self.paused.load(Ordering::SeqCst) {
                self.hold(index);
                continue;
            }
            self.deliver_interrupts(vmcb, index);
            // SAFETY: SVM is on for this CPU, the VMCB and host pages belong to this vCPU, and
            // the guest's memory is this VM's own.
            unsafe { cpu::run(pages.vmcb.phys, &mut regs, pages.host_state.phys) };
            let started = rdtsc();
            vmcb.control.tlb_control = 0;
            let code = vmcb.control.exit_code;
            if code as u32 == exit::INVALID {
                self.stop(VmEnd::VmmError(String::from("VMRUN refused the guest state (VMEXIT_INVALID)")));
                continue;
            }
            // An event the CPU was delivering when the exit came is delivered again.
            let pending = vmcb.control.exit_int_info;
            if pending & EVENT_VALID != 0 {
                vmcb.control.event_injection = pending;
            }
            if let Some(end) = self.handle_exit(vmcb, &mut regs, &mut vcpu, code) {
                self.stop(end);
            }
            self.stats.lock().record(code, rdtsc().wrapping_sub(started));
        };
        self.host.set_wakeup(None);
        if xgetbv() != vcpu.host_xcr0 {
            xsetbv(vcpu.host_xcr0);
        }
        end
    }

    /// Before each VMRUN: brings devices and this vCPU's APIC timer up to date, injects the
    /// highest-priority pending interrupt (local APIC first, then the 8259 pair through LINT0 or
    /// directly when the APIC is off) if the guest can take it now, otherwise asks for an exit
    /// when it can (VINTR); arms the host wake-up for the next timer so a busy guest still gets
    /// its interrupts.
    fn deliver_interrupts(&self, v: &mut Vmcb, index: usize) {
        let now = self.host.now_ns();
        let (messages, late) = {
            let mut d = self.devices.lock();
            let late = d.com1.held_since().is_some_and(|t| now.saturating_sub(t) >= CONSOLE_HELP_AFTER_NS);
            (d.update_lines(now), late)
        };
        if late {
            self.transmit_console();
        }
        for m in messages {
            self.route(m.destination, Delivery::Fixed(m.vector), index);
        }
        if v.control.event_injection & EVENT_VALID != 0 {
            return;
        }
        if self.nmi[index].swap(false, Ordering::SeqCst) {
            v.control.event_injection = 2 | EVENT_NMI | EVENT_VALID;
            return;
        }
        let interruptible = v.save.rflags & RFLAGS_IF != 0 && v.control.interrupt_shadow & 1 == 0;
        let mut lapic = self.lapics[index].lock();
        lapic.update_timer(now);
        let mut wanted = lapic.pending().is_some();
        if interruptible && let Some(vector) = lapic.pending() {
            lapic.acknowledge(vector);
            v.control.event_injection = vector as u64 | EVENT_VALID;
            wanted = false;
        }
        let extint = index == 0 && lapic.accepts_extint();
        let lapic_timer = lapic.next_timer_ns();
        drop(lapic);
        let mut d = self.devices.lock();
        if extint && v.control.event_injection & EVENT_VALID == 0 && d.pic.has_pending() {
            if interruptible {
                if let Some(vector) = d.pic.acknowledge() {
                    v.control.event_injection = vector as u64 | EVENT_VALID;
                }
            } else {
                wanted = true;
            }
        }
        if wanted {
            v.control.intercept_misc1 |= misc1::VINTR;
            v.control.virtual_interrupt |= V_IRQ | V_IGN_TPR;
        } else {
            v.control.intercept_misc1 &= !misc1::VINTR;
            v.control.virtual_interrupt &= !V_IRQ;
        }
        let next = [d.next_event_ns(), lapic_timer].into_iter().flatten().min();
        drop(d);
        self.host.set_wakeup(next);
    }

    /// Delivers an interrupt or IPI to the vCPUs it addresses (from vCPU `from`), kicking the
    /// physical CPUs they run on.
    fn route(&self, destination: Destination, delivery: Delivery, from: usize) {
        let targets: Vec<usize> = (0..self.vcpus)
            .filter(|&i| match destination {
                Destination::SelfOnly => i == from,
                Destination::All => true,
                Destination::AllButSelf => i != from,
                d => self.lapics[i].lock().matches(d),
            })
            .collect();
        let targets = match delivery {
            // Lowest priority: the first addressed vCPU is as good as any here.
            Delivery::LowestPriority(_) => targets.into_iter().take(1).collect(),
            _ => targets,
        };
        for i in targets {
            match delivery {
                Delivery::Fixed(v) | Delivery::LowestPriority(v) => self.lapics[i].lock().accept(v),
                Delivery::Nmi => self.nmi[i].store(true, Ordering::SeqCst),
                Delivery::Init => {
                    if i != 0 {
                        self.lapics[i].lock().reset();
                        *self.start[i].lock() = ApStart::WaitForSipi;
                    }
                }
                Delivery::Startup(vector) => {
                    let mut s = self.start[i].lock();
                    if *s == ApStart::WaitForSipi {
                        *s = ApStart::Start(vector);
                    }
                }
            }
            let core = self.cores[i].load(Ordering::SeqCst);
            if i != from && core != usize::MAX {
                self.kicked[i].store(true, Ordering::SeqCst);
                self.host.kick_cpu(core);
            }
        }
    }

    /// Handles one exit; `Some` ends the VM.
    fn handle_exit(&self, v: &mut Vmcb, regs: &mut GuestRegisters, vcpu: &mut VcpuState, code: u64) -> Option<VmEnd> {
        let unhandled = |v: &Vmcb| VmEnd::UnhandledExit {
            code,
            info1: v.control.exit_info1,
            info2: v.control.exit_info2,
            rip: v.save.rip,
        };
        match code {
            exit::INTR | exit::NMI | exit::SMI => None, // the host takes it after STGI
            exit::VINTR => {
                v.control.intercept_misc1 &= !misc1::VINTR;
                v.control.virtual_interrupt &= !V_IRQ;
                None
            }
            exit::IOIO => self.port_io(v, regs),
            exit::HLT => {
                v.save.rip += 1;
                if v.save.rflags & RFLAGS_IF == 0 {
                    return self.park(vcpu.index as usize);
                }
                self.halt(v, vcpu.index as usize);
                None
            }
            exit::SHUTDOWN => {
                self.log(
                    LogLevel::Info,
                    format_args!(
                        "vcpu {} triple fault at {:#x}:{:#x} (cr0 {:#x}, efer {:#x})",
                        vcpu.index, v.save.cs.selector, v.save.rip, v.save.cr0, v.save.efer
                    ),
                );
                Some(VmEnd::TripleFault)
            }
            exit::CPUID => {
                let g = GuestCpu {
                    vcpu: vcpu.index,
                    vcpus: self.vcpus as u32,
                    osxsave: v.save.cr4 & (1 << 18) != 0,
                    apic: true,
                    tsc_khz: (self.host.tsc_hz() / 1000) as u32,
                };
                let host = |l, s| {
                    let r = core::arch::x86_64::__cpuid_count(l, s);
                    (r.eax, r.ebx, r.ecx, r.edx)
                };
                let (a, b, c, d) = guest_cpuid(v.save.rax as u32, regs.rcx as u32, host, g);
                v.save.rax = a as u64;
                regs.rbx = b as u64;
                regs.rcx = c as u64;
                regs.rdx = d as u64;
                v.save.rip += 2;
                None
            }
            exit::MSR => {
                self.msr(v, regs, vcpu);
                None
            }
            exit::XSETBV => {
                let value = (regs.rdx << 32) | (v.save.rax & 0xffff_ffff);
                // Only XCR0, only what the host enabled, x87 always, AVX only with SSE.
                let ok = regs.rcx == 0
                    && value & 1 != 0
                    && value & !vcpu.host_xcr0 == 0
                    && (value & 4 == 0 || value & 2 != 0);
                if ok {
                    xsetbv(value);
                    v.save.rip += 3;
                } else {
                    inject_exception(v, GP, Some(0));
                }
                None
            }
            exit::VMMCALL => {
                v.save.rax = self.hypercall(v.save.rax);
                v.save.rip += VMMCALL_LENGTH;
                None
            }
            exit::VMRUN..=exit::SKINIT | exit::RDTSCP | exit::ICEBP | exit::MONITOR | exit::MWAIT => {
                inject_exception(v, UD, None);
                None
            }
            exit::INVD => {
                v.save.rip += 2;
                None
            }
            exit::NPF => self.mmio(v, regs, vcpu.index as usize),
            _ => Some(unhandled(v)),
        }
    }

    /// HLT with interrupts off: this vCPU stops for good (only an NMI could wake it, which the
    /// VMM then delivers). When every vCPU has stopped, the VM has halted.
    fn park(&self, index: usize) -> Option<VmEnd> {
        if self.parked.fetch_add(1, Ordering::SeqCst) + 1 == self.vcpus {
            return Some(VmEnd::Halted);
        }
        loop {
            if let Some(end) = self.end_reason() {
                return Some(end);
            }
            self.kicked[index].store(false, Ordering::SeqCst);
            if self.nmi[index].load(Ordering::SeqCst) {
                self.parked.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            self.host.wait_for_event(Some(self.host.now_ns() + WAIT_SLICE_NS), &self.kicked[index]);
        }
    }

    /// Waits outside the guest while the VM is paused (and not ended), halting the physical CPU
    /// between kicks.
    fn hold(&self, index: usize) {
        self.held.fetch_add(1, Ordering::SeqCst);
        self.host.set_wakeup(None);
        loop {
            self.kicked[index].store(false, Ordering::SeqCst);
            if !self.paused.load(Ordering::SeqCst) || self.end_reason().is_some() {
                break;
            }
            self.host.wait_for_event(Some(self.host.now_ns() + WAIT_SLICE_NS), &self.kicked[index]);
        }
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// HLT with interrupts on: wait until an interrupt is due (a device event, or anything the
    /// host sees), without spinning.
    fn halt(&self, v: &mut Vmcb, index: usize) {
        self.kicked[index].store(false, Ordering::SeqCst);
        let now = self.host.now_ns();
        let messages = self.devices.lock().update_lines(now);
        for m in messages {
            self.route(m.destination, Delivery::Fixed(m.vector), index);
        }
        let (lapic_pending, lapic_timer) = {
            let mut l = self.lapics[index].lock();
            l.update_timer(now);
            (l.pending().is_some(), l.next_timer_ns())
        };
        let mut d = self.devices.lock();
        let pic = index == 0 && d.pic.has_pending();
        if pic
            || lapic_pending
            || self.nmi[index].load(Ordering::SeqCst)
            || v.control.event_injection & EVENT_VALID != 0
        {
            return;
        }
        // Wake at the next device or timer event, and at least every WAIT_SLICE_NS anyway (console
        // input, a stop request from another vCPU, a guest deadline far away).
        let slice = now + WAIT_SLICE_NS;
        let until = [d.next_event_ns(), lapic_timer].into_iter().flatten().fold(slice, u64::min);
        drop(d);
        self.host.wait_for_event(Some(until), &self.kicked[index]);
    }

    /// RDMSR and WRMSR: the state the VMCB holds, a few harmless identification MSRs, and #GP
    /// for everything else (logged once per MSR).
    fn msr(&self, v: &mut Vmcb, regs: &mut GuestRegisters, vcpu: &mut VcpuState) {
        let write = v.control.exit_info1 == 1;
        let msr = regs.rcx as u32;
        let value = (regs.rdx << 32) | (v.save.rax & 0xffff_ffff);
        let s = &mut v.save;
        let result: Option<u64> = match (msr, write) {
            (0xc000_0080, false) => Some(s.efer & !EFER_SVME),
            (0xc000_0080, true) => {
                // SCE, LME, LMA (kept), NXE, FFXSR; SVME stays set for VMRUN.
                if value & !((1 << 0) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 14)) != 0 {
                    None
                } else {
                    s.efer = (value & !(1 << 10)) | (s.efer & (1 << 10)) | EFER_SVME;
                    Some(0)
                }
            }
            (0xc000_0081, _) => Some(access(&mut s.star, write, value)),
            (0xc000_0082, _) => Some(access(&mut s.lstar, write, value)),
            (0xc000_0083, _) => Some(access(&mut s.cstar, write, value)),
            (0xc000_0084, _) => Some(access(&mut s.sfmask, write, value)),
            (0xc000_0100, _) => Some(access(&mut s.fs.base, write, value)),
            (0xc000_0101, _) => Some(access(&mut s.gs.base, write, value)),
            (0xc000_0102, _) => Some(access(&mut s.kernel_gs_base, write, value)),
            (0x174, _) => Some(access(&mut s.sysenter_cs, write, value)),
            (0x175, _) => Some(access(&mut s.sysenter_esp, write, value)),
            (0x176, _) => Some(access(&mut s.sysenter_eip, write, value)),
            (0x277, _) => Some(access(&mut s.g_pat, write, value)),
            (0x1d9, _) => Some(access(&mut s.dbgctl, write, value)),
            (0x10, false) => Some(rdtsc().wrapping_add(v.control.tsc_offset)),
            (0x10, true) => {
                v.control.tsc_offset = value.wrapping_sub(rdtsc());
                Some(0)
            }
            (0x1b, false) => {
                let x2 = self.lapics[vcpu.index as usize].lock().x2apic;
                Some(0xfee0_0000 | (1 << 11) | if x2 { 1 << 10 } else { 0 } | if vcpu.index == 0 { 1 << 8 } else { 0 })
            }
            (0x1b, true) => {
                // The base stays at 0xfee00000; EXTD switches the APIC to x2APIC mode.
                self.lapics[vcpu.index as usize].lock().x2apic = value & (1 << 10) != 0;
                Some(0)
            }
            // A deadline that has fired (or was never armed) reads as 0.
            (0x6e0, false) => {
                Some(if self.lapics[vcpu.index as usize].lock().deadline_armed() { vcpu.tsc_deadline } else { 0 })
            }
            (0x6e0, true) => {
                vcpu.tsc_deadline = value;
                let now_tsc = rdtsc().wrapping_add(v.control.tsc_offset);
                let at = (value != 0).then(|| {
                    let ticks = value.saturating_sub(now_tsc) as u128;
                    // Any deadline the guest writes, however far, is a valid (saturated) time.
                    let ns =
                        u64::try_from(ticks * 1_000_000_000 / self.host.tsc_hz().max(1) as u128).unwrap_or(u64::MAX);
                    self.host.now_ns().saturating_add(ns)
                });
                self.lapics[vcpu.index as usize].lock().set_deadline(at);
                Some(0)
            }
            (0x800..=0x8ff, false) if self.lapics[vcpu.index as usize].lock().x2apic => {
                self.lapics[vcpu.index as usize].lock().read_msr(msr, self.host.now_ns())
            }
            (0x800..=0x8ff, true) if self.lapics[vcpu.index as usize].lock().x2apic => {
                let result = self.lapics[vcpu.index as usize].lock().write_msr(msr, value, self.host.now_ns());
                match result {
                    Ok(Some(ipi)) => {
                        self.route(ipi.destination, ipi.delivery, vcpu.index as usize);
                        Some(0)
                    }
                    Ok(None) => Some(0),
                    Err(ReadOnlyRegister) => None,
                }
            }
            (pv_clock::MSR_SYSTEM_TIME, false) => Some(vcpu.system_time_msr),
            (pv_clock::MSR_WALL_CLOCK, false) => Some(vcpu.wall_clock_msr),
            (pv_clock::MSR_SYSTEM_TIME | pv_clock::MSR_WALL_CLOCK, true) => {
                self.write_clock_record(msr, value, v.control.tsc_offset).map(|()| {
                    if msr == pv_clock::MSR_SYSTEM_TIME {
                        vcpu.system_time_msr = value;
                    } else {
                        vcpu.wall_clock_msr = value;
                    }
                    0
                })
            }
            (0x1a0, false) => Some(1), // IA32_MISC_ENABLE: fast strings
            // Identification and AMD configuration MSRs Linux reads: zero, writes ignored.
            (
                0x1a0 | 0x8b | 0x79 | 0xc001_0015 | 0xc001_001f | 0xc001_1029 | 0xc001_0140 | 0xc001_0141 | 0xc001_0010
                | 0xc001_0055,
                _,
            ) => Some(0),
            _ => None,
        };
        match result {
            Some(r) => {
                if !write {
                    v.save.rax = r & 0xffff_ffff;
                    regs.rdx = r >> 32;
                }
                v.save.rip += 2;
            }
            None => {
                if !vcpu.reported_msrs.contains(&msr) {
                    vcpu.reported_msrs.push(msr);
                    let what = if write { "write" } else { "read" };
                    self.log(LogLevel::Debug, format_args!("{what} of MSR {msr:#x}: #GP"));
                }
                inject_exception(v, GP, Some(0));
            }
        }
    }

    /// A nested page fault: an access to device memory (local APIC, I/O APIC), emulated by
    /// decoding the instruction at RIP. Anything else ends the VM.
    fn mmio(&self, v: &mut Vmcb, regs: &mut GuestRegisters, index: usize) -> Option<VmEnd> {
        let gpa = v.control.exit_info2;
        let unhandled = |v: &Vmcb| VmEnd::UnhandledExit {
            code: exit::NPF,
            info1: v.control.exit_info1,
            info2: gpa,
            rip: v.save.rip,
        };
        let device = if machine::LOCAL_APIC.contains(&gpa) {
            Mmio::LocalApic((gpa - machine::LOCAL_APIC.start) as u32)
        } else if machine::IO_APIC.contains(&gpa) {
            Mmio::IoApic(gpa - machine::IO_APIC.start)
        } else {
            return Some(unhandled(v));
        };
        let paging = PagingState { cr0: v.save.cr0, cr3: v.save.cr3, cr4: v.save.cr4, efer: v.save.efer };
        let mut bytes = [0u8; 15];
        let n = guest_paging::fetch(&self.memory, paging, v.save.cs.base.wrapping_add(v.save.rip), &mut bytes);
        let mode = if v.save.efer & (1 << 10) != 0 && v.save.cs.attrib & (1 << 9) != 0 {
            CpuMode::Long64
        } else if v.save.cr0 & 1 != 0 && v.save.cs.attrib & (1 << 10) != 0 {
            CpuMode::Protected32
        } else {
            CpuMode::Real16
        };
        let insn = match decoder::decode(&bytes[..n], mode) {
            Ok(insn) => insn,
            Err(e) => {
                self.log(
                    LogLevel::Warn,
                    format_args!("cannot emulate the MMIO access at {gpa:#x}: {e:?}, instruction {:02x?}", &bytes[..n]),
                );
                return Some(unhandled(v));
            }
        };
        let now = self.host.now_ns();
        let read = |this: &Self| -> u64 {
            match device {
                Mmio::LocalApic(off) => this.lapics[index].lock().read(off & !0xf, now) as u64,
                Mmio::IoApic(off) => this.devices.lock().io_apic.read(off & !0xf) as u64,
            }
        };
        let width_mask = if insn.access_bytes >= 8 { u64::MAX } else { (1u64 << (8 * insn.access_bytes as u32)) - 1 };
        let write = |this: &Self, value: u64| match device {
            Mmio::LocalApic(off) => {
                let (ipi, ended) = {
                    let mut l = this.lapics[index].lock();
                    let ended = if off & !0xf == 0xb0 { l.in_service() } else { None };
                    (l.write(off & !0xf, value as u32, now), ended)
                };
                // An EOI lets level-triggered I/O APIC pins with that vector fire again.
                if let Some(vector) = ended {
                    this.devices.lock().io_apic.end_of_interrupt(vector);
                }
                if let Some(ipi) = ipi {
                    this.route(ipi.destination, ipi.delivery, index);
                }
            }
            Mmio::IoApic(off) => this.devices.lock().io_apic.write(off & !0xf, value as u32),
        };
        match insn.operation {
            Operation::Load { register, high_byte, register_bytes, sign_extend } => {
                let raw = read(self) & width_mask;
                let value = if sign_extend {
                    let bits = 8 * insn.access_bytes as u32;
                    ((raw << (64 - bits)) as i64 >> (64 - bits)) as u64
                } else {
                    raw
                };
                set_register(v, regs, register, high_byte, register_bytes, value);
            }
            Operation::Store(source) => write(self, source_value(v, regs, source) & width_mask),
            Operation::Alu { op, source } => {
                let a = read(self) & width_mask;
                let b = source_value(v, regs, source) & width_mask;
                let (result, flags) = alu(op, a, b, insn.access_bytes);
                v.save.rflags = (v.save.rflags & !ARITHMETIC_FLAGS) | flags;
                if !matches!(op, AluOp::Cmp | AluOp::Test) {
                    write(self, result);
                }
            }
        }
        v.save.rip += insn.length as u64;
        None
    }

    /// An IN or OUT; INS and OUTS (with REP) go to [`Vm::string_port_io`].
    fn port_io(&self, v: &mut Vmcb, regs: &mut GuestRegisters) -> Option<VmEnd> {
        let info = v.control.exit_info1;
        let port = (info >> 16) as u16;
        let size = if info & (1 << 4) != 0 {
            1
        } else if info & (1 << 5) != 0 {
            2
        } else {
            4
        };
        if info & (1 << 2) != 0 {
            return self.string_port_io(v, regs, port, size);
        }
        let rip = v.save.rip;
        v.save.rip = v.control.exit_info2;
        self.stats.lock().record_port(port);
        let now = self.now();
        if info & 1 != 0 {
            let value = self.devices.lock().port_in(port, size, now) as u64;
            let mask = match size {
                1 => 0xff,
                2 => 0xffff,
                _ => u64::MAX, // a 32-bit IN zero-extends into RAX
            };
            v.save.rax = if size == 4 { value } else { (v.save.rax & !mask) | value };
            return None;
        }
        let effect = self.devices.lock().port_out(port, size, v.save.rax as u32, now);
        match effect {
            Effect::None => None,
            Effect::ConsoleLine => {
                self.host.console_waiting();
                None
            }
            Effect::ConsoleFull => {
                // Not done: the guest writes the byte again once the line ahead is out.
                v.save.rip = rip;
                self.wait_for_console();
                None
            }
            Effect::PowerOff => Some(VmEnd::PowerOff),
            Effect::Reset => Some(VmEnd::Reboot),
            Effect::GuestPanic => Some(VmEnd::GuestPanic),
        }
    }

    /// INS/OUTS, REP or not: elements move between the port and guest memory at ES:RDI (INS) or
    /// DS:RSI (OUTS), stepping by the element size in the direction RFLAGS.DF gives, RCX counting
    /// down with REP. The guest addresses go through its page tables; a bad one ends the VM.
    fn string_port_io(&self, v: &mut Vmcb, regs: &mut GuestRegisters, port: u16, size: u8) -> Option<VmEnd> {
        let info = v.control.exit_info1;
        let input = info & 1 != 0;
        let rep = info & (1 << 3) != 0;
        let address_mask = match (info >> 7) & 7 {
            1 => 0xffff,
            2 => 0xffff_ffff,
            _ => u64::MAX,
        };
        let step = if v.save.rflags & (1 << 10) != 0 { (size as u64).wrapping_neg() } else { size as u64 };
        let paging = PagingState { cr0: v.save.cr0, cr3: v.save.cr3, cr4: v.save.cr4, efer: v.save.efer };
        let fail = |v: &Vmcb| VmEnd::UnhandledExit {
            code: exit::IOIO,
            info1: info,
            info2: v.control.exit_info2,
            rip: v.save.rip,
        };
        // At most a page's worth per exit keeps one exit short; REP resumes where it stopped.
        let mut count = if rep { (regs.rcx & address_mask).min(4096 / size as u64) } else { 1 };
        self.stats.lock().record_port(port);
        while count > 0 {
            let (base, offset) = if input { (v.save.es.base, regs.rdi) } else { (v.save.ds.base, regs.rsi) };
            let gva = base.wrapping_add(offset & address_mask);
            let Some(gpa) = guest_paging::translate(&self.memory, paging, gva) else { return Some(fail(v)) };
            let now = self.now();
            if input {
                let value = self.devices.lock().port_in(port, size, now);
                if self.memory.write(gpa, &value.to_le_bytes()[..size as usize]).is_err() {
                    return Some(fail(v));
                }
                regs.rdi = (regs.rdi & !address_mask) | (regs.rdi.wrapping_add(step) & address_mask);
            } else {
                let mut b = [0u8; 4];
                if self.memory.read(gpa, &mut b[..size as usize]).is_err() {
                    return Some(fail(v));
                }
                let effect = self.devices.lock().port_out(port, size, u32::from_le_bytes(b), now);
                if effect == Effect::ConsoleFull {
                    // This element is not done: the instruction runs again (from here, with
                    // REP) once the line ahead is out.
                    self.wait_for_console();
                    return None;
                }
                regs.rsi = (regs.rsi & !address_mask) | (regs.rsi.wrapping_add(step) & address_mask);
                match effect {
                    Effect::ConsoleLine => self.host.console_waiting(),
                    Effect::ConsoleFull => {}
                    Effect::PowerOff => return Some(VmEnd::PowerOff),
                    Effect::Reset => return Some(VmEnd::Reboot),
                    Effect::GuestPanic => return Some(VmEnd::GuestPanic),
                    Effect::None => {}
                }
            }
            if rep {
                regs.rcx = (regs.rcx & !address_mask) | (regs.rcx.wrapping_sub(1) & address_mask);
            }
            count -= 1;
        }
        // Done (or not REP): next instruction; a REP with RCX left runs the instruction again.
        if !rep || regs.rcx & address_mask == 0 {
            v.save.rip = v.control.exit_info2;
        }
        None
    }

    /// Writes the line the UART holds for the host's console, and the next one if the guest
    /// finished it meanwhile, then tells the guest (THRE interrupt). The host calls it after
    /// [`VmmHost::console_waiting`], from a CPU of its own; a vCPU calls it when the host is
    /// late or the guest cannot go on without it. Returns whether it wrote anything.
    pub fn transmit_console(&self) -> bool {
        let mut wrote = false;
        loop {
            let held = self.devices.lock().com1.take_held();
            let Some(line) = held else { break };
            self.host.console_output(&self.name, &line);
            self.devices.lock().com1.written(self.host.now_ns());
            wrote = true;
        }
        if wrote {
            let messages = self.devices.lock().update_lines(self.host.now_ns());
            for m in messages {
                self.route(m.destination, Delivery::Fixed(m.vector), usize::MAX);
            }
        }
        wrote
    }

    /// The guest wrote to a busy UART: the line ahead goes out now, written by this vCPU itself
    /// unless the host is already writing it (then this vCPU waits until it is done).
    fn wait_for_console(&self) {
        while !self.transmit_console() && self.devices.lock().com1.host_writing() && self.end_reason().is_none() {
            core::hint::spin_loop();
        }
    }

    /// At the VM's end: every line still held, then the output the guest left without a final
    /// newline.
    pub fn flush_console(&self) {
        while self.transmit_console() || self.devices.lock().com1.host_writing() {
            core::hint::spin_loop();
        }
        let rest = self.devices.lock().com1.take_partial_line();
        if !rest.is_empty() {
            self.host.console_output(&self.name, &rest);
        }
    }

    /// Console bytes the guest wrote that went out, and bytes its UART refused while busy (the
    /// guest wrote them again).
    pub fn console_counts(&self) -> (u64, u64) {
        let d = self.devices.lock();
        (d.com1.bytes_out, d.com1.refused)
    }

    /// A one-line summary of unclaimed port accesses, for the log at the end.
    pub fn summary(&self) -> String {
        let d = self.devices.lock();
        let stats = self.stats.lock();
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
        self.host.free_contiguous(self.iopm);
        self.host.free_contiguous(self.msrpm);
        self.log(LogLevel::Debug, format_args!("freed"));
    }
}

/// What a vCPU keeps between exits.
struct VcpuState {
    index: u32,
    /// XCR0 as the host had it (restored when the vCPU stops).
    host_xcr0: u64,
    /// MSRs already reported as refused (once each).
    reported_msrs: Vec<u32>,
    /// IA32_TSC_DEADLINE as the guest wrote it.
    tsc_deadline: u64,
    /// The paravirtual clock's MSRs as the guest wrote them (see `pv_clock`).
    system_time_msr: u64,
    wall_clock_msr: u64,
}

/// Device memory the VMM emulates, with the offset of the access.
#[derive(Clone, Copy)]
enum Mmio {
    LocalApic(u32),
    IoApic(u64),
}

/// CF, PF, AF, ZF, SF, OF.
const ARITHMETIC_FLAGS: u64 = 0x8d5;

/// A general register by number (0 RAX ... 15 R15); RAX and RSP live in the VMCB.
fn register(v: &Vmcb, r: &GuestRegisters, n: u8) -> u64 {
    match n {
        0 => v.save.rax,
        1 => r.rcx,
        2 => r.rdx,
        3 => r.rbx,
        4 => v.save.rsp,
        5 => r.rbp,
        6 => r.rsi,
        7 => r.rdi,
        8 => r.r8,
        9 => r.r9,
        10 => r.r10,
        11 => r.r11,
        12 => r.r12,
        13 => r.r13,
        14 => r.r14,
        _ => r.r15,
    }
}

fn register_mut<'a>(v: &'a mut Vmcb, r: &'a mut GuestRegisters, n: u8) -> &'a mut u64 {
    match n {
        0 => &mut v.save.rax,
        1 => &mut r.rcx,
        2 => &mut r.rdx,
        3 => &mut r.rbx,
        4 => &mut v.save.rsp,
        5 => &mut r.rbp,
        6 => &mut r.rsi,
        7 => &mut r.rdi,
        8 => &mut r.r8,
        9 => &mut r.r9,
        10 => &mut r.r10,
        11 => &mut r.r11,
        12 => &mut r.r12,
        13 => &mut r.r13,
        14 => &mut r.r14,
        _ => &mut r.r15,
    }
}

/// Writes `value` into a register as an instruction of that width would: 8 and 16 bits merge,
/// 32 bits zero-extend, 64 bits replace; AH..BH are bits 8-15 of RAX..RBX.
fn set_register(v: &mut Vmcb, r: &mut GuestRegisters, n: u8, high_byte: bool, bytes: u8, value: u64) {
    let reg = register_mut(v, r, n);
    *reg = match (bytes, high_byte) {
        (1, true) => (*reg & !0xff00) | ((value & 0xff) << 8),
        (1, false) => (*reg & !0xff) | (value & 0xff),
        (2, _) => (*reg & !0xffff) | (value & 0xffff),
        (4, _) => value & 0xffff_ffff,
        _ => value,
    };
}

fn source_value(v: &Vmcb, r: &GuestRegisters, s: Source) -> u64 {
    match s {
        Source::Immediate(i) => i,
        Source::Register { number, high_byte: true } => (register(v, r, number) >> 8) & 0xff,
        Source::Register { number, high_byte: false } => register(v, r, number),
    }
}

/// The result and arithmetic flags of an ALU operation of `bytes` width.
fn alu(op: AluOp, a: u64, b: u64, bytes: u8) -> (u64, u64) {
    let bits = 8 * bytes as u32;
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let sign = 1u64 << (bits - 1);
    let (result, carry, overflow) = match op {
        AluOp::Add => {
            let r = a.wrapping_add(b) & mask;
            (r, r < a, (!(a ^ b) & (a ^ r) & sign) != 0)
        }
        AluOp::Sub | AluOp::Cmp => {
            let r = a.wrapping_sub(b) & mask;
            (r, b > a, ((a ^ b) & (a ^ r) & sign) != 0)
        }
        AluOp::And | AluOp::Test => (a & b, false, false),
        AluOp::Or => (a | b, false, false),
        AluOp::Xor => (a ^ b, false, false),
    };
    let mut flags = 0;
    if carry {
        flags |= 1;
    }
    if (result as u8).count_ones().is_multiple_of(2) {
        flags |= 1 << 2;
    }
    if result == 0 {
        flags |= 1 << 6;
    }
    if result & sign != 0 {
        flags |= 1 << 7;
    }
    if overflow {
        flags |= 1 << 11;
    }
    (result, flags)
}

/// Reads or writes a VMCB field for RDMSR/WRMSR; returns the value read.
fn access(field: &mut u64, write: bool, value: u64) -> u64 {
    if write {
        *field = value;
    }
    *field
}

/// Queues an exception for the guest (delivered at the next VMRUN).
fn inject_exception(v: &mut Vmcb, vector: u8, error_code: Option<u32>) {
    let mut e = vector as u64 | EVENT_EXCEPTION | EVENT_VALID;
    if let Some(code) = error_code {
        e |= EVENT_ERROR_CODE | (code as u64) << 32;
    }
    v.control.event_injection = e;
}

fn xgetbv() -> u64 {
    if core::arch::x86_64::__cpuid_count(1, 0).ecx & (1 << 27) == 0 {
        return 0;
    }
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV(0) is allowed when CR4.OSXSAVE is set (CPUID bit 27 checked above).
    unsafe { core::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}

fn xsetbv(value: u64) {
    // SAFETY: callers pass values checked against the host's own XCR0 (a subset with x87, AVX
    // only with SSE), which the CPU accepts.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nomem, nostack))
    };
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { _rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_gets_the_tsc_rate_unless_it_names_one() {
        assert_eq!(
            linux_cmdline("console=ttyS0 quiet", 2_093_792_200),
            "console=ttyS0 quiet tsc_early_khz=2093792 tsc=reliable"
        );
        assert_eq!(linux_cmdline("", 1_000_000_000), "tsc_early_khz=1000000 tsc=reliable");
        assert_eq!(
            linux_cmdline("a tsc_early_khz=5 tsc=unstable b", 2_000_000_000),
            "a tsc_early_khz=5 tsc=unstable b"
        );
        assert_eq!(linux_cmdline("a", 0), "a tsc=reliable", "no rate known: no rate added");
    }
}
