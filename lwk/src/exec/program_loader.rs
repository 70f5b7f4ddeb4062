//! Loading a program into a new address space: the executable (static or static-PIE ELF, or a
//! `#!` script run by its interpreter), a populated 8 MiB stack, and the initial stack image with
//! arguments, environment and auxiliary vector. Used by job launch and by `execve`.
//!
//! The file is never copied whole into kernel memory: its headers are read (at most
//! [`elf_loader::MAX_HEADERS`] bytes), then each segment goes straight from the file system into
//! the new address space, in pieces of at most [`COPY_CHUNK`] bytes (an initrd file without any
//! copy at all). The file stays held while it loads, so a concurrent unlink cannot free it.

use crate::exec::elf_loader::{self, ElfError, ExecutableKind};
use crate::exec::user_stack::{self, StackError, StackParameters};
use crate::fs::files::{EnclaveFiles, Place};
use crate::fs::ram_fs::Ino;
use crate::hal::random;
use crate::mm::address_space::AddressSpace;
use crate::mm::job_memory::JobMemory;
use crate::mm::vm_areas::AreaKind;
use crate::mm::vm_areas::Protection;
use crate::util::errno::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use enclave::Account;

/// Top of the main thread's stack and its size.
pub const STACK_TOP: u64 = 0x7fff_ffe0_0000;
pub const STACK_BYTES: u64 = 8 << 20;
/// Room for arguments and environment at the top of the stack.
const ARGS_LIMIT: usize = 256 * 1024;
const SHEBANG_MAX: usize = 256;
/// Most bytes of a file of the writable part copied into a new address space in one step (the
/// kernel buffer's size, and how long the file system's lock is held at once).
const COPY_CHUNK: usize = 64 * 1024;

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

/// An executable file being loaded: held in its file system until dropped.
struct ProgramFile {
    files: Arc<EnclaveFiles>,
    ino: Ino,
    len: u64,
    /// The bytes, when the file is the initrd's (borrowed, never copied).
    initrd: Option<&'static [u8]>,
}

impl ProgramFile {
    fn open(from: &From, path: &str) -> Result<Self, LoadError> {
        let Place { files, ino } = from.root.resolve_and_hold(from.start, from.exe, path).map_err(LoadError::File)?;
        // Held from here: dropped (released) on any error below.
        let mut file = ProgramFile { files, ino, len: 0, initrd: None };
        let (len, initrd) = file
            .files
            .with(|fs| Ok::<_, Errno>((fs.stat(ino)?.size, fs.initrd_bytes(ino)?)))
            .map_err(LoadError::File)?;
        (file.len, file.initrd) = (len, initrd);
        Ok(file)
    }

    /// Fills `buf` from `offset`; `ENOEXEC` if the file ends first (it shrank meanwhile).
    fn read_exact(&self, offset: u64, buf: &mut [u8]) -> Result<(), LoadError> {
        let n = match self.initrd {
            Some(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                n
            }
            None => self.files.with(|fs| fs.read(self.ino, offset, buf)).map_err(LoadError::File)?,
        };
        if n < buf.len() { Err(LoadError::File(Errno::ENOEXEC)) } else { Ok(()) }
    }

    /// The file's first `len` bytes (fewer if it is shorter).
    fn head(&self, len: usize) -> Result<Vec<u8>, LoadError> {
        let len = len.min(usize::try_from(self.len).unwrap_or(usize::MAX));
        let mut head = Vec::new();
        head.try_reserve_exact(len).map_err(|_| LoadError::Memory(Errno::ENOMEM))?;
        head.resize(len, 0);
        self.read_exact(0, &mut head)?;
        Ok(head)
    }

    /// Copies `len` bytes from `offset` into `space` at `vaddr`.
    fn copy_into(&self, space: &AddressSpace, vaddr: u64, offset: u64, len: u64) -> Result<(), LoadError> {
        if let Some(bytes) = self.initrd {
            // `inspect_head` checked the range against the file's length.
            let range = usize::try_from(offset).ok().zip(usize::try_from(offset + len).ok());
            let piece = range.and_then(|(start, end)| bytes.get(start..end)).ok_or(LoadError::File(Errno::ENOEXEC))?;
            return space.write_initial(vaddr, piece).map_err(LoadError::Memory);
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(COPY_CHUNK).map_err(|_| LoadError::Memory(Errno::ENOMEM))?;
        buf.resize(COPY_CHUNK, 0);
        let mut done = 0;
        while done < len {
            let n = (len - done).min(COPY_CHUNK as u64) as usize;
            self.read_exact(offset + done, &mut buf[..n])?;
            space.write_initial(vaddr + done, &buf[..n]).map_err(LoadError::Memory)?;
            done += n as u64;
        }
        Ok(())
    }
}

impl Drop for ProgramFile {
    fn drop(&mut self) {
        self.files.with(|fs| fs.release(self.ino));
    }
}

/// Where a program's path is resolved: the enclave's tree, the directory a relative path starts
/// from, and the target of `/proc/self/exe`.
pub struct From<'a> {
    pub root: &'a Arc<EnclaveFiles>,
    pub start: &'a Place,
    pub exe: &'a str,
}

/// Loads `path` (resolved `from`) with `argv` and `envp` into a new address space backed by
/// `memory`, its page tables charged to `account`.
pub fn load(
    memory: Arc<JobMemory>,
    account: Arc<Account>,
    from: &From,
    path: &str,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<LoadedProgram, LoadError> {
    let program = ProgramFile::open(from, path)?;
    if let Some((interpreter, argument)) = shebang(&program.head(SHEBANG_MAX + 2)?) {
        // `#!interp [arg]`: run the interpreter with the script's path in place of argv[0].
        let mut args: Vec<Vec<u8>> = Vec::new();
        args.push(interpreter.as_bytes().to_vec());
        args.extend(argument.map(|a| a.as_bytes().to_vec()));
        args.push(path.as_bytes().to_vec());
        args.extend(argv.iter().skip(1).cloned());
        drop(program);
        let inner = ProgramFile::open(from, &interpreter)?;
        if shebang(&inner.head(2)?).is_some() {
            return Err(LoadError::File(Errno::ELOOP));
        }
        return load_elf(memory, account, &inner, &interpreter, &args, envp);
    }
    load_elf(memory, account, &program, path, argv, envp)
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
    account: Arc<Account>,
    program: &ProgramFile,
    path: &str,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<LoadedProgram, LoadError> {
    let first = program.head(elf_loader::ELF64_HEADER)?;
    let headers = elf_loader::headers_len(&first).map_err(LoadError::Elf)?;
    let exe = elf_loader::inspect_head(&program.head(headers)?, program.len).map_err(LoadError::Elf)?;
    let mut space = AddressSpace::new(memory, account).map_err(LoadError::Memory)?;
    for s in &exe.segments {
        let (start, end) = s.pages();
        space
            .map_anonymous(start, end - start, s.protection, false, AreaKind::Image(String::from(path)))
            .map_err(LoadError::Memory)?;
        program.copy_into(&space, s.vaddr, s.file_offset, s.file_size)?;
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
