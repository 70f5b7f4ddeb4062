//! The program loader's ELF check on arbitrary bytes: it must never panic, and whatever it
//! accepts must describe segments inside the file and the user half.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lwk::exec::elf_loader::inspect;
use lwk::hal::cpu::USER_END;

fuzz_target!(|data: &[u8]| {
    if let Ok(exe) = inspect(data) {
        for s in &exe.segments {
            assert!(s.file_offset + s.file_size <= data.len() as u64);
            assert!(s.vaddr + s.mem_size <= USER_END);
            assert!(s.file_size <= s.mem_size);
        }
        assert!(exe.segments.iter().any(|s| s.protection.execute && (s.vaddr..s.vaddr + s.mem_size).contains(&exe.entry)));
    }
});
