//! Loading a program into a new address space: the executable (static or static-PIE ELF, or a
//! `#!` script run by its interpreter), a populated 8 MiB stack, and the initial stack image with
//! arguments, environment and auxiliary vector. Used by job launch and by `execve`.

use crate::address_space::AddressSpace;
use crate::files;
use crate::job_memory::JobMemory;
use crate::random;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use lwk::elf_loader::{self, ElfError, ExecutableKind, Protection};
use lwk::errno::Errno;
use lwk::ram_fs::Lookup;
use lwk::user_stack::{self, StackError, StackParameters};
use lwk::vm_areas::AreaKind;

/// Top of the main thread's stack and its size.
pub const STACK_TOP: u64 = 0x7fff_ffe0_0000;
pub const STACK_BYTES: u64 = 8 << 20;
/// Room for arguments and environment at the top of the stack.
const ARGS_LIMIT: usize = 256 * 1024;
const SHEBANG_MAX: usize = 256;

pub struct LoadedProgram {
    pub space: AddressSpace,
    pub entry: u64,
    pub rsp: u64,
    pub kind: ExecutableKind,
    /// The file that was loaded (the interpreter, for a script).
    pub path: String,
}

pub enum LoadError {
    File(Errno),
    Elf(ElfError),
    Arguments(StackError),
    Memory(Errno),
}

impl LoadError {
    /// The errno `execve` returns.
    pub fn errno(&self) -> Errno {
        match self {
            LoadError::File(e) | LoadError::Memory(e) => *e,
            LoadError::Elf(_) => Errno::ENOEXEC,
            LoadError::Arguments(StackError::TooBig) => Errno::E2BIG,
            LoadError::Arguments(StackError::EmbeddedNul) => Errno::EINVAL,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            LoadError::File(e) => write!(f, "{e}"),
            LoadError::Elf(e) => write!(f, "{e}"),
            LoadError::Arguments(e) => write!(f, "arguments and environment: {e:?}"),
            LoadError::Memory(e) => write!(f, "job memory: {e}"),
        }
    }
}

/// Loads `path` with `argv` and `envp` into a new address space backed by `memory`.
pub fn load(
    memory: Arc<JobMemory>,
    at: &Lookup,
    path: &str,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<LoadedProgram, LoadError> {
    let program = files::read_program(at, path).map_err(LoadError::File)?;
    if let Some((interpreter, argument)) = shebang(&program) {
        // `#!interp [arg]`: run the interpreter with the script's path in place of argv[0].
        let mut args: Vec<Vec<u8>> = Vec::new();
        args.push(interpreter.as_bytes().to_vec());
        args.extend(argument.map(|a| a.as_bytes().to_vec()));
        args.push(path.as_bytes().to_vec());
        args.extend(argv.iter().skip(1).cloned());
        let inner = files::read_program(at, &interpreter).map_err(LoadError::File)?;
        if shebang(&inner).is_some() {
            return Err(LoadError::File(Errno::ELOOP));
        }
        return load_elf(memory, &inner, &interpreter, &args, envp);
    }
    load_elf(memory, &program, path, argv, envp)
}

/// `#!/bin/sh -e` -> ("/bin/sh", Some("-e")).
fn shebang(file: &[u8]) -> Option<(String, Option<String>)> {
    let rest = file.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = core::str::from_utf8(&line[..line.len().min(SHEBANG_MAX)]).ok()?.trim();
    let (interpreter, argument) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, Some(String::from(a.trim()))),
        None => (line, None),
    };
    (!interpreter.is_empty()).then(|| (String::from(interpreter), argument.filter(|a| !a.is_empty())))
}

fn load_elf(
    memory: Arc<JobMemory>,
    program: &[u8],
    path: &str,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<LoadedProgram, LoadError> {
    let exe = elf_loader::inspect(program).map_err(LoadError::Elf)?;
    let mut space = AddressSpace::new(memory).map_err(LoadError::Memory)?;
    for s in &exe.segments {
        let (start, end) = s.pages();
        space
            .map_anonymous(start, end - start, s.protection, false, AreaKind::Image(String::from(path)))
            .map_err(LoadError::Memory)?;
        // `inspect` checked that the file range lies inside the file.
        let bytes = &program[s.file_offset as usize..(s.file_offset + s.file_size) as usize];
        space.write_initial(s.vaddr, bytes).map_err(LoadError::Memory)?;
    }
    space.brk_start = exe.end;
    space.brk = exe.end;
    let rw = Protection { read: true, write: true, execute: false };
    space.map_anonymous(STACK_TOP - STACK_BYTES, STACK_BYTES, rw, false, AreaKind::Stack).map_err(LoadError::Memory)?;
    let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
    let envp: Vec<&[u8]> = envp.iter().map(|e| e.as_slice()).collect();
    let mut random_bytes = [0u8; 16];
    random::fill(&mut random_bytes);
    let params = StackParameters {
        argv: &argv,
        envp: &envp,
        execfn: path.as_bytes(),
        random: random_bytes,
        phdr: exe.phdr,
        phent: exe.phent,
        phnum: exe.phnum,
        entry: exe.entry,
        hwcap: core::arch::x86_64::__cpuid_count(1, 0).edx as u64,
    };
    let image = user_stack::build(STACK_TOP, &params, ARGS_LIMIT).map_err(LoadError::Arguments)?;
    let rsp = STACK_TOP - image.len() as u64;
    space.write(rsp, &image).map_err(LoadError::Memory)?;
    Ok(LoadedProgram { space, entry: exe.entry, rsp, kind: exe.kind, path: String::from(path) })
}
