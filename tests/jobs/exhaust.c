/*
 * exhaust: runs one kernel resource out, checks that the failure is the right error number, that
 * the program is still alive to say so, and that the resource comes back once it is released.
 *
 * Usage: exhaust MODE [ARGS]. The modes:
 *
 *   tmp DIR [ERRNO]      files of 1 MiB (each written in 64 KiB writes) into DIR until an open or
 *                        a write fails; the failure must be ERRNO (default ENOSPC). A short write
 *                        counts as "full": the write after it must then fail with ERRNO. Prints
 *                        "exhaust: tmp full after N KiB: ENOSPC", unlinks every file and checks
 *                        that 1 MiB can be written again.
 *   tmp-one DIR [ERRNO]  the same with one single file grown until the failure (one big file
 *                        rather than many; a kernel with a file size limit below DIR's limit
 *                        answers EFBIG, which can be given as ERRNO).
 *   pipes                pipes made with pipe2(O_NONBLOCK), each writer filled until EAGAIN (or
 *                        ENOMEM: Linux's answer when a pipe page cannot be allocated), until
 *                        pipe2 fails: with EMFILE, ENFILE or ENOMEM. Prints which, the pipes and
 *                        the KiB buffered; closes everything and checks that a new pipe works.
 *   fds                  open("/dev/null") until it fails, with EMFILE; prints the count, closes
 *                        them all and checks that open works again.
 *   memory               anonymous 2 MiB mappings (MAP_POPULATE), every page touched, until mmap
 *                        fails, with ENOMEM; prints the MiB mapped, checks every page still holds
 *                        what was written to it, unmaps all and checks that 2 MiB map again.
 *   sparse               single 4 KiB pages mapped with MAP_FIXED_NOREPLACE 1 GiB apart from
 *                        0x100000000000 (each needs new page tables), each touched, until mmap
 *                        fails, with ENOMEM (an address already taken, EEXIST, is skipped). More
 *                        than 200000 pages, or reaching the end of the 47-bit user address space
 *                        (0x800000000000, after 114688 pages) without running out, is a failure.
 *                        Unmaps all and checks that the first page maps again.
 *   processes            children that _exit(0) at once, not reaped (each waited for with
 *                        WNOWAIT, so that it has ended and given back its memory), are forked
 *                        until fork fails, with EAGAIN; all are reaped and a fork works again.
 *   threads              threads (16 KiB stacks) that wait on a condition variable are created
 *                        until pthread_create fails, with EAGAIN; they are released and joined,
 *                        and a thread can be created again.
 *   execve PATH ERRNO    a forked child's execve(PATH) must fail with ERRNO (a name such as
 *                        ENOEXEC, or a number): "execve /boot/vmlinux ENOEXEC", a Linux kernel
 *                        image whose segments lie in the kernel half, must be refused, not loaded.
 *                        The child reports the error through a close-on-exec pipe; an execve that
 *                        does not return is a failure, whether the child then dies (Linux kills
 *                        it when loading fails after the point of no return) or still runs a
 *                        second later (then it is killed).
 *   execve-big DIR MIB   a file of MIB MiB of zero bytes (not an ELF) written into DIR, mode 755,
 *                        then execve'd by a forked child: must fail with ENOEXEC. If writing the
 *                        file runs DIR out of space first (ENOSPC), that is printed with a note
 *                        and the mode passes. The file is unlinked.
 *
 * Each mode prints one line saying what ran out and how, through write(2). One line per failed
 * check on stderr, "exhaust: FAIL <code>: <what>"; the exit status is the code of the first
 * failure, or 0 when every check passed. The codes:
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECKS_PROGRAM "exhaust"
#define CHECKS_ERRNO
#include "checks.h"

enum failure {
    FAIL_USAGE = 2,             /* unknown mode, missing or malformed arguments */
    FAIL_TMP_ERRNO = 10,        /* tmp/tmp-one: the open or write that failed gave another errno */
    FAIL_TMP_SHORT = 11,        /* tmp/tmp-one: the write after a short write did not fail */
    FAIL_TMP_NEVER_FULL = 12,   /* tmp/tmp-one: 1 TiB written without the directory filling up */
    FAIL_TMP_UNLINK = 13,       /* tmp/tmp-one: unlinking a file written failed */
    FAIL_TMP_AGAIN = 14,        /* tmp/tmp-one: 1 MiB cannot be written once the files are gone */
    FAIL_PIPE_ERRNO = 20,       /* pipes: pipe2 failed with other than EMFILE, ENFILE, ENOMEM */
    FAIL_PIPE_WRITE = 21,       /* pipes: filling a pipe failed with other than EAGAIN or ENOMEM */
    FAIL_PIPE_NEVER = 22,       /* pipes: 2^20 descriptors made without pipe2 failing */
    FAIL_PIPE_AGAIN = 23,       /* pipes: once all are closed, a new pipe does not carry data */
    FAIL_PIPE_CLOSE = 24,       /* pipes: closing a pipe's end failed */
    FAIL_FDS_ERRNO = 30,        /* fds: open failed with other than EMFILE */
    FAIL_FDS_NEVER = 31,        /* fds: 2^20 descriptors opened without open failing */
    FAIL_FDS_AGAIN = 32,        /* fds: closing one failed, or open fails once all are closed */
    FAIL_MEM_ERRNO = 40,        /* memory: mmap failed with other than ENOMEM */
    FAIL_MEM_NEVER = 41,        /* memory: 16 TiB mapped without mmap failing */
    FAIL_MEM_CONTENT = 42,      /* memory: a page does not hold what was written to it */
    FAIL_MEM_UNMAP = 43,        /* memory: munmap failed */
    FAIL_MEM_AGAIN = 44,        /* memory: 2 MiB cannot be mapped once all are unmapped */
    FAIL_SPARSE_ERRNO = 50,     /* sparse: mmap failed with other than ENOMEM (or EEXIST) */
    FAIL_SPARSE_NEVER = 51,     /* sparse: more than 200000 pages mapped */
    FAIL_SPARSE_END = 52,       /* sparse: the end of the user address space came first */
    FAIL_SPARSE_ADDRESS = 53,   /* sparse: MAP_FIXED_NOREPLACE mapped elsewhere than asked */
    FAIL_SPARSE_CONTENT = 54,   /* sparse: a page does not hold what was written to it */
    FAIL_SPARSE_UNMAP = 55,     /* sparse: munmap failed */
    FAIL_SPARSE_AGAIN = 56,     /* sparse: the first page cannot be mapped again */
    FAIL_PROC_ERRNO = 60,       /* processes: fork failed with other than EAGAIN */
    FAIL_PROC_NEVER = 61,       /* processes: 2^20 children forked without fork failing */
    FAIL_PROC_REAP = 62,        /* processes: reaping gave other than the children forked */
    FAIL_PROC_AGAIN = 63,       /* processes: fork fails, or its exit status is lost, once reaped */
    FAIL_THREAD_ERRNO = 70,     /* threads: pthread_create failed with other than EAGAIN */
    FAIL_THREAD_NEVER = 71,     /* threads: 200000 threads created without pthread_create failing */
    FAIL_THREAD_JOIN = 72,      /* threads: joining a released thread failed */
    FAIL_THREAD_AGAIN = 73,     /* threads: a thread cannot be created once all are joined */
    FAIL_EXEC_ERRNO = 80,       /* execve: failed with another errno than the one expected */
    FAIL_EXEC_ACCEPTED = 81,    /* execve: did not return an error (the child was replaced or died) */
    FAIL_EXEC_SETUP = 82,       /* execve: the pipe or the fork for the child failed */
    FAIL_BIG_WRITE = 90,        /* execve-big: writing the file failed with other than ENOSPC */
    FAIL_BIG_EXEC_ERRNO = 91,   /* execve-big: execve failed with other than ENOEXEC */
    FAIL_BIG_EXEC_ACCEPTED = 92, /* execve-big: execve did not return an error */
    FAIL_BIG_FILE = 93,         /* execve-big: creating, chmod or unlinking the file failed */
};

