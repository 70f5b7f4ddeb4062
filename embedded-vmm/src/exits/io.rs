//! Port I/O exits: IN and OUT to the devices' port bus, INS and OUTS (with REP) between a port
//! and guest memory, and the guest console's way out to the host.

use super::{Context, paging_state};
use crate::devices::{Effect, Now};
use crate::end::VmEnd;
use crate::guest_paging;
use crate::machine;
use crate::svm::bits::RFLAGS_DF;
use crate::svm::cpu::GuestRegisters;
use crate::svm::vmcb::{IoioInfo, Vmcb};

/// An IOIO exit's information (EXITINFO1), read field by field where it is used: most port
/// exits are a plain IN or OUT, which need only the port, the size and the direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortAccess(IoioInfo);

impl PortAccess {
    #[inline]
    pub fn decode(info: u64) -> PortAccess {
        PortAccess(IoioInfo::from_bits_retain(info))
    }

    #[inline]
    pub fn port(self) -> u16 {
        (self.0.bits() >> 16) as u16
    }

    /// 1, 2 or 4 bytes.
    #[inline]
    pub fn size(self) -> u8 {
        if self.0.contains(IoioInfo::SIZE8) {
            1
        } else if self.0.contains(IoioInfo::SIZE16) {
            2
        } else {
            4
        }
    }

    #[inline]
    pub fn input(self) -> bool {
        self.0.contains(IoioInfo::INPUT)
    }

    /// INS or OUTS.
    #[inline]
    pub fn string(self) -> bool {
        self.0.contains(IoioInfo::STRING)
    }

    pub fn rep(self) -> bool {
        self.0.contains(IoioInfo::REP)
    }

    /// The address size of a string instruction, as a mask (one of A16 and A32 exactly, else
    /// 64 bits).
    pub fn address_mask(self) -> u64 {
        let address_size = self.0.intersection(IoioInfo::ADDRESS16 | IoioInfo::ADDRESS32 | IoioInfo::ADDRESS64);
        if address_size == IoioInfo::ADDRESS16 {
            0xffff
        } else if address_size == IoioInfo::ADDRESS32 {
            0xffff_ffff
        } else {
            u64::MAX
        }
    }
}

impl Context<'_> {
    /// The time of an access to `port`: the wall clock only for the RTC, which reads it.
    #[inline]
    fn now(&self, port: u16) -> Now {
        let ns = self.host.now_ns();
        let unix_seconds =
            if machine::CMOS.contains(&port) { self.host.unix_time_ns_at(ns) / 1_000_000_000 } else { 0 };
        Now { ns, unix_seconds }
    }

    /// Writes the line the UART holds for the host's console, and the next one if the guest
    /// finished it meanwhile, then tells the guest (THRE interrupt). Returns whether it wrote
    /// anything.
    pub fn transmit_console(&self) -> bool {
        let mut wrote = false;
        loop {
            let held = self.vm.devices.lock().com1.take_held();
            let Some(line) = held else { break };
            self.host.console_output(self.name, &line);
            self.vm.devices.lock().console_written(self.host.now_ns());
            wrote = true;
        }
        if wrote {
            let messages = self.vm.devices.lock().update_lines(self.host.now_ns());
            self.vm.irq.deliver(messages, usize::MAX);
        }
        wrote
    }

    /// The guest wrote to a busy UART: the line ahead goes out now, written by this vCPU itself
    /// unless the host is already writing it (then this vCPU waits until it is done).
    fn wait_for_console(&self) {
        while !self.transmit_console() && self.vm.devices.lock().com1.host_writing() && self.end_reason().is_none() {
            core::hint::spin_loop();
        }
    }

    /// At the VM's end: every line still held, then the output the guest left without a final
    /// newline.
    pub fn flush_console(&self) {
        while self.transmit_console() || self.vm.devices.lock().com1.host_writing() {
            core::hint::spin_loop();
        }
        let rest = self.vm.devices.lock().com1.take_partial_line();
        if !rest.is_empty() {
            self.host.console_output(self.name, &rest);
        }
    }

    /// What a port write's effect asks of the VM beyond the device: the console's line goes to
    /// the host, the guest's power-off, reset or panic ends it.
    fn effect(&self, effect: Effect) -> Option<VmEnd> {
        match effect {
            Effect::None | Effect::ConsoleFull => None,
            Effect::ConsoleLine => {
                self.host.console_waiting();
                None
            }
            Effect::PowerOff => Some(VmEnd::PowerOff),
            Effect::Reset => Some(VmEnd::Reboot),
            Effect::GuestPanic => Some(VmEnd::GuestPanic),
        }
    }
}

