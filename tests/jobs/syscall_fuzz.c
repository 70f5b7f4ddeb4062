/*
 * syscall_fuzz: a randomized system-call job. Whatever a process asks, with whatever arguments,
 * the kernel must answer with a result, an error number or a signal to that process, and stay
 * up for the next one.
 *
 * Usage: syscall_fuzz [SEED [CALLS [FIRST_BLOCK]]] (defaults 1, 100000 and 0). The parent forks
 * one worker per block of 1000 calls (the last block may be smaller), reaps it before forking
 * the next, and goes on until CALLS calls were attempted. A block's calls come from a xorshift64
 * generator seeded from (SEED, block index), so "syscall_fuzz SEED 1000 B" runs block B again.
 *
 * A worker first opens its descriptors: 3 /dev/null, 4 /tmp/fuzz/file, 5 and 6 a pipe (read,
 * write; non-blocking), 7 /proc/self/maps, 8 "/", 9 /tmp/fuzz (a directory), 10 /dev/zero; it
 * maps a 64 KiB buffer (with a PROT_NONE guard page after it) filled with random bytes and moves
 * into /tmp/fuzz. Then each call: a system-call number from 0 to 460 drawn at random, redrawn
 * while it is one of the excluded calls (below), six arguments drawn from interesting values:
 * 0, 1, -1, the buffer, the buffer + 4093 (unaligned, straddling a page), a random place in the
 * buffer, an unmapped address (0x13370000), kernel addresses (0xffffffff81000000,
 * 0xffff800000000000), non-canonical ones (0x0000800000000000, 0x8000000000000000), huge lengths
 * (0x7fffffffffffffff, 0xffffffffffffffff, 1 << 40), small ones (16, 4096, below 256),
 * descriptors (-100 = AT_FDCWD, 0 to 10), random 64-bit values, random flag bits, and the path
 * strings. No output per call: a worker writes nothing of its own. It may well die of a signal
 * (it can unmap its own code or stack, or get SIGPIPE); the parent counts the signals.
 *
 * Excluded, because they would end, stop or block the worker, or reach beyond the test (the
 * program also runs natively on a Linux host as a sanity check): exit, exit_group, fork, vfork,
 * clone, clone3, execve, execveat, uretprobe and uprobe (335 and 336: SIGILL outside Linux's
 * uprobe trampolines); signals to processes (kill, tkill, tgkill, rt_sigqueueinfo,
 * rt_tgsigqueueinfo, the pidfd calls); rt_sigreturn, pause, rt_sigsuspend, rt_sigtimedwait; the
 * sleeps and waits (nanosleep, clock_nanosleep, futex, futex_waitv, futex_wait, select, pselect6,
 * poll, ppoll, the epoll waits, wait4, waitid, io_getevents, io_pgetevents, io_submit, flock);
 * reads (read, readv, pread64, preadv, preadv2) and sockets; SysV IPC and POSIX message queues;
 * io_uring; timers that signal (alarm, setitimer, timer_create, timer_settime); splice, tee,
 * vmsplice, sendfile; ptrace, process_vm_readv/writev; what changes the machine or its
 * identities: mount and the new mount calls, umount2, pivot_root, chroot, swapon, swapoff,
 * sethostname, setdomainname, settimeofday, clock_settime, clock_adjtime, adjtimex, the module
 * calls, kexec_load, kexec_file_load, reboot, acct, quotactl, quotactl_fd, iopl, ioperm, the
 * set*id calls, setgroups, capset, unshare, setns, bpf, perf_event_open, fanotify_init,
 * personality, mlockall, munlockall, prctl, arch_prctl, seccomp, userfaultfd, mknod, mknodat,
 * open_by_handle_at, syslog, vhangup, sync, syncfs, _sysctl, the key calls.
 *
 * And arguments are tamed where a value would reach beyond the worker: a path argument is always
 * one of the worker's strings naming something under /tmp/fuzz/ (rewritten before every call, no
 * "..", so symbolic links made by the fuzzing point there too) or a bad pointer; calls that
 * change a file through a descriptor (fchmod, fchown, the f*xattr calls, ftruncate, fallocate,
 * fchdir, the directory of the *at calls) get -1 instead of a device or a file or directory
 * outside /tmp/fuzz's file system, ioctl the same except for character devices; calls that
 * name a process (sched_set*, setpriority, ioprio_set, prlimit64, migrate_pages, move_pages,
 * kcmp, setpgid) get 0, the worker's own pid or a pid that does not exist; fcntl F_SETFL (it
 * could make the pipe blocking), the waiting lock commands, F_SETLEASE and F_SETOWN* become their
 * harmless counterparts, as do the terminal ioctls that set state; pipe and eventfd are made
 * non-blocking; madvise loses MADV_HWPOISON and MADV_SOFT_OFFLINE; a write to descriptors 0 to 2,
 * or to a descriptor that is the same file as one of them (the console), is cut to 255 bytes.
 *
 * The parent prints "syscall_fuzz: N calls in B blocks, K blocks killed by signals (...), seed S"
 * (N counts the calls of every block started: a block killed by a signal ends early) and exits 0
 * unless it sees something impossible. A block still running after 60 seconds is
 * killed and reported (with the command that runs it again), not failed. Before each block the
 * parent empties /tmp/fuzz, and removes it at the end. Output goes through write(2); a failure
 * is one line on stderr, "syscall_fuzz: FAIL <code>: <what>", and the exit status is its code.
 * The workers' few console writes (at most 255 random bytes each, about 2 KB per 100000 calls)
 * go to the same output.
 *
 * Natively on Linux: run it in a scratch mount namespace with its own /tmp, as an unprivileged
 * user if possible, with its output a pipe or a terminal rather than a file (a pwrite at a random
 * offset, or an lseek of the shared descriptor, would land in the file).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECKS_PROGRAM "syscall_fuzz"
#include "checks.h"

enum failure {
    FAIL_USAGE = 2,          /* malformed arguments */
    FAIL_FORK = 10,          /* fork failed with other than EAGAIN */
    FAIL_FORK_EAGAIN = 11,   /* fork kept failing with EAGAIN for a minute */
    FAIL_WAIT = 12,          /* waitpid for a worker failed */
    FAIL_WORKER_EXIT = 13,   /* a worker exited with a status other than 0 (it never calls exit) */
    FAIL_WORKER_SETUP = 14,  /* a worker could not map its buffer (it exits with WORKER_NO_BUFFER) */
};

