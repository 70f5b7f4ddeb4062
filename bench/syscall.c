/* Null system calls: how long the cheapest calls take, timed one by one with rdtsc.
 *
 * Usage: syscall [ITERATIONS]: ITERATIONS (default 10000) timings of each of
 *   empty                 nothing between the two time stamps: the timing's own cost
 *   getpid                the `syscall` instruction with SYS_getpid
 *   getppid               the same with SYS_getppid (the call of earlier reference figures)
 *   clock_gettime         the `syscall` instruction with SYS_clock_gettime (CLOCK_MONOTONIC)
 *   clock_gettime_libc    glibc's clock_gettime(CLOCK_MONOTONIC): the vDSO where the kernel
 *                         offers one (Linux), else the system call
 * Output, one series after the other, each as the histogram of its timings:
 *   BENCH {"workload":"syscall","call":C,"part":P,"histogram":[[TICKS,COUNT],...]}
 *   BENCH {"workload":"syscall","call":C,"iterations":N,"parts":L}
 * A call's cost is the median of its series minus the median of `empty`. */
#define _GNU_SOURCE
#include "bench.h"

#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>

static inline long raw_syscall0(long number) {
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"(number) : "rcx", "r11", "memory");
    return result;
}

static inline long raw_syscall2(long number, long a, long b) {
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"(number), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return result;
}

enum Call { EMPTY, GETPID, GETPPID, CLOCK_GETTIME, CLOCK_GETTIME_LIBC, CALLS };
static const char *const NAMES[CALLS] = {"empty", "getpid", "getppid", "clock_gettime", "clock_gettime_libc"};

static bool run(enum Call call, long iterations, uint64_t *timing) {
    struct timespec ts;
    for (long i = 0; i < iterations; i++) {
        uint64_t start = bench_tsc();
        switch (call) {
        case EMPTY:
            break;
        case GETPID:
            if (raw_syscall0(SYS_getpid) <= 0)
                return false;
            break;
        case GETPPID:
            if (raw_syscall0(SYS_getppid) < 0)
                return false;
            break;
        case CLOCK_GETTIME:
            if (raw_syscall2(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts) != 0)
                return false;
            break;
        case CLOCK_GETTIME_LIBC:
            if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
                return false;
            break;
        default:
            return false;
        }
        timing[i] = bench_tsc() - start;
    }
    return true;
}

int main(int argc, char **argv) {
    long iterations = bench_arg(argc, argv, 1, 10000);
    uint64_t *timing, (*histogram)[2];
    bench_alloc_timings("syscall", iterations, &timing, &histogram);
    for (int call = 0; call < CALLS; call++) {
        run(call, iterations < 100 ? iterations : 100, timing); /* warm-up */
        if (!run(call, iterations, timing)) {
            fprintf(stderr, "syscall: %s failed\n", NAMES[call]);
            return 1;
        }
        bench_print_histogram("syscall", NAMES[call], timing, histogram, iterations);
    }
    return 0;
}