/// An IN or OUT; INS and OUTS (with REP) go to [`string`].
#[inline(always)]
pub fn handle(ctx: &Context, v: &mut Vmcb, regs: &mut GuestRegisters, access: PortAccess) -> Option<VmEnd> {
    if access.string() {
        return string(ctx, v, regs, access);
    }
    let (port, size) = (access.port(), access.size());
    let rip = v.save.rip;
    v.save.rip = v.control.exit_info2;
    ctx.vm.stats.lock().record_port(port);
    let now = ctx.now(port);
    if access.input() {
        let value = ctx.vm.devices.lock().port_in(port, size, now) as u64;
        let mask = match size {
            1 => 0xff,
            2 => 0xffff,
            _ => u64::MAX, // a 32-bit IN zero-extends into RAX
        };
        v.save.rax = if size == 4 { value } else { (v.save.rax & !mask) | value };
        return None;
    }
    let effect = ctx.vm.devices.lock().port_out(port, size, v.save.rax as u32, now);
    if effect == Effect::ConsoleFull {
        // Not done: the guest writes the byte again once the line ahead is out.
        v.save.rip = rip;
        ctx.wait_for_console();
    }
    ctx.effect(effect)
}

/// INS/OUTS, REP or not: elements move between the port and guest memory at ES:RDI (INS) or
/// DS:RSI (OUTS), stepping by the element size in the direction RFLAGS.DF gives, RCX counting
/// down with REP. The guest addresses go through its page tables; a bad one ends the VM.
fn string(ctx: &Context, v: &mut Vmcb, regs: &mut GuestRegisters, access: PortAccess) -> Option<VmEnd> {
    let (port, size, input, rep, address_mask) =
        (access.port(), access.size(), access.input(), access.rep(), access.address_mask());
    let step = if v.save.rflags & RFLAGS_DF != 0 { (size as u64).wrapping_neg() } else { size as u64 };
    let paging = paging_state(v);
    // At most a page's worth per exit keeps one exit short; REP resumes where it stopped.
    let mut count = if rep { (regs.rcx & address_mask).min(4096 / size as u64) } else { 1 };
    ctx.vm.stats.lock().record_port(port);
    let advance = |reg: &mut u64| *reg = (*reg & !address_mask) | (reg.wrapping_add(step) & address_mask);
    while count > 0 {
        let (base, offset) = if input { (v.save.es.base, regs.rdi) } else { (v.save.ds.base, regs.rsi) };
        let gva = base.wrapping_add(offset & address_mask);
        let Some(gpa) = guest_paging::translate(&ctx.vm.memory, paging, gva) else { return Some(VmEnd::unhandled(v)) };
        let now = ctx.now(port);
        if input {
            let value = ctx.vm.devices.lock().port_in(port, size, now);
            if ctx.vm.memory.write(gpa, &value.to_le_bytes()[..size as usize]).is_err() {
                return Some(VmEnd::unhandled(v));
            }
            advance(&mut regs.rdi);
        } else {
            let mut b = [0u8; 4];
            if ctx.vm.memory.read(gpa, &mut b[..size as usize]).is_err() {
                return Some(VmEnd::unhandled(v));
            }
            let effect = ctx.vm.devices.lock().port_out(port, size, u32::from_le_bytes(b), now);
            if effect == Effect::ConsoleFull {
                // This element is not done: the instruction runs again (from here, with REP)
                // once the line ahead is out.
                ctx.wait_for_console();
                return None;
            }
            advance(&mut regs.rsi);
            if let Some(end) = ctx.effect(effect) {
                return Some(end);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exits::test_support::{RAM, TestVm};
    use crate::machine::COM1;
    use crate::svm::vmcb::exit;
    use core::sync::atomic::Ordering;

    const INPUT: u64 = IoioInfo::INPUT.bits();
    const STRING: u64 = IoioInfo::STRING.bits();
    const REP: u64 = IoioInfo::REP.bits();
    const BYTE: u64 = IoioInfo::SIZE8.bits();
    const WORD: u64 = IoioInfo::SIZE16.bits();
    const DWORD: u64 = IoioInfo::SIZE32.bits();
    const A16: u64 = IoioInfo::ADDRESS16.bits();
    const A64: u64 = IoioInfo::ADDRESS64.bits();

    /// A VMCB with the IOIO exit `info` for `port`, the next instruction at 0x102.
    fn io_exit(port: u16, info: u64) -> Vmcb {
        let mut v = Vmcb::zeroed();
        (v.control.exit_code, v.control.exit_info1) = (exit::IOIO, info | (port as u64) << 16);
        (v.save.rip, v.control.exit_info2) = (0x100, 0x102);
        v
    }

    fn run(vm: &TestVm, v: &mut Vmcb, regs: &mut GuestRegisters) -> Option<VmEnd> {
        handle(&vm.context(), v, regs, PortAccess::decode(v.control.exit_info1))
    }

    #[test]
    fn exit_info_decodes_by_the_apm() {
        let access = PortAccess::decode(0x3f8 << 16 | INPUT | STRING | REP | WORD | IoioInfo::ADDRESS32.bits());
        let fields = |a: PortAccess| (a.port(), a.size(), a.input(), a.string(), a.rep(), a.address_mask());
        assert_eq!(fields(access), (0x3f8, 2, true, true, true, 0xffff_ffff));
        let out = PortAccess::decode(0x80 << 16 | DWORD);
        assert_eq!(fields(out), (0x80, 4, false, false, false, u64::MAX));
        assert_eq!(PortAccess::decode(A16 | BYTE).address_mask(), 0xffff);
        assert_eq!(PortAccess::decode(A64 | BYTE).address_mask(), u64::MAX);
        assert_eq!(PortAccess::decode(A16 | A64 | BYTE).address_mask(), u64::MAX, "two sizes: none of them");
    }

    #[test]
    fn in_merges_into_rax_by_width_and_out_reaches_the_device() {
        let vm = TestVm::new(1);
        let mut regs = GuestRegisters::default();
        for (info, rax) in [(BYTE, 0x1234_56ff), (WORD, 0x1234_ffff), (DWORD, 0xffff_ffff)] {
            let mut v = io_exit(0x1234, INPUT | info);
            v.save.rax = 0xffff_ffff_1234_5678;
            assert_eq!(run(&vm, &mut v, &mut regs), None);
            let high = if info == DWORD { 0 } else { 0xffff_ffff_0000_0000 };
            assert_eq!((v.save.rax, v.save.rip), (high | rax, 0x102), "unclaimed ports read all ones");
        }
        let mut v = io_exit(crate::machine::RESET_CONTROL, BYTE);
        v.save.rax = 0x06;
        assert_eq!(run(&vm, &mut v, &mut regs), Some(VmEnd::Reboot));
        assert_eq!(vm.state.stats.lock().busiest_ports(1), [(0x1234, 3)]);
    }

    #[test]
    fn the_rtc_reads_the_hosts_wall_clock() {
        // The fake host's wall clock starts at 1,700,000,000 s: 2023-11-14 22:13:20 UTC.
        let vm = TestVm::new(1);
        let mut regs = GuestRegisters::default();
        for (register, bcd) in [(0x09, 0x23), (0x08, 0x11), (0x07, 0x14), (0x04, 0x22)] {
            let mut v = io_exit(crate::machine::CMOS.start, BYTE);
            v.save.rax = register;
            assert_eq!(run(&vm, &mut v, &mut regs), None);
            let mut v = io_exit(crate::machine::CMOS.start + 1, INPUT | BYTE);
            assert_eq!(run(&vm, &mut v, &mut regs), None);
            assert_eq!(v.save.rax & 0xff, bcd, "register {register:#x}");
        }
    }

    #[test]
    fn rep_outsb_writes_a_line_to_the_console() {
        let vm = TestVm::new(1);
        vm.state.memory.write(0x2000, b"hi\n").unwrap();
        let mut v = io_exit(COM1.start, STRING | REP | BYTE | A64);
        let mut regs = GuestRegisters { rsi: 0x2000, rcx: 3, ..GuestRegisters::default() };
        assert_eq!(run(&vm, &mut v, &mut regs), None);
        assert_eq!((regs.rsi, regs.rcx, v.save.rip), (0x2003, 0, 0x102));
        assert_eq!(vm.host.console_waiting.load(Ordering::SeqCst), 1, "the host is told of the line");
        assert!(vm.context().transmit_console());
        assert_eq!(*vm.host.console.lock().unwrap(), b"hi\n");
    }

    #[test]
    fn rep_insw_steps_down_with_df_and_wraps_a_16_bit_address() {
        let vm = TestVm::new(1);
        let mut v = io_exit(0x1234, INPUT | STRING | REP | WORD | A16);
        v.save.rflags = RFLAGS_DF;
        v.save.es.base = 0x3000;
        let mut regs = GuestRegisters { rdi: 0xffff_0002, rcx: 0xdead_0002, ..GuestRegisters::default() };
        assert_eq!(run(&vm, &mut v, &mut regs), None);
        // Elements at ES:2 and ES:0; DI wraps to 0xfffe, the upper bits of RDI and RCX stay.
        assert_eq!((regs.rdi, regs.rcx, v.save.rip), (0xffff_fffe, 0xdead_0000, 0x102));
        let mut b = [0u8; 6];
        vm.state.memory.read(0x3000, &mut b).unwrap();
        assert_eq!(b, [0xff, 0xff, 0xff, 0xff, 0, 0]);
    }

    #[test]
    fn a_long_rep_stops_after_a_page_and_runs_again() {
        let vm = TestVm::new(1);
        let mut v = io_exit(0x1234, INPUT | STRING | REP | DWORD | A64);
        let mut regs = GuestRegisters { rdi: 0x10_0000, rcx: 2000, ..GuestRegisters::default() };
        assert_eq!(run(&vm, &mut v, &mut regs), None);
        assert_eq!((regs.rdi, regs.rcx, v.save.rip), (0x10_1000, 976, 0x100), "1024 elements, same RIP");
    }

    #[test]
    fn a_string_access_outside_guest_ram_ends_the_vm() {
        let vm = TestVm::new(1);
        let mut v = io_exit(COM1.start, STRING | BYTE | A64);
        let mut regs = GuestRegisters { rsi: RAM, ..GuestRegisters::default() };
        assert!(matches!(run(&vm, &mut v, &mut regs), Some(VmEnd::UnhandledExit { code: exit::IOIO, .. })));
        assert_eq!((regs.rsi, v.save.rip), (RAM, 0x100));
    }
}
