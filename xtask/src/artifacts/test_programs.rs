//! The C test programs of `tests/jobs/`, compiled into `target/manul/jobs/` for the initrd, and
//! the deliberately bad files made from them. Adding a program is adding its source file and a
//! row to [`PROGRAMS`]. A program is recompiled only when its source, or a local header it
//! includes (`checks.h`), is newer than the binary, or its compiler command changed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::host::prerequisites::{self, MUSL_GCC};
use crate::host::process;
use crate::host::workspace::Workspace;

/// The sources, relative to the workspace root.
pub const SOURCE_DIR: &str = "tests/jobs";
/// The flags of every program, before its own.
const COMMON_FLAGS: &[&str] = &["-O2", "-Wall", "-Werror"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compiler {
    Gcc,
    /// Optional: without it, its programs are left out (with a note).
    MuslGcc,
}

use Compiler::{Gcc, MuslGcc};

pub struct Program {
    /// Its path in the initrd, and under `target/manul/jobs/`.
    path: &'static str,
    /// Its source file in `tests/jobs/`.
    source: &'static str,
    compiler: Compiler,
    /// Its flags after [`COMMON_FLAGS`].
    flags: &'static [&'static str],
    /// Whether a failed build just leaves it out, quietly.
    optional: bool,
}

pub const fn gcc(path: &'static str, source: &'static str, flags: &'static [&'static str]) -> Program {
    Program { path, source, compiler: Gcc, flags, optional: false }
}

const fn musl_gcc(path: &'static str, source: &'static str, flags: &'static [&'static str]) -> Program {
    Program { path, source, compiler: MuslGcc, flags, optional: false }
}

impl Program {
    const fn optional(self) -> Self {
        Self { optional: true, ..self }
    }

    /// Its path in an initrd, and under the output directory.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// Its source file, relative to the source directory.
    #[cfg(test)]
    pub fn source(&self) -> &'static str {
        self.source
    }
}

/// A test guest: a freestanding 32-bit ELF linked at 1 MiB, where a PVH loader puts it.
const GUEST_FLAGS: &[&str] =
    &["-m32", "-nostdlib", "-static", "-Wl,-Ttext-segment=0x100000", "-Wl,--build-id=none", "-Wl,-z,noexecstack"];

const PROGRAMS: &[Program] = &[
    gcc("bin/hello", "hello.c", &["-static"]),
    // Test guests for the VMM: 32-bit PVH kernels in assembly (tests/guests/).
    gcc("guests/hello.elf", "../guests/hello.S", GUEST_FLAGS),
    gcc("guests/triple_fault.elf", "../guests/triple_fault.S", GUEST_FLAGS),
    gcc("guests/timers.elf", "../guests/timers.S", GUEST_FLAGS),
    gcc("guests/forever.elf", "../guests/forever.S", GUEST_FLAGS),
    gcc("guests/registers_check.elf", "../guests/registers_check.S", GUEST_FLAGS),
    gcc("guests/flood.elf", "../guests/flood.S", GUEST_FLAGS),
    gcc("guests/huge_bss.elf", "../guests/huge_bss.S", GUEST_FLAGS),
    // A program for the Linux guest's initramfs (the heartbeat helper).
    gcc("guests/heartbeat", "../guests/heartbeat.c", &["-static", "-O2"]),
    gcc("bin/hello-pie", "hello.c", &["-static-pie"]),
    musl_gcc("bin/hello-musl", "hello.c", &["-static"]),
    gcc("bin/null_deref", "null_deref.c", &["-static"]),
    gcc("bin/wild_writes", "wild_writes.c", &["-static"]),
    gcc("bin/segment", "segment.c", &["-static"]),
    gcc("bin/kernel_pointer", "kernel_pointer.c", &["-static"]),
    gcc("bin/illegal_instruction", "illegal_instruction.c", &["-static"]),
    gcc("bin/files", "files.c", &["-static"]),
    gcc("bin/memory", "memory.c", &["-static"]),
    gcc("bin/pthreads", "pthreads.c", &["-static", "-pthread"]),
    gcc("bin/openmp_triad", "openmp_triad.c", &["-static", "-fopenmp"]),
    gcc("bin/isolation", "isolation.c", &["-static"]),
    gcc("bin/signals", "signals.c", &["-static"]),
    gcc("bin/processes", "processes.c", &["-static"]),
    gcc("bin/poll", "poll.c", &["-static"]),
    gcc("bin/thread_limit", "thread_limit.c", &["-static", "-pthread"]),
    gcc("bin/xmm_marker", "xmm_marker.c", &["-static"]),
    gcc("bin/exec_threads", "exec_threads.c", &["-static", "-pthread"]),
    gcc("bin/exhaust", "exhaust.c", &["-static", "-pthread"]),
    gcc("bin/fs_race", "fs_race.c", &["-static", "-pthread"]),
    gcc("bin/syscall_fuzz", "syscall_fuzz.c", &["-static"]),
    // Executables the kernel must refuse: one needing a dynamic loader, one for 32-bit x86
    // (optional: not every gcc can target it).
    gcc("bad/dynamic", "hello.c", &[]),
    gcc("bad/elf32", "elf32.c", &["-m32", "-static", "-nostdlib", "-ffreestanding"]).optional(),
];

