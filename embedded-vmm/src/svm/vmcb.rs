//! The Virtual Machine Control Block, as AMD64 APM volume 2, appendix B lays it out: a 1 KiB
//! control area and the guest state save area, in one 4 KiB page. Offsets are checked at
//! compile time.

use bitflags::bitflags;
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
    pub intercept_misc1: InterceptMisc1,
    pub intercept_misc2: InterceptMisc2,
    pub intercept_misc3: u32,
    _reserved1: [u8; 0x3c - 0x18],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    /// [`TLB_FLUSH_NOTHING`] or [`TLB_FLUSH_ALL`] (a number).
    pub tlb_control: u8,
    _reserved2: [u8; 3],
    pub virtual_interrupt: VirtualInterrupt,
    pub interrupt_shadow: InterruptShadow,
    pub exit_code: u64,
    pub exit_info1: u64,
    pub exit_info2: u64,
    pub exit_int_info: Event,
    pub np_enable: NestedPaging,
    pub avic_apic_bar: u64,
    pub ghcb_pa: u64,
    pub event_injection: Event,
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
const_assert_eq!(core::mem::offset_of!(ControlArea, intercept_misc1), 0x0c);
const_assert_eq!(core::mem::offset_of!(ControlArea, intercept_misc2), 0x10);
const_assert_eq!(core::mem::offset_of!(ControlArea, tlb_control), 0x5c);
const_assert_eq!(core::mem::offset_of!(ControlArea, interrupt_shadow), 0x68);
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

bitflags! {
    /// Intercept vector 3 (`intercept_misc1`, offset 0x0c): events and instructions.
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc1: u32 {
        const INTR = 1 << 0;
        const NMI = 1 << 1;
        const SMI = 1 << 2;
        const INIT = 1 << 3;
        const VINTR = 1 << 4;
        const CPUID = 1 << 18;
        const INVD = 1 << 22;
        const HLT = 1 << 24;
        const INVLPGA = 1 << 26;
        const IOIO_PROT = 1 << 27;
        const MSR_PROT = 1 << 28;
        const TASK_SWITCH = 1 << 29;
        const SHUTDOWN = 1 << 31;
    }
}

bitflags! {
    /// Intercept vector 4 (`intercept_misc2`, offset 0x10): the SVM instructions and others.
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterceptMisc2: u32 {
        const VMRUN = 1 << 0;
        const VMMCALL = 1 << 1;
        const VMLOAD = 1 << 2;
        const VMSAVE = 1 << 3;
        const STGI = 1 << 4;
        const CLGI = 1 << 5;
        const SKINIT = 1 << 6;
        const RDTSCP = 1 << 7;
        const ICEBP = 1 << 8;
        const MONITOR = 1 << 10;
        const MWAIT = 1 << 11;
        const XSETBV = 1 << 13;
    }
}

/// TLB_CONTROL (offset 0x5c): nothing to flush, or the guest's whole TLB.
pub const TLB_FLUSH_NOTHING: u8 = 0;
pub const TLB_FLUSH_ALL: u8 = 1;

bitflags! {
    /// The virtual interrupt field (offset 0x60). V_TPR (bits 0-3), V_INTR_PRIO (16-19) and
    /// V_INTR_VECTOR (32-39) are numbers, kept as they are by `insert` and `remove`.
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct VirtualInterrupt: u64 {
        /// A virtual interrupt is pending (with VINTR intercepted: exit when the guest can take it).
        const V_IRQ = 1 << 8;
        /// The pending virtual interrupt ignores the guest's TPR.
        const V_IGN_TPR = 1 << 20;
        /// The guest's IF is virtualised, physical interrupts exit.
        const V_INTR_MASKING = 1 << 24;
    }
}

bitflags! {
    /// The interrupt shadow field (offset 0x68).
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct InterruptShadow: u64 {
        /// The guest is in an interrupt shadow (after STI or MOV SS).
        const SHADOW = 1 << 0;
    }
}

bitflags! {
    /// The nested paging and SEV enables (offset 0x90).
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NestedPaging: u64 {
        const NP_ENABLE = 1 << 0;
    }
}

bitflags! {
    /// EVENTINJ (offset 0xa8) and EXITINTINFO (offset 0x88): the vector (bits 0-7) and type
    /// (8-10, [`EventType`]) are numbers, the error code is bits 32-63 ([`Event::new`]).
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Event: u64 {
        const ERROR_CODE_VALID = 1 << 11;
        const VALID = 1 << 31;
    }
}

bitflags! {
    /// EXITINFO1 of an IOIO exit (APM vol. 2, 15.10.2): the port (bits 16-31) and the effective
    /// segment (10-12) are numbers beside these bits.
    #[repr(transparent)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IoioInfo: u64 {
        /// IN or INS (else OUT or OUTS).
        const INPUT = 1 << 0;
        /// INS or OUTS.
        const STRING = 1 << 2;
        const REP = 1 << 3;
        /// The operand size: 8, 16 or 32 bits.
        const SIZE8 = 1 << 4;
        const SIZE16 = 1 << 5;
        const SIZE32 = 1 << 6;
        /// A string instruction's address size: 16, 32 or 64 bits.
        const ADDRESS16 = 1 << 7;
        const ADDRESS32 = 1 << 8;
        const ADDRESS64 = 1 << 9;
    }
}

/// An event's type (bits 8-10 of [`Event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// An external interrupt.
    Intr = 0,
    Nmi = 2,
    Exception = 3,
}

impl Event {
    /// A valid event of `kind` for `vector`, with `error_code` if given.
    #[inline]
    pub const fn new(vector: u8, kind: EventType, error_code: Option<u32>) -> Event {
        let event = Event::from_bits_retain(vector as u64 | (kind as u64) << 8).union(Event::VALID);
        match error_code {
            Some(code) => event.union(Event::ERROR_CODE_VALID).union(Event::from_bits_retain((code as u64) << 32)),
            None => event,
        }
    }
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
        // SAFETY: every field is an integer, an array of integers or a `#[repr(transparent)]` set
        // of bits over one (empty when zero); all-zero is valid.
        unsafe { core::mem::zeroed() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_packed_as_the_apm_says() {
        let page_fault = Event::new(14, EventType::Exception, Some(0xdead_beef));
        assert_eq!(page_fault.bits(), 0xdead_beef << 32 | 1 << 31 | 1 << 11 | 3 << 8 | 14);
        assert_eq!(Event::new(0x31, EventType::Intr, None).bits(), 1 << 31 | 0x31);
        assert_eq!(Event::new(2, EventType::Nmi, None).bits(), 1 << 31 | 2 << 8 | 2);
    }

    #[test]
    fn removing_a_bit_keeps_the_numbers_beside_it() {
        // V_TPR 5, V_INTR_PRIO 3 and V_INTR_VECTOR 0x40 around V_IRQ.
        let mut v = VirtualInterrupt::from_bits_retain(5 | 3 << 16 | 0x40 << 32) | VirtualInterrupt::V_IRQ;
        v.remove(VirtualInterrupt::V_IRQ);
        assert_eq!(v.bits(), 5 | 3 << 16 | 0x40 << 32);
    }
}
