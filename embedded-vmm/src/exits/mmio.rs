//! Carrying out a decoded instruction on device memory: a load into a register, a store from a
//! register or an immediate, or an ALU operation (read, operate, write back but for CMP and
//! TEST) with the arithmetic flags it leaves in RFLAGS.

use crate::decoder::{AluOp, MmioInstruction, Operation, Source};
use crate::svm::bits::{
    RFLAGS_AF as AF, RFLAGS_CF as CF, RFLAGS_OF as OF, RFLAGS_PF as PF, RFLAGS_SF as SF, RFLAGS_ZF as ZF,
};
use crate::svm::cpu::GuestRegisters;
use crate::svm::vmcb::Vmcb;

/// The flags an ALU operation sets.
const ARITHMETIC_FLAGS: u64 = CF | PF | AF | ZF | SF | OF;

/// Carries out `insn` on a device register through `read` and `write` (each called at most
/// once, `value` masked to the access width), and moves RIP past it.
#[inline]
pub fn emulate(
    v: &mut Vmcb,
    regs: &mut GuestRegisters,
    insn: &MmioInstruction,
    read: impl FnOnce() -> u64,
    write: impl FnOnce(u64),
) {
    let width_mask = if insn.access_bytes >= 8 { u64::MAX } else { (1u64 << (8 * insn.access_bytes as u32)) - 1 };
    match insn.operation {
        Operation::Load { register, high_byte, register_bytes, sign_extend } => {
            let raw = read() & width_mask;
            let value = if sign_extend {
                let bits = 8 * insn.access_bytes as u32;
                ((raw << (64 - bits)) as i64 >> (64 - bits)) as u64
            } else {
                raw
            };
            set_register(v, regs, register, high_byte, register_bytes, value);
        }
        Operation::Store(source) => write(source_value(v, regs, source) & width_mask),
        Operation::Alu { op, source } => {
            let a = read() & width_mask;
            let b = source_value(v, regs, source) & width_mask;
            let (result, flags) = alu(op, a, b, insn.access_bytes);
            v.save.rflags = (v.save.rflags & !ARITHMETIC_FLAGS) | flags;
            if !matches!(op, AluOp::Cmp | AluOp::Test) {
                write(result);
            }
        }
    }
    v.save.rip += insn.length as u64;
}

/// A general register by number (0 RAX ... 15 R15); RAX and RSP live in the VMCB.
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

fn source_value(v: &mut Vmcb, r: &mut GuestRegisters, s: Source) -> u64 {
    match s {
        Source::Immediate(i) => i,
        Source::Register { number, high_byte: true } => (*register_mut(v, r, number) >> 8) & 0xff,
        Source::Register { number, high_byte: false } => *register_mut(v, r, number),
    }
}

