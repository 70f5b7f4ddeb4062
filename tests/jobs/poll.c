/*
 * poll: waiting on descriptors (poll, ppoll, select, pselect6) and the other file-side calls of
 * the native-job ABI (sendfile, chmod, utimensat, statfs, truncate, fsync, fadvise, links,
 * getdents) and memory-side ones (mincore, msync, mlock), checked against Linux's behaviour.
 *
 * Usage: poll (no arguments). Uses fork: a child writes to, reads from or closes a pipe, or
 * signals the parent, after a delay, while the parent waits.
 *
 * What it checks: a poll blocks until a child writes (POLLIN), until room appears (POLLOUT),
 * until the last writer goes (POLLHUP); POLLERR, POLLNVAL, negative descriptors, files and
 * devices always ready; timeouts (at least the time asked, at most 10 times it; the measured
 * times are printed) without burning CPU time; select and pselect6 (sets, timeouts, the time
 * left written back, EBADF, EINVAL); ppoll and pselect6 with a signal mask (EINTR, the mask
 * restored); then the other calls.
 *
 * Output goes through write(2), one line per failed check on stderr: "poll: FAIL <code>:
 * <what>". All checks run; the exit status is the code of the first failure, or 0. The codes:
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECKS_PROGRAM "poll"
#define CHECKS_ERRNO
#include "checks.h"

enum failure {
    FAIL_POLL_BLOCK_IN = 10,  /* poll does not block until a child writes, or misses POLLIN */
    FAIL_POLL_BLOCK_OUT = 11, /* poll on a full pipe does not wait for room (POLLOUT) */
    FAIL_POLL_TIMEOUT = 12,   /* a poll timeout ends too early or more than 10x too late */
    FAIL_POLL_SPIN = 13,      /* a blocked poll used CPU time (it spins) */
    FAIL_POLL_HUP = 14,       /* POLLHUP when the last writer closes (at once, and waking a poll) */
    FAIL_POLL_ERR = 15,       /* POLLERR on a write end without readers */
    FAIL_POLL_NVAL = 16,      /* POLLNVAL for a closed descriptor; negative ones ignored */
    FAIL_POLL_ALWAYS = 17,    /* files, /dev/null, the console: always ready */
    FAIL_POLL_EINVAL = 18,    /* poll with more descriptors than RLIMIT_NOFILE */
    FAIL_SELECT = 20,         /* select (23): ready sets, HUP as readable */
    FAIL_SELECT_TIMEOUT = 21, /* select: timeout, the timeval holding the time left */
    FAIL_SELECT_ERRORS = 22,  /* select: EBADF, EINVAL */
    FAIL_PSELECT = 23,        /* glibc select and pselect (pselect6) */
    FAIL_PPOLL_SIGNAL = 24,   /* ppoll with a mask: a signal from a child interrupts it (EINTR) */
    FAIL_PPOLL_PENDING = 25,  /* ppoll: a pending signal the mask unblocks interrupts at once */
    FAIL_PPOLL_MASK = 26,     /* the caller's mask is back after ppoll / pselect */
    FAIL_PPOLL_READY = 27,    /* ppoll: ready descriptors win over a signal; it stays pending */
    FAIL_PSELECT_SIGNAL = 28, /* pselect with a mask: EINTR on a pending signal */
    FAIL_SENDFILE = 30,       /* sendfile from /data/known.txt to a pipe and to a file */
    FAIL_SENDFILE_ERRORS = 31,/* sendfile: EBADF, EINVAL */
    FAIL_CHMOD = 32,          /* chmod, fchmod, fchmodat in /tmp, visible in stat */
    FAIL_CHMOD_EROFS = 33,    /* chmod of /bin/hello: EROFS */
    FAIL_UTIMENSAT = 34,      /* utimensat / futimens: mtime set, UTIME_OMIT, NULL = now, EROFS */
    FAIL_STATFS = 35,         /* statfs / fstatfs / statvfs: tmpfs for /tmp, ramfs, proc, pipefs */
    FAIL_MINCORE = 36,        /* mincore: resident pages, ENOMEM, EINVAL */
    FAIL_MSYNC = 37,          /* msync */
    FAIL_MLOCK = 38,          /* mlock, munlock, mlockall, munlockall */
    FAIL_FSYNC = 39,          /* fsync, fdatasync */
    FAIL_TRUNCATE = 40,       /* truncate */
    FAIL_FADVISE = 41,        /* posix_fadvise */
    FAIL_LINKS = 42,          /* symlinkat; link / linkat: EPERM (no hard links) */
    FAIL_GETDENTS = 43,       /* getdents (78, the old format) */
};

#define MS 1000000LL

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec d = {ms / 1000, (ms % 1000) * MS};
    while (nanosleep(&d, &d) == -1 && errno == EINTR) {
    }
}

/* Waits for a child and checks that it exited with 0. */
static void reap(int code, pid_t child, const char *what) {
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail(code, "%s: child status %#x", what, status);
    }
}