#define KiB 1024UL
#define MiB (1024UL * KiB)
#define GiB (1024UL * MiB)
#define PAGE 4096UL
#define PIECE (64 * KiB)

/* The data written to files and pipes: a pattern (or zeros for execve-big). */
static char piece[PIECE];

/* The error number named `name` ("ENOSPC", or a number such as "28"), or 0. */
static int errno_by_name(const char *name) {
    if (name[0] >= '0' && name[0] <= '9') {
        return atoi(name);
    }
    for (int e = 1; e < 4096; e++) {
        const char *known = strerrorname_np(e);
        if (known != NULL && strcmp(known, name) == 0) {
            return e;
        }
    }
    return 0;
}

static const char *errno_name(int error) {
    const char *name = strerrorname_np(error);
    return name != NULL ? name : "(unnamed errno)";
}

/* The largest number of descriptors this process may hold (for the arrays that keep them). */
static size_t descriptor_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (1UL << 20)) {
        return 1UL << 20;
    }
    return (size_t)limit.rlim_cur;
}

/* Room for one int per descriptor the process may hold (their count in *most); NULL after a FAIL
 * with `code`. */
static int *descriptor_slots(size_t *most, int code) {
    *most = descriptor_limit();
    int *slots = malloc(*most * sizeof *slots);
    if (slots == NULL)
        fail(code, "no memory for %zu descriptors", *most);
    return slots;
}