/// The result and arithmetic flags of an ALU operation of `bytes` width. AF is the carry out of
/// (or the borrow into) bit 3 for ADD, SUB and CMP; the logical operations clear CF, OF and AF
/// (AF is undefined for them in the manuals; AMD and Intel CPUs clear it).
fn alu(op: AluOp, a: u64, b: u64, bytes: u8) -> (u64, u64) {
    let bits = 8 * bytes as u32;
    let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let sign = 1u64 << (bits - 1);
    let (result, carry, overflow, adjust) = match op {
        AluOp::Add => {
            let r = a.wrapping_add(b) & mask;
            (r, r < a, (!(a ^ b) & (a ^ r) & sign) != 0, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::Sub | AluOp::Cmp => {
            let r = a.wrapping_sub(b) & mask;
            (r, b > a, ((a ^ b) & (a ^ r) & sign) != 0, (a ^ b ^ r) & 0x10 != 0)
        }
        AluOp::And | AluOp::Test => (a & b, false, false, false),
        AluOp::Or => (a | b, false, false, false),
        AluOp::Xor => (a ^ b, false, false, false),
    };
    let set = |condition: bool, flag: u64| if condition { flag } else { 0 };
    let flags = set(carry, CF)
        | set((result as u8).count_ones().is_multiple_of(2), PF)
        | set(adjust, AF)
        | set(result == 0, ZF)
        | set(result & sign != 0, SF)
        | set(overflow, OF);
    (result, flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{self, CpuMode};

    #[test]
    fn add_sub_and_cmp_set_the_auxiliary_carry() {
        // (op, a, b, width) -> (result, flags)
        let cases = [
            (AluOp::Add, 0x0f, 0x01, 1, 0x10, AF),
            (AluOp::Add, 0x08, 0x08, 1, 0x10, AF),
            (AluOp::Add, 0x10, 0x10, 1, 0x20, 0),
            (AluOp::Add, 0xff, 0x01, 1, 0x00, CF | PF | AF | ZF),
            (AluOp::Add, 0x7f, 0x01, 1, 0x80, AF | SF | OF),
            (AluOp::Add, 0xffff, 0x0001, 2, 0, CF | PF | AF | ZF),
            (AluOp::Add, 0x1234_5678, 0x1111_1111, 4, 0x2345_6789, 0),
            (AluOp::Sub, 0x10, 0x01, 1, 0x0f, PF | AF),
            (AluOp::Sub, 0x00, 0x01, 1, 0xff, CF | PF | AF | SF),
            (AluOp::Sub, 0x80, 0x01, 1, 0x7f, AF | OF),
            (AluOp::Sub, 0x35, 0x15, 1, 0x20, 0),
            (AluOp::Cmp, 0x20, 0x0f, 1, 0x11, PF | AF),
            (AluOp::Cmp, 5, 5, 8, 0, PF | ZF),
        ];
        for (op, a, b, bytes, result, flags) in cases {
            assert_eq!(alu(op, a, b, bytes), (result, flags), "{op:?} {a:#x}, {b:#x} ({bytes} bytes)");
        }
    }

    #[test]
    fn logical_operations_clear_carry_overflow_and_auxiliary_carry() {
        assert_eq!(alu(AluOp::And, 0x1f, 0x18, 1), (0x18, PF));
        assert_eq!(alu(AluOp::Or, 0x80, 0x01, 1), (0x81, PF | SF));
        assert_eq!(alu(AluOp::Xor, 0xffff_ffff, 0xffff_ffff, 4), (0, PF | ZF));
        assert_eq!(alu(AluOp::Test, 0x8000_0000_0000_0000, u64::MAX, 8), (1 << 63, PF | SF));
    }

    /// Decodes `bytes` (64-bit code) and carries it out on a device register holding `device`.
    fn run(bytes: &[u8], v: &mut Vmcb, regs: &mut GuestRegisters, device: u64) -> Option<u64> {
        let insn = decoder::decode(bytes, CpuMode::Long64).unwrap();
        let mut written = None;
        emulate(v, regs, &insn, || device, |value| written = Some(value));
        assert_eq!(v.save.rip, bytes.len() as u64);
        v.save.rip = 0;
        written
    }

    #[test]
    fn loads_stores_and_alu_operations_on_a_device_register() {
        let (mut v, mut regs) = (Vmcb::zeroed(), GuestRegisters::default());
        // mov eax, [rdi]: zero-extends into RAX.
        v.save.rax = u64::MAX;
        assert_eq!(run(&[0x8b, 0x07], &mut v, &mut regs, 0x1_2345_6789), None);
        assert_eq!(v.save.rax, 0x2345_6789);
        // movsx ecx, byte [rdi]; mov ah, [rdi]
        regs.rcx = u64::MAX;
        run(&[0x0f, 0xbe, 0x0f], &mut v, &mut regs, 0x80);
        assert_eq!(regs.rcx, 0xffff_ff80);
        run(&[0x8a, 0x27], &mut v, &mut regs, 0x5a);
        assert_eq!(v.save.rax, 0x2345_5a89);
        // mov [rdi], r9d; mov dword [rdi], imm32
        regs.r9 = 0xdead_beef_0000_0001;
        assert_eq!(run(&[0x44, 0x89, 0x0f], &mut v, &mut regs, 0), Some(1));
        assert_eq!(run(&[0xc7, 0x07, 0x78, 0x56, 0x34, 0x12], &mut v, &mut regs, 0), Some(0x1234_5678));
        // add dword [rdi], 1 on 0x0f: written back, AF set; cmp leaves the register alone.
        v.save.rflags = 0x202 | CF;
        assert_eq!(run(&[0x83, 0x07, 0x01], &mut v, &mut regs, 0x0f), Some(0x10));
        assert_eq!(v.save.rflags, 0x202 | AF);
        assert_eq!(run(&[0x83, 0x3f, 0x10], &mut v, &mut regs, 0x10), None);
        assert_eq!(v.save.rflags, 0x202 | PF | ZF);
    }
}