static void check_poll_blocking(void) {
    int fds[2];
    if (pipe(fds) != 0) {
        fail(FAIL_POLL_BLOCK_IN, "pipe: %s", strerror(errno));
        return;
    }
    /* A child writes one byte after 50 ms; the parent keeps its own write end, so the read end
       is readable and not hung up. */
    long long start = now_ns();
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        sleep_ms(50);
        _exit(write(fds[1], "x", 1) == 1 ? 0 : 1);
    }
    struct pollfd p = {fds[0], POLLIN, 0x7f};
    long long cpu = thread_cpu_ns();
    int n = poll(&p, 1, 5000);
    long long waited = now_ns() - start;
    cpu = thread_cpu_ns() - cpu;
    CHECK(FAIL_POLL_BLOCK_IN, n == 1 && p.revents == POLLIN, "poll for the child's byte: %d, revents %#x", n,
          p.revents);
    CHECK(FAIL_POLL_BLOCK_IN, waited >= 45 * MS && waited < 4000 * MS,
          "poll returned after %lld us; the child wrote after 50 ms", waited / 1000);
    CHECK(FAIL_POLL_SPIN, cpu < 20 * MS, "a poll blocked for %lld ms used %lld us of CPU time", waited / MS,
          cpu / 1000);
    say(1, "poll: woken by a child's write after %lld.%03lld ms (CPU time %lld us)\n", waited / MS,
        waited % MS / 1000, cpu / 1000);
    char c;
    CHECK(FAIL_POLL_BLOCK_IN, read(fds[0], &c, 1) == 1 && c == 'x', "reading the child's byte");
    reap(FAIL_POLL_BLOCK_IN, child, "writer child");

    /* Now empty, and the child's write end is gone but ours is open: nothing ready. */
    p.revents = 0;
    CHECK(FAIL_POLL_BLOCK_IN, poll(&p, 1, 0) == 0 && p.revents == 0, "an empty pipe polled ready (%#x)", p.revents);

    /* The last writer closes: POLLHUP (not POLLIN: there is no data), even when not asked. */
    close(fds[1]);
    p.events = 0;
    CHECK(FAIL_POLL_HUP, poll(&p, 1, 0) == 1 && p.revents == POLLHUP, "no writer left: revents %#x, expected POLLHUP",
          p.revents);
    close(fds[0]);

    /* Data and no writer: POLLIN | POLLHUP. */
    if (pipe(fds) == 0) {
        CHECK(FAIL_POLL_HUP, write(fds[1], "yz", 2) == 2, "write");
        close(fds[1]);
        p = (struct pollfd){fds[0], POLLIN | POLLRDNORM, 0};
        CHECK(FAIL_POLL_HUP, poll(&p, 1, 0) == 1 && p.revents == (POLLIN | POLLRDNORM | POLLHUP),
              "data and no writer: revents %#x", p.revents);
        close(fds[0]);
    }

    /* A blocked poll is woken by the last writer leaving (a child that exits after 30 ms). */
    if (pipe(fds) == 0) {
        start = now_ns();
        child = fork();
        if (child == 0) {
            close(fds[0]);
            sleep_ms(30);
            _exit(0);
        }
        close(fds[1]);
        p = (struct pollfd){fds[0], POLLIN, 0};
        n = poll(&p, 1, 5000);
        waited = now_ns() - start;
        CHECK(FAIL_POLL_HUP, n == 1 && p.revents == POLLHUP && waited >= 25 * MS && waited < 4000 * MS,
              "poll until the writer exits: %d, revents %#x after %lld us", n, p.revents, waited / 1000);
        reap(FAIL_POLL_HUP, child, "exiting writer child");
        close(fds[0]);
    }

    /* A full pipe: POLLOUT only once a child has read some of it. */
    if (pipe(fds) == 0) {
        fcntl(fds[1], F_SETFL, O_NONBLOCK);
        static char block[4096];
        long filled = 0;
        ssize_t w;
        while ((w = write(fds[1], block, sizeof block)) > 0) {
            filled += w;
        }
        CHECK(FAIL_POLL_BLOCK_OUT, w == -1 && errno == EAGAIN && filled >= 4096, "filling a pipe: %ld bytes, %s",
              filled, strerror(errno));
        p = (struct pollfd){fds[1], POLLOUT, 0};
        CHECK(FAIL_POLL_BLOCK_OUT, poll(&p, 1, 0) == 0 && p.revents == 0, "a full pipe is writable (%#x)", p.revents);
        start = now_ns();
        child = fork();
        if (child == 0) {
            sleep_ms(50);
            _exit(read(fds[0], block, sizeof block) == sizeof block ? 0 : 1);
        }
        n = poll(&p, 1, 5000);
        waited = now_ns() - start;
        CHECK(FAIL_POLL_BLOCK_OUT, n == 1 && p.revents == POLLOUT && waited >= 45 * MS && waited < 4000 * MS,
              "poll for room: %d, revents %#x after %lld us", n, p.revents, waited / 1000);
        reap(FAIL_POLL_BLOCK_OUT, child, "reader child");
        close(fds[0]);
        close(fds[1]);
    }

    /* No reader: POLLERR (with POLLOUT: there is room), even when not asked. */
    if (pipe(fds) == 0) {
        close(fds[0]);
        p = (struct pollfd){fds[1], POLLOUT, 0};
        CHECK(FAIL_POLL_ERR, poll(&p, 1, 0) == 1 && p.revents == (POLLOUT | POLLERR), "no reader: revents %#x",
              p.revents);
        p.events = POLLIN;
        CHECK(FAIL_POLL_ERR, poll(&p, 1, 0) == 1 && p.revents == POLLERR, "no reader, POLLIN asked: revents %#x",
              p.revents);
        close(fds[1]);
    }
}