/// A file made of the first `length` bytes of the compiled program at `from`.
struct Truncated {
    path: &'static str,
    from: &'static str,
    length: usize,
}

const TRUNCATED: &[Truncated] = &[
    // An ELF header whose program headers and segments are cut off.
    Truncated { path: "bad/corrupt-elf", from: "bin/hello", length: 200 },
];

/// What [`build`] made.
#[derive(Default)]
pub struct Built {
    /// (path in the initrd, file on the host), in the order of the tables.
    pub files: Vec<(String, PathBuf)>,
    /// What was left out and why, for the user.
    pub notes: Vec<String>,
}

/// Compiles what is out of date and makes the truncated files; progress goes to `log`.
pub fn build(workspace: &Workspace, log: &mut dyn Write) -> Result<Built> {
    let sources = workspace.root().join(SOURCE_DIR);
    let out_dir = workspace.jobs_dir();
    let mut built = Built::default();
    let musl = prerequisites::runs(MUSL_GCC);
    if !musl {
        let left_out: Vec<&str> = PROGRAMS.iter().filter(|p| p.compiler == MuslGcc).map(|p| p.path).collect();
        built.notes.push(format!(
            "{MUSL_GCC} is not installed: leaving out {} (install the Debian package musl-tools)",
            left_out.join(", ")
        ));
    }
    for program in PROGRAMS.iter().filter(|p| musl || p.compiler != MuslGcc) {
        if let Some(file) = compile(program, &sources, &out_dir, log)? {
            built.files.push((program.path.to_owned(), file));
        }
    }
    for truncated in TRUNCATED {
        let from = built
            .files
            .iter()
            .find(|(path, _)| path == truncated.from)
            .map(|(_, file)| file)
            .with_context(|| format!("{} is made from {}, which was not built", truncated.path, truncated.from))?;
        let file = out_dir.join(truncated.path);
        truncate(from, truncated.length, &file).with_context(|| format!("cannot make {}", truncated.path))?;
        built.files.push((truncated.path.to_owned(), file));
    }
    Ok(built)
}

