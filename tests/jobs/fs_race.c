/*
 * fs_race: four threads race on the same names under /tmp/race, so that names, directories and
 * open files disappear under the calls that use them: the kernel must answer each call with a
 * result or an error number that makes sense, never a wrong result, another file's data or a
 * crash.
 *
 * Usage: fs_race [ITERATIONS] (default 20000; each thread runs that many rounds).
 *
 *   A  mkdir /tmp/race, creates /tmp/race/f and writes 100 bytes to it in one write, unlinks it,
 *      rmdirs /tmp/race. Each file's bytes are a pattern from a round number (byte i is byte 0
 *      plus i, byte 0 never zero), so a reader can tell them from garbage or zeros.
 *   B  chdir("/tmp/race") then chdir("/"), stat and lstat of /tmp/race/f and /tmp/race, stat of
 *      the relative name "f" while inside, getcwd.
 *   C  opens /tmp/race/f, fstat, mmaps it (MAP_PRIVATE, 4096 bytes, PROT_READ), reads the bytes
 *      the file holds through the mapping, pread, closes, munmaps.
 *   D  opens /tmp/race as a directory, lists it with getdents64, fchdir to it and back to "/",
 *      openat of the relative names "f", "." and "..", fstatat of "f".
 *
 * Calls may fail as the names come and go (ENOENT, ENOTDIR, EEXIST, EBUSY, ENOTEMPTY, each only
 * where it makes sense): those failures are counted per thread and error number. Any other error
 * number (EFAULT, EIO, ENOMEM, EINVAL... for well-formed calls) or a wrong result fails: a write
 * of 100 bytes that writes less; file data read back (by read, pread or through a mapping) that
 * is not a prefix of what A wrote (a file is only ever read as 0 to 100 bytes of one pattern);
 * stat giving another type or a size above 100; a listing with names other than ".", ".." and
 * "f" or malformed records; the working directory not "/" at the end. sched_yield between steps
 * varies the interleaving. Prints a line per thread and a summary line.
 *
 * Output goes through write(2), one line per failed check on stderr (the first 20): "fs_race:
 * FAIL <code>: <what>"; the exit status is the code of the first failure, or 0. The codes:
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHECKS_PROGRAM "fs_race"
#define CHECKS_ERRNO
#include "checks.h"

enum failure {
    FAIL_SETUP = 10,       /* the threads, "/" or a leftover /tmp/race cannot be set up */
    FAIL_A_ERRNO = 20,     /* A: an unexpected error number */
    FAIL_A_WRITE = 21,     /* A: the write of 100 bytes wrote another count */
    FAIL_B_ERRNO = 30,     /* B: an unexpected error number */
    FAIL_B_RESULT = 31,    /* B: stat/lstat: wrong type or size; getcwd: not an absolute path */
    FAIL_C_ERRNO = 40,     /* C: an unexpected error number */
    FAIL_C_CONTENT = 41,   /* C: the file's bytes (mapping or pread) are not what A wrote; size > 100 */
    FAIL_D_ERRNO = 50,     /* D: an unexpected error number */
    FAIL_D_LISTING = 51,   /* D: getdents64: a malformed record or an unknown name */
    FAIL_D_CONTENT = 52,   /* D: the bytes read through openat are not what A wrote; wrong types */
    FAIL_END = 60,         /* at the end: /tmp/race cannot be removed, or the cwd is not "/" */
};

#define RACE_DIR "/tmp/race"
#define RACE_FILE "/tmp/race/f"
#define CONTENT 100
#define MOST_ERRNO 134
#define MOST_REPORTS 20

/* The error numbers a call may fail with as the names come and go. */
enum {
    OK_ENOENT = 1,
    OK_ENOTDIR = 2,
    OK_EEXIST = 4,
    OK_EBUSY = 8,
    OK_ENOTEMPTY = 16,
};
#define OK_GONE (OK_ENOENT | OK_ENOTDIR)