#define BLOCK 1000
#define MOST_NR 460
#define FUZZ_DIR "/tmp/fuzz"
#define BUFFER_SIZE (64 * 1024)
#define PAGE 4096
#define TIMEOUT_SECONDS 60
#define WORKER_NO_BUFFER 3

/* Calls newer than the C library's headers. */
#define NR_cachestat 451
#define NR_fchmodat2 452
#define NR_map_shadow_stack 453
#define NR_futex_wake 454
#define NR_futex_wait 455
#define NR_futex_requeue 456
/* Called from anywhere but the kernel's uprobe trampolines, these send SIGILL (Linux 6.11+). */
#define NR_uretprobe 335
#define NR_uprobe 336

/* ---- the generator ---- */

static uint64_t state;

static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- the excluded calls ---- */

static const int excluded_calls[] = {
    /* would end the worker or start another process */
    SYS_exit, SYS_exit_group, SYS_fork, SYS_vfork, SYS_clone, SYS_clone3, SYS_execve, SYS_execveat, NR_uretprobe,
    NR_uprobe,
    /* signals to processes */
    SYS_kill, SYS_tkill, SYS_tgkill, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_pidfd_send_signal,
    SYS_pidfd_open, SYS_pidfd_getfd,
    /* would block or jump */
    SYS_rt_sigreturn, SYS_pause, SYS_rt_sigsuspend, SYS_rt_sigtimedwait, SYS_nanosleep, SYS_clock_nanosleep,
    SYS_futex, SYS_futex_waitv, NR_futex_wait, SYS_select, SYS_pselect6, SYS_poll, SYS_ppoll, SYS_epoll_wait,
    SYS_epoll_pwait, SYS_epoll_pwait2, SYS_epoll_wait_old, SYS_wait4, SYS_waitid, SYS_read, SYS_readv,
    SYS_pread64, SYS_preadv, SYS_preadv2, SYS_io_getevents, SYS_io_pgetevents, SYS_io_submit, SYS_flock,
    /* sockets */
    SYS_socket, SYS_socketpair, SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_sendto,
    SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown, SYS_getsockname,
    SYS_getpeername, SYS_setsockopt, SYS_getsockopt,
    /* SysV IPC, message queues, io_uring: objects that outlive the worker, or waits */
    SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_semget, SYS_semop, SYS_semctl, SYS_semtimedop,
    SYS_shmget, SYS_shmat, SYS_shmctl, SYS_shmdt, SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend,
    SYS_mq_timedreceive, SYS_mq_notify, SYS_mq_getsetattr, SYS_io_uring_setup, SYS_io_uring_enter,
    SYS_io_uring_register,
    /* timers that signal; pipes moved without end */
    SYS_alarm, SYS_setitimer, SYS_timer_create, SYS_timer_settime, SYS_splice, SYS_tee, SYS_vmsplice,
    SYS_sendfile,
    /* other processes' memory */
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev,
    /* the machine: file systems, time, modules, power, accounting, privileges, namespaces */
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_swapon, SYS_swapoff, SYS_open_tree, SYS_move_mount,
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_mount_setattr, SYS_sethostname, SYS_setdomainname,
    SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_adjtimex, SYS_init_module, SYS_finit_module,
    SYS_delete_module, SYS_create_module, SYS_get_kernel_syms, SYS_query_module, SYS_kexec_load,
    SYS_kexec_file_load, SYS_reboot, SYS_acct, SYS_quotactl, SYS_quotactl_fd, SYS_iopl, SYS_ioperm, SYS_setuid,
    SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setfsuid, SYS_setfsgid,
    SYS_setgroups, SYS_capset, SYS_unshare, SYS_setns, SYS_bpf, SYS_perf_event_open, SYS_fanotify_init,
    SYS_personality, SYS_mlockall, SYS_munlockall, SYS_prctl, SYS_arch_prctl, SYS_seccomp, SYS_userfaultfd,
    SYS_mknod, SYS_mknodat, SYS_open_by_handle_at, SYS_syslog, SYS_vhangup, SYS_sync, SYS_syncfs, SYS__sysctl,
    SYS_nfsservctl, SYS_add_key, SYS_request_key, SYS_keyctl,
};