static void check_poll_timeouts(void) {
    int fds[2];
    if (pipe(fds) != 0) {
        fail(FAIL_POLL_TIMEOUT, "pipe: %s", strerror(errno));
        return;
    }
    static const int timeouts[] = {1, 10, 100, 250};
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int ms = timeouts[i];
        struct pollfd p = {fds[0], POLLIN, 0};
        long long cpu = thread_cpu_ns();
        long long start = now_ns();
        int n = poll(&p, 1, ms);
        long long took = now_ns() - start;
        cpu = thread_cpu_ns() - cpu;
        say(1, "poll: timeout %d ms took %lld.%03lld ms (CPU time %lld us)\n", ms, took / MS, took % MS / 1000,
            cpu / 1000);
        CHECK(FAIL_POLL_TIMEOUT, n == 0 && p.revents == 0, "poll with timeout %d ms returned %d (revents %#x)", ms, n,
              p.revents);
        CHECK(FAIL_POLL_TIMEOUT, took >= ms * MS && took <= 10 * ms * MS, "poll with timeout %d ms took %lld us", ms,
              took / 1000);
        if (ms >= 100) {
            CHECK(FAIL_POLL_SPIN, cpu < took / 10, "a %d ms poll timeout used %lld us of CPU time", ms, cpu / 1000);
        }
    }
    /* No descriptors at all: a sleep. */
    long long start = now_ns();
    CHECK(FAIL_POLL_TIMEOUT, poll(NULL, 0, 20) == 0, "poll(NULL, 0, 20)");
    long long took = now_ns() - start;
    CHECK(FAIL_POLL_TIMEOUT, took >= 20 * MS && took <= 200 * MS, "poll(NULL, 0, 20) took %lld us", took / 1000);
    /* ppoll with a timespec. */
    struct timespec t = {0, 30 * MS};
    struct pollfd p = {fds[0], POLLIN, 0};
    start = now_ns();
    CHECK(FAIL_POLL_TIMEOUT, ppoll(&p, 1, &t, NULL) == 0, "ppoll with a 30 ms timeout");
    took = now_ns() - start;
    say(1, "poll: ppoll timeout 30 ms took %lld.%03lld ms\n", took / MS, took % MS / 1000);
    CHECK(FAIL_POLL_TIMEOUT, took >= 30 * MS && took <= 300 * MS, "ppoll with a 30 ms timeout took %lld us",
          took / 1000);
    struct timespec bad = {0, 1000000000};
    expect_errno(FAIL_POLL_TIMEOUT, "ppoll with tv_nsec = 1e9", ppoll(&p, 1, &bad, NULL), EINVAL);
    bad = (struct timespec){-1, 0};
    expect_errno(FAIL_POLL_TIMEOUT, "ppoll with tv_sec = -1", ppoll(&p, 1, &bad, NULL), EINVAL);
    close(fds[0]);
    close(fds[1]);
}

static void check_poll_misc(void) {
    /* POLLNVAL for a closed descriptor; a negative one is skipped and its revents cleared. */
    struct pollfd p[3] = {{1000, POLLIN, 0}, {-1, POLLIN, 0x55}, {-5, 0, 0}};
    int n = poll(p, 3, 0);
    CHECK(FAIL_POLL_NVAL, n == 1 && p[0].revents == POLLNVAL && p[1].revents == 0 && p[2].revents == 0,
          "closed and negative descriptors: %d, revents %#x %#x %#x", n, p[0].revents, p[1].revents, p[2].revents);
    int fd = open(KNOWN_PATH, O_RDONLY);
    int pathfd = open(KNOWN_PATH, O_PATH);
    if (pathfd >= 0) {
        struct pollfd q = {pathfd, POLLIN, 0};
        CHECK(FAIL_POLL_NVAL, poll(&q, 1, 0) == 1 && q.revents == POLLNVAL, "an O_PATH descriptor: revents %#x",
              q.revents);
        close(pathfd);
    }
    /* Files, devices and the console are always ready for what is asked. */
    int null = open("/dev/null", O_RDWR);
    struct pollfd r[4] = {{fd, POLLIN | POLLOUT, 0}, {null, POLLOUT, 0}, {1, POLLOUT, 0}, {fd, POLLPRI, 0}};
    n = poll(r, 4, -1);
    CHECK(FAIL_POLL_ALWAYS,
          n == 3 && r[0].revents == (POLLIN | POLLOUT) && r[1].revents == POLLOUT && r[2].revents == POLLOUT &&
              r[3].revents == 0,
          "a file, /dev/null, the console: %d, revents %#x %#x %#x %#x", n, r[0].revents, r[1].revents, r[2].revents,
          r[3].revents);
    close(null);
    close(fd);
    static struct pollfd many[1100];
    for (int i = 0; i < 1100; i++) {
        many[i] = (struct pollfd){-1, 0, 0};
    }
    expect_errno(FAIL_POLL_EINVAL, "poll with 1100 descriptors", poll(many, 1100, 0), EINVAL);
    CHECK(FAIL_POLL_EINVAL, poll(many, 1024, 0) == 0, "poll with 1024 skipped descriptors");
    expect_errno(FAIL_POLL_EINVAL, "poll with a bad array", poll(opaque(8), 1, 0), EFAULT);
}

/* select through the system call itself (23): glibc's select uses pselect6. */
static int raw_select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *t) {
    return (int)syscall(SYS_select, nfds, r, w, e, t);
}

