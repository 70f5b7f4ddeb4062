//! The Linux system-call interface of native jobs: one dispatch on the x86-64 system-call
//! number, then the subsystem that owns the call. Arguments are untrusted: every pointer goes
//! through the address space's checked copies (EFAULT), every number is range-checked. A call
//! the kernel does not implement returns ENOSYS and is logged once with its name.

mod files;
pub mod futex;
mod identity;
mod memory;
mod process;
mod time;

use crate::interrupt_entry::TrapFrame;
use crate::process::Process;
use crate::thread::Thread;
use crate::{scheduler, signals};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use lwk::errno::Errno;

pub type SysResult = Result<u64, Errno>;

/// What a system-call handler gets: the caller and its six arguments.
pub struct Call<'a> {
    pub thread: &'a Arc<Thread>,
    pub process: &'a Arc<Process>,
    pub frame: &'a mut TrapFrame,
    pub args: [u64; 6],
    /// Set by calls that rewrite the user context (execve, rt_sigreturn): the way back restores
    /// every register, and RAX is the handler's result as it stands in the frame.
    pub full_restore: bool,
}

/// Runs the system call in `frame`; the result goes into RAX. Returns true when the return to
/// user mode must restore every register (`iretq`).
pub fn dispatch(frame: &mut TrapFrame) -> bool {
    let Some(thread) = scheduler::current() else {
        frame.rax = (-(Errno::ENOSYS.0 as i64)) as u64;
        return false;
    };
    let process = &thread.process;
    let nr = frame.rax;
    let args = [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9];
    let mut call = Call { thread: &thread, process, frame, args, full_restore: false };
    let result = route(nr, &mut call);
    log::trace!(
        target: "syscalls",
        "pid {} tid {}: {}({:#x}, {:#x}, {:#x}, {:#x}) = {:x?}",
        process.pid,
        thread.tid,
        name(nr),
        args[0],
        args[1],
        args[2],
        args[3],
        result
    );
    let full_restore = call.full_restore;
    // Calls that waited and were interrupted by a signal run again after it, unless a handler
    // without SA_RESTART takes it (pause, sigsuspend and the sleeps report EINTR as Linux does).
    if result == Err(Errno::EINTR) && !matches!(nr, 7 | 23 | 34 | 35 | 130 | 230 | 270 | 271) {
        thread.interrupted_syscall.store(nr + 1, Ordering::Relaxed);
    }
    if result == Err(Errno::EPIPE) {
        // Writing to a pipe nobody reads: SIGPIPE too (by default it ends the process).
        signals::send_to_thread(&thread, signals::SIGPIPE);
    }
    frame_result(frame, result);
    scheduler::give_way_if_asked();
    // The thread goes with the return: no reference may stay in this frame if it ends there.
    signals::return_to_user(frame, thread) || full_restore
}

fn frame_result(frame: &mut TrapFrame, result: SysResult) {
    frame.rax = match result {
        Ok(v) => v,
        Err(e) => (-(e.0 as i64)) as u64,
    };
}

