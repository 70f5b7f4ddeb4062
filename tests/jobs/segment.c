/*
 * segment: a native job's side of Manul's shared segments (/dev/manul/seg/NAME, see
 * docs/enclaves.md). Three modes:
 *
 *   segment produce SEGMENT STEPS [MS|crash]
 *                                   a simulation: writes STEPS steps into SEGMENT, one at a time,
 *                                   each published by a step counter (release order), MS
 *                                   milliseconds apart if given; with `crash`, it then writes
 *                                   through NULL (a SIGSEGV)
 *   segment consume SEGMENT STEPS   its analysis, at the same time on other cores: follows the
 *                                   counter (acquire order) and checks every step's values
 *
 * SEGMENT is a name under /dev/manul/seg/ (a native job), or an absolute path: inside a Linux
 * guest, the segment's PCI BAR, /sys/bus/pci/devices/0000:00:03.0/resource2. The same static
 * binary runs as a Manul job and as a program of a Manul VM's Linux.
 *   segment checks RW RO ABSENT     the rules: RW is granted read-write, RO read-only, ABSENT
 *                                   not at all
 *   segment zeroed SEGMENT          every byte of SEGMENT is zero (a segment granted anew, after
 *                                   everyone who held it is gone, holds none of their data)
 *   segment ping SEGMENT ROUNDS     ping-pong with `segment pong SEGMENT ROUNDS` in another
 *   segment pong SEGMENT ROUNDS     enclave through futexes on the segment's first word: ping
 *                                   writes an odd number and wakes, pong answers with the next
 *                                   even one; each side sleeps in FUTEX_WAIT meanwhile (a wait
 *                                   that times out 10 s in a row fails)
 *
 * The layout of a simulation segment is struct steps below; step i (from 1) holds
 * value(i, k) = i * 1000 + k for k < VALUES. Exit status 0 when every check passed, else the
 * code of the first failure.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#define CHECKS_PROGRAM "segment"
#define CHECKS_ERRNO
#include "checks.h"

#define MAGIC 0x4d414e554c534547ull /* "MANULSEG" */
#define VALUES 8
#define MAX_STEPS 4096
/* How long a consumer waits for the next step before it gives up. */
#define PATIENCE_SECONDS 60

struct steps {
    uint64_t magic;
    _Atomic uint64_t published;
    uint64_t values[MAX_STEPS][VALUES];
};