/* ---- tmp, tmp-one, execve-big: filling a directory ---- */

enum fill_result {
    FILLED,      /* `size` bytes written */
    FULL,        /* a write failed (its errno in *error), possibly after a short write */
    SHORT_THEN_OK, /* a short write, then the next write succeeded */
};

/* Writes `size` bytes (0: without end) to fd in pieces of 64 KiB, adding what is written to
 * *written. A write that fails ends it (FULL, errno in *error); so does a short write, after which
 * the next write must fail (FULL with its errno, or SHORT_THEN_OK if it did not). */
static enum fill_result fill_file(int fd, uint64_t size, uint64_t *written, int *error) {
    uint64_t done = 0;
    *error = 0;
    while (size == 0 || done < size) {
        size_t want = size == 0 || size - done > PIECE ? PIECE : (size_t)(size - done);
        ssize_t n = write(fd, piece, want);
        if (n < 0) {
            *error = errno;
            return FULL;
        }
        *written += (uint64_t)n;
        done += (uint64_t)n;
        if ((size_t)n < want) {
            n = write(fd, piece, want - (size_t)n);
            if (n < 0) {
                *error = errno;
                return FULL;
            }
            *written += (uint64_t)n;
            return SHORT_THEN_OK;
        }
    }
    return FILLED;
}

/* Checks that one more MiB fits in `dir` (the space came back), then removes that file. */
/* Creates (or empties) DIR/NAME with `mode`, its path in `path`; -1 after a FAIL with `code`. */
static int create_in(const char *dir, const char *name, mode_t mode, char (*path)[4096], int code) {
    snprintf(*path, sizeof *path, "%s/%s", dir, name);
    int fd = open(*path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        fail(code, "open(\"%s\"): %s", *path, errno_name(errno));
    return fd;
}

static void check_space_back(const char *dir) {
    char path[4096];
    int fd = create_in(dir, "exhaust-again", 0644, &path, FAIL_TMP_AGAIN);
    if (fd < 0)
        return;
    uint64_t written = 0;
    int error;
    enum fill_result result = fill_file(fd, MiB, &written, &error);
    close(fd);
    CHECK(FAIL_TMP_AGAIN, result == FILLED, "writing 1 MiB to %s once the files are gone stopped after %llu bytes: %s",
          path, (unsigned long long)written, error ? errno_name(error) : "short write");
    if (unlink(path) != 0) {
        fail(FAIL_TMP_UNLINK, "unlink(\"%s\"): %s", path, errno_name(errno));
    }
    if (result == FILLED) {
        say(1, "exhaust: 1 MiB written to %s again once the files were unlinked\n", dir);
    }
}

static void check_full(const char *mode, uint64_t written, enum fill_result result, int error, int expected) {
    if (result == SHORT_THEN_OK) {
        fail(FAIL_TMP_SHORT, "%s: a short write, then the next write succeeded (after %llu bytes)", mode,
             (unsigned long long)written);
        return;
    }
    say(1, "exhaust: %s full after %llu KiB: %s\n", mode, (unsigned long long)(written / KiB), errno_name(error));
    CHECK(FAIL_TMP_ERRNO, error == expected, "%s: the failure was %s, expected %s", mode, errno_name(error),
          errno_name(expected));
}

/* Files of 1 MiB until the directory is full. */
static void exhaust_tmp(const char *dir, int expected) {
    enum { MOST_FILES = 1 << 20 }; /* 1 TiB */
    char path[4096];
    uint64_t written = 0;
    int files = 0, error = 0;
    enum fill_result result = FULL;
    for (;; files++) {
        if (files == MOST_FILES) {
            fail(FAIL_TMP_NEVER_FULL, "%d files of 1 MiB written into %s without it filling up", files, dir);
            break;
        }
        snprintf(path, sizeof path, "%s/exhaust-%d", dir, files);
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            error = errno;
            result = FULL;
            break;
        }
        result = fill_file(fd, MiB, &written, &error);
        close(fd);
        if (result != FILLED) {
            files++;
            break;
        }
    }
    if (files < MOST_FILES) {
        check_full("tmp", written, result, error, expected);
    }
    say(1, "exhaust: tmp: %d files in %s, unlinking them\n", files, dir);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/exhaust-%d", dir, i);
        if (unlink(path) != 0) {
            fail(FAIL_TMP_UNLINK, "unlink(\"%s\"): %s", path, errno_name(errno));
        }
    }
    check_space_back(dir);
}