static unsigned char excluded[MOST_NR + 1];

/* ---- the worker's world ---- */

/* The 64 KiB buffer; its last page holds the path strings and the iovec for console writes,
 * rewritten before every call (calls write into the buffer). */
static char *buffer;
#define IOV_AT (BUFFER_SIZE - 2 * PAGE)
#define STRINGS_AT (BUFFER_SIZE - PAGE)
/* One copy of a path starts 5 bytes before a page boundary, so that it straddles it. */
#define STRADDLING_AT (BUFFER_SIZE - 3 * PAGE - 5)

static const char *const paths[] = {
    FUZZ_DIR "/file", FUZZ_DIR "/a",     FUZZ_DIR "/b",         FUZZ_DIR "/d",
    FUZZ_DIR "/d/e",  FUZZ_DIR "/a/x",   FUZZ_DIR,              FUZZ_DIR "/l",
    FUZZ_DIR "/missing/x", FUZZ_DIR "/d/e/", FUZZ_DIR "/LONG", /* replaced by a name of 300 bytes */
};
#define PATHS (sizeof paths / sizeof paths[0])
static size_t path_offsets[PATHS];
static char strings[PAGE];
static size_t strings_size;

/* The worker's descriptors 0 to 2 as fstat saw them, to know the console behind a copy. */
static struct stat console[3];
static int console_known[3];
/* The device of /tmp/fuzz's file system ((dev_t)-1 if unknown: then no file passes as ours). */
static dev_t fuzz_dev = (dev_t)-1;
static pid_t self;

