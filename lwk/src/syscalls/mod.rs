//! The Linux system-call interface of native jobs: one dispatch on the x86-64 system-call
//! number, then the subsystem that owns the call. Arguments are untrusted: every pointer goes
//! through the address space's checked copies (EFAULT), every number is range-checked. A call
//! the kernel does not implement returns ENOSYS and is logged once with its name.

pub mod entry;
mod files;
pub mod futex;
mod identity;
mod memory;
mod process;
mod time;

use crate::task::interrupt_entry::TrapFrame;
use crate::task::process::Process;
use crate::task::thread::Thread;
use crate::{task::scheduler, task::signals};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::util::errno::Errno;

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
    // Calls that waited and were interrupted by a signal run again after it (see `restarts`).
    if result == Err(Errno::EINTR) && restarts(nr) {
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

/// The system calls: number, name, `no_restart` for a call that reports EINTR instead of running
/// again after a signal handler, and the handler (`c` is the [`Call`]). A row without a handler
/// names a call the kernel does not implement (ENOSYS, logged once with its name). Dispatch
/// ([`route`]), names ([`name`]) and the restartable set ([`restarts`]) all come from it.
macro_rules! system_calls {
    ($c:ident; $( $nr:literal $name:ident $(: $flag:ident)? $(=> $handler:expr)?; )*) => {
        fn route(nr: u64, $c: &mut Call) -> SysResult {
            match nr {
                $( $( $nr => $handler, )? )*
                _ => unimplemented(nr),
            }
        }

        /// The name of an x86-64 system call, for the log.
        pub fn name(nr: u64) -> &'static str {
            match nr {
                $( $nr => stringify!($name), )*
                _ => "an unknown system call",
            }
        }

        /// Whether a call that a signal interrupted (EINTR) runs again after the signal, unless
        /// a handler without SA_RESTART takes it (pause, sigsuspend, the sleeps and the waits
        /// for files report EINTR, as on Linux).
        fn restarts(nr: u64) -> bool {
            match nr {
                $( $nr => restarts!($($flag)?), )*
                _ => true,
            }
        }
    };
}

macro_rules! restarts {
    () => {
        true
    };
    (no_restart) => {
        false
    };
}