/* One file grown until the directory is full. */
static void exhaust_tmp_one(const char *dir, int expected) {
    char path[4096];
    int fd = create_in(dir, "exhaust-one", 0644, &path, FAIL_TMP_ERRNO);
    if (fd < 0)
        return;
    uint64_t written = 0;
    int error = 0;
    enum fill_result result = FILLED;
    while (result == FILLED && written < (1ULL << 40)) {
        result = fill_file(fd, GiB, &written, &error);
    }
    close(fd);
    if (result == FILLED) {
        fail(FAIL_TMP_NEVER_FULL, "1 TiB written to %s without the directory filling up", path);
    } else {
        check_full("tmp-one", written, result, error, expected);
    }
    if (unlink(path) != 0) {
        fail(FAIL_TMP_UNLINK, "unlink(\"%s\"): %s", path, errno_name(errno));
    }
    check_space_back(dir);
}

/* ---- pipes ---- */

static void exhaust_pipes(void) {
    size_t most;
    int *ends = descriptor_slots(&most, FAIL_PIPE_NEVER);
    if (ends == NULL)
        return;
    size_t count = 0; /* descriptors in ends[] */
    uint64_t buffered = 0;
    int error = 0, enomem_writes = 0;
    for (;;) {
        if (count + 2 > most) {
            fail(FAIL_PIPE_NEVER, "%zu pipes made without pipe2 failing", count / 2);
            break;
        }
        int pipe_ends[2];
        if (pipe2(pipe_ends, O_NONBLOCK | O_CLOEXEC) != 0) {
            error = errno;
            break;
        }
        ends[count++] = pipe_ends[0];
        ends[count++] = pipe_ends[1];
        for (;;) {
            ssize_t n = write(pipe_ends[1], piece, PIECE);
            if (n > 0) {
                buffered += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EAGAIN) {
                break;
            }
            if (n < 0 && errno == ENOMEM) {
                enomem_writes++;
                break;
            }
            fail(FAIL_PIPE_WRITE, "write to pipe %zu returned %zd (%s), expected EAGAIN once full", count / 2, n,
                 n < 0 ? errno_name(errno) : "no error");
            break;
        }
    }
    if (error != 0) {
        say(1, "exhaust: pipes: pipe2 failed with %s after %zu pipes, %llu KiB buffered (%d writes failed with ENOMEM)\n",
            errno_name(error), count / 2, (unsigned long long)(buffered / KiB), enomem_writes);
        CHECK(FAIL_PIPE_ERRNO, error == EMFILE || error == ENFILE || error == ENOMEM,
              "pipe2 failed with %s, expected EMFILE, ENFILE or ENOMEM", errno_name(error));
    }
    for (size_t i = 0; i < count; i++) {
        if (close(ends[i]) != 0) {
            fail(FAIL_PIPE_CLOSE, "close(%d): %s", ends[i], errno_name(errno));
        }
    }
    free(ends);

    int again[2];
    if (pipe2(again, O_CLOEXEC) != 0) {
        fail(FAIL_PIPE_AGAIN, "pipe2 once every pipe is closed: %s", errno_name(errno));
        return;
    }
    static const char message[] = "the pipes came back";
    char back[sizeof message] = {0};
    ssize_t wrote = write(again[1], message, sizeof message);
    ssize_t got = read(again[0], back, sizeof back);
    CHECK(FAIL_PIPE_AGAIN, wrote == (ssize_t)sizeof message && got == wrote && memcmp(back, message, sizeof message) == 0,
          "a new pipe: wrote %zd, read %zd bytes", wrote, got);
    close(again[0]);
    close(again[1]);
    if (first_failure == 0) {
        say(1, "exhaust: pipes: a new pipe works once they are closed\n");
    }
}

/* ---- fds ---- */

static void exhaust_fds(void) {
    size_t most;
    int *fds = descriptor_slots(&most, FAIL_FDS_NEVER);
    if (fds == NULL)
        return;
    size_t count = 0;
    int error = 0;
    for (;;) {
        if (count == most) {
            fail(FAIL_FDS_NEVER, "%zu descriptors opened without open failing", count);
            break;
        }
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            error = errno;
            break;
        }
        fds[count++] = fd;
    }
    if (error != 0) {
        say(1, "exhaust: fds: open failed with %s after %zu descriptors (the highest %d)\n", errno_name(error), count,
            count > 0 ? fds[count - 1] : -1);
        CHECK(FAIL_FDS_ERRNO, error == EMFILE, "open failed with %s, expected EMFILE", errno_name(error));
    }
    for (size_t i = 0; i < count; i++) {
        if (close(fds[i]) != 0) {
            fail(FAIL_FDS_AGAIN, "close(%d): %s", fds[i], errno_name(errno));
        }
    }
    free(fds);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(FAIL_FDS_AGAIN, "open(\"/dev/null\") once all are closed: %s", errno_name(errno));
        return;
    }
    close(fd);
    say(1, "exhaust: fds: open works again once they are closed\n");
}

