/* A compute kernel: dense matrix multiply C = A B of N x N doubles (the i-k-j loop order, which
 * gcc vectorises), timed REPEATS times. Pure user-space work: on an ideal system every repeat
 * takes the same, and whatever differs between systems is the time the kernel took away.
 *
 * Usage: matmul [N [REPEATS]] (default 128 and 5). Output:
 *   BENCH {"workload":"matmul","n":N,"ticks":[T1,T2,...],"checksum":C}
 * (ticks: each repeat's time stamps difference; checksum: the sum of C, the same every run). */
#define _GNU_SOURCE
#include "bench.h"

enum { MAX_REPEATS = 32 };

int main(int argc, char **argv) {
    long n = bench_arg(argc, argv, 1, 128);
    long repeats = bench_arg(argc, argv, 2, 5);
    if (repeats > MAX_REPEATS)
        repeats = MAX_REPEATS;
    double *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b), *c = malloc(n * n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "matmul: cannot allocate 3 matrices of %ld x %ld\n", n, n);
        return 1;
    }
    bench_prefault(c, n * n * sizeof *c);
    for (long i = 0; i < n * n; i++) {
        a[i] = (double)(i % 7) - 3.0;
        b[i] = (double)(i % 5) * 0.5;
    }
    uint64_t ticks[MAX_REPEATS];
    for (long r = 0; r < repeats; r++) {
        uint64_t start = bench_tsc();
        for (long i = 0; i < n * n; i++)
            c[i] = 0.0;
        for (long i = 0; i < n; i++)
            for (long k = 0; k < n; k++) {
                double aik = a[i * n + k];
                for (long j = 0; j < n; j++)
                    c[i * n + j] += aik * b[k * n + j];
            }
        ticks[r] = bench_tsc() - start;
    }
    double checksum = 0.0;
    for (long i = 0; i < n * n; i++)
        checksum += c[i];
    printf("BENCH {\"workload\":\"matmul\",\"n\":%ld,\"ticks\":[", n);
    for (long r = 0; r < repeats; r++)
        printf("%s%llu", r ? "," : "", (unsigned long long)ticks[r]);
    printf("],\"checksum\":%.1f}\n", checksum);
    return 0;
}