static void build_strings(void) {
    size_t at = 0;
    for (size_t i = 0; i < PATHS; i++) {
        path_offsets[i] = at;
        if (strcmp(paths[i], FUZZ_DIR "/LONG") == 0) {
            at += (size_t)snprintf(strings + at, sizeof strings - at, "%s/", FUZZ_DIR);
            memset(strings + at, 'x', 300);
            at += 300;
            strings[at++] = '\0';
        } else {
            at += (size_t)snprintf(strings + at, sizeof strings - at, "%s", paths[i]) + 1;
        }
    }
    strings_size = at;
}

/* Rewrites the strings (and the straddling copy of the first path) into the buffer. */
static void refresh_strings(void) {
    memcpy(buffer + STRINGS_AT, strings, strings_size);
    memcpy(buffer + STRADDLING_AT, paths[0], strlen(paths[0]) + 1);
}

/* A path argument: one of the strings (or the straddling copy), or a bad pointer. */
static uint64_t pick_path(void) {
    uint64_t r = next();
    switch (r % 10) {
    case 0:
        return 0;
    case 1:
        return 0x13370000;
    case 2:
        return (r >> 8) & 1 ? 0xffffffff81000000ULL : 0x0000800000000000ULL;
    case 3:
        return (uint64_t)(uintptr_t)(buffer + STRADDLING_AT);
    default:
        return (uint64_t)(uintptr_t)(buffer + STRINGS_AT + path_offsets[(r >> 8) % PATHS]);
    }
}

/* Any argument. */
static uint64_t pick_value(void) {
    uint64_t r = next();
    switch (r % 26) {
    case 0: return 0;
    case 1: return 1;
    case 2: return (uint64_t)-1;
    case 3: return (uint64_t)(uintptr_t)buffer;
    case 4: return (uint64_t)(uintptr_t)(buffer + 4093);
    case 5: return (uint64_t)(uintptr_t)(buffer + ((r >> 8) % (BUFFER_SIZE / 8)) * 8);
    case 6: return 0x13370000;
    case 7: return 0xffffffff81000000ULL;
    case 8: return 0xffff800000000000ULL;
    case 9: return 0x0000800000000000ULL;
    case 10: return 0x8000000000000000ULL;
    case 11: return 0x7fffffffffffffffULL;
    case 12: return 0xffffffffffffffffULL;
    case 13: return 1ULL << 40;
    case 14: return 16;
    case 15: return 4096;
    case 16: return (uint64_t)-100; /* AT_FDCWD */
    case 17:
    case 18: return (r >> 8) % 11;   /* descriptors 0 to 10 */
    case 19:
    case 20: return next();
    case 21: return (r >> 8) & 0x1fffff; /* flag bits (O_*, MAP_*, ...) */
    case 22: return (r >> 8) % 256;
    case 23: return (uint64_t)(O_CREAT | O_RDWR | ((r >> 8) & (O_TRUNC | O_APPEND | O_EXCL | O_NONBLOCK | O_CLOEXEC)));
    case 24: return pick_path();
    default: return (uint64_t)(uintptr_t)(buffer + BUFFER_SIZE - ((r >> 8) % 64)); /* near the end */
    }
}

/* A process argument: this process (0 or its pid), -1, or a pid above any pid_max (the kernel
 * reads a pid_t, the low 32 bits). */
static uint64_t pick_pid(void) {
    switch (next() % 4) {
    case 0: return 0;
    case 1: return (uint64_t)self;
    case 2: return (uint64_t)-1;
    default: return (next() & 0xffffffff00000000ULL) | (0x40000000 + next() % 0x3fffffff);
    }
}

/* Whether a descriptor may be changed through (metadata, size, working directory): nothing that
 * could be outside the test's files. Character devices pass only when `devices` is set. */
static int ours(uint64_t argument, int devices) {
    int fd = (int)(uint32_t)argument; /* what the kernel reads */
    if (fd < 0) {
        return 1; /* invalid, or AT_FDCWD (the working directory stays under /tmp/fuzz) */
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return 1; /* EBADF either way */
    }
    if (S_ISBLK(st.st_mode)) {
        return 0;
    }
    if (S_ISCHR(st.st_mode)) {
        return devices;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) {
        return st.st_dev == fuzz_dev;
    }
    return 1; /* pipes, sockets, anonymous inodes */
}