fn route(nr: u64, c: &mut Call) -> SysResult {
    match nr {
        0 => files::read(c),
        1 => files::write(c),
        2 => files::open(c),
        3 => files::close(c),
        4 => files::stat(c),
        5 => files::fstat(c),
        6 => files::lstat(c),
        7 => files::poll(c),
        8 => files::lseek(c),
        17 => files::pread64(c),
        18 => files::pwrite64(c),
        19 => files::readv(c),
        20 => files::writev(c),
        21 => files::access(c),
        22 => files::pipe(c),
        32 => files::dup(c),
        33 => files::dup2(c),
        72 => files::fcntl(c),
        77 => files::ftruncate(c),
        79 => files::getcwd(c),
        80 => files::chdir(c),
        81 => files::fchdir(c),
        82 => files::rename(c),
        83 => files::mkdir(c),
        84 => files::rmdir(c),
        85 => files::creat(c),
        87 => files::unlink(c),
        88 => files::symlink(c),
        89 => files::readlink(c),
        95 => files::umask(c),
        217 => files::getdents64(c),
        257 => files::openat(c),
        258 => files::mkdirat(c),
        262 => files::newfstatat(c),
        263 => files::unlinkat(c),
        264 | 316 => files::renameat2(c),
        267 => files::readlinkat(c),
        269 | 439 => files::faccessat(c),
        271 => files::ppoll(c),
        270 => files::pselect6(c),
        23 => files::select(c),
        40 => files::sendfile(c),
        74 | 75 => files::fsync(c),
        76 => files::truncate(c),
        78 => files::getdents(c),
        86 => files::link(c),
        90 => files::chmod(c),
        91 => files::fchmod(c),
        137 => files::statfs(c),
        138 => files::fstatfs(c),
        221 => files::fadvise64(c),
        265 => files::linkat(c),
        266 => files::symlinkat(c),
        268 => files::fchmodat(c),
        280 => files::utimensat(c),
        292 => files::dup3(c),
        293 => files::pipe2(c),
        332 => files::statx(c),
        9 => memory::mmap(c),
        10 => memory::mprotect(c),
        11 => memory::munmap(c),
        12 => memory::brk(c),
        25 => memory::mremap(c),
        28 => memory::madvise(c),
        26 => memory::msync(c),
        27 => memory::mincore(c),
        149 | 150 => memory::mlock(c),
        151 => memory::mlockall(c),
        152 => Ok(0), // munlockall: nothing is locked beyond what always is
        325 => memory::mlock2(c),
        16 => files::ioctl(c),
        24 => {
            scheduler::yield_now();
            Ok(0)
        }
        39 => Ok(c.process.pid as u64),
        110 => Ok(c.process.parent.load(core::sync::atomic::Ordering::Relaxed) as u64),
        13 => process::rt_sigaction(c),
        14 => process::rt_sigprocmask(c),
        15 => process::rt_sigreturn(c),
        127 => process::rt_sigpending(c),
        130 => process::rt_sigsuspend(c),
        34 => process::pause(c),
        157 => process::prctl(c),
        131 => process::sigaltstack(c),
        56 => process::clone(c),
        57 => process::fork(c),
        58 => process::vfork(c),
        59 => process::execve(c),
        61 => process::wait4(c),
        62 => process::kill(c),
        109 => process::setpgid(c),
        111 => process::getpgrp(c),
        112 => process::setsid(c),
        121 => process::getpgid(c),
        124 => process::getsid(c),
        200 => process::tkill(c),
        234 => process::tgkill(c),
        247 => process::waitid(c),
        435 => process::clone3(c),
        202 => futex::futex(c),
        35 => time::nanosleep(c),
        230 => time::clock_nanosleep(c),
        98 => time::getrusage(c),
        99 => time::sysinfo(c),
        100 => time::times(c),
        203 => identity::sched_setaffinity(c),
        274 => identity::get_robust_list(c),
        186 => Ok(c.thread.tid as u64),
        102 | 104 | 107 | 108 => Ok(0), // getuid, getgid, geteuid, getegid: everything runs as root
        60 => process::exit(c),
        231 => process::exit_group(c),
        63 => identity::uname(c),
        97 => identity::getrlimit(c),
        302 => identity::prlimit64(c),
        158 => identity::arch_prctl(c),
        218 => identity::set_tid_address(c),
        273 => identity::set_robust_list(c),
        318 => identity::getrandom(c),
        204 => identity::sched_getaffinity(c),
        309 => identity::getcpu(c),
        96 => time::gettimeofday(c),
        201 => time::time(c),
        228 => time::clock_gettime(c),
        229 => time::clock_getres(c),
        334 => Err(Errno::ENOSYS), // rseq: glibc works without it
        _ => unimplemented(nr),
    }
}

/// Bit set of calls already reported as missing (numbers below 512); the last bit stands for
/// every number from 511 up, which no Linux call has.
static REPORTED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// ENOSYS, logged the first time each number is seen (numbers of 511 and above once in all), so
/// a job calling them in a loop cannot flood the console.
fn unimplemented(nr: u64) -> SysResult {
    let slot = nr.min(511);
    let (word, bit) = ((slot / 64) as usize, 1 << (slot % 64));
    let first = REPORTED.get(word).is_some_and(|w| w.fetch_or(bit, Ordering::Relaxed) & bit == 0);
    if first && slot == 511 {
        log::warn!(target: "syscalls", "system call {nr} does not exist: ENOSYS (numbers of 511 and above are reported once)");
    } else if first {
        log::warn!(target: "syscalls", "{} ({nr}) is not implemented: ENOSYS", name(nr));
    }
    Err(Errno::ENOSYS)
}

