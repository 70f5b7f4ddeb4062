/*
 * memory: the memory system calls of a native job (mmap, munmap, mprotect, mremap, brk,
 * madvise) and glibc's malloc on top of them, checked against Linux's behaviour.
 *
 * Usage: memory (no arguments). Run it with a 64 MiB reservation (job.mem=64M): the first
 * check maps and unmaps 32 MiB 50 times, far more than the reservation in total, so memory
 * must really go back to the job's pool.
 *
 * The last act, once every check has passed, is a write to a read-only page at the fixed
 * address 0x200000000 (8589934592): the kernel must end the job with SIGSEGV (status 139) and
 * a user_fault event whose address is that page. Should the write return, the program says so
 * and exits with FAIL_NO_FAULT.
 *
 * With two cores or more (job.cores=1-2), a thread on the second core checks that mprotect on
 * the first flushes its TLB (a TLB shootdown); with one core that check is skipped.
 *
 * One line on stderr per failed check, "memory: FAIL <code>: <what>"; if any check failed the
 * program exits with the code of the first (without the final fault). The codes:
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECKS_PROGRAM "memory"
#include "checks.h"

enum failure {
    FAIL_CYCLE = 10,          /* mapping 32 MiB 50 times: failure, non-zero memory, lost writes */
    FAIL_POOL = 11,           /* MemFree does not come back after the cycles */
    FAIL_ENOMEM = 12,         /* a mapping larger than the reservation does not fail with ENOMEM */
    FAIL_SHARED = 13,         /* anonymous MAP_SHARED */
    FAIL_FIXED = 14,          /* MAP_FIXED over an existing mapping */
    FAIL_NOREPLACE = 15,      /* MAP_FIXED_NOREPLACE */
    FAIL_HINT = 16,           /* a free hint address is not used */
    FAIL_PARTIAL_UNMAP = 17,  /* munmap of the middle of a 4 MiB mapping, then mapping the hole */
    FAIL_MREMAP_GROW = 18,    /* mremap growing in place (twice) */
    FAIL_MREMAP_MOVE = 19,    /* mremap blocked: ENOMEM without MREMAP_MAYMOVE, a move with it */
    FAIL_MREMAP_SHRINK = 20,  /* mremap shrinking */
    FAIL_MREMAP_BIG = 21,     /* moving most of the reservation (pages must move, not be copied) */
    FAIL_BRK = 22,            /* brk / sbrk growth and shrink */
    FAIL_MPROTECT = 23,       /* mprotect read-only, PROT_NONE, back to read-write */
    FAIL_RESERVE = 24,        /* a PROT_NONE reservation made read-write by mprotect */
    FAIL_MADVISE = 25,        /* MADV_DONTNEED does not zero private anonymous memory */
    FAIL_MAPS = 26,           /* /proc/self/maps does not show the mappings as they are */
    FAIL_ARGS = 27,           /* invalid arguments are not refused with Linux's error numbers */
    FAIL_MALLOC_LARGE = 28,   /* large malloc blocks (glibc's mmap path), realloc growth */
    FAIL_MALLOC_SMALL = 29,   /* many small malloc blocks */
    FAIL_FAULT_SETUP = 30,    /* the read-only page for the final fault cannot be set up */
    FAIL_NO_FAULT = 31,       /* writing the read-only page did not end the job */
    FAIL_FILE_MAP = 32,       /* mapping a file (private, shared read-only, at an offset, /dev/zero) */
    FAIL_UNMAP_SPAN = 33,     /* munmap across several mappings and holes */
    FAIL_FIXED_TOO_BIG = 34,  /* a MAP_FIXED the reservation cannot hold destroyed what it covered */
    FAIL_SHOOTDOWN = 35,      /* a thread on another core still writes a page made read-only */
};

#define MiB (1UL << 20)
#define PAGE 4096UL
#define CYCLE_BYTES (32 * MiB)
#define CYCLES 50
/* Where the final fault happens (the scenario checks the user_fault event's address). */
#define FAULT_PAGE 0x200000000UL
/* Far from everything else: its page tables are new (see check_reservation). */
#define RESERVE_AT 0x10000000000UL

/* A scratch file in /tmp for readable(). */
static int probe_fd = -1;

/* Whether the kernel can read `address` for us: pwrite(2) to a file copies from it first, so an
 * unmapped or PROT_NONE page gives EFAULT without a signal. */
static int readable(const void *address) {
    return pwrite(probe_fd, address, 1, 0) == 1;
}

static void *map(void *address, size_t length, int protection, int flags) {
    return mmap(address, length, protection, flags | MAP_ANONYMOUS, -1, 0);
}

/* A recognisable byte for offset i of test area `tag`. */
static unsigned char pattern(unsigned tag, size_t i) {
    return (unsigned char)(tag * 31 + i * 7 + i / 4093);
}

static void fill(unsigned char *p, size_t length, unsigned tag) {
    for (size_t i = 0; i < length; i++) {
        p[i] = pattern(tag, i);
    }
}

/* Whether p[from..to) holds the pattern `tag` laid from p[0]. */
static int holds(const unsigned char *p, size_t from, size_t to, unsigned tag) {
    for (size_t i = from; i < to; i++) {
        if (p[i] != pattern(tag, i)) {
            return 0;
        }
    }
    return 1;
}