/* ---- memory ---- */

#define CHUNK (2 * MiB)

/* What a touched page holds, after the list link at its start. */
static uint64_t page_mark(uint64_t chunk, uint64_t page) {
    return (chunk << 20 | page) ^ 0x5eed5eed00000000ULL;
}

static void exhaust_memory(void) {
    /* The chunks are kept in a list linked through their first words: no other memory needed. */
    void *head = NULL;
    uint64_t chunks = 0;
    int error = 0;
    for (;;) {
        if (chunks == (16ULL << 40) / CHUNK) {
            fail(FAIL_MEM_NEVER, "%llu MiB mapped without mmap failing", (unsigned long long)(chunks * CHUNK / MiB));
            break;
        }
        char *chunk = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (chunk == MAP_FAILED) {
            error = errno;
            break;
        }
        for (uint64_t page = 0; page < CHUNK / PAGE; page++) {
            ((volatile uint64_t *)(chunk + page * PAGE))[1] = page_mark(chunks, page);
        }
        *(void **)chunk = head;
        head = chunk;
        chunks++;
    }
    if (error != 0) {
        say(1, "exhaust: memory: mmap failed with %s after %llu MiB mapped and touched\n", errno_name(error),
            (unsigned long long)(chunks * CHUNK / MiB));
        CHECK(FAIL_MEM_ERRNO, error == ENOMEM, "mmap failed with %s, expected ENOMEM", errno_name(error));
    }
    int wrong = 0;
    for (uint64_t index = chunks; head != NULL;) {
        index--;
        char *chunk = head;
        for (uint64_t page = 0; page < CHUNK / PAGE; page++) {
            uint64_t found = ((volatile uint64_t *)(chunk + page * PAGE))[1];
            if (found != page_mark(index, page) && wrong++ < 5) {
                fail(FAIL_MEM_CONTENT, "page %llu of chunk %llu at %p holds %#llx, expected %#llx",
                     (unsigned long long)page, (unsigned long long)index, (void *)(chunk + page * PAGE),
                     (unsigned long long)found, (unsigned long long)page_mark(index, page));
            }
        }
        head = *(void **)chunk;
        if (munmap(chunk, CHUNK) != 0) {
            fail(FAIL_MEM_UNMAP, "munmap(%p, 2 MiB): %s", (void *)chunk, errno_name(errno));
        }
    }
    char *again = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (again == MAP_FAILED) {
        fail(FAIL_MEM_AGAIN, "mmap of 2 MiB once all are unmapped: %s", errno_name(errno));
        return;
    }
    for (uint64_t page = 0; page < CHUNK / PAGE; page++) {
        ((volatile char *)again)[page * PAGE] = 1;
    }
    munmap(again, CHUNK);
    say(1, "exhaust: memory: 2 MiB mapped and touched again once all were unmapped\n");
}

/* ---- sparse ---- */

#define SPARSE_BASE 0x100000000000UL
#define SPARSE_STEP GiB
#define SPARSE_MOST 200000
#define USER_END 0x800000000000UL

