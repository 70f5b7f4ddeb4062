//! The CPUID the guest sees: the host's, with what the VMM does not virtualise taken out (SVM,
//! VMX, monitor/mwait, performance counters, thermal and power control, machine checks), the
//! hypervisor bit and a Manul leaf added (and, at 0x4000_0100, the KVM guest interface's
//! leaves for the paravirtual clock), and the topology of the VM's vCPUs.

use crate::pv_clock::{self, KVM_SIGNATURE};

/// (eax, ebx, ecx, edx)
pub type Registers = (u32, u32, u32, u32);

/// The Manul hypervisor leaf's signature ("ManulVMM    " in EBX, ECX, EDX).
pub const SIGNATURE: [u32; 3] =
    [u32::from_le_bytes(*b"Manu"), u32::from_le_bytes(*b"lVMM"), u32::from_le_bytes(*b"    ")];

/// Leaf 1 / 0x8000_0001 EAX of the CPU model guests see when the host's family is older: AMD
/// family 17h (Zen) model 1 stepping 2.
pub const MODERN_SIGNATURE: u32 = 0x0080_0f12;
/// The first family (17h, Zen) guests are shown as it is.
const MODERN_FAMILY: u32 = 0x17;

/// The processor signature (leaf 1 EAX) the guest sees: the host's, unless its family predates
/// Zen, which is then shown as [`MODERN_SIGNATURE`]. The family selects errata workarounds and
/// probes of chipsets that a VM does not have: for a family 0Fh-15h CPU (QEMU's software CPU is
/// a family-0Fh K8) Linux searches every PCI bus for a GART aperture, tens of thousands of
/// emulated configuration reads, for hardware no VM has. Features are CPUID bits, not families,
/// so the guest loses nothing. (A CPU-model choice, as KVM's user space makes one.)
pub fn guest_signature(host_eax: u32) -> u32 {
    if family(host_eax) < MODERN_FAMILY { MODERN_SIGNATURE } else { host_eax }
}

/// The family of a processor signature (base family, plus the extended family for 0Fh).
fn family(eax: u32) -> u32 {
    let base = (eax >> 8) & 0xf;
    if base == 0xf { base + ((eax >> 20) & 0xff) } else { base }
}

/// The "not affected" bits that keep a guest shown as [`MODERN_SIGNATURE`] from inferring
/// speculation bugs of a CPU it does not run on: Linux derives three from the AMD family alone
/// (`cpu_vuln_whitelist`/`cpu_vuln_blacklist` in arch/x86/kernel/cpu/common.c): speculative
/// store bypass spares families 0Fh to 12h, branch type confusion (retbleed) hits 15h to 17h,
/// speculative return stack overflow 17h and 19h. Family 17h has all three, so a guest told
/// "17h" of an older host would pay for mitigations (the SRSO "safe RET" on every kernel
/// return) its real CPU does not need; it is told which of them the host's family is immune to,
/// and still sees the others. Returns (0x8000_0008 EBX, 0x8000_0021 EAX) bits to add.
fn host_family_immunities(host_family: u32) -> (u32, u32) {
    const AMD_SSB_NO: u32 = 1 << 26;
    const BTC_NO: u32 = 1 << 29;
    const SRSO_NO: u32 = 1 << 29;
    let ssb = if (0xf..=0x12).contains(&host_family) { AMD_SSB_NO } else { 0 };
    let btc = if (0x15..=0x17).contains(&host_family) { 0 } else { BTC_NO };
    let srso = if matches!(host_family, 0x17 | 0x19) { 0 } else { SRSO_NO };
    (ssb | btc, srso)
}

/// What the guest's view depends on besides the host's CPUID.
#[derive(Clone, Copy, Debug)]
pub struct GuestCpu {
    pub vcpu: u32,
    pub vcpus: u32,
    /// The guest's CR4.OSXSAVE (reflected in leaf 1 ECX bit 27).
    pub osxsave: bool,
    /// Whether the VM emulates a local APIC.
    pub apic: bool,
    pub tsc_khz: u32,
}

