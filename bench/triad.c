/* STREAM-style triad a[i] = b[i] + s * c[i] with OpenMP over every CPU the program may use,
 * timed with clock_gettime(CLOCK_MONOTONIC): a wall-clock measurement, meant to run without
 * icount (under QEMU TCG it measures the emulator as much as the system: compare systems only
 * within one run).
 *
 * Usage: triad [N [REPEATS]] (default 4194304 elements, 10 repeats). Output:
 *   BENCH {"workload":"triad","threads":T,"n":N,"bytes":B,"ns":[T1,T2,...],"check":"ok"}
 * (bytes: moved by one repeat, 3 arrays of doubles; ns: each repeat's time). */
#define _GNU_SOURCE
#include "bench.h"

#include <omp.h>
#include <time.h>

enum { MAX_REPEATS = 64 };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 4194304);
    long repeats = bench_arg(argc, argv, 2, 10);
    if (repeats > MAX_REPEATS)
        repeats = MAX_REPEATS;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "triad: cannot allocate 3 arrays of %ld doubles\n", n);
        return 1;
    }
    const double s = 3.0;
    /* First touch by the threads that will use each part. */
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = (double)i;
        c[i] = (double)(n - i);
    }
    uint64_t ns[MAX_REPEATS];
    for (long r = 0; r < repeats; r++) {
        uint64_t start = now_ns();
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++)
            a[i] = b[i] + s * c[i];
        ns[r] = now_ns() - start;
    }
    const char *check = "ok";
    for (long i = 0; i < n; i++)
        if (a[i] != (double)i + s * (double)(n - i)) {
            check = "wrong";
            break;
        }
    printf("BENCH {\"workload\":\"triad\",\"threads\":%d,\"n\":%ld,\"bytes\":%ld,\"ns\":[", omp_get_max_threads(), n,
           3 * n * (long)sizeof(double));
    for (long r = 0; r < repeats; r++)
        printf("%s%llu", r ? "," : "", (unsigned long long)ns[r]);
    printf("],\"check\":\"%s\"}\n", check);
    return 0;
}