system_calls! { c;
    0 read => files::read(c);
    1 write => files::write(c);
    2 open => files::open(c);
    3 close => files::close(c);
    4 stat => files::stat(c);
    5 fstat => files::fstat(c);
    6 lstat => files::lstat(c);
    7 poll: no_restart => files::poll(c);
    8 lseek => files::lseek(c);
    9 mmap => memory::mmap(c);
    10 mprotect => memory::mprotect(c);
    11 munmap => memory::munmap(c);
    12 brk => memory::brk(c);
    13 rt_sigaction => process::rt_sigaction(c);
    14 rt_sigprocmask => process::rt_sigprocmask(c);
    15 rt_sigreturn => process::rt_sigreturn(c);
    16 ioctl => files::ioctl(c);
    17 pread64 => files::pread64(c);
    18 pwrite64 => files::pwrite64(c);
    19 readv => files::readv(c);
    20 writev => files::writev(c);
    21 access => files::access(c);
    22 pipe => files::pipe(c);
    23 select: no_restart => files::select(c);
    24 sched_yield => { scheduler::yield_now(); Ok(0) };
    25 mremap => memory::mremap(c);
    26 msync => memory::msync(c);
    27 mincore => memory::mincore(c);
    28 madvise => memory::madvise(c);
    29 shmget;
    30 shmat;
    31 shmctl;
    32 dup => files::dup(c);
    33 dup2 => files::dup2(c);
    34 pause: no_restart => process::pause(c);
    35 nanosleep: no_restart => time::nanosleep(c);
    36 getitimer;
    37 alarm;
    38 setitimer;
    39 getpid => Ok(c.process.pid as u64);
    40 sendfile => files::sendfile(c);
    41 socket;
    42 connect;
    43 accept;
    44 sendto;
    45 recvfrom;
    46 sendmsg;
    47 recvmsg;
    48 shutdown;
    49 bind;
    50 listen;
    51 getsockname;
    52 getpeername;
    53 socketpair;
    54 setsockopt;
    55 getsockopt;
    56 clone => process::clone(c);
    57 fork => process::fork(c);
    58 vfork => process::vfork(c);
    59 execve => process::execve(c);
    60 exit => process::exit(c);
    61 wait4 => process::wait4(c);
    62 kill => process::kill(c);
    63 uname => identity::uname(c);
    64 semget;
    65 semop;
    66 semctl;
    67 shmdt;
    68 msgget;
    69 msgsnd;
    70 msgrcv;
    71 msgctl;
    72 fcntl => files::fcntl(c);
    73 flock;
    74 fsync => files::fsync(c);
    75 fdatasync => files::fsync(c);
    76 truncate => files::truncate(c);
    77 ftruncate => files::ftruncate(c);
    78 getdents => files::getdents(c);
    79 getcwd => files::getcwd(c);
    80 chdir => files::chdir(c);
    81 fchdir => files::fchdir(c);
    82 rename => files::rename(c);
    83 mkdir => files::mkdir(c);
    84 rmdir => files::rmdir(c);
    85 creat => files::creat(c);
    86 link => files::link(c);
    87 unlink => files::unlink(c);
    88 symlink => files::symlink(c);
    89 readlink => files::readlink(c);
    90 chmod => files::chmod(c);
    91 fchmod => files::fchmod(c);
    92 chown;
    93 fchown;
    94 lchown;
    95 umask => files::umask(c);
    96 gettimeofday => time::gettimeofday(c);
    97 getrlimit => identity::getrlimit(c);
    98 getrusage => time::getrusage(c);
    99 sysinfo => time::sysinfo(c);
    100 times => time::times(c);
    101 ptrace;
    // Everything runs as root.
    102 getuid => Ok(0);
    103 syslog;
    104 getgid => Ok(0);
    105 setuid;
    106 setgid;
    107 geteuid => Ok(0);
    108 getegid => Ok(0);
    109 setpgid => process::setpgid(c);
    110 getppid => Ok(c.process.parent.load(core::sync::atomic::Ordering::Relaxed) as u64);
    111 getpgrp => process::getpgrp(c);
    112 setsid => process::setsid(c);
    113 setreuid;
    114 setregid;
    115 getgroups;
    116 setgroups;
    117 setresuid;
    118 getresuid;
    119 setresgid;
    120 getresgid;
    121 getpgid => process::getpgid(c);
    122 setfsuid;
    123 setfsgid;
    124 getsid => process::getsid(c);
    125 capget;
    126 capset;
    127 rt_sigpending => process::rt_sigpending(c);
    128 rt_sigtimedwait;
    129 rt_sigqueueinfo;
    130 rt_sigsuspend: no_restart => process::rt_sigsuspend(c);
    131 sigaltstack => process::sigaltstack(c);
    132 utime;
    133 mknod;
    134 uselib;
    135 personality;
    136 ustat;
    137 statfs => files::statfs(c);
    138 fstatfs => files::fstatfs(c);
    139 sysfs;
    140 getpriority;
    141 setpriority;
    142 sched_setparam;
    143 sched_getparam;
    144 sched_setscheduler;
    145 sched_getscheduler;
    146 sched_get_priority_max;
    147 sched_get_priority_min;
    148 sched_rr_get_interval;
    149 mlock => memory::mlock(c);
    150 munlock => memory::mlock(c);
    151 mlockall => memory::mlockall(c);
    // Nothing is locked beyond what always is.
    152 munlockall => Ok(0);
    153 vhangup;
    154 modify_ldt;
    155 pivot_root;
    156 _sysctl;
    157 prctl => process::prctl(c);
    158 arch_prctl => identity::arch_prctl(c);
    186 gettid => Ok(c.thread.tid as u64);
    200 tkill => process::tkill(c);
    201 time => time::time(c);
    202 futex => futex::futex(c);
    203 sched_setaffinity => identity::sched_setaffinity(c);
    204 sched_getaffinity => identity::sched_getaffinity(c);
    217 getdents64 => files::getdents64(c);
    218 set_tid_address => identity::set_tid_address(c);
    221 fadvise64 => files::fadvise64(c);
    228 clock_gettime => time::clock_gettime(c);
    229 clock_getres => time::clock_getres(c);
    230 clock_nanosleep: no_restart => time::clock_nanosleep(c);
    231 exit_group => process::exit_group(c);
    234 tgkill => process::tgkill(c);
    247 waitid => process::waitid(c);
    257 openat => files::openat(c);
    258 mkdirat => files::mkdirat(c);
    262 newfstatat => files::newfstatat(c);
    263 unlinkat => files::unlinkat(c);
    264 renameat => files::renameat2(c);
    265 linkat => files::linkat(c);
    266 symlinkat => files::symlinkat(c);
    267 readlinkat => files::readlinkat(c);
    268 fchmodat => files::fchmodat(c);
    269 faccessat => files::faccessat(c);
    270 pselect6: no_restart => files::pselect6(c);
    271 ppoll: no_restart => files::ppoll(c);
    273 set_robust_list => identity::set_robust_list(c);
    274 get_robust_list => identity::get_robust_list(c);
    280 utimensat => files::utimensat(c);
    292 dup3 => files::dup3(c);
    293 pipe2 => files::pipe2(c);
    302 prlimit64 => identity::prlimit64(c);
    309 getcpu => identity::getcpu(c);
    316 renameat2 => files::renameat2(c);
    318 getrandom => identity::getrandom(c);
    325 mlock2 => memory::mlock2(c);
    332 statx => files::statx(c);
    // Not implemented, not logged: glibc works without it.
    334 rseq => Err(Errno::ENOSYS);
    435 clone3 => process::clone3(c);
    439 faccessat2 => files::faccessat(c);
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
