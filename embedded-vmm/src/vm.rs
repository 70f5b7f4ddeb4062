//! A virtual machine: guest memory, devices, vCPUs on dedicated physical CPUs, exit statistics,
//! and how it ends. Everything the guest does is handled here or ends this VM: nothing reaches a
//! host panic.

use crate::acpi_builder::{self, AcpiConfig};
use crate::cpuid::{GuestCpu, guest_cpuid};
use crate::devices::{Devices, Effect, Now};
use crate::exit_stats::ExitStats;
use crate::guest_memory::{GuestMemory, MemoryError};
use crate::host::{HostBlock, LogLevel, VmmHost};
use crate::loaders::bzimage::{self, BzImageError};
use crate::loaders::pvh::{self, PvhError};
use crate::svm::cpu::{self, GuestRegisters, SvmError};
use crate::svm::vmcb::{Segment, Vmcb, exit, misc1, misc2};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use core::arch::x86_64::_rdtsc;
use core::fmt;

const PAGE: u64 = 4096;
const EFER_SVME: u64 = 1 << 12;
const RFLAGS_IF: u64 = 1 << 9;
const EVENT_VALID: u64 = 1 << 31;
const EVENT_EXCEPTION: u64 = 3 << 8;
const EVENT_ERROR_CODE: u64 = 1 << 11;
const V_IRQ: u64 = 1 << 8;
const V_IGN_TPR: u64 = 1 << 20;
const GP: u8 = 13;
const UD: u8 = 6;
/// Guest ASID for every vCPU: each runs on its own physical CPU.
const ASID: u32 = 1;

/// What to boot.
pub struct VmConfig<'a> {
    pub name: &'a str,
    pub memory_bytes: u64,
    pub vcpus: usize,
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
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
    /// Every vCPU halted with interrupts off: nothing can ever wake it.
    Halted,
    /// An exit the VMM does not handle.
    UnhandledExit { code: u64, info1: u64, info2: u64, rip: u64 },
    /// The VMM could not go on (VMRUN refused the state, no memory, ...).
    VmmError(String),
}

impl VmEnd {
    /// The `reason` of the `vm_exit` event.
    pub fn name(&self) -> &'static str {
        match self {
            VmEnd::PowerOff => "poweroff",
            VmEnd::Reboot => "reboot",
            VmEnd::TripleFault => "triple_fault",
            VmEnd::Halted => "halted",
            VmEnd::UnhandledExit { .. } => "unhandled_exit",
            VmEnd::VmmError(_) => "vmm_error",
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
    Config(&'static str),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            VmError::Svm(e) => write!(f, "SVM: {e:?}"),
            VmError::Memory(e) => write!(f, "guest memory: {e:?}"),
            VmError::Image(e) => write!(f, "kernel image: {e}"),
            VmError::BzImage(e) => write!(f, "bzImage: {e}"),
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
}

impl Vm {
    /// Builds the VM and loads its kernel. Nothing runs until [`Vm::run_vcpu`].
    pub fn new(host: &'static dyn VmmHost, config: &VmConfig) -> Result<Vm, VmError> {
        cpu::detect().map_err(VmError::Svm)?;
        if config.vcpus != 1 {
            return Err(VmError::Config("only one vCPU per VM so far"));
        }
        let memory = GuestMemory::new(host, config.memory_bytes).map_err(VmError::Memory)?;
        let ram = memory.ram_ranges();
        let initrd_len = config.initrd.map(|i| i.len() as u64);
        let (writes, initrd_gpa, boot) = if bzimage::is_bzimage(config.kernel) {
            let (linux, initrd_gpa) =
                bzimage::prepare(config.kernel, &ram, config.cmdline, initrd_len).map_err(VmError::BzImage)?;
            let entry = BootEntry::Linux64 { rip: linux.entry, zero_page: linux.zero_page, cr3: linux.cr3 };
            (linux.writes, initrd_gpa, entry)
        } else {
            let image = pvh::inspect(config.kernel, &ram).map_err(VmError::Image)?;
            let mut writes = Vec::new();
            let mut kernel_end = 0;
            for s in &image.segments {
                let mut bytes = config.kernel[s.offset as usize..(s.offset + s.file_bytes) as usize].to_vec();
                bytes.resize(s.memory_bytes as usize, 0);
                kernel_end = kernel_end.max(s.gpa + s.memory_bytes);
                writes.push((s.gpa, bytes));
            }
            let boot = pvh::boot_data(&ram, kernel_end, config.cmdline, initrd_len, acpi_builder::RSDP_GPA)
                .map_err(VmError::Image)?;
            writes.extend(boot.writes);
            (writes, boot.initrd_gpa, BootEntry::Pvh { rip: image.entry as u64, start_info: pvh::START_INFO_GPA })
        };
        for (gpa, bytes) in &writes {
            memory.write(*gpa, bytes).map_err(VmError::Memory)?;
        }
        for (gpa, bytes) in acpi_builder::build(AcpiConfig { vcpus: config.vcpus as u32, apic: false }) {
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
            devices: spin::Mutex::new(Devices::default()),
            stats: spin::Mutex::new(ExitStats::default()),
            end: spin::Mutex::new(None),
            iopm,
            msrpm,
            boot,
            vcpus: config.vcpus,
        })
    }

    pub fn vcpus(&self) -> usize {
        self.vcpus
    }

    pub fn guest_memory_bytes(&self) -> u64 {
        self.memory.bytes()
    }

    /// Exit statistics so far.
    pub fn stats(&self) -> spin::MutexGuard<'_, ExitStats> {
        self.stats.lock()
    }