/// The guest's CPUID for `leaf`/`subleaf`, given the host's answer `host`.
pub fn guest_cpuid(leaf: u32, subleaf: u32, host: impl Fn(u32, u32) -> Registers, g: GuestCpu) -> Registers {
    let max_basic = host(0, 0).0.min(0xd);
    let host_signature = host(1, 0).0;
    // Shown as another family: the immunities of the host's family, the last in leaf 0x8000_0021.
    let immunities =
        (guest_signature(host_signature) != host_signature).then(|| host_family_immunities(family(host_signature)));
    let host_max_ext = host(0x8000_0000, 0).0.min(0x8000_0008);
    let max_ext = if immunities.is_some() { 0x8000_0021 } else { host_max_ext };
    match leaf {
        0 => {
            let (_, b, c, d) = host(0, 0);
            (max_basic, b, c, d)
        }
        1 => {
            let (a, b, c, d) = host(1, 0);
            // ECX: no VMX, SMX, EST, TM2, SDBG, PDCM, DCA, MONITOR; x2APIC and TSC-deadline only
            // with the emulated local APIC (which implements both).
            let c_clear = (1 << 3)
                | (1 << 5)
                | (1 << 6)
                | (1 << 7)
                | (1 << 8)
                | (1 << 11)
                | (1 << 15)
                | (1 << 18)
                | (1 << 21)
                | (1 << 24)
                | (1 << 27);
            let mut c = (c & !c_clear) | (1 << 31);
            if g.osxsave {
                c |= 1 << 27;
            }
            if g.apic {
                c |= (1 << 21) | (1 << 24);
            }
            // EDX: no MCE, MTRR, MCA, ACPI thermal, TM, PBE; APIC only if emulated; HTT for SMP.
            let d_clear = (1 << 7) | (1 << 12) | (1 << 14) | (1 << 22) | (1 << 29) | (1 << 31) | (1 << 9) | (1 << 28);
            let mut d = d & !d_clear;
            if g.apic {
                d |= 1 << 9;
            }
            if g.vcpus > 1 {
                d |= 1 << 28;
            }
            let b = (b & 0x0000_ffff) | (g.vcpus.min(255) << 16) | (g.vcpu.min(255) << 24);
            (guest_signature(a), b, c, d)
        }
        7 if subleaf == 0 => {
            let (_, b, c, _) = host(7, 0);
            // No SGX, HLE, RTM, PQM, MPX, PQE, Intel PT; no WAITPKG, no RDPID (the VMM keeps no
            // TSC_AUX); no speculation controls.
            let b = b & !((1 << 2) | (1 << 4) | (1 << 11) | (1 << 12) | (1 << 14) | (1 << 15) | (1 << 25));
            let c = c & !((1 << 5) | (1 << 22));
            (0, b, c, 0)
        }
        0xd if leaf <= max_basic => host(leaf, subleaf),
        2..=0xc if leaf <= max_basic => (0, 0, 0, 0),
        0x4000_0000 => (0x4000_0010, SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]),
        0x4000_0010 => (g.tsc_khz, 0, 0, 0),
        // The KVM guest interface, for its paravirtual clock (see `pv_clock`).
        pv_clock::KVM_LEAF => (pv_clock::KVM_FEATURES_LEAF, KVM_SIGNATURE[0], KVM_SIGNATURE[1], KVM_SIGNATURE[2]),
        pv_clock::KVM_FEATURES_LEAF => (pv_clock::KVM_FEATURES, 0, 0, 0),
        0x8000_0000 => {
            let (_, b, c, d) = host(0x8000_0000, 0);
            (max_ext, b, c, d)
        }
        0x8000_0001 if leaf <= host_max_ext => {
            let (a, b, c, d) = host(leaf, 0);
            // No SVM, extended APIC space, OSVW, IBS, SKINIT, WDT, LWP, topology extensions,
            // core and northbridge performance counters.
            let c_clear = (1 << 2)
                | (1 << 3)
                | (1 << 9)
                | (1 << 10)
                | (1 << 12)
                | (1 << 13)
                | (1 << 15)
                | (1 << 22)
                | (1 << 23)
                | (1 << 24);
            // No RDTSCP (it is intercepted: the VMM keeps no TSC_AUX).
            (guest_signature(a), b, c & !c_clear, d & !(1 << 27))
        }
        0x8000_0002..=0x8000_0006 if leaf <= host_max_ext => host(leaf, subleaf),
        0x8000_0007 if leaf <= host_max_ext => (0, 0, 0, host(leaf, 0).3 & (1 << 8)),
        0x8000_0008 if leaf <= host_max_ext => {
            let (a, b, _, _) = host(leaf, 0);
            let b = (b & !0x7_f000) | immunities.map_or(0, |(b, _)| b);
            (a, b, g.vcpus.saturating_sub(1) & 0xff, 0)
        }
        0x8000_0021 if leaf <= max_ext => (immunities.map_or(0, |(_, a)| a), 0, 0, 0),
        _ => (0, 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(leaf: u32, _sub: u32) -> Registers {
        match leaf {
            0 => (0x16, 1, 2, 3),
            1 => (0x800f12, 0x0102_0800, !(1 << 31), 0xffff_ffff),
            0x8000_0000 => (0x8000_0021, 0, 0, 0),
            0x8000_0001 => (0, 0, 0xffff_ffff, 0xffff_ffff),
            0x8000_0007 => (0, 0, 0, 0xffff),
            _ => (0xaa, 0xbb, 0xcc, 0xdd),
        }
    }

    const G: GuestCpu = GuestCpu { vcpu: 1, vcpus: 2, osxsave: false, apic: false, tsc_khz: 2_000_000 };

    #[test]
    fn features_hidden_and_added() {
        let (_, b, c, d) = guest_cpuid(1, 0, host, G);
        assert_eq!(c & (1 << 31), 1 << 31, "hypervisor bit");
        assert_eq!(c & ((1 << 5) | (1 << 21) | (1 << 27)), 0, "VMX, x2APIC, OSXSAVE hidden");
        assert_eq!(d & ((1 << 9) | (1 << 12)), 0, "no APIC, no MTRR");
        assert_eq!(d & (1 << 28), 1 << 28, "HTT with two vCPUs");
        assert_eq!((b >> 24, (b >> 16) & 0xff), (1, 2));
        let with_apic = guest_cpuid(1, 0, host, GuestCpu { osxsave: true, apic: true, ..G });
        assert_eq!(with_apic.2 & (1 << 27), 1 << 27);
        assert_eq!(with_apic.2 & ((1 << 21) | (1 << 24)), (1 << 21) | (1 << 24), "x2APIC, TSC-deadline");
        assert_eq!(with_apic.3 & (1 << 9), 1 << 9, "APIC");
        assert_eq!(guest_cpuid(0x8000_0001, 0, host, G).2 & (1 << 2), 0, "SVM hidden");
        assert_eq!(guest_cpuid(0x8000_000a, 0, host, G), (0, 0, 0, 0));
        assert_eq!(guest_cpuid(0x8000_0007, 0, host, G).3, 1 << 8);
    }

    #[test]
    fn families_before_zen_are_shown_as_zen() {
        // QEMU's TCG CPU: AuthenticAMD family 0Fh model 6Bh (K8); a family 10h (Barcelona) and
        // a family 15h (Bulldozer) signature.
        for old in [0x0006_0fb1, 0x0010_0f22, 0x0060_0f12] {
            assert_eq!(guest_signature(old), MODERN_SIGNATURE, "{old:#x}");
        }
        // Zen and later, and an Intel family 6 (base family below 0Fh), keep their own.
        for modern in [0x0080_0f12, 0x00a2_0f10, 0x00b4_0f40] {
            assert_eq!(guest_signature(modern), modern, "{modern:#x}");
        }
        assert_eq!(guest_signature(0x0009_06ea), MODERN_SIGNATURE, "family 6 is older than 17h");
        let k8 =
            |leaf: u32, _: u32| if leaf == 1 || leaf == 0x8000_0001 { (0x0006_0fb1, 0, 0, 0) } else { host(leaf, 0) };
        assert_eq!(guest_cpuid(1, 0, k8, G).0, MODERN_SIGNATURE);
        assert_eq!(guest_cpuid(0x8000_0001, 0, k8, G).0, MODERN_SIGNATURE);
    }

    #[test]
    fn a_guest_shown_as_zen_keeps_the_host_familys_immunities() {
        let (ssb_no, btc_no, srso_no) = (1 << 26, 1 << 29, 1 << 29);
        let on = |signature: u32| {
            move |leaf: u32, sub: u32| match leaf {
                1 | 0x8000_0001 => (signature, 0, 0, 0),
                0x8000_0000 => (0x8000_0008, 0, 0, 0),
                _ => host(leaf, sub),
            }
        };
        // K8 (QEMU's software CPU): immune to all three; the guest reads leaf 0x8000_0021.
        let k8 = on(0x0006_0fb1);
        assert_eq!(guest_cpuid(0x8000_0000, 0, k8, G).0, 0x8000_0021);
        assert_eq!(guest_cpuid(0x8000_0008, 0, k8, G).1 & (ssb_no | btc_no), ssb_no | btc_no);
        assert_eq!(guest_cpuid(0x8000_0021, 0, k8, G).0, srso_no);
        // Bulldozer (15h): has store bypass and branch type confusion, not SRSO.
        let bulldozer = on(0x0060_0f12);
        assert_eq!(guest_cpuid(0x8000_0008, 0, bulldozer, G).1 & (ssb_no | btc_no), 0);
        assert_eq!(guest_cpuid(0x8000_0021, 0, bulldozer, G).0, srso_no);
        // A real Zen keeps its own signature and learns nothing new.
        let zen = on(0x0080_0f12);
        assert_eq!(guest_cpuid(0x8000_0000, 0, zen, G).0, 0x8000_0008);
        assert_eq!(guest_cpuid(0x8000_0021, 0, zen, G), (0, 0, 0, 0));
    }

    #[test]
    fn limits_and_the_manul_leaf() {
        assert_eq!(guest_cpuid(0, 0, host, G).0, 0xd);
        assert_eq!(guest_cpuid(0x8000_0000, 0, host, G).0, 0x8000_0008);
        assert_eq!(guest_cpuid(0x16, 0, host, G), (0, 0, 0, 0));
        assert_eq!(guest_cpuid(0x4000_0000, 0, host, G).1, SIGNATURE[0]);
        assert_eq!(guest_cpuid(0x4000_0010, 0, host, G).0, 2_000_000);
        let kvm = guest_cpuid(pv_clock::KVM_LEAF, 0, host, G);
        assert_eq!((kvm.0, [kvm.1, kvm.2, kvm.3]), (pv_clock::KVM_FEATURES_LEAF, KVM_SIGNATURE));
        assert_eq!(guest_cpuid(pv_clock::KVM_FEATURES_LEAF, 0, host, G).0, pv_clock::KVM_FEATURES);
    }
}
