//! The Virtual Machine Control Block, as AMD64 APM volume 2, appendix B lays it out: a 1 KiB
//! control area and the guest state save area, in one 4 KiB page. Offsets are checked at
//! compile time.

use static_assertions::const_assert_eq;

/// A segment register in the save area: selector, attributes (descriptor bits 40-47 and 52-55
/// packed into 12 bits), limit, base.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

impl Segment {
    pub const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> Segment {
        Segment { selector, attrib, limit, base }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ControlArea {
    pub intercept_cr: u32,
    pub intercept_dr: u32,
    pub intercept_exceptions: u32,
    pub intercept_misc1: u32,
    pub intercept_misc2: u32,
    pub intercept_misc3: u32,
    _reserved1: [u8; 0x3c - 0x18],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    pub tlb_control: u8,
    _reserved2: [u8; 3],
    /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
    pub virtual_interrupt: u64,
    /// Bit 0: the guest is in an interrupt shadow.
    pub interrupt_shadow: u64,
    pub exit_code: u64,
    pub exit_info1: u64,
    pub exit_info2: u64,
    pub exit_int_info: u64,
    /// Bit 0: nested paging.
    pub np_enable: u64,
    pub avic_apic_bar: u64,
    pub ghcb_pa: u64,
    pub event_injection: u64,
    pub nested_cr3: u64,
    pub lbr_virtualization: u64,
    pub clean_bits: u32,
    _reserved3: u32,
    pub next_rip: u64,
    pub instruction_bytes_fetched: u8,
    pub instruction_bytes: [u8; 15],
    _reserved4: [u8; 0x400 - 0xe0],
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SaveArea {
    pub es: Segment,
    pub cs: Segment,
    pub ss: Segment,
    pub ds: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub gdtr: Segment,
    pub ldtr: Segment,
    pub idtr: Segment,
    pub tr: Segment,
    _reserved1: [u8; 0xcb - 0xa0],
    pub cpl: u8,
    _reserved2: u32,
    pub efer: u64,
    _reserved3: [u8; 0x148 - 0xd8],
    pub cr4: u64,
    pub cr3: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    _reserved4: [u8; 0x1d8 - 0x180],
    pub rsp: u64,
    pub s_cet: u64,
    pub ssp: u64,
    pub isst_addr: u64,
    pub rax: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub cr2: u64,
    _reserved5: [u8; 0x268 - 0x248],
    pub g_pat: u64,
    pub dbgctl: u64,
    pub br_from: u64,
    pub br_to: u64,
    pub last_exception_from: u64,
    pub last_exception_to: u64,
    _reserved6: [u8; 0xc00 - 0x298],
}

#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug)]
pub struct Vmcb {
    pub control: ControlArea,
    pub save: SaveArea,
}

const_assert_eq!(core::mem::size_of::<Vmcb>(), 4096);
const_assert_eq!(core::mem::offset_of!(ControlArea, iopm_base_pa), 0x40);
const_assert_eq!(core::mem::offset_of!(ControlArea, guest_asid), 0x58);
const_assert_eq!(core::mem::offset_of!(ControlArea, virtual_interrupt), 0x60);
const_assert_eq!(core::mem::offset_of!(ControlArea, exit_code), 0x70);
const_assert_eq!(core::mem::offset_of!(ControlArea, exit_int_info), 0x88);
const_assert_eq!(core::mem::offset_of!(ControlArea, np_enable), 0x90);
const_assert_eq!(core::mem::offset_of!(ControlArea, event_injection), 0xa8);
const_assert_eq!(core::mem::offset_of!(ControlArea, nested_cr3), 0xb0);
const_assert_eq!(core::mem::offset_of!(ControlArea, clean_bits), 0xc0);
const_assert_eq!(core::mem::offset_of!(ControlArea, next_rip), 0xc8);
const_assert_eq!(core::mem::offset_of!(ControlArea, instruction_bytes), 0xd1);
const_assert_eq!(core::mem::size_of::<ControlArea>(), 0x400);
const_assert_eq!(core::mem::offset_of!(SaveArea, tr), 0x90);
const_assert_eq!(core::mem::offset_of!(SaveArea, cpl), 0xcb);
const_assert_eq!(core::mem::offset_of!(SaveArea, efer), 0xd0);
const_assert_eq!(core::mem::offset_of!(SaveArea, cr4), 0x148);
const_assert_eq!(core::mem::offset_of!(SaveArea, rip), 0x178);
const_assert_eq!(core::mem::offset_of!(SaveArea, rsp), 0x1d8);
const_assert_eq!(core::mem::offset_of!(SaveArea, rax), 0x1f8);
const_assert_eq!(core::mem::offset_of!(SaveArea, kernel_gs_base), 0x220);
const_assert_eq!(core::mem::offset_of!(SaveArea, cr2), 0x240);
const_assert_eq!(core::mem::offset_of!(SaveArea, g_pat), 0x268);

/// Intercept bits of `intercept_misc1` (vector 3 in the APM).
pub mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const SMI: u32 = 1 << 2;
    pub const INIT: u32 = 1 << 3;
    pub const VINTR: u32 = 1 << 4;
    pub const CPUID: u32 = 1 << 18;
    pub const INVD: u32 = 1 << 22;
    pub const HLT: u32 = 1 << 24;
    pub const INVLPGA: u32 = 1 << 26;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const TASK_SWITCH: u32 = 1 << 29;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Intercept bits of `intercept_misc2` (vector 4).
pub mod misc2 {
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const RDTSCP: u32 = 1 << 7;
    pub const ICEBP: u32 = 1 << 8;
    pub const MONITOR: u32 = 1 << 10;
    pub const MWAIT: u32 = 1 << 11;
    pub const XSETBV: u32 = 1 << 13;
}

/// Exit codes (EXITCODE).
pub mod exit {
    pub const EXCEPTION_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const SMI: u64 = 0x62;
    pub const INIT: u64 = 0x63;
    pub const VINTR: u64 = 0x64;
    pub const CPUID: u64 = 0x72;
    pub const INVD: u64 = 0x76;
    pub const HLT: u64 = 0x78;
    pub const INVLPGA: u64 = 0x7a;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const TASK_SWITCH: u64 = 0x7d;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const VMLOAD: u64 = 0x82;
    pub const VMSAVE: u64 = 0x83;
    pub const STGI: u64 = 0x84;
    pub const CLGI: u64 = 0x85;
    pub const SKINIT: u64 = 0x86;
    pub const RDTSCP: u64 = 0x87;
    pub const ICEBP: u64 = 0x88;
    pub const MONITOR: u64 = 0x8a;
    pub const MWAIT: u64 = 0x8b;
    pub const XSETBV: u64 = 0x8d;
    pub const NPF: u64 = 0x400;
    /// VMRUN refused the VMCB (QEMU stores it as 0x0000_0000_ffff_ffff: compare 32 bits).
    pub const INVALID: u32 = 0xffff_ffff;
}

/// What an exit code is counted as, in the order of the names (reports list them so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    Cpuid,
    CrRead,
    CrWrite,
    DrAccess,
    Exception,
    Hlt,
    Icebp,
    Init,
    Intr,
    Invd,
    Invlpga,
    Ioio,
    MonitorMwait,
    Msr,
    Nmi,
    Npf,
    Other,
    Rdtscp,
    Shutdown,
    Smi,
    SvmInstruction,
    TaskSwitch,
    Vintr,
    Xsetbv,
}

impl ExitReason {
    /// The names, indexed by `reason as usize`.
    pub const NAMES: [&'static str; 24] = [
        "cpuid",
        "cr_read",
        "cr_write",
        "dr_access",
        "exception",
        "hlt",
        "icebp",
        "init",
        "intr",
        "invd",
        "invlpga",
        "ioio",
        "monitor_mwait",
        "msr",
        "nmi",
        "npf",
        "other",
        "rdtscp",
        "shutdown",
        "smi",
        "svm_instruction",
        "task_switch",
        "vintr",
        "xsetbv",
    ];

    pub fn of(code: u64) -> ExitReason {
        match code {
            0x00..=0x0f => ExitReason::CrRead,
            0x10..=0x1f => ExitReason::CrWrite,
            0x20..=0x3f => ExitReason::DrAccess,
            0x40..=0x5f => ExitReason::Exception,
            exit::INTR => ExitReason::Intr,
            exit::NMI => ExitReason::Nmi,
            exit::SMI => ExitReason::Smi,
            exit::INIT => ExitReason::Init,
            exit::VINTR => ExitReason::Vintr,
            exit::CPUID => ExitReason::Cpuid,
            exit::INVD => ExitReason::Invd,
            exit::HLT => ExitReason::Hlt,
            exit::INVLPGA => ExitReason::Invlpga,
            exit::IOIO => ExitReason::Ioio,
            exit::MSR => ExitReason::Msr,
            exit::TASK_SWITCH => ExitReason::TaskSwitch,
            exit::SHUTDOWN => ExitReason::Shutdown,
            exit::VMRUN..=exit::SKINIT => ExitReason::SvmInstruction,
            exit::RDTSCP => ExitReason::Rdtscp,
            exit::ICEBP => ExitReason::Icebp,
            exit::MONITOR | exit::MWAIT => ExitReason::MonitorMwait,
            exit::XSETBV => ExitReason::Xsetbv,
            exit::NPF => ExitReason::Npf,
            _ => ExitReason::Other,
        }
    }

    pub fn name(self) -> &'static str {
        ExitReason::NAMES[self as usize]
    }
}

// Every reason has its name (the statistics index a table by `reason as usize`).
static_assertions::const_assert_eq!(ExitReason::Xsetbv as usize + 1, ExitReason::NAMES.len());

/// The name of an exit code's reason, for statistics and logs.
pub fn exit_name(code: u64) -> &'static str {
    ExitReason::of(code).name()
}

impl Vmcb {
    /// An all-zero VMCB.
    pub fn zeroed() -> Vmcb {
        // SAFETY: every field is an integer or an array of integers; all-zero is valid.
        unsafe { core::mem::zeroed() }
    }
}