static void tame_fd(uint64_t *fd, int devices) {
    if (!ours(*fd, devices)) {
        *fd = (uint64_t)-1;
    }
}

/* Whether fd is the console: 0 to 2, or the same file as one of them. */
static int is_console(uint64_t argument) {
    int fd = (int)(uint32_t)argument; /* what the kernel reads */
    if (fd >= 0 && fd <= 2) {
        return 1;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        if (console_known[i] && st.st_dev == console[i].st_dev && st.st_ino == console[i].st_ino &&
            st.st_rdev == console[i].st_rdev) {
            return 1;
        }
    }
    return 0;
}

#define CONSOLE_MOST 255

/* Where the path arguments of a call are (bit i: argument i), and its directory descriptors. */
static unsigned path_args(long nr, unsigned *dirfds) {
    *dirfds = 0;
    switch (nr) {
    case SYS_open: case SYS_stat: case SYS_lstat: case SYS_access: case SYS_truncate: case SYS_chdir:
    case SYS_mkdir: case SYS_rmdir: case SYS_creat: case SYS_unlink: case SYS_readlink: case SYS_chmod:
    case SYS_chown: case SYS_lchown: case SYS_utime: case SYS_uselib: case SYS_statfs: case SYS_setxattr:
    case SYS_lsetxattr: case SYS_getxattr: case SYS_lgetxattr: case SYS_listxattr: case SYS_llistxattr:
    case SYS_removexattr: case SYS_lremovexattr: case SYS_utimes:
        return 1u << 0;
    case SYS_rename: case SYS_link: case SYS_symlink:
        return 1u << 0 | 1u << 1;
    case SYS_inotify_add_watch:
        return 1u << 1;
    case SYS_openat: case SYS_mkdirat: case SYS_fchownat: case SYS_futimesat: case SYS_newfstatat:
    case SYS_unlinkat: case SYS_readlinkat: case SYS_fchmodat: case SYS_faccessat: case SYS_utimensat:
    case SYS_name_to_handle_at: case SYS_statx: case SYS_openat2: case SYS_faccessat2: case NR_fchmodat2:
        *dirfds = 1u << 0;
        return 1u << 1;
    case SYS_renameat: case SYS_linkat: case SYS_renameat2:
        *dirfds = 1u << 0 | 1u << 2;
        return 1u << 1 | 1u << 3;
    case SYS_symlinkat:
        *dirfds = 1u << 1;
        return 1u << 0 | 1u << 2;
    case SYS_fanotify_mark:
        *dirfds = 1u << 3;
        return 1u << 4;
    default:
        return 0;
    }
}

/* Terminal ioctls that only read; the others of the 0x54xx range set state (or inject input). */
static int harmless_tty_ioctl(uint32_t cmd) {
    static const uint32_t reading[] = {0x5401, 0x5405, 0x540f, 0x5411, 0x5413, 0x541b, 0x5424, 0x5429};
    for (size_t i = 0; i < sizeof reading / sizeof reading[0]; i++) {
        if (cmd == reading[i]) {
            return 1;
        }
    }
    return (cmd & 0xff00) != 0x5400;
}

/* Tames a call's arguments (see the header); may change the call (pipe to pipe2, eventfd to
 * eventfd2). */
