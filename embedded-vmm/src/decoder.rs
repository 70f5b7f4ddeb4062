//! Decoding the instructions a guest uses on device memory (MMIO), for nested page faults: SVM
//! under QEMU has no decode assists, so the VMM reads the instruction at the guest's RIP and
//! decodes it itself. The fault already gives the address; the decoder finds the length, the
//! direction, the width, the register or immediate, and the operation. Forms: MOV to and from
//! memory (88, 89, 8A, 8B, C6, C7, A0-A3), MOVZX/MOVSX (0F B6, B7, BE, BF), the ALU group on
//! memory (00-3B forms, 80, 81, 83: ADD OR AND SUB XOR CMP), TEST (84, 85, F6 /0, F7 /0).
//! Differentially tested against `iced-x86`.

/// How the guest CPU executes: it decides default operand and address sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    Real16,
    Protected32,
    Long64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// General register number (0-15); with `high_byte`, AH/CH/DH/BH.
    Register {
        number: u8,
        high_byte: bool,
    },
    Immediate(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add,
    Or,
    And,
    Sub,
    Xor,
    /// CMP: SUB without storing.
    Cmp,
    /// TEST: AND without storing.
    Test,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Memory into a register, zero- or sign-extended to `register_bytes`.
    Load {
        register: u8,
        high_byte: bool,
        register_bytes: u8,
        sign_extend: bool,
    },
    Store(Source),
    /// Read, operate, write back (except CMP/TEST, which only set flags).
    Alu {
        op: AluOp,
        source: Source,
    },
}

/// A decoded instruction touching memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInstruction {
    pub length: usize,
    /// Bytes of the memory access.
    pub access_bytes: u8,
    pub operation: Operation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    /// Not one of the forms above (the VM then ends with the opcode named).
    Unsupported(u8),
    /// The ModRM byte names a register, not memory.
    NotMemory,
}

struct Prefixes {
    operand_16: bool,
    address_override: bool,
    rex: u8,
}

const fn rex_w(rex: u8) -> bool {
    rex & 8 != 0
}