static int allowed(int error, unsigned mask) {
    return (error == ENOENT && (mask & OK_ENOENT)) || (error == ENOTDIR && (mask & OK_ENOTDIR)) ||
           (error == EEXIST && (mask & OK_EEXIST)) || (error == EBUSY && (mask & OK_EBUSY)) ||
           (error == ENOTEMPTY && (mask & OK_ENOTEMPTY));
}

struct tally {
    const char *name;
    int errno_code;    /* the failure code of an unexpected error number */
    long calls, succeeded, failed, unexpected, checked;
    long by_errno[MOST_ERRNO];
};

static struct tally tallies[4] = {
    {.name = "A", .errno_code = FAIL_A_ERRNO},
    {.name = "B", .errno_code = FAIL_B_ERRNO},
    {.name = "C", .errno_code = FAIL_C_ERRNO},
    {.name = "D", .errno_code = FAIL_D_ERRNO},
};

static long iterations = 20000;
static int root_fd = -1;
static pthread_barrier_t start;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int reports;

/* A failed check, from any thread: the first MOST_REPORTS are printed, all are recorded. */
static void __attribute__((format(printf, 2, 3))) race_fail(int code, const char *format, ...) {
    char line[400];
    va_list args;
    va_start(args, format);
    vsnprintf(line, sizeof line, format, args);
    va_end(args);
    pthread_mutex_lock(&report_lock);
    if (reports++ < MOST_REPORTS) {
        fail(code, "%s", line);
    } else if (first_failure == 0) {
        first_failure = code;
    }
    pthread_mutex_unlock(&report_lock);
}

/* Records a call's outcome: returns 1 if it succeeded (result not -1), 0 if it failed, counting
 * the error number when `mask` allows it and failing the check when not. */
static int note(struct tally *t, const char *what, long result, unsigned mask) {
    t->calls++;
    if (result != -1) {
        t->succeeded++;
        return 1;
    }
    int error = errno;
    if (allowed(error, mask)) {
        t->failed++;
        if (error > 0 && error < MOST_ERRNO) {
            t->by_errno[error]++;
        }
        return 0;
    }
    t->unexpected++;
    race_fail(t->errno_code, "thread %s: %s failed with %s", t->name, what, strerrorname_np(error));
    return 0;
}

/* Whether `bytes` (n of them) are a prefix of one of A's files. */
static int is_content(const unsigned char *bytes, long n) {
    if (n < 0 || n > CONTENT) {
        return 0;
    }
    if (n > 0 && bytes[0] == 0) {
        return 0;
    }
    for (long i = 1; i < n; i++) {
        if ((unsigned char)(bytes[i] - bytes[0]) != (unsigned char)i) {
            return 0;
        }
    }
    return 1;
}

static void check_content(struct tally *t, int code, const char *how, const unsigned char *bytes, long n) {
    t->checked++;
    if (!is_content(bytes, n)) {
        race_fail(code, "thread %s: %ld bytes %s are not what A wrote: %02x %02x %02x %02x ...", t->name, n, how,
                  n > 0 ? bytes[0] : 0, n > 1 ? bytes[1] : 0, n > 2 ? bytes[2] : 0, n > 3 ? bytes[3] : 0);
    }
}

/* Reads the whole of fd from offset 0 with pread (at most 200 bytes), and checks it. */
static void pread_and_check(struct tally *t, int code, int fd, const char *how) {
    unsigned char bytes[200];
    long n = pread(fd, bytes, sizeof bytes, 0);
    if (note(t, how, n, 0)) {
        check_content(t, code, how, bytes, n);
    }
}