static int all_zero(const unsigned char *p, size_t length) {
    const uint64_t *words = (const uint64_t *)p;
    for (size_t i = 0; i < length / 8; i++) {
        if (words[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* MemFree of /proc/meminfo in KiB, or 0. */
static unsigned long mem_free_kib(void) {
    static char text[4096];
    int fd = open("/proc/meminfo", O_RDONLY);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    const char *line = strstr(text, "MemFree:");
    unsigned long kib = 0;
    return line != NULL && sscanf(line, "MemFree: %lu kB", &kib) == 1 ? kib : 0;
}

/* The /proc/self/maps line of the mapping holding `address` (NUL-terminated, without the
 * newline), or "" when there is none. */
static const char *maps_line(const void *address) {
    static char text[65536], line[256];
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t total = 0;
    if (fd >= 0) {
        ssize_t n;
        while (total < sizeof text - 1 && (n = read(fd, text + total, sizeof text - 1 - total)) > 0) {
            total += (size_t)n;
        }
        close(fd);
    }
    text[total] = '\0';
    line[0] = '\0';
    for (char *p = text; p != NULL && *p != '\0';) {
        unsigned long from, to;
        char *eol = strchr(p, '\n');
        if (sscanf(p, "%lx-%lx", &from, &to) == 2 && from <= (unsigned long)address && (unsigned long)address < to) {
            size_t length = eol != NULL ? (size_t)(eol - p) : strlen(p);
            length = length < sizeof line - 1 ? length : sizeof line - 1;
            memcpy(line, p, length);
            line[length] = '\0';
            break;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return line;
}

/* ---- the checks ---- */

static void check_cycles(void) {
    unsigned long free_before = mem_free_kib();
    for (unsigned cycle = 0; cycle < CYCLES; cycle++) {
        unsigned char *p = map(NULL, CYCLE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE);
        if (p == MAP_FAILED) {
            fail(FAIL_CYCLE, "cycle %u: mmap of 32 MiB failed: %s", cycle, strerror(errno));
            return;
        }
        /* Every page starts zeroed (whole pages on the first and last cycles, the words the
         * previous cycles wrote on the others), then gets a stamp. */
        int full = cycle == 0 || cycle == CYCLES - 1;
        size_t dirty = 0;
        for (size_t page = 0; page < CYCLE_BYTES / PAGE; page++) {
            uint64_t *words = (uint64_t *)(p + page * PAGE);
            if (full ? !all_zero((unsigned char *)words, PAGE) : (words[0] | words[1] | words[511]) != 0) {
                dirty++;
            }
            words[0] = ((uint64_t)cycle << 32) | page;
            words[1] = ~words[0];
            words[511] = page;
        }
        size_t lost = 0;
        for (size_t page = 0; page < CYCLE_BYTES / PAGE; page++) {
            uint64_t *words = (uint64_t *)(p + page * PAGE);
            lost += words[0] != (((uint64_t)cycle << 32) | page) || words[1] != ~words[0] || words[511] != page;
        }
        CHECK(FAIL_CYCLE, dirty == 0, "cycle %u: %zu pages of a new mapping were not zero", cycle, dirty);
        CHECK(FAIL_CYCLE, lost == 0, "cycle %u: %zu pages lost their stamp (pages shared?)", cycle, lost);
        if (munmap(p, CYCLE_BYTES) != 0) {
            fail(FAIL_CYCLE, "cycle %u: munmap failed: %s", cycle, strerror(errno));
            return;
        }
        if (dirty != 0 || lost != 0) {
            return;
        }
    }
    unsigned long free_after = mem_free_kib();
    CHECK(FAIL_POOL, free_before > 0 && free_after + 1024 >= free_before,
          "MemFree was %lu kB before %d cycles of 32 MiB and %lu kB after", free_before, CYCLES, free_after);
    say(1, "memory: %d cycles of mapping and unmapping 32 MiB passed (MemFree %lu kB)\n", CYCLES, free_after);
}

static void check_enomem(void) {
    void *p = map(NULL, 256 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    int error = errno;
    if (p != MAP_FAILED) {
        fail(FAIL_ENOMEM, "a 256 MiB mapping with a 64 MiB reservation succeeded at %p", p);
        munmap(p, 256 * MiB);
        return;
    }
    CHECK(FAIL_ENOMEM, error == ENOMEM, "a 256 MiB mapping failed with %s, expected ENOMEM", strerrorname_np(error));
    /* The failure took nothing. */
    p = map(NULL, CYCLE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    CHECK(FAIL_ENOMEM, p != MAP_FAILED, "after the failed mapping, 32 MiB cannot be mapped: %s", strerror(errno));
    if (p != MAP_FAILED) {
        munmap(p, CYCLE_BYTES);
    }
}

static void check_shared(void) {
    unsigned char *p = map(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED);
    if (p == MAP_FAILED) {
        fail(FAIL_SHARED, "anonymous MAP_SHARED mmap failed: %s", strerror(errno));
        return;
    }
    CHECK(FAIL_SHARED, all_zero(p, 64 * 1024), "a new shared mapping is not zero");
    fill(p, 64 * 1024, 1);
    CHECK(FAIL_SHARED, holds(p, 0, 64 * 1024, 1), "a shared mapping does not keep what was written");
    const char *line = maps_line(p);
    CHECK(FAIL_MAPS, strstr(line, " rw-s ") != NULL, "the shared mapping's maps line is \"%s\", expected rw-s", line);
    CHECK(FAIL_SHARED, munmap(p, 64 * 1024) == 0, "munmap of the shared mapping: %s", strerror(errno));
}

static void check_fixed(void) {
    size_t length = 16 * PAGE;
    unsigned char *p = map(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (p == MAP_FAILED) {
        fail(FAIL_FIXED, "mmap of 16 pages failed: %s", strerror(errno));
        return;
    }
    fill(p, length, 2);
    unsigned char *middle = p + 4 * PAGE;
    unsigned char *q = map(middle, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED);
    CHECK(FAIL_FIXED, q == middle, "MAP_FIXED at %p returned %p", (void *)middle, (void *)q);
    if (q == middle) {
        CHECK(FAIL_FIXED, all_zero(middle, 8 * PAGE), "the pages MAP_FIXED replaced are not zero");
        CHECK(FAIL_FIXED, holds(p, 0, 4 * PAGE, 2) && holds(p, 12 * PAGE, length, 2),
              "MAP_FIXED changed the pages around the new mapping");
    }

    /* MAP_FIXED_NOREPLACE refuses a taken range and takes a free one. */
    void *r = map(p + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    int error = errno;
    CHECK(FAIL_NOREPLACE, r == MAP_FAILED && error == EEXIST, "MAP_FIXED_NOREPLACE over a mapping gave %p (%s)", r,
          r == MAP_FAILED ? strerrorname_np(error) : "success");
    CHECK(FAIL_NOREPLACE, holds(p, PAGE, 2 * PAGE, 2), "a refused MAP_FIXED_NOREPLACE changed the mapping");
    munmap(p + 14 * PAGE, 2 * PAGE);
    r = map(p + 14 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    CHECK(FAIL_NOREPLACE, r == p + 14 * PAGE, "MAP_FIXED_NOREPLACE into a free range gave %p, expected %p", r,
          (void *)(p + 14 * PAGE));
    munmap(p, length);

    /* A free hint is taken as it is. */
    void *hint = (void *)0x300000000UL;
    r = map(hint, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    CHECK(FAIL_HINT, r == hint, "mmap with the free hint %p returned %p", hint, r);
    if (r != MAP_FAILED) {
        munmap(r, 2 * PAGE);
    }
}

static void check_partial_unmap(void) {
    size_t length = 4 * MiB;
    /* 2 MiB aligned, so the kernel may use large pages, which the unmap must split. */
    unsigned char *p = map((void *)0x400000000UL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (p == MAP_FAILED) {
        fail(FAIL_PARTIAL_UNMAP, "mmap of 4 MiB at 0x400000000 failed: %s", strerror(errno));
        return;
    }
    fill(p, length, 3);
    unsigned char *hole = p + MiB;
    size_t hole_length = 2 * MiB + 3 * PAGE;
    if (munmap(hole, hole_length) != 0) {
        fail(FAIL_PARTIAL_UNMAP, "munmap of the middle failed: %s", strerror(errno));
        munmap(p, length);
        return;
    }
    CHECK(FAIL_PARTIAL_UNMAP, holds(p, 0, MiB, 3) && holds(p, MiB + hole_length, length, 3),
          "the pages around the hole changed");
    CHECK(FAIL_PARTIAL_UNMAP, !readable(hole) && !readable(hole + 2 * MiB) && !readable(hole + hole_length - 1),
          "the hole is still mapped");
    CHECK(FAIL_PARTIAL_UNMAP, readable(hole - 1) && readable(hole + hole_length), "the edges of the hole are unmapped");
    CHECK(FAIL_MAPS, strlen(maps_line(p)) > 0 && strlen(maps_line(hole + hole_length)) > 0 && strlen(maps_line(hole)) == 0,
          "/proc/self/maps does not show the two pieces around the hole");
    unsigned char *again = map(hole, hole_length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED);
    if (again != hole) {
        fail(FAIL_PARTIAL_UNMAP, "mapping the hole again gave %p, expected %p", (void *)again, (void *)hole);
    } else {
        CHECK(FAIL_PARTIAL_UNMAP, all_zero(hole, hole_length), "the hole mapped again is not zero");
        memset(hole, 0x5a, hole_length);
        CHECK(FAIL_PARTIAL_UNMAP, holds(p, 0, MiB, 3) && holds(p, MiB + hole_length, length, 3),
              "writing the mapped hole changed the pages around it");
    }
    CHECK(FAIL_PARTIAL_UNMAP, munmap(p, length) == 0 && !readable(p) && !readable(p + length - 1),
          "unmapping the whole range failed");
}

static void check_mremap(void) {
    /* Grow in place: a mapping with free room above it (the upper half of a larger one, freed). */
    unsigned char *p = map(NULL, 8 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (p == MAP_FAILED) {
        fail(FAIL_MREMAP_GROW, "mmap of 8 MiB failed: %s", strerror(errno));
        return;
    }
    munmap(p + 2 * MiB, 6 * MiB);
    fill(p, 2 * MiB, 4);
    unsigned char *q = mremap(p, 2 * MiB, 4 * MiB, 0);
    if (q != p) {
        fail(FAIL_MREMAP_GROW, "mremap growing 2 -> 4 MiB in place gave %p (%s), expected %p", (void *)q,
             q == MAP_FAILED ? strerror(errno) : "moved", (void *)p);
    } else {
        CHECK(FAIL_MREMAP_GROW, holds(p, 0, 2 * MiB, 4) && all_zero(p + 2 * MiB, 2 * MiB),
              "after growing, the old part changed or the new part is not zero");
        memset(p + 2 * MiB, 0x11, 2 * MiB);
        /* Once more: the grown mapping is one mapping now. */
        q = mremap(p, 4 * MiB, 8 * MiB, 0);
        CHECK(FAIL_MREMAP_GROW, q == p, "mremap growing the grown mapping 4 -> 8 MiB in place gave %p (%s)", (void *)q,
              q == MAP_FAILED ? strerror(errno) : "moved");
        const char *line = maps_line(p);
        unsigned long from = 0, to = 0;
        CHECK(FAIL_MAPS,
              sscanf(line, "%lx-%lx", &from, &to) == 2 && from <= (unsigned long)p &&
                  to >= (unsigned long)p + (q == p ? 8 : 4) * MiB,
              "after growing in place, the maps line is \"%s\"", line);
    }

    /* Shrink: the tail goes away, the head stays. */
    q = mremap(p, 8 * MiB, 3 * MiB, 0);
    CHECK(FAIL_MREMAP_SHRINK, q == p, "mremap shrinking 8 -> 3 MiB gave %p (%s)", (void *)q,
          q == MAP_FAILED ? strerror(errno) : "moved");
    CHECK(FAIL_MREMAP_SHRINK, holds(p, 0, 2 * MiB, 4) && p[3 * MiB - 1] == 0x11, "shrinking changed the contents");
    CHECK(FAIL_MREMAP_SHRINK, !readable(p + 3 * MiB) && !readable(p + 8 * MiB - 1), "the cut tail is still mapped");

    /* Blocked: a mapping right above. */
    unsigned char *blocker = map(p + 3 * MiB, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    CHECK(FAIL_MREMAP_MOVE, blocker == p + 3 * MiB, "cannot map the blocker above the mapping");
    q = mremap(p, 3 * MiB, 5 * MiB, 0);
    int error = errno;
    CHECK(FAIL_MREMAP_MOVE, q == MAP_FAILED && error == ENOMEM,
          "mremap of a blocked mapping without MREMAP_MAYMOVE gave %p (%s), expected ENOMEM", (void *)q,
          q == MAP_FAILED ? strerrorname_np(error) : "success");
    q = mremap(p, 3 * MiB, 5 * MiB, MREMAP_MAYMOVE);
    if (q == MAP_FAILED || q == p) {
        fail(FAIL_MREMAP_MOVE, "mremap with MREMAP_MAYMOVE gave %p (%s)", (void *)q,
             q == MAP_FAILED ? strerror(errno) : "not moved");
        munmap(p, 3 * MiB);
    } else {
        CHECK(FAIL_MREMAP_MOVE, holds(q, 0, 2 * MiB, 4) && q[3 * MiB - 1] == 0x11 && all_zero(q + 3 * MiB, 2 * MiB),
              "the moved mapping lost its contents or its new part is not zero");
        CHECK(FAIL_MREMAP_MOVE, !readable(p) && !readable(p + 3 * MiB - 1), "the old range is still mapped after the move");
        CHECK(FAIL_MREMAP_MOVE, readable(blocker), "the blocker went away");
        munmap(q, 5 * MiB);
    }
    munmap(blocker, PAGE);

    /* Moving most of the reservation: 20 -> 36 MiB with 64 MiB, which does not hold both. */
    size_t big = 20 * MiB;
    p = map(NULL, big + PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (p == MAP_FAILED) {
        fail(FAIL_MREMAP_BIG, "mmap of 20 MiB failed: %s", strerror(errno));
        return;
    }
    /* Keep the last page as the blocker. */
    fill(p, big, 5);
    q = mremap(p, big, 36 * MiB, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        fail(FAIL_MREMAP_BIG, "mremap moving 20 -> 36 MiB of a 64 MiB reservation failed: %s", strerror(errno));
        munmap(p, big + PAGE);
        return;
    }
    CHECK(FAIL_MREMAP_BIG, q != p && holds(q, 0, big, 5) && all_zero(q + big, 16 * MiB),
          "the 20 MiB moved to 36 MiB lost their contents");
    munmap(q, 36 * MiB);
    munmap(p + big, PAGE);
}

static void check_brk(void) {
    char *start = sbrk(0);
    size_t grow = 3 * MiB + 100;
    if (sbrk((intptr_t)grow) != start) {
        fail(FAIL_BRK, "sbrk(+3 MiB) failed: %s", strerror(errno));
        return;
    }
    CHECK(FAIL_BRK, sbrk(0) == start + grow, "the break did not move by 3 MiB + 100");
    CHECK(FAIL_BRK, all_zero((unsigned char *)start + PAGE, 3 * MiB - PAGE), "new heap memory is not zero");
    memset(start, 0x77, grow);
    char *end = start + grow;
    if (sbrk(-(intptr_t)(2 * MiB)) == (void *)-1) {
        fail(FAIL_BRK, "sbrk(-2 MiB) failed: %s", strerror(errno));
        return;
    }
    char *top = sbrk(0);
    CHECK(FAIL_BRK, top == end - 2 * MiB, "after shrinking the break is %p, expected %p", (void *)top,
          (void *)(end - 2 * MiB));
    uintptr_t first_gone = ((uintptr_t)top + PAGE - 1) & ~(PAGE - 1);
    CHECK(FAIL_BRK, !readable((void *)first_gone) && !readable(end - 1), "memory above the lowered break is still mapped");
    CHECK(FAIL_BRK, start[0] == 0x77 && top[-1] == 0x77, "memory below the lowered break changed");
    /* Grow again: the new pages are zero. */
    if (sbrk((intptr_t)(2 * MiB)) == (void *)-1) {
        fail(FAIL_BRK, "growing the break again failed: %s", strerror(errno));
        return;
    }
    CHECK(FAIL_BRK, all_zero((unsigned char *)first_gone, (size_t)(end - (char *)first_gone) & ~(PAGE - 1)),
          "heap pages given back and taken again are not zero");
    CHECK(FAIL_MAPS, strstr(maps_line(start), "[heap]") != NULL, "/proc/self/maps shows no [heap] at %p: \"%s\"",
          (void *)start, maps_line(start));
    /* An absurd break is refused (the kernel returns the current one, glibc says ENOMEM). */
    errno = 0;
    CHECK(FAIL_BRK, brk((void *)0x7ffffffff000UL) == -1 && errno == ENOMEM, "brk near the top of user space succeeded");
    CHECK(FAIL_BRK, sbrk(0) == start + grow, "a refused brk moved the break");
    CHECK(FAIL_BRK, sbrk(-(intptr_t)grow) == end, "shrinking the break back failed");
    CHECK(FAIL_BRK, sbrk(0) == start, "the break did not come back to its start");
}

static void check_mprotect(void) {
    unsigned char *p = map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (p == MAP_FAILED) {
        fail(FAIL_MPROTECT, "mmap of 3 pages failed: %s", strerror(errno));
        return;
    }
    fill(p, 3 * PAGE, 6);
    CHECK(FAIL_MPROTECT, mprotect(p + PAGE, PAGE, PROT_READ) == 0, "mprotect(PROT_READ) failed: %s", strerror(errno));
    CHECK(FAIL_MPROTECT, holds(p, 0, 3 * PAGE, 6), "a read-only page does not read back");
    CHECK(FAIL_MAPS, strstr(maps_line(p), " rw-p ") != NULL && strstr(maps_line(p + PAGE), " r--p ") != NULL &&
                         strstr(maps_line(p + 2 * PAGE), " rw-p ") != NULL,
          "/proc/self/maps does not show rw-p, r--p, rw-p after mprotect of the middle page");
    /* The kernel must not write a read-only page for the program either. */
    int zero = open("/dev/zero", O_RDONLY);
    errno = 0;
    CHECK(FAIL_MPROTECT, read(zero, p + PAGE, 16) == -1 && errno == EFAULT,
          "read(2) into a read-only page did not fail with EFAULT");
    close(zero);
    CHECK(FAIL_MPROTECT, mprotect(p, 3 * PAGE, PROT_NONE) == 0, "mprotect(PROT_NONE) failed: %s", strerror(errno));
    CHECK(FAIL_MPROTECT, !readable(p) && !readable(p + PAGE), "a PROT_NONE page is readable by the kernel for us");
    CHECK(FAIL_MPROTECT, mprotect(p, 3 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect back to read-write failed");
    CHECK(FAIL_MPROTECT, holds(p, 0, 3 * PAGE, 6), "PROT_NONE and back lost the contents");
    p[PAGE] = 1;
    munmap(p, 3 * PAGE);
}

static void check_reservation(void) {
    /* glibc reserves thread stacks and heaps PROT_NONE, then opens them with mprotect. Far from
     * every other mapping, so the page tables above the pages are created for the reservation. */
    size_t length = 4 * MiB;
    unsigned char *p = map((void *)RESERVE_AT, length, PROT_NONE, MAP_PRIVATE | MAP_FIXED_NOREPLACE | MAP_NORESERVE);
    if (p == MAP_FAILED) {
        fail(FAIL_RESERVE, "a PROT_NONE reservation at %#lx failed: %s", RESERVE_AT, strerror(errno));
        return;
    }
    CHECK(FAIL_RESERVE, !readable(p), "a PROT_NONE reservation is readable");
    if (mprotect(p + MiB, 2 * MiB, PROT_READ | PROT_WRITE) != 0) {
        fail(FAIL_RESERVE, "mprotect of the reservation failed: %s", strerror(errno));
    } else {
        say(1, "memory: writing to %p, a PROT_NONE reservation made read-write\n", (void *)(p + MiB));
        memset(p + MiB, 0x42, 2 * MiB);
        CHECK(FAIL_RESERVE, p[MiB] == 0x42 && p[3 * MiB - 1] == 0x42 && !readable(p) && !readable(p + 3 * MiB),
              "the opened part of the reservation misbehaves");
    }
    munmap(p, length);
}

static void check_madvise(void) {
    unsigned char *p = map(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (p == MAP_FAILED) {
        fail(FAIL_MADVISE, "mmap failed: %s", strerror(errno));
        return;
    }
    memset(p, 0x33, 16 * PAGE);
    CHECK(FAIL_MADVISE, madvise(p + 4 * PAGE, 8 * PAGE, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) failed: %s",
          strerror(errno));
    CHECK(FAIL_MADVISE, all_zero(p + 4 * PAGE, 8 * PAGE) && p[4 * PAGE - 1] == 0x33 && p[12 * PAGE] == 0x33,
          "MADV_DONTNEED did not zero exactly the advised pages");
    munmap(p, 16 * PAGE);
}

static void check_file_mapping(void) {
    const char *path = KNOWN_PATH;
    int fd = open(path, O_RDONLY);
    unsigned char expected[512];
    ssize_t size = fd >= 0 ? pread(fd, expected, sizeof expected, 0) : -1;
    if (size <= 0) {
        fail(FAIL_FILE_MAP, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    unsigned char *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        fail(FAIL_FILE_MAP, "mmap of %s failed: %s", path, strerror(errno));
    } else {
        CHECK(FAIL_FILE_MAP, memcmp(p, expected, (size_t)size) == 0, "the mapping of %s differs from its bytes", path);
        CHECK(FAIL_FILE_MAP, all_zero(p + size, 8) && p[PAGE - 1] == 0, "the rest of the file's last page is not zero");
        CHECK(FAIL_MAPS, strstr(maps_line(p), path) != NULL, "the maps line of a file mapping is \"%s\"", maps_line(p));
        munmap(p, (size_t)size);
    }
    /* A private writable copy: writes stay in memory, the file keeps its bytes. */
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        fail(FAIL_FILE_MAP, "a private writable mapping of %s failed: %s", path, strerror(errno));
    } else {
        p[0] = 'X';
        unsigned char first = 0;
        CHECK(FAIL_FILE_MAP, pread(fd, &first, 1, 0) == 1 && first == expected[0] && p[1] == expected[1],
              "writing a private file mapping changed the file");
        munmap(p, PAGE);
    }
    p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(FAIL_FILE_MAP, p != MAP_FAILED && memcmp(p, expected, (size_t)size) == 0,
          "a shared read-only mapping of %s failed or differs: %s", path, p == MAP_FAILED ? strerror(errno) : "differs");
    if (p != MAP_FAILED) {
        munmap(p, PAGE);
    }
    errno = 0;
    CHECK(FAIL_FILE_MAP, mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 100) == MAP_FAILED && errno == EINVAL,
          "a file mapping at an unaligned offset did not fail with EINVAL");
    close(fd);

    /* At an offset: the second page of a three-page file. */
    fd = open("/tmp/memory-file", O_RDWR | O_CREAT | O_TRUNC, 0600);
    unsigned char page[PAGE];
    int written = 1;
    for (unsigned i = 0; fd >= 0 && i < 3; i++) {
        memset(page, 'a' + i, sizeof page);
        written &= write(fd, page, sizeof page) == (ssize_t)sizeof page;
    }
    if (fd < 0 || !written) {
        fail(FAIL_FILE_MAP, "cannot write /tmp/memory-file: %s", strerror(errno));
    } else {
        p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, PAGE);
        CHECK(FAIL_FILE_MAP, p != MAP_FAILED && p[0] == 'b' && p[PAGE - 1] == 'b',
              "mapping page 1 of a file does not give its bytes ('b')");
        if (p != MAP_FAILED) {
            munmap(p, PAGE);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    fd = open("/tmp/memory-file", O_WRONLY);
    errno = 0;
    CHECK(FAIL_FILE_MAP, mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED && errno == EACCES,
          "mapping a write-only descriptor did not fail with EACCES");
    close(fd);
    unlink("/tmp/memory-file");

    /* /dev/zero: anonymous memory. */
    fd = open("/dev/zero", O_RDWR);
    p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CHECK(FAIL_FILE_MAP, p != MAP_FAILED && all_zero(p, 4 * PAGE), "a private mapping of /dev/zero failed or is not zero");
    if (p != MAP_FAILED) {
        p[5] = 1;
        munmap(p, 4 * PAGE);
    }
    close(fd);
}

static void check_unmap_span(void) {
    /* Three mappings with holes between them, unmapped by one call from inside the first to
     * inside the last. */
    unsigned char *base = (unsigned char *)0x600000000UL;
    unsigned char *pieces[3] = {base, base + 8 * PAGE, base + 20 * PAGE};
    for (int i = 0; i < 3; i++) {
        if (map(pieces[i], 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE) != pieces[i]) {
            fail(FAIL_UNMAP_SPAN, "cannot map piece %d at %p: %s", i, (void *)pieces[i], strerror(errno));
            return;
        }
        memset(pieces[i], 0x20 + i, 4 * PAGE);
    }
    CHECK(FAIL_UNMAP_SPAN, munmap(base + 2 * PAGE, 20 * PAGE) == 0, "munmap across three mappings failed: %s",
          strerror(errno));
    CHECK(FAIL_UNMAP_SPAN, readable(base) && readable(base + PAGE) && base[PAGE] == 0x20, "the head of the first piece went");
    CHECK(FAIL_UNMAP_SPAN, !readable(base + 2 * PAGE) && !readable(pieces[1]) && !readable(pieces[1] + 3 * PAGE) &&
                               !readable(pieces[2]) && !readable(pieces[2] + PAGE),
          "part of the span is still mapped");
    CHECK(FAIL_UNMAP_SPAN, readable(pieces[2] + 2 * PAGE) && pieces[2][3 * PAGE] == 0x22, "the tail of the last piece went");
    munmap(base, 24 * PAGE);
}

static void check_fixed_too_big(void) {
    /* MAP_FIXED over a mapping, asking for more than the reservation holds: it fails, and the
     * mapping it would have replaced is still there (Linux checks the commit before unmapping). */
    unsigned char *p = map((void *)0x700000000UL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (p == MAP_FAILED) {
        fail(FAIL_FIXED_TOO_BIG, "mmap at 0x700000000 failed: %s", strerror(errno));
        return;
    }
    memset(p, 0x31, 16 * PAGE);
    void *q = map(p, 512 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED);
    int error = errno;
    CHECK(FAIL_FIXED_TOO_BIG, q == MAP_FAILED && error == ENOMEM, "MAP_FIXED of 512 MiB gave %p (%s), expected ENOMEM", q,
          q == MAP_FAILED ? strerrorname_np(error) : "success");
    CHECK(FAIL_FIXED_TOO_BIG, q != MAP_FAILED || (readable(p) && p[0] == 0x31 && p[16 * PAGE - 1] == 0x31),
          "the failed MAP_FIXED destroyed the mapping it covered");
    munmap(p, q == MAP_FAILED ? 16 * PAGE : 512 * MiB);
}

static void check_arguments(void) {
    errno = 0;
    CHECK(FAIL_ARGS, map(NULL, 0, PROT_READ, MAP_PRIVATE) == MAP_FAILED && errno == EINVAL,
          "mmap of 0 bytes did not fail with EINVAL");
    errno = 0;
    CHECK(FAIL_ARGS, mmap(NULL, PAGE, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL,
          "mmap without MAP_PRIVATE or MAP_SHARED did not fail with EINVAL");
    errno = 0;
    CHECK(FAIL_ARGS, map((void *)0x500000123UL, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED) == MAP_FAILED &&
                         errno == EINVAL,
          "MAP_FIXED at an unaligned address did not fail with EINVAL");
    errno = 0;
    CHECK(FAIL_ARGS, munmap((void *)0x500000123UL, PAGE) == -1 && errno == EINVAL,
          "munmap of an unaligned address did not fail with EINVAL");
    CHECK(FAIL_ARGS, munmap((void *)0x500000000UL, PAGE) == 0, "munmap of an unmapped range did not succeed");
    errno = 0;
    CHECK(FAIL_ARGS, mprotect((void *)0x500000000UL, PAGE, PROT_READ) == -1 && errno == ENOMEM,
          "mprotect of an unmapped range did not fail with ENOMEM");
    errno = 0;
    CHECK(FAIL_ARGS, mremap((void *)0x500000000UL, PAGE, 2 * PAGE, MREMAP_MAYMOVE) == MAP_FAILED && errno == EFAULT,
          "mremap of an unmapped range did not fail with EFAULT");
    errno = 0;
    CHECK(FAIL_ARGS, mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, 12345, 0) == MAP_FAILED && errno == EBADF,
          "a file mapping of a closed descriptor did not fail with EBADF");
}

static void check_malloc(void) {
    /* Large blocks: glibc maps them (above its 128 KiB threshold) and realloc uses mremap. */
    enum { LARGE = 4 };
    unsigned char *blocks[LARGE];
    for (unsigned i = 0; i < LARGE; i++) {
        blocks[i] = malloc(6 * MiB + i * 12345);
        if (blocks[i] == NULL) {
            fail(FAIL_MALLOC_LARGE, "malloc of block %u (%lu bytes) failed", i, 6 * MiB + i * 12345);
            for (unsigned j = 0; j < i; j++) {
                free(blocks[j]);
            }
            return;
        }
        fill(blocks[i], 6 * MiB + i * 12345, 10 + i);
    }
    for (unsigned i = 0; i < LARGE; i++) {
        CHECK(FAIL_MALLOC_LARGE, holds(blocks[i], 0, 6 * MiB + i * 12345, 10 + i), "large block %u changed", i);
        free(blocks[i]);
    }
    unsigned char *grown = malloc(MiB);
    if (grown == NULL) {
        fail(FAIL_MALLOC_LARGE, "malloc(1 MiB) failed");
        return;
    }
    fill(grown, MiB, 20);
    size_t size = MiB;
    for (size_t next = 2 * MiB; next <= 16 * MiB; next *= 2) {
        unsigned char *bigger = realloc(grown, next);
        if (bigger == NULL) {
            fail(FAIL_MALLOC_LARGE, "realloc to %zu MiB failed", next / MiB);
            break;
        }
        grown = bigger;
        CHECK(FAIL_MALLOC_LARGE, holds(grown, 0, MiB, 20), "realloc to %zu MiB lost the contents", next / MiB);
        memset(grown + size, 0x44, next - size);
        size = next;
    }
    free(grown);

    /* Many small blocks: glibc carves them out of the brk heap. */
    enum { SMALL = 50000 };
    static unsigned char *small[SMALL];
    size_t total = 0;
    for (unsigned i = 0; i < SMALL; i++) {
        size_t length = 16 + (i * 37) % 500;
        small[i] = malloc(length);
        if (small[i] == NULL) {
            fail(FAIL_MALLOC_SMALL, "small malloc %u of %zu bytes failed after %zu bytes", i, length, total);
            for (unsigned j = 0; j < i; j++) {
                free(small[j]);
            }
            return;
        }
        memset(small[i], (int)(i & 0xff), length);
        total += length;
    }
    unsigned bad = 0;
    for (unsigned i = 0; i < SMALL; i++) {
        size_t length = 16 + (i * 37) % 500;
        bad += small[i][0] != (unsigned char)(i & 0xff) || small[i][length - 1] != (unsigned char)(i & 0xff);
        if (i % 2 == 0) {
            free(small[i]);
            small[i] = NULL;
        }
    }
    CHECK(FAIL_MALLOC_SMALL, bad == 0, "%u of %d small blocks changed", bad, SMALL);
    for (unsigned i = 1; i < SMALL; i += 2) {
        free(small[i]);
    }
}

/* The TLB shootdown check: a page both threads know, and where the writer is. */
static volatile unsigned char *tlb_page;
/* 0: starting; 1: the writer has the page in its TLB; 2: the page is read-only, write now;
 * 3: the writer is done. */
static volatile int tlb_state;
/* 1: the write faulted (right); 2: it went through (a stale TLB entry). */
static volatile int tlb_result;
static sigjmp_buf tlb_jump;

static void tlb_on_fault(int signal) {
    (void)signal;
    siglongjmp(tlb_jump, 1);
}

static int pin_to(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static void *tlb_writer(void *argument) {
    pin_to(*(int *)argument);
    /* Writes load a writable, dirty translation into this core's TLB; reads keep it there. */
    for (int i = 0; i < 4096; i++) {
        tlb_page[i % 64] = (unsigned char)i;
    }
    tlb_state = 1;
    unsigned sum = 0;
    while (tlb_state != 2) {
        sum += tlb_page[sum % 64];
    }
    if (sigsetjmp(tlb_jump, 1) == 0) {
        tlb_page[1] = (unsigned char)(0x77 + sum);
        tlb_result = 2;
    } else {
        tlb_result = 1;
    }
    tlb_state = 3;
    return NULL;
}

static void check_tlb_shootdown(void) {
    cpu_set_t set;
    int cores[2], count = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int core = 0; core < CPU_SETSIZE && count < 2; core++) {
            if (CPU_ISSET(core, &set)) {
                cores[count++] = core;
            }
        }
    }
    if (count < 2) {
        say(1, "memory: the job has one core: the TLB shootdown check is skipped\n");
        return;
    }
    struct sigaction action = {0}, previous;
    action.sa_handler = tlb_on_fault;
    sigemptyset(&action.sa_mask);
    if (pin_to(cores[0]) != 0 || sigaction(SIGSEGV, &action, &previous) != 0) {
        fail(FAIL_SHOOTDOWN, "cannot pin to core %d or catch SIGSEGV: %s", cores[0], strerror(errno));
        return;
    }
    tlb_page = map(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    pthread_t writer;
    if (tlb_page == MAP_FAILED || pthread_create(&writer, NULL, tlb_writer, &cores[1]) != 0) {
        fail(FAIL_SHOOTDOWN, "cannot set up the writer thread");
        sigaction(SIGSEGV, &previous, NULL);
        return;
    }
    while (tlb_state != 1) {
        sched_yield();
    }
    CHECK(FAIL_SHOOTDOWN, mprotect((void *)tlb_page, PAGE, PROT_READ) == 0, "mprotect failed: %s", strerror(errno));
    tlb_state = 2;
    pthread_join(writer, NULL);
    sigaction(SIGSEGV, &previous, NULL);
    CHECK(FAIL_SHOOTDOWN, tlb_result == 1,
          "a thread on core %d could still write a page made read-only on core %d (no TLB shootdown)", cores[1],
          cores[0]);
    if (tlb_result == 1) {
        say(1, "memory: mprotect on core %d reached the TLB of core %d\n", cores[0], cores[1]);
    }
    munmap((void *)tlb_page, PAGE);
}

/* The last act: write to a read-only page at FAULT_PAGE. Does not return when the kernel is right. */
static void fault_on_read_only_page(void) {
    volatile unsigned char *p = map((void *)FAULT_PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED_NOREPLACE);
    if (p != (void *)FAULT_PAGE) {
        fail(FAIL_FAULT_SETUP, "mmap at %#lx gave %p (%s)", FAULT_PAGE, (void *)p, strerror(errno));
        return;
    }
    p[0] = 0x99;
    if (mprotect((void *)p, PAGE, PROT_READ) != 0) {
        fail(FAIL_FAULT_SETUP, "mprotect(%#lx, PROT_READ) failed: %s", FAULT_PAGE, strerror(errno));
        return;
    }
    if (p[0] != 0x99) {
        fail(FAIL_FAULT_SETUP, "the read-only page at %#lx reads %#x, expected 0x99", FAULT_PAGE, p[0]);
        return;
    }
    say(1, "memory: all checks passed; writing to the read-only page %#lx (%lu), expecting SIGSEGV\n", FAULT_PAGE,
        FAULT_PAGE);
    p[0] = 0x66;
    fail(FAIL_NO_FAULT, "writing to the read-only page %#lx did not fault", FAULT_PAGE);
}

int main(void) {
    probe_fd = open("/tmp/memory-probe", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (probe_fd < 0) {
        say(2, "memory: cannot create /tmp/memory-probe: %s\n", strerror(errno));
        return 1;
    }
    unlink("/tmp/memory-probe");
    say(1, "memory: checking the memory system calls\n");
    check_cycles();
    check_enomem();
    check_shared();
    check_fixed();
    check_partial_unmap();
    check_mremap();
    check_brk();
    check_mprotect();
    check_reservation();
    check_madvise();
    check_arguments();
    check_file_mapping();
    check_unmap_span();
    check_fixed_too_big();
    check_malloc();
    check_tlb_shootdown();
    if (first_failure != 0) {
        say(2, "memory: failed, exit status %d (the first failed check)\n", first_failure);
        return first_failure;
    }
    fault_on_read_only_page();
    return first_failure;
}