static long tame(long nr, uint64_t a[6]) {
    unsigned dirfds;
    unsigned paths_mask = path_args(nr, &dirfds);
    for (int i = 0; i < 6; i++) {
        if (paths_mask & (1u << i)) {
            a[i] = pick_path();
        }
        if (dirfds & (1u << i)) {
            tame_fd(&a[i], 0);
        }
    }
    switch (nr) {
    case SYS_fchmod: case SYS_fchown: case SYS_fsetxattr: case SYS_fremovexattr: case SYS_ftruncate:
    case SYS_fallocate: case SYS_fchdir:
        tame_fd(&a[0], 0);
        break;
    case SYS_ioctl:
        tame_fd(&a[0], 1);
        if (!harmless_tty_ioctl((uint32_t)a[1]) || (uint32_t)a[1] == 0x8901 || (uint32_t)a[1] == 0x8902) {
            a[1] = 0x541b; /* FIONREAD */
        }
        break;
    case SYS_fcntl:
        switch ((uint32_t)a[1]) { /* the kernel reads an unsigned int */
        case F_SETFL: a[1] = F_GETFL; break;
        case F_SETLKW: a[1] = F_SETLK; break;
        case F_OFD_SETLKW: a[1] = F_OFD_GETLK; break;
        case F_SETLEASE: a[1] = F_GETLEASE; break;
        case F_SETOWN_EX: a[1] = F_GETOWN_EX; break;
        case F_SETOWN: a[2] = next() & 1 ? 0 : (uint64_t)self; break;
        }
        break;
    case SYS_sched_setaffinity: case SYS_sched_setparam: case SYS_sched_setscheduler: case SYS_sched_setattr:
    case SYS_prlimit64: case SYS_migrate_pages: case SYS_move_pages:
        a[0] = pick_pid();
        break;
    case SYS_kcmp: case SYS_setpgid:
        a[0] = pick_pid();
        a[1] = pick_pid();
        break;
    case SYS_setpriority:
        a[0] = 0; /* PRIO_PROCESS */
        a[1] = pick_pid();
        break;
    case SYS_ioprio_set:
        a[0] = 1; /* IOPRIO_WHO_PROCESS */
        a[1] = pick_pid();
        break;
    case SYS_madvise:
        if ((uint32_t)a[2] == 100 || (uint32_t)a[2] == 101) { /* MADV_HWPOISON, MADV_SOFT_OFFLINE */
            a[2] = 0;
        }
        break;
    case SYS_process_madvise:
        if ((uint32_t)a[3] == 100 || (uint32_t)a[3] == 101) {
            a[3] = 0;
        }
        break;
    case SYS_pipe:
        nr = SYS_pipe2;
        a[1] = O_NONBLOCK;
        break;
    case SYS_pipe2:
        a[1] |= O_NONBLOCK;
        break;
    case SYS_eventfd:
        nr = SYS_eventfd2;
        a[1] = 04000; /* EFD_NONBLOCK */
        break;
    case SYS_eventfd2:
        a[1] |= 04000;
        break;
    case SYS_write: case SYS_pwrite64:
        if (is_console(a[0])) {
            a[2] %= CONSOLE_MOST + 1;
        }
        break;
    case SYS_writev: case SYS_pwritev: case SYS_pwritev2:
        if (is_console(a[0])) {
            uint64_t iov[2] = {(uint64_t)(uintptr_t)buffer, a[2] % (CONSOLE_MOST + 1)};
            memcpy(buffer + IOV_AT, iov, sizeof iov);
            a[1] = (uint64_t)(uintptr_t)(buffer + IOV_AT);
            a[2] = 1;
        }
        break;
    case SYS_copy_file_range:
        if (is_console(a[2])) {
            a[4] %= CONSOLE_MOST + 1;
        }
        break;
    }
    return nr;
}

/* Keeps the descriptor `opened` (closed here) for number `at`, parked at 100 + at until all are
 * open, so that one failed open does not shift the others. */
static int parked[16];

static void park(int opened, int at) {
    parked[at] = -1;
    if (opened >= 0) {
        parked[at] = fcntl(opened, F_DUPFD, 100 + at);
        close(opened);
    }
}