/* A: creates and removes the directory and the file. */
static void *thread_a(void *unused) {
    (void)unused;
    struct tally *t = &tallies[0];
    unsigned char bytes[CONTENT];
    pthread_barrier_wait(&start);
    for (long round = 0; round < iterations; round++) {
        note(t, "mkdir(" RACE_DIR ")", mkdir(RACE_DIR, 0755), OK_EEXIST);
        sched_yield();
        int fd = open(RACE_FILE, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (note(t, "open(" RACE_FILE ", O_CREAT)", fd, OK_ENOENT)) {
            for (int i = 0; i < CONTENT; i++) {
                bytes[i] = (unsigned char)(round % 255 + 1 + i);
            }
            sched_yield();
            long n = write(fd, bytes, CONTENT);
            if (note(t, "write(f, 100)", n, 0) && n != CONTENT) {
                race_fail(FAIL_A_WRITE, "thread A: write of 100 bytes to %s wrote %ld", RACE_FILE, n);
            }
            note(t, "close(f)", close(fd), 0);
        }
        sched_yield();
        note(t, "unlink(" RACE_FILE ")", unlink(RACE_FILE), OK_ENOENT);
        sched_yield();
        note(t, "rmdir(" RACE_DIR ")", rmdir(RACE_DIR), OK_ENOENT | OK_ENOTEMPTY | OK_EBUSY);
        sched_yield();
    }
    return NULL;
}

static void check_stat(struct tally *t, const char *what, const struct stat *st, int directory) {
    t->checked++;
    if (directory ? !S_ISDIR(st->st_mode) : !(S_ISREG(st->st_mode) && st->st_size >= 0 && st->st_size <= CONTENT)) {
        race_fail(FAIL_B_RESULT, "thread %s: %s gave mode %#o size %lld, expected %s", t->name, what, st->st_mode,
                  (long long)st->st_size, directory ? "a directory" : "a regular file of at most 100 bytes");
    }
}

/* B: moves its working directory in and out, and looks at the names. */
static void *thread_b(void *unused) {
    (void)unused;
    struct tally *t = &tallies[1];
    struct stat st;
    char cwd[4096];
    pthread_barrier_wait(&start);
    for (long round = 0; round < iterations; round++) {
        if (note(t, "chdir(" RACE_DIR ")", chdir(RACE_DIR), OK_GONE)) {
            sched_yield();
            /* Relative to whatever the working directory is now (D moves it too): "/" has no "f". */
            if (note(t, "stat(\"f\")", stat("f", &st), OK_GONE)) {
                check_stat(t, "stat(\"f\")", &st, 0);
            }
            char *got = getcwd(cwd, sizeof cwd);
            if (note(t, "getcwd", got == NULL ? -1 : 0, OK_ENOENT)) {
                t->checked++;
                if (cwd[0] != '/') {
                    race_fail(FAIL_B_RESULT, "thread B: getcwd gave \"%.100s\"", cwd);
                }
            }
        }
        sched_yield();
        note(t, "chdir(\"/\")", chdir("/"), 0);
        if (note(t, "stat(" RACE_FILE ")", stat(RACE_FILE, &st), OK_GONE)) {
            check_stat(t, "stat(" RACE_FILE ")", &st, 0);
        }
        sched_yield();
        if (note(t, "lstat(" RACE_FILE ")", lstat(RACE_FILE, &st), OK_GONE)) {
            check_stat(t, "lstat(" RACE_FILE ")", &st, 0);
        }
        if (note(t, "stat(" RACE_DIR ")", stat(RACE_DIR, &st), OK_ENOENT)) {
            check_stat(t, "stat(" RACE_DIR ")", &st, 1);
        }
        sched_yield();
    }
    return NULL;
}

/* C: maps the file while it comes and goes. */
static void *thread_c(void *unused) {
    (void)unused;
    struct tally *t = &tallies[2];
    pthread_barrier_wait(&start);
    for (long round = 0; round < iterations; round++) {
        int fd = open(RACE_FILE, O_RDONLY | O_CLOEXEC);
        if (!note(t, "open(" RACE_FILE ")", fd, OK_GONE)) {
            sched_yield();
            continue;
        }
        struct stat st;
        long size = -1;
        if (note(t, "fstat(f)", fstat(fd, &st), 0)) {
            size = st.st_size;
            t->checked++;
            if (!S_ISREG(st.st_mode) || size > CONTENT) {
                race_fail(FAIL_C_CONTENT, "thread C: fstat gave mode %#o size %ld", st.st_mode, size);
                size = -1;
            }
        }
        sched_yield();
        void *map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        int mapped = note(t, "mmap(f, 4096, PROT_READ, MAP_PRIVATE)", map == MAP_FAILED ? -1 : 0, 0);
        sched_yield();
        /* The size never shrinks (each file is new, and only written once): the bytes below the
         * size fstat gave are in the file, hence in the mapping (reading past the end of a file
         * in a mapping would be SIGBUS on Linux). */
        if (mapped && size > 0) {
            unsigned char bytes[CONTENT];
            memcpy(bytes, map, (size_t)size);
            check_content(t, FAIL_C_CONTENT, "through the mapping", bytes, size);
        }
        pread_and_check(t, FAIL_C_CONTENT, fd, "pread(f)");
        note(t, "close(f)", close(fd), 0);
        if (mapped) {
            note(t, "munmap", munmap(map, 4096), 0);
        }
        sched_yield();
    }
    return NULL;
}

/* Lists a directory with getdents64; checks the records. */
static void list_and_check(struct tally *t, int fd) {
    char buffer[1024] __attribute__((aligned(8)));
    for (int pass = 0; pass < 16; pass++) {
        long n = syscall(SYS_getdents64, fd, buffer, sizeof buffer);
        if (!note(t, "getdents64(" RACE_DIR ")", n, OK_ENOENT) || n == 0) {
            return;
        }
        t->checked++;
        for (long at = 0; at < n;) {
            unsigned short length;
            memcpy(&length, buffer + at + 16, sizeof length);
            const char *name = buffer + at + 19;
            if (length < 20 || length % 8 != 0 || at + length > n || memchr(name, '\0', length - 19) == NULL) {
                race_fail(FAIL_D_LISTING, "thread D: getdents64 gave a malformed record (length %u at %ld of %ld)",
                          length, at, n);
                return;
            }
            if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && strcmp(name, "f") != 0) {
                race_fail(FAIL_D_LISTING, "thread D: %s lists \"%.60s\"", RACE_DIR, name);
            }
            at += length;
        }
    }
}