static uint64_t value(uint64_t step, int k) {
    return step * 1000 + (uint64_t)k;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static char path[128];

static const char *segment_path(const char *name) {
    snprintf(path, sizeof path, name[0] == '/' ? "%s" : "/dev/manul/seg/%s", name);
    return path;
}

/* Maps the whole segment `name` (at least `least` bytes) shared, with `prot`; NULL (after a
 * FAIL) when that fails. */
static void *map_segment(int code, const char *name, int prot, size_t least, size_t *size) {
    int fd = open(segment_path(name), (prot & PROT_WRITE) ? O_RDWR : O_RDONLY);
    if (fd < 0) {
        fail(code, "open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)least) {
        fail(code + 1, "%s: size %lld, expected at least %zu", path, (long long)st.st_size, least);
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)st.st_size, prot, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fail(code + 2, "mmap %s: %s", path, strerror(errno));
        return NULL;
    }
    *size = (size_t)st.st_size;
    return p;
}

static int produce(const char *name, uint64_t steps, long pace_ms, int crash) {
    size_t size;
    struct steps *s = map_segment(10, name, PROT_READ | PROT_WRITE, sizeof(struct steps), &size);
    if (s == NULL) {
        return first_failure;
    }
    s->magic = MAGIC;
    for (uint64_t i = 1; i <= steps; i++) {
        for (int k = 0; k < VALUES; k++) {
            s->values[i - 1][k] = value(i, k);
        }
        atomic_store_explicit(&s->published, i, memory_order_release);
        /* A little work between steps, as a simulation does, and the pace asked for. */
        for (volatile int spin = 0; spin < 20000; spin++) {
        }
        if (pace_ms > 0) {
            struct timespec pause = {pace_ms / 1000, (pace_ms % 1000) * 1000000};
            nanosleep(&pause, NULL);
        }
        if (i % 100 == 0 && pace_ms > 0) {
            say(1, "producer: step %llu written\n", (unsigned long long)i);
        }
    }
    say(1, "producer: wrote %llu steps into %s\n", (unsigned long long)steps, name);
    if (crash) {
        say(1, "producer: crashing\n");
        *(volatile int *)opaque(0) = 1;
    }
    return first_failure;
}

static int consume(const char *name, uint64_t steps) {
    size_t size;
    const struct steps *s = map_segment(20, name, PROT_READ, sizeof(struct steps), &size);
    if (s == NULL) {
        return first_failure;
    }
    uint64_t seen = 0;
    double waited_since = now();
    while (seen < steps) {
        uint64_t published = atomic_load_explicit(&s->published, memory_order_acquire);
        if (published == seen) {
            if (now() - waited_since > PATIENCE_SECONDS) {
                fail(23, "no step after %llu for %d s", (unsigned long long)seen, PATIENCE_SECONDS);
                return first_failure;
            }
            continue;
        }
        CHECK(24, s->magic == MAGIC, "magic %#llx", (unsigned long long)s->magic);
        for (uint64_t i = seen + 1; i <= published && i <= steps; i++) {
            for (int k = 0; k < VALUES; k++) {
                CHECK(25, s->values[i - 1][k] == value(i, k), "step %llu value %d: %llu", (unsigned long long)i, k,
                      (unsigned long long)s->values[i - 1][k]);
            }
        }
        if (seen == 0 || published / 50 != seen / 50) {
            say(1, "consumer: step %llu seen\n", (unsigned long long)published);
        }
        seen = published;
        waited_since = now();
    }
    say(1, "consumer: checked all %llu steps of %s\n", (unsigned long long)steps, name);
    return first_failure;
}

static int checks(const char *rw, const char *ro, const char *absent) {
    expect_errno(30, "open an ungranted segment", open(segment_path(absent), O_RDONLY), ENOENT);
    expect_errno(31, "open a read-only grant for writing", open(segment_path(ro), O_RDWR), EACCES);
    int fd = (int)expect_ok(32, "open a read-only grant", open(segment_path(ro), O_RDONLY));
    struct stat st;
    expect_ok(33, "fstat a segment", fstat(fd, &st));
    CHECK(34, S_ISCHR(st.st_mode) && st.st_size > 0, "mode %o size %lld", st.st_mode, (long long)st.st_size);
    size_t size = (size_t)st.st_size;
    expect_errno(35, "map a read-only grant writable",
                 (long)mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EACCES);
    expect_errno(36, "map a segment privately", (long)mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0), EINVAL);
    expect_errno(37, "map beyond the segment", (long)mmap(NULL, size + 4096, PROT_READ, MAP_SHARED, fd, 0), ENXIO);
    char byte;
    expect_errno(38, "read a segment descriptor", read(fd, &byte, 1), EINVAL);
    void *ro_map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(39, ro_map != MAP_FAILED, "map a read-only grant: %s", strerror(errno));
    if (ro_map != MAP_FAILED) {
        expect_errno(40, "mprotect a read-only grant writable", mprotect(ro_map, 4096, PROT_READ | PROT_WRITE), EACCES);
        CHECK(41, ((volatile char *)ro_map)[0] == 0, "a fresh segment reads zero");
    }
    close(fd);

    size_t rw_size;
    volatile uint64_t *shared = map_segment(42, rw, PROT_READ | PROT_WRITE, 4096, &rw_size);
    if (shared == NULL) {
        return first_failure;
    }
    shared[0] = 0x1111;
    /* A child shares the segment across fork: what it writes, the parent reads. */
    pid_t child = fork();
    if (child == 0) {
        _exit(shared[0] == 0x1111 ? (shared[1] = 0x2222, 0) : 1);
    }
    int status = 0;
    expect_ok(45, "wait for the child", waitpid(child, &status, 0));
    CHECK(46, WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child did not see the parent's write");
    CHECK(47, shared[1] == 0x2222, "the parent did not see the child's write: %#llx", (unsigned long long)shared[1]);
    /* Unmapping gives nothing to the job's pool: mapping the segment again shows the same data. */
    expect_ok(48, "munmap the segment", munmap((void *)shared, rw_size));
    shared = map_segment(49, rw, PROT_READ, 4096, &rw_size);
    CHECK(52, shared != NULL && shared[1] == 0x2222, "the data did not survive an unmap");
    char maps[4096] = {0};
    int maps_fd = open("/proc/self/maps", O_RDONLY);
    if (maps_fd >= 0) {
        CHECK(53, read(maps_fd, maps, sizeof maps - 1) > 0, "read /proc/self/maps");
        close(maps_fd);
    }
    CHECK(54, strstr(maps, segment_path(rw)) != NULL, "/proc/self/maps does not name %s", path);
    if (first_failure == 0) {
        say(1, "segment: all checks passed\n");
    }
    return first_failure;
}

static int zeroed(const char *name) {
    size_t size;
    const unsigned char *p = map_segment(60, name, PROT_READ, 1, &size);
    if (p == NULL) {
        return first_failure;
    }
    size_t dirty = 0;
    for (size_t i = 0; i < size; i++)
        dirty += p[i] != 0;
    CHECK(63, dirty == 0, "%zu of the %zu bytes of %s are not zero: an earlier holder's data", dirty, size, name);
    if (first_failure == 0)
        say(1, "segment: %s: all %zu bytes are zero\n", name, size);
    return first_failure;
}

/* Waits (FUTEX_WAIT, shared: the word is in another enclave's mapping too) until `*word` is
 * `wanted`; 0, or the failure's code when 10 s pass without a change. */
static int futex_await(_Atomic uint32_t *word, uint32_t wanted, int code) {
    for (;;) {
        uint32_t seen = atomic_load(word);
        if (seen == wanted)
            return 0;
        struct timespec patience = {10, 0};
        long r = syscall(SYS_futex, word, FUTEX_WAIT, seen, &patience, NULL, 0);
        if (r != 0 && errno == ETIMEDOUT && atomic_load(word) == seen) {
            fail(code, "no wake-up in 10 s waiting for %u (the word holds %u)", wanted, seen);
            return code;
        }
    }
}

static int ping_pong(const char *name, uint32_t rounds, int ping) {
    size_t size;
    _Atomic uint32_t *word = map_segment(70, name, PROT_READ | PROT_WRITE, sizeof(uint32_t), &size);
    if (word == NULL)
        return first_failure;
    long woken = 0;
    for (uint32_t i = 1; i <= rounds && first_failure == 0; i++) {
        if (ping) {
            atomic_store(word, 2 * i - 1);
            woken += syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
            futex_await(word, 2 * i, 73);
        } else {
            futex_await(word, 2 * i - 1, 74);
            atomic_store(word, 2 * i);
            woken += syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
        }
    }
    if (first_failure == 0)
        say(1, "segment: %s: %u rounds through futexes on %s (%ld wake-ups found a waiter)\n", ping ? "ping" : "pong",
            rounds, name, woken);
    return first_failure;
}

int main(int argc, char **argv) {
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "produce") == 0) {
        int crash = argc == 5 && strcmp(argv[4], "crash") == 0;
        long pace_ms = argc == 5 && !crash ? strtol(argv[4], NULL, 10) % 10000 : 0;
        return produce(argv[2], strtoull(argv[3], NULL, 10) % (MAX_STEPS + 1), pace_ms, crash);
    }
    if (argc == 4 && strcmp(argv[1], "consume") == 0) {
        return consume(argv[2], strtoull(argv[3], NULL, 10) % (MAX_STEPS + 1));
    }
    if (argc == 5 && strcmp(argv[1], "checks") == 0) {
        return checks(argv[2], argv[3], argv[4]);
    }
    if (argc == 3 && strcmp(argv[1], "zeroed") == 0) {
        return zeroed(argv[2]);
    }
    if (argc == 4 && (strcmp(argv[1], "ping") == 0 || strcmp(argv[1], "pong") == 0)) {
        return ping_pong(argv[2], (uint32_t)(strtoul(argv[3], NULL, 10) % 100000), argv[1][1] == 'i');
    }
    say(2, "usage: segment produce SEGMENT STEPS [MS|crash] | segment consume SEGMENT STEPS | segment checks RW RO ABSENT | segment zeroed SEGMENT | segment ping|pong SEGMENT ROUNDS\n");
    return 2;
}
