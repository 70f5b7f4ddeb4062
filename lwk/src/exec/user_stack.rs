//! The initial user stack of a new program, as the System V x86-64 ABI and Linux lay it out:
//!
//! ```text
//! stack top ->  strings: execfn, platform, argv[], envp[], then 16 random bytes
//!               padding to 16 bytes
//!               auxv pairs, ending with AT_NULL
//!               envp pointers, NULL
//!               argv pointers, NULL
//! rsp ->        argc                                      (rsp is 16-byte aligned)
//! ```
//!
//! The image is built in a byte vector for a given stack top; the kernel copies it into the new
//! program's stack.

use alloc::vec;
use alloc::vec::Vec;

pub const AT_NULL: u64 = 0;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_UID: u64 = 11;
pub const AT_EUID: u64 = 12;
pub const AT_GID: u64 = 13;
pub const AT_EGID: u64 = 14;
pub const AT_PLATFORM: u64 = 15;
pub const AT_HWCAP: u64 = 16;
pub const AT_CLKTCK: u64 = 17;
pub const AT_SECURE: u64 = 23;
pub const AT_RANDOM: u64 = 25;
pub const AT_HWCAP2: u64 = 26;
pub const AT_EXECFN: u64 = 31;

/// What goes on the stack besides the strings.
pub struct StackParameters<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    pub execfn: &'a [u8],
    pub random: [u8; 16],
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    pub entry: u64,
    pub hwcap: u64,
}

/// Why an image cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// The arguments and environment do not fit in `limit` bytes (E2BIG).
    TooBig,
    /// A string contains a NUL byte.
    EmbeddedNul,
}

const PLATFORM: &[u8] = b"x86_64";

/// Lays out the stack for a program whose stack ends at `top` (16-byte aligned), using at most
/// `limit` bytes. The image belongs at `[top - len, top)` and the program starts with
/// `rsp = top - len` (16-byte aligned, pointing at argc).
pub fn build(top: u64, p: &StackParameters, limit: usize) -> Result<Vec<u8>, StackError> {
    let strings_len: usize =
        p.argv.iter().chain(p.envp).map(|s| s.len() + 1).sum::<usize>() + p.execfn.len() + 1 + PLATFORM.len() + 1 + 16;
    if p.argv.iter().chain(p.envp).chain([&p.execfn]).any(|s| s.contains(&0)) {
        return Err(StackError::EmbeddedNul);
    }
    let aux_entries = 20;
    let pointers = 1 + p.argv.len() + 1 + p.envp.len() + 1 + 2 * aux_entries;
    let total = (strings_len.next_multiple_of(16) + pointers * 8).next_multiple_of(16);
    if total > limit {
        return Err(StackError::TooBig);
    }
    let base = top - total as u64;
    let mut bytes = vec![0u8; total];
    // Strings, from the top down.
    let mut at = total;
    let mut put_str = |s: &[u8], bytes: &mut Vec<u8>| -> u64 {
        at -= s.len() + 1;
        bytes[at..at + s.len()].copy_from_slice(s);
        base + at as u64
    };
    let execfn = put_str(p.execfn, &mut bytes);
    let platform = put_str(PLATFORM, &mut bytes);
    let argv: Vec<u64> = p.argv.iter().map(|s| put_str(s, &mut bytes)).collect();
    let envp: Vec<u64> = p.envp.iter().map(|s| put_str(s, &mut bytes)).collect();
    at -= 16;
    bytes[at..at + 16].copy_from_slice(&p.random);
    let random = base + at as u64;
    // Words, from the bottom (rsp) up.
    let auxv = [
        (AT_PHDR, p.phdr),
        (AT_PHENT, p.phent),
        (AT_PHNUM, p.phnum),
        (AT_PAGESZ, 4096),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, p.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_PLATFORM, platform),
        (AT_HWCAP, p.hwcap),
        (AT_HWCAP2, 0),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_EXECFN, execfn),
        (AT_NULL, 0),
    ];
    debug_assert!(auxv.len() <= aux_entries);
    let mut words: Vec<u64> = Vec::with_capacity(pointers);
    words.push(p.argv.len() as u64);
    words.extend(&argv);
    words.push(0);
    words.extend(&envp);
    words.push(0);
    for (k, v) in auxv {
        words.extend([k, v]);
    }
    for (i, w) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(img: &[u8], top: u64, addr: u64) -> u64 {
        let at = (addr - (top - img.len() as u64)) as usize;
        u64::from_le_bytes(img[at..at + 8].try_into().unwrap())
    }

    fn string(img: &[u8], top: u64, addr: u64) -> Vec<u8> {
        let at = (addr - (top - img.len() as u64)) as usize;
        img[at..].iter().take_while(|&&b| b != 0).copied().collect()
    }

    #[test]
    fn layout_reads_back_like_the_abi_says() {
        let top = 0x7fff_ffff_f000;
        let p = StackParameters {
            argv: &[b"/bin/hello", b"a", b"b c"],
            envp: &[b"K=V", b"MANUL_TEST=yes"],
            execfn: b"/bin/hello",
            random: [7; 16],
            phdr: 0x40_0040,
            phent: 56,
            phnum: 9,
            entry: 0x40_1000,
            hwcap: 0x178bfbff,
        };
        let img = build(top, &p, 64 * 1024).unwrap();
        let rsp = top - img.len() as u64;
        assert_eq!(rsp % 16, 0);
        assert_eq!(word(&img, top, rsp), 3);
        let argv: Vec<_> = (0..3).map(|i| string(&img, top, word(&img, top, rsp + 8 + 8 * i))).collect();
        assert_eq!(argv, [b"/bin/hello".to_vec(), b"a".to_vec(), b"b c".to_vec()]);
        assert_eq!(word(&img, top, rsp + 32), 0);
        assert_eq!(string(&img, top, word(&img, top, rsp + 40)), b"K=V");
        assert_eq!(word(&img, top, rsp + 56), 0);
        let mut aux = std::collections::HashMap::new();
        let mut a = rsp + 64;
        loop {
            let (k, v) = (word(&img, top, a), word(&img, top, a + 8));
            if k == AT_NULL {
                break;
            }
            aux.insert(k, v);
            a += 16;
        }
        assert_eq!(aux[&AT_PAGESZ], 4096);
        assert_eq!(aux[&AT_ENTRY], 0x40_1000);
        assert_eq!(aux[&AT_CLKTCK], 100);
        assert_eq!(string(&img, top, aux[&AT_PLATFORM]), b"x86_64");
        assert_eq!(string(&img, top, aux[&AT_EXECFN]), b"/bin/hello");
        let r = (aux[&AT_RANDOM] - (top - img.len() as u64)) as usize;
        assert_eq!(img[r..r + 16], [7; 16]);
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![b'x'; 5000];
        let p = StackParameters {
            argv: &[&big],
            envp: &[],
            execfn: b"x",
            random: [0; 16],
            phdr: 0,
            phent: 0,
            phnum: 0,
            entry: 0,
            hwcap: 0,
        };
        assert_eq!(build(0x10000, &p, 4096).err(), Some(StackError::TooBig));
        let p = StackParameters { argv: &[b"a\0b"], ..p };
        assert_eq!(build(0x10000, &p, 4096).err(), Some(StackError::EmbeddedNul));
    }
}