static void exhaust_sparse(void) {
    /* 1: mapped by us, 2: taken already (EEXIST), skipped. */
    unsigned char *state = calloc(SPARSE_MOST + 2, 1);
    if (state == NULL) {
        fail(FAIL_SPARSE_NEVER, "no memory for the page table");
        return;
    }
    int mapped = 0, skipped = 0, error = 0, tried = 0;
    uintptr_t at = SPARSE_BASE;
    for (;; tried++) {
        at = SPARSE_BASE + (uintptr_t)tried * SPARSE_STEP;
        if (mapped > SPARSE_MOST) {
            fail(FAIL_SPARSE_NEVER, "%d sparse pages mapped without mmap failing", mapped);
            break;
        }
        if (at >= USER_END) {
            fail(FAIL_SPARSE_END, "%d pages mapped 1 GiB apart up to %#lx, the end of the 47-bit user address space, "
                 "without running out of page-table memory", mapped, (unsigned long)at);
            break;
        }
        char *page = mmap((void *)at, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                          -1, 0);
        if (page == MAP_FAILED) {
            if (errno == EEXIST) {
                state[tried] = 2;
                skipped++;
                continue;
            }
            error = errno;
            break;
        }
        if ((uintptr_t)page != at) {
            fail(FAIL_SPARSE_ADDRESS, "mmap(%#lx, MAP_FIXED_NOREPLACE) mapped %p", (unsigned long)at, (void *)page);
            munmap(page, PAGE);
            break;
        }
        *(volatile uint64_t *)page = at ^ 0xa5a5a5a5a5a5a5a5ULL;
        state[tried] = 1;
        mapped++;
    }
    if (error != 0) {
        say(1, "exhaust: sparse: mmap at %#lx failed with %s after %d pages 1 GiB apart (%d addresses taken, skipped)\n",
            (unsigned long)at, errno_name(error), mapped, skipped);
        CHECK(FAIL_SPARSE_ERRNO, error == ENOMEM, "mmap failed with %s, expected ENOMEM", errno_name(error));
    }
    int wrong = 0;
    for (int i = 0; i < tried && i <= SPARSE_MOST + 1; i++) {
        if (state[i] != 1) {
            continue;
        }
        uintptr_t address = SPARSE_BASE + (uintptr_t)i * SPARSE_STEP;
        uint64_t found = *(volatile uint64_t *)address;
        if (found != (address ^ 0xa5a5a5a5a5a5a5a5ULL) && wrong++ < 5) {
            fail(FAIL_SPARSE_CONTENT, "the page at %#lx holds %#llx", (unsigned long)address, (unsigned long long)found);
        }
        if (munmap((void *)address, PAGE) != 0) {
            fail(FAIL_SPARSE_UNMAP, "munmap(%#lx): %s", (unsigned long)address, errno_name(errno));
        }
    }
    free(state);
    char *again = mmap((void *)SPARSE_BASE, PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (again == MAP_FAILED || (uintptr_t)again != SPARSE_BASE) {
        fail(FAIL_SPARSE_AGAIN, "mmap(%#lx) once all are unmapped: %s", SPARSE_BASE,
             again == MAP_FAILED ? errno_name(errno) : "mapped elsewhere");
        return;
    }
    *(volatile char *)again = 1;
    munmap(again, PAGE);
    say(1, "exhaust: sparse: a page maps again at %#lx once all are unmapped\n", SPARSE_BASE);
}

/* ---- processes ---- */

static void exhaust_processes(void) {
    enum { MOST = 1 << 20 };
    int children = 0, error = 0;
    for (;;) {
        if (children == MOST) {
            fail(FAIL_PROC_NEVER, "%d children forked without fork failing", children);
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            _exit(0);
        }
        if (pid < 0) {
            error = errno;
            break;
        }
        children++;
        /* Let it end (and give back its memory) before the next fork, without reaping it: the
         * limit to reach is on processes, not on the memory that live copies of this one take. */
        siginfo_t info;
        waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
    }
    if (error != 0) {
        say(1, "exhaust: processes: fork failed with %s after %d children (not reaped)\n", errno_name(error), children);
        CHECK(FAIL_PROC_ERRNO, error == EAGAIN, "fork failed with %s, expected EAGAIN", errno_name(error));
    }
    int reaped = 0, status, bad_status = 0;
    pid_t pid;
    while ((pid = wait(&status)) > 0) {
        reaped++;
        bad_status += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int wait_error = errno;
    CHECK(FAIL_PROC_REAP, reaped == children && wait_error == ECHILD && bad_status == 0,
          "reaped %d of %d children (%d with a status other than exit 0), then wait failed with %s", reaped, children,
          bad_status, errno_name(wait_error));
    pid = fork();
    if (pid == 0) {
        _exit(7);
    }
    if (pid < 0) {
        fail(FAIL_PROC_AGAIN, "fork once all are reaped: %s", errno_name(errno));
        return;
    }
    CHECK(FAIL_PROC_AGAIN, waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 7,
          "the child forked once all were reaped: status %#x, expected exit 7", status);
    say(1, "exhaust: processes: %d reaped, fork works again\n", reaped);
}

/* ---- threads ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int released;

static void *waiter(void *arg) {
    pthread_mutex_lock(&lock);
    while (!released) {
        pthread_cond_wait(&go, &lock);
    }
    pthread_mutex_unlock(&lock);
    return arg;
}

static void release_waiters(void) {
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
}

static void exhaust_threads(void) {
    enum { MOST = 200000 };
    pthread_t *threads = malloc(MOST * sizeof *threads);
    if (threads == NULL) {
        fail(FAIL_THREAD_NEVER, "no memory for the thread table");
        return;
    }
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 16 * KiB);
    int count = 0, error = 0;
    for (;;) {
        if (count == MOST) {
            fail(FAIL_THREAD_NEVER, "%d threads created without pthread_create failing", count);
            break;
        }
        error = pthread_create(&threads[count], &small, waiter, NULL);
        if (error != 0) {
            break;
        }
        count++;
    }
    if (error != 0) {
        say(1, "exhaust: threads: pthread_create failed with %s after %d threads (%d live with the main one)\n",
            errno_name(error), count, count + 1);
        CHECK(FAIL_THREAD_ERRNO, error == EAGAIN, "pthread_create failed with %s, expected EAGAIN", errno_name(error));
    }
    release_waiters();
    int joined = 0;
    for (int i = 0; i < count; i++) {
        int e = pthread_join(threads[i], NULL);
        if (e != 0) {
            fail(FAIL_THREAD_JOIN, "pthread_join of thread %d: %s", i, errno_name(e));
        } else {
            joined++;
        }
    }
    pthread_t again;
    int e = pthread_create(&again, &small, waiter, NULL);
    if (e != 0) {
        fail(FAIL_THREAD_AGAIN, "pthread_create once all are joined: %s", errno_name(e));
    } else {
        CHECK(FAIL_THREAD_AGAIN, pthread_join(again, NULL) == 0, "joining the new thread failed");
        say(1, "exhaust: threads: %d joined, a thread can be created again\n", joined);
    }
    pthread_attr_destroy(&small);
    free(threads);
}

/* ---- execve, execve-big ---- */

enum exec_outcome {
    EXEC_FAILED,    /* execve returned an error: *error */
    EXEC_ACCEPTED,  /* it did not return: the child ran something else, or died; *status */
    EXEC_NO_CHILD,  /* the pipe or the fork failed: *error */
};

/* Runs execve(path) in a forked child, which sends its errno back through a close-on-exec pipe:
 * end of file on the pipe means execve did not return. A child still running a second later is
 * killed (*killed set). */
static enum exec_outcome try_execve(const char *path, int *error, int *status, int *killed) {
    int report[2];
    *status = 0;
    *killed = 0;
    if (pipe2(report, O_CLOEXEC) != 0) {
        *error = errno;
        return EXEC_NO_CHILD;
    }
    pid_t child = fork();
    if (child < 0) {
        *error = errno;
        close(report[0]);
        close(report[1]);
        return EXEC_NO_CHILD;
    }
    if (child == 0) {
        close(report[0]);
        char *argv[] = {(char *)path, NULL};
        char *envp[] = {NULL};
        execve(path, argv, envp);
        int e = errno;
        write_all(report[1], (const char *)&e, sizeof e);
        _exit(0);
    }
    close(report[1]);
    int e = 0;
    ssize_t got;
    do {
        got = read(report[0], &e, sizeof e);
    } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof e) {
        waitpid(child, status, 0);
        *error = e;
        return EXEC_FAILED;
    }
    /* The pipe closes at execve's point of no return: give the child a second to end on its own
     * (a failure after that point kills it), then end it. */
    for (int waited = 0; waited < 100; waited++) {
        if (waitpid(child, status, WNOHANG) == child) {
            *killed = 0;
            return EXEC_ACCEPTED;
        }
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    kill(child, SIGKILL);
    waitpid(child, status, 0);
    *killed = 1;
    return EXEC_ACCEPTED;
}

static void describe_status(int status, int killed, char *out, size_t size) {
    if (killed) {
        snprintf(out, size, "was still running a second later (the image was loaded): killed");
    } else if (WIFSIGNALED(status)) {
        const char *name = sigabbrev_np(WTERMSIG(status));
        snprintf(out, size, "was killed by SIG%s (execve failed after its point of no return, or the image ran and "
                 "faulted)", name != NULL ? name : "?");
    } else if (WIFEXITED(status)) {
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    } else {
        snprintf(out, size, "status %#x", status);
    }
}

static void check_execve(const char *path, int expected) {
    int error, status, killed;
    enum exec_outcome outcome = try_execve(path, &error, &status, &killed);
    if (outcome == EXEC_NO_CHILD) {
        fail(FAIL_EXEC_SETUP, "cannot start the child for execve: %s", errno_name(error));
    } else if (outcome == EXEC_ACCEPTED) {
        char what[160];
        describe_status(status, killed, what, sizeof what);
        fail(FAIL_EXEC_ACCEPTED, "execve(\"%s\") did not return an error: the child %s", path, what);
    } else {
        say(1, "exhaust: execve(\"%s\") failed with %s\n", path, errno_name(error));
        CHECK(FAIL_EXEC_ERRNO, error == expected, "execve(\"%s\") failed with %s, expected %s", path, errno_name(error),
              errno_name(expected));
    }
}

static void execve_big(const char *dir, long mib) {
    char path[4096];
    memset(piece, 0, sizeof piece);
    int fd = create_in(dir, "exhaust-big", 0755, &path, FAIL_BIG_FILE);
    if (fd < 0)
        return;
    uint64_t written = 0;
    int error;
    enum fill_result result = fill_file(fd, (uint64_t)mib * MiB, &written, &error);
    int mode_error = fchmod(fd, 0755) == 0 ? 0 : errno;
    close(fd);
    if (result == FULL && error == ENOSPC) {
        say(1, "exhaust: execve-big: %s filled up (ENOSPC) after %llu KiB of the %ld MiB: the space limit came first, "
            "execve not tried\n", dir, (unsigned long long)(written / KiB), mib);
    } else if (result != FILLED) {
        fail(FAIL_BIG_WRITE, "writing %ld MiB to %s stopped after %llu bytes: %s", mib, path,
             (unsigned long long)written, result == FULL ? errno_name(error) : "a short write, then a write succeeded");
    } else if (mode_error != 0) {
        fail(FAIL_BIG_FILE, "fchmod(\"%s\", 0755): %s", path, errno_name(mode_error));
    } else {
        int status, killed;
        enum exec_outcome outcome = try_execve(path, &error, &status, &killed);
        if (outcome == EXEC_NO_CHILD) {
            fail(FAIL_EXEC_SETUP, "cannot start the child for execve: %s", errno_name(error));
        } else if (outcome == EXEC_ACCEPTED) {
            char what[160];
            describe_status(status, killed, what, sizeof what);
            fail(FAIL_BIG_EXEC_ACCEPTED, "execve of the %ld MiB file of zeros did not return an error: the child %s", mib,
                 what);
        } else {
            say(1, "exhaust: execve-big: execve of a %ld MiB file of zeros failed with %s\n", mib, errno_name(error));
            CHECK(FAIL_BIG_EXEC_ERRNO, error == ENOEXEC, "execve of the %ld MiB file failed with %s, expected ENOEXEC",
                  mib, errno_name(error));
        }
    }
    if (unlink(path) != 0) {
        fail(FAIL_BIG_FILE, "unlink(\"%s\"): %s", path, errno_name(errno));
    }
}

/* ---- main ---- */

static int usage(void) {
    say(2, "usage: exhaust tmp DIR [ERRNO] | tmp-one DIR [ERRNO] | pipes | fds | memory | sparse | processes | "
           "threads | execve PATH ERRNO | execve-big DIR MIB\n");
    return FAIL_USAGE;
}

/* The modes that take no argument. */
static const struct {
    const char *name;
    void (*run)(void);
} PLAIN_MODES[] = {
    {"pipes", exhaust_pipes},         {"fds", exhaust_fds},         {"memory", exhaust_memory},
    {"sparse", exhaust_sparse},       {"processes", exhaust_processes}, {"threads", exhaust_threads},
};

/* The function of the plain mode `name`, or NULL. */
static void (*plain_mode(const char *name))(void) {
    for (size_t i = 0; i < sizeof PLAIN_MODES / sizeof PLAIN_MODES[0]; i++)
        if (strcmp(name, PLAIN_MODES[i].name) == 0)
            return PLAIN_MODES[i].run;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        return usage();
    }
    const char *mode = argv[1];
    for (size_t i = 0; i < sizeof piece; i++) {
        piece[i] = (char)('a' + i % 26);
    }
    if (strcmp(mode, "tmp") == 0 || strcmp(mode, "tmp-one") == 0) {
        if (argc < 3 || argc > 4) {
            return usage();
        }
        int expected = argc == 4 ? errno_by_name(argv[3]) : ENOSPC;
        if (expected == 0) {
            say(2, "exhaust: unknown error number %s\n", argv[3]);
            return usage();
        }
        if (mode[3] == '\0') {
            exhaust_tmp(argv[2], expected);
        } else {
            exhaust_tmp_one(argv[2], expected);
        }
    } else if (argc == 2 && plain_mode(mode) != NULL) {
        plain_mode(mode)();
    } else if (strcmp(mode, "execve") == 0 && argc == 4) {
        int expected = errno_by_name(argv[3]);
        if (expected == 0) {
            say(2, "exhaust: unknown error number %s\n", argv[3]);
            return usage();
        }
        check_execve(argv[2], expected);
    } else if (strcmp(mode, "execve-big") == 0 && argc == 4) {
        long mib = atol(argv[3]);
        if (mib <= 0) {
            return usage();
        }
        execve_big(argv[2], mib);
    } else {
        return usage();
    }
    if (first_failure != 0) {
        say(2, "exhaust: %s: failed, exit status %d (the first failed check)\n", mode, first_failure);
        return first_failure;
    }
    say(1, "exhaust: %s: all checks passed\n", mode);
    return 0;
}