/// Decodes the instruction at the start of `bytes` (up to 15 bytes).
pub fn decode(bytes: &[u8], mode: CpuMode) -> Result<MmioInstruction, DecodeError> {
    let mut i = 0;
    let mut p = Prefixes { operand_16: false, address_override: false, rex: 0 };
    let byte = |i: usize| bytes.get(i).copied().ok_or(DecodeError::Truncated);
    loop {
        match byte(i)? {
            0x66 => p.operand_16 = true,
            0x67 => p.address_override = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf0 => {}
            _ => break,
        }
        i += 1;
        if i >= 14 {
            return Err(DecodeError::Truncated);
        }
    }
    if mode == CpuMode::Long64 && (0x40..=0x4f).contains(&byte(i)?) {
        p.rex = byte(i)?;
        i += 1;
    }
    let default_16 = mode == CpuMode::Real16;
    let operand_bytes: u8 = if rex_w(p.rex) {
        8
    } else if p.operand_16 != default_16 {
        2
    } else {
        4
    };
    let address_bytes: u8 = match (mode, p.address_override) {
        (CpuMode::Long64, false) => 8,
        (CpuMode::Long64, true) | (CpuMode::Protected32, false) | (CpuMode::Real16, true) => 4,
        _ => 2,
    };
    let opcode = byte(i)?;
    i += 1;
    let high = |r: u8, width: u8| width == 1 && p.rex == 0 && (4..8).contains(&r);
    let reg_source = |r: u8, width: u8| Source::Register {
        number: if high(r, width) { r - 4 } else { r },
        high_byte: high(r, width),
    };
    let immediate = |at: usize, n: usize, width: u8| -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for k in 0..n {
            v |= (byte(at + k)? as u64) << (8 * k);
        }
        // Sign-extend to the operand width.
        let bits = 8 * n as u32;
        let signed = ((v << (64 - bits)) as i64 >> (64 - bits)) as u64;
        Ok(if width == 8 { signed } else { signed & ((1u64 << (8 * width as u32)) - 1) })
    };
    // The memory operand of a ModRM instruction at `at`: (end, reg field).
    let memory = |at: usize| -> Result<(usize, u8), DecodeError> {
        match decode_modrm(bytes, at, address_bytes, p.rex)? {
            (end, reg, true) => Ok((end, reg)),
            _ => Err(DecodeError::NotMemory),
        }
    };
    const ALU: [AluOp; 8] =
        [AluOp::Add, AluOp::Or, AluOp::Add, AluOp::Sub, AluOp::And, AluOp::Sub, AluOp::Xor, AluOp::Cmp];
    let done =
        |length: usize, access_bytes: u8, operation: Operation| Ok(MmioInstruction { length, access_bytes, operation });
    let width_of = |opcode: u8| if opcode & 1 == 0 { 1 } else { operand_bytes };
    match opcode {
        // MOV r/m, r and MOV r, r/m
        0x88..=0x8b => {
            let (end, reg) = memory(i)?;
            let width = width_of(opcode);
            if opcode & 2 == 0 {
                return done(end, width, Operation::Store(reg_source(reg, width)));
            }
            let h = high(reg, width);
            let register = if h { reg - 4 } else { reg };
            done(end, width, Operation::Load { register, high_byte: h, register_bytes: width, sign_extend: false })
        }
        // MOV r/m, imm
        0xc6 | 0xc7 => {
            let (end, reg) = memory(i)?;
            if reg & 7 != 0 {
                return Err(DecodeError::Unsupported(opcode));
            }
            let width = width_of(opcode);
            let n = width.min(4) as usize;
            done(end + n, width, Operation::Store(Source::Immediate(immediate(end, n, width)?)))
        }
        // MOV AL/eAX, moffs and back
        0xa0..=0xa3 => {
            let width = width_of(opcode);
            let end = i + address_bytes as usize;
            if end > bytes.len() {
                return Err(DecodeError::Truncated);
            }
            let rax = Source::Register { number: 0, high_byte: false };
            if opcode & 2 == 0 {
                done(
                    end,
                    width,
                    Operation::Load { register: 0, high_byte: false, register_bytes: width, sign_extend: false },
                )
            } else {
                done(end, width, Operation::Store(rax))
            }
        }
        // ADD OR AND SUB XOR CMP r/m, r
        op if op < 0x40 && op & 6 == 0 && matches!(op >> 3, 0 | 1 | 4 | 5 | 6 | 7) => {
            let (end, reg) = memory(i)?;
            let width = width_of(op);
            done(end, width, Operation::Alu { op: ALU[(op >> 3) as usize], source: reg_source(reg, width) })
        }
        // ADD OR AND SUB XOR CMP r/m, imm (not ADC, SBB)
        0x80 | 0x81 | 0x83 => {
            let (end, reg) = memory(i)?;
            if matches!(reg & 7, 2 | 3) {
                return Err(DecodeError::Unsupported(opcode));
            }
            let width = if opcode == 0x80 { 1 } else { operand_bytes };
            let n = if opcode == 0x81 { width.min(4) as usize } else { 1 };
            done(
                end + n,
                width,
                Operation::Alu { op: ALU[(reg & 7) as usize], source: Source::Immediate(immediate(end, n, width)?) },
            )
        }
        // TEST r/m, r
        0x84 | 0x85 => {
            let (end, reg) = memory(i)?;
            let width = width_of(opcode);
            done(end, width, Operation::Alu { op: AluOp::Test, source: reg_source(reg, width) })
        }
        // TEST r/m, imm
        0xf6 | 0xf7 => {
            let (end, reg) = memory(i)?;
            if reg & 7 != 0 {
                return Err(DecodeError::Unsupported(opcode));
            }
            let width = width_of(opcode);
            let n = width.min(4) as usize;
            done(
                end + n,
                width,
                Operation::Alu { op: AluOp::Test, source: Source::Immediate(immediate(end, n, width)?) },
            )
        }
        // MOVZX, MOVSX
        0x0f => {
            let second = byte(i)?;
            let width = match second {
                0xb6 | 0xbe => 1,
                0xb7 | 0xbf => 2,
                _ => return Err(DecodeError::Unsupported(second)),
            };
            let (end, reg) = memory(i + 1)?;
            done(
                end,
                width,
                Operation::Load {
                    register: reg,
                    high_byte: false,
                    register_bytes: operand_bytes,
                    sign_extend: second >= 0xbe,
                },
            )
        }
        other => Err(DecodeError::Unsupported(other)),
    }
}