    /// Ends the VM (first reason wins); running vCPUs stop at their next exit.
    pub fn stop(&self, why: VmEnd) {
        self.end.lock().get_or_insert(why);
    }

    pub fn end_reason(&self) -> Option<VmEnd> {
        self.end.lock().clone()
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments) {
        self.host.log(level, format_args!("vm {}: {args}", self.name));
    }

    /// Runs vCPU `index` on the calling physical CPU until the VM ends; returns why it ended.
    pub fn run_vcpu(&self, index: usize) -> VmEnd {
        let alloc = |bytes| self.host.alloc_contiguous(bytes, PAGE);
        let (Some(vmcb), Some(host_save), Some(host_state)) = (alloc(PAGE), alloc(PAGE), alloc(PAGE)) else {
            self.stop(VmEnd::VmmError(String::from("no host memory for the vCPU")));
            return self.end_reason().unwrap_or(VmEnd::Halted);
        };
        let pages = VcpuPages { vmcb, host_save, host_state };
        // SAFETY: the host save page belongs to this vCPU, which owns this physical CPU while it
        // runs; SVM was detected in `Vm::new`.
        unsafe { cpu::enable(pages.host_save.phys) };
        let end = self.vcpu_loop(index, &pages);
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

    fn setup_vmcb(&self, v: &mut Vmcb) {
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
        Now { ns: self.host.now_ns(), unix_seconds: self.host.unix_time_ns() / 1_000_000_000 }
    }

    fn vcpu_loop(&self, index: usize, pages: &VcpuPages) -> VmEnd {
        let vmcb = self.vmcb(pages);
        self.setup_vmcb(vmcb);
        let mut regs = GuestRegisters::default();
        if index == 0 {
            match self.boot {
                BootEntry::Pvh { start_info, .. } => regs.rbx = start_info,
                BootEntry::Linux64 { zero_page, .. } => regs.rsi = zero_page,
            }
        }
        let mut vcpu = VcpuState { index: index as u32, host_xcr0: xgetbv(), reported_msrs: Vec::new() };
        let end = loop {
            if let Some(end) = self.end_reason() {
                break end;
            }
            self.deliver_interrupts(vmcb);
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

    /// Before each VMRUN: injects the highest-priority pending interrupt if the guest can take
    /// it now, otherwise asks for an exit when it can (VINTR); arms the host wake-up for the
    /// next device event so a busy guest still gets its timer interrupts.
    fn deliver_interrupts(&self, v: &mut Vmcb) {
        let now = self.host.now_ns();
        let mut d = self.devices.lock();
        d.update_lines(now);
        if v.control.event_injection & EVENT_VALID == 0 && d.pic.has_pending() {
            let interruptible = v.save.rflags & RFLAGS_IF != 0 && v.control.interrupt_shadow & 1 == 0;
            if interruptible {
                if let Some(vector) = d.pic.acknowledge() {
                    v.control.event_injection = vector as u64 | EVENT_VALID;
                }
                v.control.intercept_misc1 &= !misc1::VINTR;
                v.control.virtual_interrupt &= !V_IRQ;
            } else {
                v.control.intercept_misc1 |= misc1::VINTR;
                v.control.virtual_interrupt |= V_IRQ | V_IGN_TPR;
            }
        }
        self.host.set_wakeup(d.next_event_ns());
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
            exit::IOIO => self.port_io(v),
            exit::HLT => {
                v.save.rip += 1;
                if v.save.rflags & RFLAGS_IF == 0 {
                    return Some(VmEnd::Halted);
                }
                self.halt(v);
                None
            }
            exit::SHUTDOWN => Some(VmEnd::TripleFault),
            exit::CPUID => {
                let g = GuestCpu {
                    vcpu: vcpu.index,
                    vcpus: self.vcpus as u32,
                    osxsave: v.save.cr4 & (1 << 18) != 0,
                    apic: false,
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
            exit::VMMCALL | exit::VMRUN..=exit::SKINIT | exit::RDTSCP | exit::ICEBP | exit::MONITOR | exit::MWAIT => {
                inject_exception(v, UD, None);
                None
            }
            exit::INVD => {
                v.save.rip += 2;
                None
            }
            _ => Some(unhandled(v)),
        }
    }

    /// HLT with interrupts on: wait until an interrupt is due (a device event, or anything the
    /// host sees), without spinning.
    fn halt(&self, v: &mut Vmcb) {
        let mut d = self.devices.lock();
        d.update_lines(self.host.now_ns());
        if d.pic.has_pending() || v.control.event_injection & EVENT_VALID != 0 {
            return;
        }
        let deadline = d.next_event_ns();
        drop(d);
        // With no device event due, wake now and then anyway (console input, a stop request).
        let until = deadline.unwrap_or(self.host.now_ns() + 10_000_000);
        self.host.wait_for_event(Some(until));
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
            (0x1b, false) => Some(0xfee0_0000 | if vcpu.index == 0 { 1 << 8 } else { 0 }),
            (0x1a0, false) => Some(1), // IA32_MISC_ENABLE: fast strings
            // Identification and AMD configuration MSRs Linux reads: zero, writes ignored.
            (
                0x1b | 0x1a0 | 0x8b | 0x79 | 0xc001_0015 | 0xc001_001f | 0xc001_1029 | 0xc001_0140 | 0xc001_0141
                | 0xc001_0010,
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

    /// An IN or OUT (string forms arrive with the instruction decoder).
    fn port_io(&self, v: &mut Vmcb) -> Option<VmEnd> {
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
            return Some(VmEnd::UnhandledExit {
                code: exit::IOIO,
                info1: info,
                info2: v.control.exit_info2,
                rip: v.save.rip,
            });
        }
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
            Effect::Console(line) => {
                self.host.console_output(&self.name, &line);
                None
            }
            Effect::PowerOff => Some(VmEnd::PowerOff),
            Effect::Reset => Some(VmEnd::Reboot),
        }
    }

    /// Console output the guest left without a final newline (at the VM's end).
    pub fn flush_console(&self) {
        let rest = self.devices.lock().com1.take_partial_line();
        if !rest.is_empty() {
            self.host.console_output(&self.name, &rest);
        }
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