/// The name of an x86-64 system call, for the log.
pub fn name(nr: u64) -> &'static str {
    const NAMES: &[&str] = &[
        "read",
        "write",
        "open",
        "close",
        "stat",
        "fstat",
        "lstat",
        "poll",
        "lseek",
        "mmap",
        "mprotect",
        "munmap",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "ioctl",
        "pread64",
        "pwrite64",
        "readv",
        "writev",
        "access",
        "pipe",
        "select",
        "sched_yield",
        "mremap",
        "msync",
        "mincore",
        "madvise",
        "shmget",
        "shmat",
        "shmctl",
        "dup",
        "dup2",
        "pause",
        "nanosleep",
        "getitimer",
        "alarm",
        "setitimer",
        "getpid",
        "sendfile",
        "socket",
        "connect",
        "accept",
        "sendto",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "shutdown",
        "bind",
        "listen",
        "getsockname",
        "getpeername",
        "socketpair",
        "setsockopt",
        "getsockopt",
        "clone",
        "fork",
        "vfork",
        "execve",
        "exit",
        "wait4",
        "kill",
        "uname",
        "semget",
        "semop",
        "semctl",
        "shmdt",
        "msgget",
        "msgsnd",
        "msgrcv",
        "msgctl",
        "fcntl",
        "flock",
        "fsync",
        "fdatasync",
        "truncate",
        "ftruncate",
        "getdents",
        "getcwd",
        "chdir",
        "fchdir",
        "rename",
        "mkdir",
        "rmdir",
        "creat",
        "link",
        "unlink",
        "symlink",
        "readlink",
        "chmod",
        "fchmod",
        "chown",
        "fchown",
        "lchown",
        "umask",
        "gettimeofday",
        "getrlimit",
        "getrusage",
        "sysinfo",
        "times",
        "ptrace",
        "getuid",
        "syslog",
        "getgid",
        "setuid",
        "setgid",
        "geteuid",
        "getegid",
        "setpgid",
        "getppid",
        "getpgrp",
        "setsid",
        "setreuid",
        "setregid",
        "getgroups",
        "setgroups",
        "setresuid",
        "getresuid",
        "setresgid",
        "getresgid",
        "getpgid",
        "setfsuid",
        "setfsgid",
        "getsid",
        "capget",
        "capset",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "rt_sigsuspend",
        "sigaltstack",
        "utime",
        "mknod",
        "uselib",
        "personality",
        "ustat",
        "statfs",
        "fstatfs",
        "sysfs",
        "getpriority",
        "setpriority",
        "sched_setparam",
        "sched_getparam",
        "sched_setscheduler",
        "sched_getscheduler",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_rr_get_interval",
        "mlock",
        "munlock",
        "mlockall",
        "munlockall",
        "vhangup",
        "modify_ldt",
        "pivot_root",
        "_sysctl",
        "prctl",
        "arch_prctl",
    ];
    match nr {
        0..=158 => NAMES.get(nr as usize).copied().unwrap_or("?"),
        186 => "gettid",
        200 => "tkill",
        201 => "time",
        202 => "futex",
        203 => "sched_setaffinity",
        204 => "sched_getaffinity",
        217 => "getdents64",
        218 => "set_tid_address",
        221 => "fadvise64",
        228 => "clock_gettime",
        229 => "clock_getres",
        230 => "clock_nanosleep",
        231 => "exit_group",
        234 => "tgkill",
        247 => "waitid",
        257 => "openat",
        258 => "mkdirat",
        262 => "newfstatat",
        263 => "unlinkat",
        264 => "renameat",
        265 => "linkat",
        266 => "symlinkat",
        267 => "readlinkat",
        268 => "fchmodat",
        269 => "faccessat",
        270 => "pselect6",
        271 => "ppoll",
        273 => "set_robust_list",
        274 => "get_robust_list",
        280 => "utimensat",
        292 => "dup3",
        293 => "pipe2",
        302 => "prlimit64",
        309 => "getcpu",
        316 => "renameat2",
        318 => "getrandom",
        325 => "mlock2",
        332 => "statx",
        334 => "rseq",
        435 => "clone3",
        439 => "faccessat2",
        _ => "an unknown system call",
    }
}