static void check_select(void) {
    int fds[2], other[2];
    if (pipe(fds) != 0 || pipe(other) != 0) {
        fail(FAIL_SELECT, "pipe: %s", strerror(errno));
        return;
    }
    fd_set r, w, e;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&e);
    FD_SET(fds[0], &r);
    FD_SET(other[0], &r);
    FD_SET(fds[1], &w);
    FD_SET(fds[0], &e);
    int top = (fds[1] > other[1] ? fds[1] : other[1]) + 1;
    /* Only the write end is ready. */
    struct timeval t = {0, 0};
    int n = raw_select(top, &r, &w, &e, &t);
    CHECK(FAIL_SELECT, n == 1 && !FD_ISSET(fds[0], &r) && !FD_ISSET(other[0], &r) && FD_ISSET(fds[1], &w) &&
                           !FD_ISSET(fds[0], &e),
          "select on empty pipes: %d", n);
    /* Data in one pipe, the other's writer closed (readable: end of file). */
    CHECK(FAIL_SELECT, write(fds[1], "a", 1) == 1, "write");
    close(other[1]);
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(fds[0], &r);
    FD_SET(other[0], &r);
    FD_SET(fds[1], &w);
    t = (struct timeval){2, 0};
    n = raw_select(top, &r, &w, NULL, &t);
    CHECK(FAIL_SELECT, n == 3 && FD_ISSET(fds[0], &r) && FD_ISSET(other[0], &r) && FD_ISSET(fds[1], &w),
          "select with data and a hung-up pipe: %d", n);
    long long left = t.tv_sec * 1000000LL + t.tv_usec;
    CHECK(FAIL_SELECT_TIMEOUT, left > 1500000 && left <= 2000000, "select returning at once left %lld us of 2 s",
          left);

    /* A timeout with nothing ready: 0, empty sets, no time left. */
    char c;
    CHECK(FAIL_SELECT, read(fds[0], &c, 1) == 1, "read");
    FD_ZERO(&r);
    FD_SET(fds[0], &r);
    t = (struct timeval){0, 50000};
    long long start = now_ns();
    n = raw_select(fds[0] + 1, &r, NULL, NULL, &t);
    long long took = now_ns() - start;
    say(1, "poll: select timeout 50 ms took %lld.%03lld ms\n", took / MS, took % MS / 1000);
    CHECK(FAIL_SELECT_TIMEOUT, n == 0 && !FD_ISSET(fds[0], &r) && t.tv_sec == 0 && t.tv_usec == 0,
          "select timeout: %d, set %d, left %ld.%06ld", n, FD_ISSET(fds[0], &r), (long)t.tv_sec, (long)t.tv_usec);
    CHECK(FAIL_SELECT_TIMEOUT, took >= 50 * MS && took <= 500 * MS, "a 50 ms select took %lld us", took / 1000);
    /* No descriptors: a sleep. */
    t = (struct timeval){0, 20000};
    start = now_ns();
    CHECK(FAIL_SELECT_TIMEOUT, raw_select(0, NULL, NULL, NULL, &t) == 0, "select(0, ...) as a sleep");
    took = now_ns() - start;
    CHECK(FAIL_SELECT_TIMEOUT, took >= 20 * MS && took <= 200 * MS, "a 20 ms select(0) took %lld us", took / 1000);

    /* Errors: a closed descriptor in a set, a negative count, a bad timeout. */
    FD_ZERO(&r);
    FD_SET(50, &r); /* below 64: Linux ignores descriptors beyond its table's current size */
    t = (struct timeval){0, 0};
    expect_errno(FAIL_SELECT_ERRORS, "select on closed descriptor 50", raw_select(51, &r, NULL, NULL, &t), EBADF);
    expect_errno(FAIL_SELECT_ERRORS, "select with nfds -1", raw_select(-1, NULL, NULL, NULL, &t), EINVAL);
    t = (struct timeval){-1, 0};
    expect_errno(FAIL_SELECT_ERRORS, "select with tv_sec -1", raw_select(0, NULL, NULL, NULL, &t), EINVAL);
    t = (struct timeval){0, 0};
    FD_ZERO(&r);
    FD_SET(fds[0], &r);
    expect_errno(FAIL_SELECT_ERRORS, "select with a bad set", raw_select(fds[0] + 1, opaque(8), NULL, NULL, &t),
                 EFAULT);

    /* glibc's select and pselect go through pselect6. */
    CHECK(FAIL_PSELECT, write(fds[1], "b", 1) == 1, "write");
    FD_ZERO(&r);
    FD_SET(fds[0], &r);
    t = (struct timeval){1, 0};
    n = select(fds[0] + 1, &r, NULL, NULL, &t);
    CHECK(FAIL_PSELECT, n == 1 && FD_ISSET(fds[0], &r), "glibc select on a readable pipe: %d", n);
    CHECK(FAIL_PSELECT, read(fds[0], &c, 1) == 1, "read");
    FD_ZERO(&r);
    FD_SET(fds[0], &r);
    struct timespec ts = {0, 40 * MS};
    start = now_ns();
    n = pselect(fds[0] + 1, &r, NULL, NULL, &ts, NULL);
    took = now_ns() - start;
    CHECK(FAIL_PSELECT, n == 0 && !FD_ISSET(fds[0], &r) && took >= 40 * MS && took <= 400 * MS,
          "pselect with a 40 ms timeout: %d after %lld us", n, took / 1000);
    close(fds[0]);
    close(fds[1]);
    close(other[0]);
}

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig) {
    (void)sig;
    usr1_count++;
}

static int usr1_blocked(void) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, SIGUSR1);
}