/// Compiles `program` unless it is up to date; returns the binary, or `None` for an optional
/// program that did not compile.
pub fn compile(program: &Program, sources: &Path, out_dir: &Path, log: &mut dyn Write) -> Result<Option<PathBuf>> {
    let source = sources.join(program.source);
    ensure!(source.is_file(), "{} does not exist (it is the source of {})", source.display(), program.path);
    let binary = out_dir.join(program.path);
    let mut command = Command::new(match program.compiler {
        Gcc => "gcc",
        MuslGcc => MUSL_GCC,
    });
    command.args(COMMON_FLAGS).args(program.flags).arg("-o").arg(&binary).arg(&source);
    let description = process::describe(&command);
    let stamp = stamp_path(&binary);
    if is_current(&binary, &inputs(&source), &stamp, &description) {
        return Ok(Some(binary));
    }
    if let Some(dir) = binary.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let output = process::captured(&mut command)?;
    if !output.status.success() {
        let report = process::failure_report(&command, &output);
        if program.optional {
            writeln!(log, "left out {} (optional): {report}", program.path)?;
            remove_if_present(&binary)?;
            remove_if_present(&stamp)?;
            return Ok(None);
        }
        bail!("cannot compile {}: {report}", program.path);
    }
    fs::write(&stamp, &description).with_context(|| format!("cannot write {}", stamp.display()))?;
    writeln!(log, "compiled {}: {description}", program.path)?;
    Ok(Some(binary))
}

/// The file next to a binary that records the command that compiled it.
fn stamp_path(binary: &Path) -> PathBuf {
    let mut name = binary.as_os_str().to_owned();
    name.push(".cmd");
    PathBuf::from(name)
}

/// The files compiling `source` reads from the workspace: `source` itself, then the local headers
/// it includes (`#include "name"`, next to the file that includes it, as gcc looks for them
/// without `-I`), and theirs in turn. A header that is not there is left out: gcc either skips
/// it (a conditional include) or fails on it.
fn inputs(source: &Path) -> Vec<PathBuf> {
    let mut inputs = vec![source.to_owned()];
    let mut next = 0;
    while let Some(file) = inputs.get(next).cloned() {
        next += 1;
        let Ok(text) = fs::read_to_string(&file) else { continue };
        let dir = file.parent().unwrap_or(Path::new("."));
        for name in text.lines().filter_map(local_include) {
            if let Ok(header) = fs::canonicalize(dir.join(name))
                && !inputs.contains(&header)
            {
                inputs.push(header);
            }
        }
    }
    inputs
}

/// The name in a line `#include "name"`, if the line is one.
fn local_include(line: &str) -> Option<&str> {
    let directive = line.trim_start().strip_prefix('#')?.trim_start().strip_prefix("include")?;
    directive.trim_start().strip_prefix('"')?.split_once('"').map(|(name, _)| name)
}

/// Whether `binary` is newer than each of `inputs` and was compiled by the command `description`.
fn is_current(binary: &Path, inputs: &[PathBuf], stamp: &Path, description: &str) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|metadata| metadata.modified()).ok();
    let Some(built) = modified(binary) else { return false };
    inputs.iter().all(|input| modified(input).is_some_and(|edited| built >= edited))
        && fs::read_to_string(stamp).is_ok_and(|recorded| recorded == description)
}

