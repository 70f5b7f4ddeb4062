//! A vCPU's VMCB as it starts: the intercepts, the permission maps and nested paging, and the
//! CPU state of its first instruction (PVH's flat 32-bit mode, the Linux boot protocol's long
//! mode, or an application processor's real mode at its SIPI vector).

use super::bits::{CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_SVME};
use super::vmcb::{InterceptMisc1, InterceptMisc2, NestedPaging, Segment, TLB_FLUSH_ALL, VirtualInterrupt, Vmcb};

/// Guest ASID for every vCPU: each runs on its own physical CPU.
const ASID: u32 = 1;

/// Where and how a vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// PVH: 32-bit protected mode, paging off (EBX holds the start_info, see the loaders).
    Protected32 { rip: u64 },
    /// The Linux 64-bit boot protocol: long mode on the loader's identity tables (`cr3`) and
    /// its GDT (address, limit).
    Long64 { rip: u64, cr3: u64, gdt: (u64, u32) },
    /// An application processor after SIPI: real mode at `vector` * 4 KiB.
    RealMode { vector: u8 },
}

/// What the VMCB points at: the VM's permission maps and nested page tables.
#[derive(Clone, Copy, Debug)]
pub struct VmTables {
    pub iopm: u64,
    pub msrpm: u64,
    pub npt_root: u64,
}

/// Resets `v` for a vCPU that starts at `entry`.
pub fn initial(v: &mut Vmcb, entry: Entry, tables: VmTables) {
    *v = Vmcb::zeroed();
    let c = &mut v.control;
    c.intercept_misc1 = InterceptMisc1::INTR
        | InterceptMisc1::NMI
        | InterceptMisc1::SMI
        | InterceptMisc1::INIT
        | InterceptMisc1::CPUID
        | InterceptMisc1::INVD
        | InterceptMisc1::HLT
        | InterceptMisc1::INVLPGA
        | InterceptMisc1::IOIO_PROT
        | InterceptMisc1::MSR_PROT
        | InterceptMisc1::TASK_SWITCH
        | InterceptMisc1::SHUTDOWN;
    c.intercept_misc2 = InterceptMisc2::VMRUN
        | InterceptMisc2::VMMCALL
        | InterceptMisc2::VMLOAD
        | InterceptMisc2::VMSAVE
        | InterceptMisc2::STGI
        | InterceptMisc2::CLGI
        | InterceptMisc2::SKINIT
        | InterceptMisc2::ICEBP
        | InterceptMisc2::MONITOR
        | InterceptMisc2::MWAIT
        | InterceptMisc2::XSETBV;
    c.iopm_base_pa = tables.iopm;
    c.msrpm_base_pa = tables.msrpm;
    c.guest_asid = ASID;
    c.tlb_control = TLB_FLUSH_ALL;
    c.np_enable = NestedPaging::NP_ENABLE;
    c.nested_cr3 = tables.npt_root;
    c.virtual_interrupt = VirtualInterrupt::V_INTR_MASKING;
    let s = &mut v.save;
    let (code, data) = match entry {
        Entry::Long64 { .. } => (Segment::new(0x10, 0xa9b, 0xffff_ffff, 0), Segment::new(0x18, 0xc93, 0xffff_ffff, 0)),
        _ => (Segment::new(0x08, 0xc9b, 0xffff_ffff, 0), Segment::new(0x10, 0xc93, 0xffff_ffff, 0)),
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
    match entry {
        Entry::RealMode { vector } => {
            let real = |sel: u16, base: u64, attrib: u16| Segment::new(sel, attrib, 0xffff, base);
            s.cs = real((vector as u16) << 8, (vector as u64) << 12, 0x9b);
            for seg in [&mut s.ds, &mut s.es, &mut s.ss, &mut s.fs, &mut s.gs] {
                *seg = real(0, 0, 0x93);
            }
            s.cr0 = CR0_CD | CR0_NW | CR0_ET; // as after INIT
            s.efer = EFER_SVME;
            s.rip = 0;
            // An AP keeps the rest of the state zero (DR6, DR7 and PAT too, as before).
            return;
        }
        Entry::Protected32 { rip } => {
            s.cr0 = CR0_PE | CR0_ET; // flat protected mode, paging off
            s.efer = EFER_SVME;
            s.rip = rip;
        }
        Entry::Long64 { rip, cr3, gdt: (gdt, limit) } => {
            s.gdtr = Segment::new(0, 0, limit, gdt);
            s.cr0 = CR0_PG | CR0_ET | CR0_PE;
            s.cr3 = cr3;
            s.cr4 = CR4_PAE;
            s.efer = EFER_SVME | EFER_LME | EFER_LMA;
            s.rip = rip;
        }
    }
    s.dr6 = 0xffff_0ff0;
    s.dr7 = 0x400;
    s.g_pat = 0x0007_0406_0007_0406;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: VmTables = VmTables { iopm: 0x1000, msrpm: 0x4000, npt_root: 0x8000 };

    fn start(entry: Entry) -> Vmcb {
        let mut v = Vmcb::zeroed();
        v.save.rax = 0x1234; // anything from before is gone
        initial(&mut v, entry, TABLES);
        v
    }

    #[test]
    fn every_vcpu_gets_the_vms_tables_and_intercepts() {
        for entry in [Entry::Protected32 { rip: 0x10_0000 }, Entry::RealMode { vector: 0x9a }] {
            let v = start(entry);
            assert_eq!(
                (v.control.iopm_base_pa, v.control.msrpm_base_pa, v.control.nested_cr3),
                (0x1000, 0x4000, 0x8000)
            );
            assert_eq!(
                (v.control.np_enable, v.control.guest_asid, v.control.tlb_control),
                (NestedPaging::NP_ENABLE, ASID, TLB_FLUSH_ALL)
            );
            assert!(v.control.intercept_misc1.contains(InterceptMisc1::CPUID));
            assert!(v.control.intercept_misc2.contains(InterceptMisc2::VMMCALL));
            assert_eq!(v.save.rax, 0);
            assert_ne!(v.save.efer & EFER_SVME, 0, "VMRUN wants EFER.SVME");
        }
    }

    #[test]
    fn the_three_entries_start_in_their_modes() {
        let pvh = start(Entry::Protected32 { rip: 0x10_0000 });
        assert_eq!((pvh.save.cr0, pvh.save.rip, pvh.save.cs.attrib), (0x11, 0x10_0000, 0xc9b));
        let linux = start(Entry::Long64 { rip: 0x100_0200, cr3: 0x9000, gdt: (0x6000, 31) });
        assert_eq!((linux.save.cr0, linux.save.cr3, linux.save.cr4), (0x8000_0011, 0x9000, 0x20));
        assert_eq!(linux.save.efer, EFER_SVME | EFER_LME | EFER_LMA);
        assert_eq!((linux.save.gdtr.base, linux.save.gdtr.limit, linux.save.cs.attrib), (0x6000, 31, 0xa9b));
        let ap = start(Entry::RealMode { vector: 0x9a });
        assert_eq!((ap.save.cs.selector, ap.save.cs.base, ap.save.rip), (0x9a00, 0x9_a000, 0));
        assert_eq!((ap.save.cr0, ap.save.ds.limit), (0x6000_0010, 0xffff));
    }
}