/* D: holds the directory open while it comes and goes. */
static void *thread_d(void *unused) {
    (void)unused;
    struct tally *t = &tallies[3];
    pthread_barrier_wait(&start);
    for (long round = 0; round < iterations; round++) {
        int dir = open(RACE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (!note(t, "open(" RACE_DIR ", O_DIRECTORY)", dir, OK_GONE)) {
            sched_yield();
            continue;
        }
        list_and_check(t, dir);
        sched_yield();
        note(t, "fchdir(" RACE_DIR ")", fchdir(dir), OK_ENOENT);
        note(t, "fchdir(\"/\")", fchdir(root_fd), 0);
        int fd = openat(dir, "f", O_RDONLY | O_CLOEXEC);
        if (note(t, "openat(dir, \"f\")", fd, OK_ENOENT)) {
            sched_yield();
            pread_and_check(t, FAIL_D_CONTENT, fd, "pread(openat(dir, \"f\"))");
            note(t, "close(f)", close(fd), 0);
        }
        struct stat st;
        if (note(t, "fstatat(dir, \"f\")", fstatat(dir, "f", &st, 0), OK_ENOENT)) {
            t->checked++;
            if (!S_ISREG(st.st_mode) || st.st_size > CONTENT) {
                race_fail(FAIL_D_CONTENT, "thread D: fstatat(dir, \"f\") gave mode %#o size %lld", st.st_mode,
                          (long long)st.st_size);
            }
        }
        static const char *const relatives[] = {".", ".."};
        for (int i = 0; i < 2; i++) {
            int other = openat(dir, relatives[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (note(t, i == 0 ? "openat(dir, \".\")" : "openat(dir, \"..\")", other, OK_ENOENT)) {
                if (note(t, "fstat(openat(dir, \".\" or \"..\"))", fstat(other, &st), 0)) {
                    t->checked++;
                    if (!S_ISDIR(st.st_mode)) {
                        race_fail(FAIL_D_CONTENT, "thread D: openat(dir, \"%s\") is not a directory (mode %#o)",
                                  relatives[i], st.st_mode);
                    }
                }
                note(t, "close(dir)", close(other), 0);
            }
        }
        note(t, "close(" RACE_DIR ")", close(dir), 0);
        sched_yield();
    }
    return NULL;
}

static void report(const struct tally *t) {
    char errors[300] = "";
    size_t used = 0;
    for (int e = 1; e < MOST_ERRNO && used < sizeof errors - 40; e++) {
        if (t->by_errno[e] != 0) {
            used += (size_t)snprintf(errors + used, sizeof errors - used, "%s%s %ld", used ? ", " : "",
                                     strerrorname_np(e), t->by_errno[e]);
        }
    }
    say(1, "fs_race: thread %s: %ld calls, %ld succeeded, %ld failed as expected (%s), %ld unexpected, %ld results "
        "checked\n", t->name, t->calls, t->succeeded, t->failed, used ? errors : "none", t->unexpected, t->checked);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        iterations = atol(argv[1]);
        if (iterations <= 0) {
            say(2, "usage: fs_race [ITERATIONS]\n");
            return 2;
        }
    }
    root_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        fail(FAIL_SETUP, "open(\"/\"): %s", strerror(errno));
        return first_failure;
    }
    /* A leftover of an earlier run. */
    unlink(RACE_FILE);
    if (rmdir(RACE_DIR) != 0 && errno != ENOENT) {
        fail(FAIL_SETUP, "cannot remove a leftover %s: %s", RACE_DIR, strerror(errno));
        return first_failure;
    }
    say(1, "fs_race: 4 threads, %ld rounds each, on %s\n", iterations, RACE_DIR);
    pthread_barrier_init(&start, NULL, 4);
    void *(*const bodies[4])(void *) = {thread_a, thread_b, thread_c, thread_d};
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        int e = pthread_create(&threads[i], NULL, bodies[i], NULL);
        if (e != 0) {
            fail(FAIL_SETUP, "pthread_create: %s", strerror(e));
            return first_failure;
        }
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
    }

    long calls = 0, failed = 0, unexpected = 0, checked = 0;
    for (int i = 0; i < 4; i++) {
        report(&tallies[i]);
        calls += tallies[i].calls;
        failed += tallies[i].failed;
        unexpected += tallies[i].unexpected;
        checked += tallies[i].checked;
    }
    /* Both threads that move the working directory end their rounds in "/". */
    char cwd[4096] = "";
    CHECK(FAIL_END, getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, "/") == 0, "the working directory at the end is "
          "\"%s\", expected \"/\"", cwd);
    if (unlink(RACE_FILE) != 0 && errno != ENOENT) {
        fail(FAIL_END, "unlink(%s) at the end: %s", RACE_FILE, strerror(errno));
    }
    if (rmdir(RACE_DIR) != 0 && errno != ENOENT) {
        fail(FAIL_END, "rmdir(%s) at the end: %s", RACE_DIR, strerror(errno));
    }
    struct stat st;
    errno = 0;
    expect_errno(FAIL_END, "stat(" RACE_DIR ") once removed", stat(RACE_DIR, &st), ENOENT);
    say(1, "fs_race: %ld rounds x 4 threads: %ld calls, %ld failed as expected, %ld unexpected, %ld results checked: "
        "%s\n", iterations, calls, failed, unexpected, checked, first_failure ? "FAILED" : "all checks passed");
    if (first_failure != 0) {
        say(2, "fs_race: failed, exit status %d (the first failed check)\n", first_failure);
    }
    return first_failure;
}