/// Writes the first `length` bytes of `from` to `to`, unless `to` holds them already (so its
/// modification time tells when they last changed).
fn truncate(from: &Path, length: usize, to: &Path) -> Result<()> {
    let bytes = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    ensure!(bytes.len() >= length, "{} has only {} bytes, fewer than {length}", from.display(), bytes.len());
    let prefix = &bytes[..length];
    if fs::read(to).is_ok_and(|existing| existing == prefix) {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(to, prefix).with_context(|| format!("cannot write {}", to.display()))
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn the_tables_are_consistent_with_tests_jobs() {
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SOURCE_DIR);
        let mut paths = HashSet::new();
        for program in PROGRAMS {
            assert!(sources.join(program.source).is_file(), "{} has no source {}", program.path, program.source);
            assert!(paths.insert(program.path), "{} appears twice", program.path);
            assert!(matches!(program.path.split_once('/'), Some(("bin" | "bad" | "guests", _))), "{}", program.path);
        }
        for truncated in TRUNCATED {
            assert!(paths.insert(truncated.path), "{} appears twice", truncated.path);
            let from = PROGRAMS.iter().find(|p| p.path == truncated.from).expect(truncated.from);
            assert!(from.compiler == Gcc && !from.optional, "{} must always be built", truncated.from);
        }
    }

    #[test]
    fn a_binary_is_current_when_newer_than_its_source_and_built_by_the_same_command() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (source, binary) = (dir.join("p.c"), dir.join("p"));
        let stamp = stamp_path(&binary);
        assert_eq!(stamp, dir.join("p.cmd"));
        fs::write(&source, "int main(void) { return 0; }").unwrap();
        let inputs = [source.clone()];
        assert!(!is_current(&binary, &inputs, &stamp, "gcc p.c"), "no binary yet");
        fs::write(&binary, "elf").unwrap();
        assert!(!is_current(&binary, &inputs, &stamp, "gcc p.c"), "no stamp yet");
        fs::write(&stamp, "gcc p.c").unwrap();
        assert!(is_current(&binary, &inputs, &stamp, "gcc p.c"));
        assert!(!is_current(&binary, &inputs, &stamp, "gcc -static p.c"), "another command");
        let later = SystemTime::now() + Duration::from_secs(10);
        fs::File::options().write(true).open(&source).unwrap().set_modified(later).unwrap();
        assert!(!is_current(&binary, &inputs, &stamp, "gcc p.c"), "the source is newer");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_binary_is_stale_when_a_header_its_source_includes_is_newer() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-headers-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        let (source, binary) = (dir.join("p.c"), dir.join("p"));
        let stamp = stamp_path(&binary);
        fs::write(&source, "#include <stdio.h>\n# include \"sub/a.h\"\n#include \"missing.h\"\nint main(void);\n")
            .unwrap();
        // Nested includes are relative to the header, and one included twice counts once.
        fs::write(dir.join("sub").join("a.h"), "#include \"b.h\"\n#include \"../sub/b.h\"\n").unwrap();
        fs::write(dir.join("sub").join("b.h"), "#define B 1\n").unwrap();
        let [a, b] = ["a.h", "b.h"].map(|name| fs::canonicalize(dir.join("sub").join(name)).unwrap());
        let inputs = inputs(&source);
        assert_eq!(inputs, [source.clone(), a, b.clone()]);
        fs::write(&binary, "elf").unwrap();
        fs::write(&stamp, "gcc p.c").unwrap();
        assert!(is_current(&binary, &inputs, &stamp, "gcc p.c"));
        let later = SystemTime::now() + Duration::from_secs(10);
        fs::File::options().write(true).open(&b).unwrap().set_modified(later).unwrap();
        assert!(!is_current(&binary, &inputs, &stamp, "gcc p.c"), "a header is newer");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_programs_that_share_checks_h_are_rebuilt_when_it_changes() {
        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SOURCE_DIR);
        let checks = fs::canonicalize(sources.join("checks.h")).unwrap();
        for source in ["hello.c", "files.c", "memory.c", "poll.c"] {
            assert!(inputs(&sources.join(source)).contains(&checks), "{source} does not depend on checks.h");
        }
    }

    #[test]
    fn truncating_rewrites_only_when_the_bytes_change() {
        let dir = std::env::temp_dir().join(format!("manul-xtask-truncate-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (from, to) = (dir.join("full"), dir.join("bad").join("cut"));
        fs::write(&from, b"0123456789").unwrap();
        truncate(&from, 4, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"0123");
        let earlier = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        fs::File::options().write(true).open(&to).unwrap().set_modified(earlier).unwrap();
        truncate(&from, 4, &to).unwrap();
        assert_eq!(fs::metadata(&to).unwrap().modified().unwrap(), earlier, "rewritten although unchanged");
        let error = truncate(&from, 11, &to).unwrap_err();
        assert!(error.to_string().ends_with("has only 10 bytes, fewer than 11"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