static void worker(uint64_t seed, uint64_t block, int calls) {
    self = getpid();
    state = splitmix(splitmix(seed) ^ block) | 1;
    for (int fd = 3; fd < 256; fd++) {
        close(fd);
    }
    for (int fd = 0; fd < 3; fd++) {
        console_known[fd] = fstat(fd, &console[fd]) == 0;
    }
    mkdir(FUZZ_DIR, 0777);
    park(open("/dev/null", O_RDWR), 3);
    park(open(FUZZ_DIR "/file", O_RDWR | O_CREAT, 0644), 4);
    int pipe_ends[2] = {-1, -1};
    if (pipe2(pipe_ends, O_NONBLOCK) != 0) {
        pipe_ends[0] = pipe_ends[1] = -1;
    }
    park(pipe_ends[0], 5);
    park(pipe_ends[1], 6);
    park(open("/proc/self/maps", O_RDONLY), 7);
    park(open("/", O_RDONLY | O_DIRECTORY), 8);
    park(open(FUZZ_DIR, O_RDONLY | O_DIRECTORY), 9);
    park(open("/dev/zero", O_RDWR), 10);
    for (int fd = 3; fd <= 10; fd++) {
        if (parked[fd] >= 0) {
            dup2(parked[fd], fd);
            close(parked[fd]);
        }
    }
    struct stat st;
    if (fstat(9, &st) == 0 && S_ISDIR(st.st_mode)) {
        fuzz_dev = st.st_dev;
    }
    if (chdir(FUZZ_DIR) != 0) {
        fuzz_dev = (dev_t)-1; /* the working directory is not ours: let no file pass */
    }

    char *mapped = mmap(NULL, BUFFER_SIZE + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) {
        _exit(WORKER_NO_BUFFER);
    }
    mprotect(mapped + BUFFER_SIZE, PAGE, PROT_NONE);
    buffer = mapped;
    for (size_t i = 0; i < BUFFER_SIZE; i += 8) {
        uint64_t r = next();
        memcpy(buffer + i, &r, 8);
    }
    build_strings();

    for (int i = 0; i < calls; i++) {
        long nr;
        do {
            nr = (long)(next() % (MOST_NR + 1));
        } while (excluded[nr]);
        uint64_t a[6];
        for (int j = 0; j < 6; j++) {
            a[j] = pick_value();
        }
        nr = tame(nr, a);
        refresh_strings();
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    _exit(0);
}

/* ---- the parent ---- */

/* Empties (and removes) a directory tree through descriptors, never following a link. */
static void remove_entries(int dir, int depth) {
    char listing[4096] __attribute__((aligned(8)));
    for (int pass = 0; pass < 4; pass++) {
        int removed = 0, seen = 0;
        lseek(dir, 0, SEEK_SET);
        for (;;) {
            long n = syscall(SYS_getdents64, dir, listing, sizeof listing);
            if (n <= 0) {
                break;
            }
            for (long at = 0; at < n;) {
                unsigned short length;
                memcpy(&length, listing + at + 16, sizeof length);
                const char *name = listing + at + 19;
                if (length == 0) {
                    break;
                }
                at += length;
                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                    continue;
                }
                seen++;
                if (unlinkat(dir, name, 0) == 0) {
                    removed++;
                    continue;
                }
                int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
                if (sub >= 0) {
                    fchmod(sub, 0700);
                    if (depth < 16) {
                        remove_entries(sub, depth + 1);
                    }
                    close(sub);
                }
                removed += unlinkat(dir, name, AT_REMOVEDIR) == 0;
            }
        }
        if (seen == 0 || removed == 0) {
            break;
        }
    }
}

static void clean_fuzz_dir(void) {
    struct stat st;
    if (lstat(FUZZ_DIR, &st) != 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        unlink(FUZZ_DIR);
        return;
    }
    chmod(FUZZ_DIR, 0755);
    int dir = open(FUZZ_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (dir >= 0) {
        remove_entries(dir, 0);
        close(dir);
    }
    rmdir(FUZZ_DIR);
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Waits for the worker; one still running after TIMEOUT_SECONDS is killed (*timed_out set). */
static int reap(pid_t pid, int *status, int *timed_out) {
    long waited = 0, step = 1;
    *timed_out = 0;
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid) {
            return 0;
        }
        if (got < 0 && errno != EINTR) {
            return -1;
        }
        if (waited >= TIMEOUT_SECONDS * 1000L) {
            kill(pid, SIGKILL);
            *timed_out = 1;
            return waitpid(pid, status, 0) == pid ? 0 : -1;
        }
        pause_ms(step);
        waited += step;
        step = step < 50 ? step * 2 : 50;
    }
}