static void check_signal_masks(void) {
    struct sigaction action = {0};
    action.sa_handler = on_usr1;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
    sigset_t block, empty;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    int fds[2];
    if (pipe(fds) != 0) {
        fail(FAIL_PPOLL_SIGNAL, "pipe: %s", strerror(errno));
        return;
    }

    /* SIGUSR1 is blocked except during ppoll; a child sends it after 30 ms. */
    pid_t parent = getpid();
    long long start = now_ns();
    pid_t child = fork();
    if (child == 0) {
        sleep_ms(30);
        _exit(kill(parent, SIGUSR1) == 0 ? 0 : 1);
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    struct timespec t = {5, 0};
    int n = ppoll(&p, 1, &t, &empty);
    int error = errno;
    long long took = now_ns() - start;
    CHECK(FAIL_PPOLL_SIGNAL, n == -1 && error == EINTR && usr1_count == 1,
          "ppoll interrupted by a child's signal: %d (%s), handler ran %d times", n, strerrorname_np(error),
          (int)usr1_count);
    CHECK(FAIL_PPOLL_SIGNAL, took >= 25 * MS && took < 4000 * MS, "ppoll interrupted after %lld us", took / 1000);
    say(1, "poll: ppoll interrupted by a signal after %lld.%03lld ms\n", took / MS, took % MS / 1000);
    CHECK(FAIL_PPOLL_MASK, usr1_blocked(), "SIGUSR1 is not blocked again after ppoll");
    reap(FAIL_PPOLL_SIGNAL, child, "signalling child");

    /* A signal already pending (blocked) and let through by the mask: EINTR at once. */
    raise(SIGUSR1);
    CHECK(FAIL_PPOLL_PENDING, usr1_count == 1, "a blocked SIGUSR1 was delivered");
    start = now_ns();
    n = ppoll(&p, 1, &t, &empty);
    error = errno;
    took = now_ns() - start;
    CHECK(FAIL_PPOLL_PENDING, n == -1 && error == EINTR && usr1_count == 2 && took < 1000 * MS,
          "ppoll with a pending signal: %d (%s), handler ran %d times, after %lld us", n, strerrorname_np(error),
          (int)usr1_count, took / 1000);
    CHECK(FAIL_PPOLL_MASK, usr1_blocked(), "SIGUSR1 is not blocked again after the second ppoll");

    /* Ready descriptors win: ppoll returns 1, the signal stays pending under the old mask. */
    CHECK(FAIL_PPOLL_READY, write(fds[1], "r", 1) == 1, "write");
    raise(SIGUSR1);
    n = ppoll(&p, 1, &t, &empty);
    sigset_t pending;
    sigpending(&pending);
    CHECK(FAIL_PPOLL_READY, n == 1 && p.revents == POLLIN && usr1_count == 2 && sigismember(&pending, SIGUSR1),
          "ppoll with data and a pending signal: %d, revents %#x, handler ran %d times, pending %d", n, p.revents,
          (int)usr1_count, sigismember(&pending, SIGUSR1));
    CHECK(FAIL_PPOLL_MASK, usr1_blocked(), "SIGUSR1 is not blocked after a ppoll that found data");
    sigprocmask(SIG_UNBLOCK, &block, NULL); /* delivers it */
    CHECK(FAIL_PPOLL_READY, usr1_count == 3, "the pending SIGUSR1 was not delivered on unblocking");
    sigprocmask(SIG_BLOCK, &block, NULL);
    char c;
    CHECK(FAIL_PPOLL_READY, read(fds[0], &c, 1) == 1, "read");

    /* pselect with a mask: the same with a pending signal. */
    raise(SIGUSR1);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(fds[0], &r);
    start = now_ns();
    n = pselect(fds[0] + 1, &r, NULL, NULL, &t, &empty);
    error = errno;
    took = now_ns() - start;
    CHECK(FAIL_PSELECT_SIGNAL, n == -1 && error == EINTR && usr1_count == 4 && took < 1000 * MS,
          "pselect with a pending signal: %d (%s), handler ran %d times", n, strerrorname_np(error), (int)usr1_count);
    CHECK(FAIL_PPOLL_MASK, usr1_blocked(), "SIGUSR1 is not blocked again after pselect");
    /* A bad mask size. */
    expect_errno(FAIL_PPOLL_MASK, "ppoll with sigsetsize 4", syscall(SYS_ppoll, &p, 1, &t, &empty, 4), EINVAL);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    close(fds[0]);
    close(fds[1]);
}

static void check_sendfile(void) {
    int fd = open(KNOWN_PATH, O_RDONLY);
    int fds[2];
    if (fd < 0 || pipe(fds) != 0) {
        fail(FAIL_SENDFILE, "open %s or pipe: %s", KNOWN_PATH, strerror(errno));
        return;
    }
    char known[KNOWN_SIZE + 1] = {0}, got[KNOWN_SIZE + 1] = {0};
    if (pread(fd, known, sizeof known, 0) != KNOWN_SIZE) {
        fail(FAIL_SENDFILE, "pread of %s did not give %d bytes", KNOWN_PATH, KNOWN_SIZE);
        return;
    }
    ssize_t n = sendfile(fds[1], fd, NULL, 1 << 20);
    CHECK(FAIL_SENDFILE, n == KNOWN_SIZE, "sendfile of the whole file sent %zd bytes", n);
    CHECK(FAIL_SENDFILE, lseek(fd, 0, SEEK_CUR) == KNOWN_SIZE, "the file offset did not advance");
    CHECK(FAIL_SENDFILE, read(fds[0], got, sizeof got) == KNOWN_SIZE && memcmp(got, known, KNOWN_SIZE) == 0,
          "the pipe does not hold the file");
    CHECK(FAIL_SENDFILE, sendfile(fds[1], fd, NULL, 100) == 0, "sendfile at the end of the file");
    off_t offset = 10;
    n = sendfile(fds[1], fd, &offset, 20);
    CHECK(FAIL_SENDFILE, n == 20 && offset == 30 && lseek(fd, 0, SEEK_CUR) == KNOWN_SIZE,
          "sendfile with an offset: %zd bytes, offset %ld", n, (long)offset);
    memset(got, 0, sizeof got);
    CHECK(FAIL_SENDFILE, read(fds[0], got, sizeof got) == 20 && memcmp(got, known + 10, 20) == 0,
          "the pipe does not hold bytes 10..30");
    /* To a file in /tmp. */
    int out = open("/tmp/poll-sendfile", O_CREAT | O_RDWR | O_TRUNC, 0644);
    offset = 0;
    CHECK(FAIL_SENDFILE, out >= 0 && sendfile(out, fd, &offset, KNOWN_SIZE) == KNOWN_SIZE, "sendfile to a file");
    memset(got, 0, sizeof got);
    CHECK(FAIL_SENDFILE, pread(out, got, sizeof got, 0) == KNOWN_SIZE && memcmp(got, known, KNOWN_SIZE) == 0,
          "the copy differs");
    /* Errors. */
    expect_errno(FAIL_SENDFILE_ERRORS, "sendfile to a read-only descriptor", sendfile(fd, fd, NULL, 1), EBADF);
    expect_errno(FAIL_SENDFILE_ERRORS, "sendfile from a closed descriptor", sendfile(fds[1], 999, NULL, 1), EBADF);
    expect_errno(FAIL_SENDFILE_ERRORS, "sendfile from a write end", sendfile(out, fds[1], NULL, 1), EBADF);
    CHECK(FAIL_SENDFILE_ERRORS, write(fds[1], "p", 1) == 1, "write");
    expect_errno(FAIL_SENDFILE_ERRORS, "sendfile from a pipe", sendfile(out, fds[0], NULL, 1), EINVAL);
    offset = -1;
    expect_errno(FAIL_SENDFILE_ERRORS, "sendfile with offset -1", sendfile(fds[1], fd, &offset, 1), EINVAL);
    close(out);
    unlink("/tmp/poll-sendfile");
    close(fd);
    close(fds[0]);
    close(fds[1]);
}

static void check_chmod_utimes(void) {
    const char *path = "/tmp/poll-chmod";
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) {
        fail(FAIL_CHMOD, "creating %s: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    expect_ok(FAIL_CHMOD, "chmod 600", chmod(path, 0600));
    CHECK(FAIL_CHMOD, stat(path, &st) == 0 && st.st_mode == (S_IFREG | 0600), "after chmod 600: mode %o", st.st_mode);
    expect_ok(FAIL_CHMOD, "fchmod 4751", fchmod(fd, 04751));
    CHECK(FAIL_CHMOD, fstat(fd, &st) == 0 && st.st_mode == (S_IFREG | 04751), "after fchmod 4751: mode %o",
          st.st_mode);
    expect_ok(FAIL_CHMOD, "fchmodat 640", fchmodat(AT_FDCWD, path, 0640, 0));
    CHECK(FAIL_CHMOD, stat(path, &st) == 0 && st.st_mode == (S_IFREG | 0640), "after fchmodat 640: mode %o",
          st.st_mode);
    mkdir("/tmp/poll-dir", 0755);
    expect_ok(FAIL_CHMOD, "chmod of a directory", chmod("/tmp/poll-dir", 0700));
    CHECK(FAIL_CHMOD, stat("/tmp/poll-dir", &st) == 0 && st.st_mode == (S_IFDIR | 0700), "directory mode %o",
          st.st_mode);
    rmdir("/tmp/poll-dir");
    expect_errno(FAIL_CHMOD, "chmod of a missing file", chmod("/tmp/poll-missing", 0600), ENOENT);
    expect_errno(FAIL_CHMOD_EROFS, "chmod /bin/hello", chmod("/bin/hello", 0777), EROFS);
    expect_errno(FAIL_CHMOD_EROFS, "chmod /dev/null", chmod("/dev/null", 0600), EROFS);
    int hello = open("/bin/hello", O_RDONLY);
    expect_errno(FAIL_CHMOD_EROFS, "fchmod of /bin/hello", fchmod(hello, 0777), EROFS);
    close(hello);
    CHECK(FAIL_CHMOD_EROFS, stat("/bin/hello", &st) == 0 && (st.st_mode & 07777) != 0777, "/bin/hello changed mode");

    /* utimensat: an explicit time, UTIME_OMIT, NULL (now), futimens. */
    struct timespec times[2] = {{1000, 0}, {1234567890, 5}};
    expect_ok(FAIL_UTIMENSAT, "utimensat", utimensat(AT_FDCWD, path, times, 0));
    CHECK(FAIL_UTIMENSAT, stat(path, &st) == 0 && st.st_mtime == 1234567890, "mtime %ld after utimensat",
          (long)st.st_mtime);
    times[0] = (struct timespec){5, 0};
    times[1].tv_nsec = UTIME_OMIT;
    expect_ok(FAIL_UTIMENSAT, "utimensat with UTIME_OMIT", utimensat(AT_FDCWD, path, times, 0));
    CHECK(FAIL_UTIMENSAT, stat(path, &st) == 0 && st.st_mtime == 1234567890, "UTIME_OMIT changed mtime to %ld",
          (long)st.st_mtime);
    time_t before = time(NULL);
    expect_ok(FAIL_UTIMENSAT, "utimensat(NULL times)", utimensat(AT_FDCWD, path, NULL, 0));
    CHECK(FAIL_UTIMENSAT, stat(path, &st) == 0 && st.st_mtime >= before && st.st_mtime <= time(NULL) + 1,
          "mtime %ld after utimensat(NULL), now %ld", (long)st.st_mtime, (long)before);
    times[1] = (struct timespec){987654321, 0};
    expect_ok(FAIL_UTIMENSAT, "futimens", futimens(fd, times));
    CHECK(FAIL_UTIMENSAT, fstat(fd, &st) == 0 && st.st_mtime == 987654321, "mtime %ld after futimens",
          (long)st.st_mtime);
    times[1].tv_nsec = 1000000000;
    expect_errno(FAIL_UTIMENSAT, "utimensat with tv_nsec 1e9", utimensat(AT_FDCWD, path, times, 0), EINVAL);
    expect_errno(FAIL_UTIMENSAT, "utimensat of /bin/hello", utimensat(AT_FDCWD, "/bin/hello", NULL, 0), EROFS);
    expect_errno(FAIL_UTIMENSAT, "utimensat with a bad flag", utimensat(AT_FDCWD, path, NULL, 0x8000), EINVAL);
    close(fd);
    unlink(path);
}

static void check_statfs(void) {
    struct statfs s;
    CHECK(FAIL_STATFS, statfs("/tmp", &s) == 0, "statfs /tmp: %s", strerror(errno));
    CHECK(FAIL_STATFS, s.f_type == 0x01021994 && s.f_bsize == 4096 && s.f_blocks > 0 && s.f_bfree <= s.f_blocks &&
                           s.f_bavail == s.f_bfree && s.f_namelen == 255 && (s.f_flags & ST_RDONLY) == 0,
          "statfs /tmp: type %#lx bsize %ld blocks %lu free %lu namelen %ld flags %#lx", (long)s.f_type,
          (long)s.f_bsize, (unsigned long)s.f_blocks, (unsigned long)s.f_bfree, (long)s.f_namelen,
          (long)s.f_flags);
    unsigned long used = s.f_blocks - s.f_bfree;
    /* A 1 MiB file in /tmp shows in the blocks used. */
    int fd = open("/tmp/poll-statfs", O_CREAT | O_RDWR | O_TRUNC, 0644);
    static char mib[1 << 20];
    CHECK(FAIL_STATFS, fd >= 0 && write(fd, mib, sizeof mib) == sizeof mib, "writing 1 MiB to /tmp");
    CHECK(FAIL_STATFS, fstatfs(fd, &s) == 0 && s.f_type == 0x01021994 && s.f_blocks - s.f_bfree >= used + 256,
          "fstatfs after writing 1 MiB: %lu blocks used, before %lu", (unsigned long)(s.f_blocks - s.f_bfree), used);
    close(fd);
    unlink("/tmp/poll-statfs");
    CHECK(FAIL_STATFS, statfs("/", &s) == 0 && s.f_type == 0x858458f6 && (s.f_flags & ST_RDONLY),
          "statfs /: type %#lx flags %#lx", (long)s.f_type, (long)s.f_flags);
    CHECK(FAIL_STATFS, statfs("/proc/self/maps", &s) == 0 && s.f_type == 0x9fa0, "statfs /proc/self/maps: type %#lx",
          (long)s.f_type);
    CHECK(FAIL_STATFS, statfs("/sys/devices/system/cpu/online", &s) == 0 && s.f_type == 0x62656572,
          "statfs of a /sys file: type %#lx", (long)s.f_type);
    int fds[2];
    if (pipe(fds) == 0) {
        CHECK(FAIL_STATFS, fstatfs(fds[0], &s) == 0 && s.f_type == 0x50495045, "fstatfs of a pipe: type %#lx",
              (long)s.f_type);
        close(fds[0]);
        close(fds[1]);
    }
    struct statvfs v;
    CHECK(FAIL_STATFS, statvfs("/bin/hello", &v) == 0 && (v.f_flag & ST_RDONLY) && v.f_namemax == 255,
          "statvfs /bin/hello: flags %#lx", v.f_flag);
    CHECK(FAIL_STATFS, statvfs("/tmp", &v) == 0 && !(v.f_flag & ST_RDONLY) && v.f_frsize == 4096,
          "statvfs /tmp: flags %#lx", v.f_flag);
    expect_errno(FAIL_STATFS, "statfs of a missing path", statfs("/nonexistent", &s), ENOENT);
    expect_errno(FAIL_STATFS, "fstatfs of a closed descriptor", fstatfs(999, &s), EBADF);
    expect_errno(FAIL_STATFS, "statfs into a bad buffer", statfs("/tmp", opaque(8)), EFAULT);
}

static void check_memory_calls(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *area = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        fail(FAIL_MINCORE, "mmap: %s", strerror(errno));
        return;
    }
    unsigned char vec[5];
    memset(vec, 0xee, sizeof vec);
    CHECK(FAIL_MINCORE, mincore(area, 4 * page - 100, vec) == 0 && vec[0] == 1 && vec[1] == 1 && vec[2] == 1 &&
                            vec[3] == 1 && vec[4] == 0xee,
          "mincore of 4 pages: %x %x %x %x %x", vec[0], vec[1], vec[2], vec[3], vec[4]);
    expect_errno(FAIL_MINCORE, "mincore at an unaligned address", mincore(area + 1, page, vec), EINVAL);
    expect_errno(FAIL_MINCORE, "mincore with a bad vector", mincore(area, page, opaque(8)), EFAULT);
    CHECK(FAIL_MINCORE, mincore(area, 0, vec) == 0, "mincore of 0 bytes");

    expect_ok(FAIL_MSYNC, "msync MS_SYNC", msync(area, 4 * page, MS_SYNC));
    expect_ok(FAIL_MSYNC, "msync MS_ASYNC | MS_INVALIDATE", msync(area, page, MS_ASYNC | MS_INVALIDATE));
    expect_errno(FAIL_MSYNC, "msync MS_SYNC | MS_ASYNC", msync(area, page, MS_SYNC | MS_ASYNC), EINVAL);
    expect_errno(FAIL_MSYNC, "msync with a bad flag", msync(area, page, 0x100), EINVAL);
    expect_errno(FAIL_MSYNC, "msync at an unaligned address", msync(area + 1, page, MS_SYNC), EINVAL);

    expect_ok(FAIL_MLOCK, "mlock of an unaligned range", mlock(area + 10, 2 * page));
    expect_ok(FAIL_MLOCK, "munlock", munlock(area + 10, 2 * page));
    expect_ok(FAIL_MLOCK, "mlockall(MCL_CURRENT | MCL_FUTURE)", mlockall(MCL_CURRENT | MCL_FUTURE));
    expect_ok(FAIL_MLOCK, "munlockall", munlockall());
    expect_errno(FAIL_MLOCK, "mlockall(0)", mlockall(0), EINVAL);
    expect_errno(FAIL_MLOCK, "mlockall(MCL_ONFAULT)", mlockall(4), EINVAL);

    /* The same calls on a hole: ENOMEM. */
    munmap(area + page, page);
    expect_errno(FAIL_MINCORE, "mincore over a hole", mincore(area, 3 * page, vec), ENOMEM);
    expect_errno(FAIL_MSYNC, "msync over a hole", msync(area, 3 * page, MS_SYNC), ENOMEM);
    expect_errno(FAIL_MLOCK, "mlock over a hole", mlock(area, 3 * page), ENOMEM);
    CHECK(FAIL_MINCORE, mincore(area + 2 * page, 2 * page, vec) == 0 && vec[0] == 1 && vec[1] == 1,
          "mincore after the hole");
    munmap(area, 4 * page);
}

static void check_other_file_calls(void) {
    const char *path = "/tmp/poll-other";
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) {
        fail(FAIL_FSYNC, "creating %s: %s", path, strerror(errno));
        return;
    }
    expect_ok(FAIL_FSYNC, "fsync", fsync(fd));
    expect_ok(FAIL_FSYNC, "fdatasync", fdatasync(fd));
    int fds[2];
    if (pipe(fds) == 0) {
        expect_errno(FAIL_FSYNC, "fsync of a pipe", fsync(fds[0]), EINVAL);
        CHECK(FAIL_FADVISE, posix_fadvise(fds[0], 0, 0, POSIX_FADV_SEQUENTIAL) == ESPIPE, "posix_fadvise of a pipe");
        close(fds[0]);
        close(fds[1]);
    }
    expect_errno(FAIL_FSYNC, "fsync of a closed descriptor", fsync(999), EBADF);

    CHECK(FAIL_TRUNCATE, write(fd, "0123456789", 10) == 10, "write");
    expect_ok(FAIL_TRUNCATE, "truncate to 4", truncate(path, 4));
    struct stat st;
    CHECK(FAIL_TRUNCATE, fstat(fd, &st) == 0 && st.st_size == 4, "size %ld after truncate", (long)st.st_size);
    expect_ok(FAIL_TRUNCATE, "truncate to 8192", truncate(path, 8192));
    CHECK(FAIL_TRUNCATE, stat(path, &st) == 0 && st.st_size == 8192, "size %ld after growing", (long)st.st_size);
    expect_errno(FAIL_TRUNCATE, "truncate of /bin/hello", truncate("/bin/hello", 0), EROFS);
    expect_errno(FAIL_TRUNCATE, "truncate of /tmp", truncate("/tmp", 0), EISDIR);
    expect_errno(FAIL_TRUNCATE, "truncate to -1", truncate(path, -1), EINVAL);

    CHECK(FAIL_FADVISE, posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED) == 0, "posix_fadvise WILLNEED");
    CHECK(FAIL_FADVISE, posix_fadvise(fd, 0, 0, 99) == EINVAL, "posix_fadvise with advice 99");
    CHECK(FAIL_FADVISE, posix_fadvise(999, 0, 0, POSIX_FADV_NORMAL) == EBADF, "posix_fadvise of a closed descriptor");

    /* symlinkat relative to a directory descriptor; no hard links. */
    int tmp = open("/tmp", O_RDONLY | O_DIRECTORY);
    expect_ok(FAIL_LINKS, "symlinkat", symlinkat("poll-other", tmp, "poll-link"));
    char target[64] = {0};
    CHECK(FAIL_LINKS, readlink("/tmp/poll-link", target, sizeof target - 1) == 10 && strcmp(target, "poll-other") == 0,
          "readlink of the new link: '%s'", target);
    CHECK(FAIL_LINKS, stat("/tmp/poll-link", &st) == 0 && st.st_size == 8192, "following the new link");
    expect_errno(FAIL_LINKS, "symlinkat over an existing name", symlinkat("x", tmp, "poll-link"), EEXIST);
    expect_errno(FAIL_LINKS, "link", link(path, "/tmp/poll-hard"), EPERM);
    expect_errno(FAIL_LINKS, "linkat", linkat(tmp, "poll-other", tmp, "poll-hard", 0), EPERM);
    expect_errno(FAIL_LINKS, "link of a missing file", link("/tmp/poll-missing", "/tmp/poll-hard"), ENOENT);
    expect_errno(FAIL_LINKS, "link onto an existing name", link(path, "/tmp/poll-link"), EEXIST);
    expect_errno(FAIL_LINKS, "linkat with a bad flag", linkat(tmp, "poll-other", tmp, "poll-hard", 0x1), EINVAL);
    CHECK(FAIL_LINKS, access("/tmp/poll-hard", F_OK) == -1 && errno == ENOENT, "a hard link appeared");
    unlink("/tmp/poll-link");
    close(tmp);
    close(fd);
    unlink(path);

    /* getdents (78): struct linux_dirent, the type in the record's last byte. */
    int dir = open("/data", O_RDONLY | O_DIRECTORY);
    char buf[256];
    int found = 0, dots = 0;
    long n = 0;
    while (dir >= 0 && (n = syscall(SYS_getdents, dir, buf, sizeof buf)) > 0) {
        for (long at = 0; at < n;) {
            unsigned short reclen;
            memcpy(&reclen, buf + at + 16, sizeof reclen);
            const char *name = buf + at + 18;
            unsigned char type = (unsigned char)buf[at + reclen - 1];
            if (strcmp(name, "known.txt") == 0 && type == DT_REG) {
                found++;
            }
            if ((strcmp(name, ".") == 0 || strcmp(name, "..") == 0) && type == DT_DIR) {
                dots++;
            }
            if (reclen == 0) {
                break;
            }
            at += reclen;
        }
    }
    CHECK(FAIL_GETDENTS, found == 1 && dots == 2, "getdents of /data: known.txt %d times, . and .. %d", found, dots);
    lseek(dir, 0, SEEK_SET);
    expect_errno(FAIL_GETDENTS, "getdents with a 10-byte buffer", syscall(SYS_getdents, dir, buf, 10), EINVAL);
    close(dir);
}

int main(void) {
    say(1, "poll: checking poll, select and the other file calls\n");
    check_poll_blocking();
    check_poll_timeouts();
    check_poll_misc();
    check_select();
    check_signal_masks();
    check_sendfile();
    check_chmod_utimes();
    check_statfs();
    check_memory_calls();
    check_other_file_calls();
    if (first_failure != 0) {
        say(2, "poll: failed, exit status %d (the first failed check)\n", first_failure);
        return first_failure;
    }
    say(1, "poll: all checks passed\n");
    return 0;
}