/// (end of ModRM/SIB/displacement, reg field with REX.R, whether r/m is memory)
fn decode_modrm(bytes: &[u8], at: usize, address_bytes: u8, rex: u8) -> Result<(usize, u8, bool), DecodeError> {
    let byte = |i: usize| bytes.get(i).copied().ok_or(DecodeError::Truncated);
    let m = byte(at)?;
    let (md, rm) = (m >> 6, m & 7);
    let reg = ((m >> 3) & 7) | if rex & 4 != 0 { 8 } else { 0 };
    if md == 3 {
        return Ok((at + 1, reg, false));
    }
    let mut end = at + 1;
    if address_bytes == 2 {
        end += match (md, rm) {
            (0, 6) => 2,
            (1, _) => 1,
            (2, _) => 2,
            _ => 0,
        };
    } else {
        let mut base = rm;
        if rm == 4 {
            base = byte(end)? & 7;
            end += 1;
        }
        end += match md {
            0 if rm == 5 || (rm == 4 && base == 5) => 4,
            1 => 1,
            2 => 4,
            _ => 0,
        };
    }
    if end > bytes.len() {
        return Err(DecodeError::Truncated);
    }
    Ok((end, reg, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

    fn iced(bytes: &[u8], mode: CpuMode) -> Instruction {
        let bits = match mode {
            CpuMode::Real16 => 16,
            CpuMode::Protected32 => 32,
            CpuMode::Long64 => 64,
        };
        Decoder::with_ip(bits, bytes, 0, DecoderOptions::NONE).decode()
    }

    /// Our register numbering of an iced general register (with the AH..BH flag).
    fn number(r: Register) -> (u8, bool) {
        let full = r.full_register();
        let n = full.number() as u8 - Register::RAX.number() as u8;
        let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
        (n, high)
    }

    /// A small deterministic generator of instruction bytes.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u8 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 as u8
        }
    }

    #[test]
    fn agrees_with_iced_on_generated_instructions() {
        let opcodes: &[&[u8]] = &[
            &[0x88],
            &[0x89],
            &[0x8a],
            &[0x8b],
            &[0xc6],
            &[0xc7],
            &[0x80],
            &[0x81],
            &[0x83],
            &[0x84],
            &[0x85],
            &[0xf6],
            &[0xf7],
            &[0x00],
            &[0x01],
            &[0x08],
            &[0x09],
            &[0x20],
            &[0x21],
            &[0x28],
            &[0x29],
            &[0x30],
            &[0x31],
            &[0x38],
            &[0x39],
            &[0x0f, 0xb6],
            &[0x0f, 0xb7],
            &[0x0f, 0xbe],
            &[0x0f, 0xbf],
        ];
        let mut rng = Rng(0x4d61_6e75_6c21);
        let mut checked = 0;
        for mode in [CpuMode::Long64, CpuMode::Protected32, CpuMode::Real16] {
            for _ in 0..20_000 {
                let mut bytes = Vec::new();
                if rng.next().is_multiple_of(4) {
                    bytes.push(0x66);
                }
                if rng.next().is_multiple_of(8) {
                    bytes.push(0x67);
                }
                if mode == CpuMode::Long64 && rng.next().is_multiple_of(2) {
                    bytes.push(0x40 | (rng.next() & 0x0f));
                }
                let op = opcodes[rng.next() as usize % opcodes.len()];
                bytes.extend_from_slice(op);
                let mut modrm = rng.next();
                if modrm >> 6 == 3 {
                    modrm &= 0x3f; // memory forms
                }
                if matches!(op[0], 0xc6 | 0xc7 | 0xf6 | 0xf7) {
                    modrm &= !0x38; // /0
                }
                bytes.push(modrm);
                for _ in 0..10 {
                    bytes.push(rng.next());
                }
                let theirs = iced(&bytes, mode);
                if theirs.is_invalid() {
                    continue;
                }
                let ours = match decode(&bytes, mode) {
                    Ok(d) => d,
                    Err(DecodeError::Unsupported(_)) => continue, // ADC/SBB and the like
                    Err(e) => panic!("{bytes:02x?} in {mode:?}: {e:?}, iced says {theirs}"),
                };
                assert_eq!(ours.length, theirs.len(), "length of {bytes:02x?} ({theirs}) in {mode:?}");
                let mem = (0..theirs.op_count()).find(|&k| theirs.op_kind(k) == OpKind::Memory).unwrap();
                assert_eq!(ours.access_bytes as usize, theirs.memory_size().size(), "width of {theirs}");
                let other = (0..theirs.op_count()).find(|&k| k != mem);
                match (ours.operation, other.map(|k| theirs.op_kind(k))) {
                    (Operation::Load { register, high_byte, .. }, Some(OpKind::Register)) => {
                        assert_eq!((register, high_byte), number(theirs.op_register(other.unwrap())), "{theirs}");
                    }
                    (
                        Operation::Store(Source::Register { number: n, high_byte })
                        | Operation::Alu { source: Source::Register { number: n, high_byte }, .. },
                        Some(OpKind::Register),
                    ) => {
                        assert_eq!((n, high_byte), number(theirs.op_register(other.unwrap())), "{theirs}");
                    }
                    (
                        Operation::Store(Source::Immediate(v)) | Operation::Alu { source: Source::Immediate(v), .. },
                        Some(_),
                    ) => {
                        let want = theirs.immediate(other.unwrap());
                        let mask = if ours.access_bytes == 8 {
                            u64::MAX
                        } else {
                            (1u64 << (8 * ours.access_bytes as u32)) - 1
                        };
                        assert_eq!(v & mask, want & mask, "immediate of {theirs}");
                    }
                    (op, kind) => panic!("{theirs}: ours {op:?}, iced operand {kind:?}"),
                }
                checked += 1;
            }
        }
        assert!(checked > 30_000, "only {checked} instructions compared");
    }

    #[test]
    fn linux_apic_accesses() {
        // mov %eax,(%rdx); mov (%rax),%eax; movl $0x100,0xf0(%rax)
        assert_eq!(
            decode(&[0x89, 0x02], CpuMode::Long64).unwrap().operation,
            Operation::Store(Source::Register { number: 0, high_byte: false })
        );
        let load = decode(&[0x8b, 0x00], CpuMode::Long64).unwrap();
        assert_eq!((load.length, load.access_bytes), (2, 4));
        let store = decode(&[0xc7, 0x80, 0xf0, 0, 0, 0, 0x00, 0x01, 0, 0], CpuMode::Long64).unwrap();
        assert_eq!((store.length, store.operation), (10, Operation::Store(Source::Immediate(0x100))));
        assert_eq!(decode(&[0x89], CpuMode::Long64), Err(DecodeError::Truncated));
        assert_eq!(decode(&[0x89, 0xc0], CpuMode::Long64), Err(DecodeError::NotMemory));
        assert_eq!(decode(&[0x0f, 0x0b], CpuMode::Long64), Err(DecodeError::Unsupported(0x0b)));
        assert_eq!(decode(&[0x66; 15], CpuMode::Long64), Err(DecodeError::Truncated));
    }
}