int main(int argc, char **argv) {
    uint64_t seed = 1;
    long calls = 100000, first_block = 0;
    if (argc > 4 || (argc > 1 && sscanf(argv[1], "%lu", &seed) != 1) ||
        (argc > 2 && (sscanf(argv[2], "%ld", &calls) != 1 || calls <= 0)) ||
        (argc > 3 && (sscanf(argv[3], "%ld", &first_block) != 1 || first_block < 0))) {
        say(2, "usage: syscall_fuzz [SEED [CALLS [FIRST_BLOCK]]]\n");
        return FAIL_USAGE;
    }
    for (size_t i = 0; i < sizeof excluded_calls / sizeof excluded_calls[0]; i++) {
        if (excluded_calls[i] >= 0 && excluded_calls[i] <= MOST_NR) {
            excluded[excluded_calls[i]] = 1;
        }
    }
    int allowed = 0;
    for (int nr = 0; nr <= MOST_NR; nr++) {
        allowed += !excluded[nr];
    }
    say(1, "syscall_fuzz: seed %lu, %ld calls in blocks of %d from block %ld, %d of the numbers 0 to %d drawn\n",
        (unsigned long)seed, calls, BLOCK, first_block, allowed, MOST_NR);

    long attempted = 0, blocks = 0, killed = 0, timeouts = 0;
    long by_signal[65] = {0};
    for (long block = first_block; attempted < calls && first_failure == 0; block++) {
        int count = calls - attempted < BLOCK ? (int)(calls - attempted) : BLOCK;
        clean_fuzz_dir();
        pid_t pid;
        int eagain = 0;
        for (;;) {
            pid = fork();
            if (pid >= 0 || errno != EAGAIN || eagain == 600) {
                break;
            }
            eagain++;
            pause_ms(100);
        }
        if (pid < 0) {
            if (errno == EAGAIN) {
                fail(FAIL_FORK_EAGAIN, "fork kept failing with EAGAIN for a minute (block %ld)", block);
            } else {
                fail(FAIL_FORK, "fork failed with %s (block %ld)", strerrorname_np(errno), block);
            }
            break;
        }
        if (pid == 0) {
            worker(seed, (uint64_t)block, count);
        }
        int status = 0, timed_out;
        if (reap(pid, &status, &timed_out) != 0) {
            fail(FAIL_WAIT, "waitpid for the worker of block %ld failed: %s", block, strerrorname_np(errno));
            break;
        }
        attempted += count;
        blocks++;
        if (timed_out) {
            timeouts++;
            say(1, "syscall_fuzz: block %ld still running after %d s: killed (again: syscall_fuzz %lu %d %ld)\n", block,
                TIMEOUT_SECONDS, (unsigned long)seed, count, block);
        } else if (WIFSIGNALED(status)) {
            killed++;
            by_signal[WTERMSIG(status) < 65 ? WTERMSIG(status) : 0]++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_NO_BUFFER) {
            fail(FAIL_WORKER_SETUP, "the worker of block %ld could not map its 64 KiB buffer", block);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail(FAIL_WORKER_EXIT, "the worker of block %ld ended with status %#x (again: syscall_fuzz %lu %d %ld)",
                 block, status, (unsigned long)seed, count, block);
        }
    }
    clean_fuzz_dir();

    char signals[400] = "";
    size_t used = 0;
    for (int sig = 1; sig < 65 && used < sizeof signals - 40; sig++) {
        if (by_signal[sig] != 0) {
            const char *name = sigabbrev_np(sig);
            char number[16];
            snprintf(number, sizeof number, "%d", sig);
            used += (size_t)snprintf(signals + used, sizeof signals - used, "%sSIG%s %ld", used ? ", " : "",
                                     name != NULL ? name : number, by_signal[sig]);
        }
    }
    say(1, "syscall_fuzz: %ld calls in %ld blocks, %ld blocks killed by signals (%s), %ld timed out, seed %lu\n",
        attempted, blocks, killed, used ? signals : "none", timeouts, (unsigned long)seed);
    if (first_failure != 0) {
        say(2, "syscall_fuzz: failed, exit status %d (the first failed check)\n", first_failure);
    }
    return first_failure;
}
