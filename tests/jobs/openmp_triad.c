/* OpenMP on Manul: a STREAM-style triad a[i] = b[i] + s * c[i] over all job cores, built with
 * `gcc -fopenmp -static`. Checks the results, that the team has one thread per job core, and
 * that every thread ran on a different core of the job. Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 2 * 1024 * 1024, REPEAT = 3, MAX_THREADS = 256 };

int main(void) {
    int failures = 0;
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    if (!a || !b || !c) {
        printf("openmp: FAIL: allocation\n");
        return 1;
    }
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    int cores = CPU_COUNT(&set);
    int threads = omp_get_max_threads();
    printf("openmp: %d cores, %d threads\n", cores, threads);
    if (threads != cores) {
        printf("openmp: FAIL: %d threads for %d cores\n", threads, cores);
        failures++;
    }
    static int cpu_of[MAX_THREADS];
    const double s = 3.0;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < N; i++) {
        b[i] = (double)i;
        c[i] = (double)(N - i);
        a[i] = 0.0;
    }
    for (int r = 0; r < REPEAT; r++) {
#pragma omp parallel
        {
            int t = omp_get_thread_num();
            if (t < MAX_THREADS)
                cpu_of[t] = sched_getcpu();
#pragma omp for schedule(static)
            for (long i = 0; i < N; i++)
                a[i] = b[i] + s * c[i];
        }
    }
    for (long i = 0; i < N; i++) {
        double want = (double)i + s * (double)(N - i);
        if (a[i] != want) {
            printf("openmp: FAIL: a[%ld] = %f, expected %f\n", i, a[i], want);
            failures++;
            break;
        }
    }
    for (int t = 0; t < threads && t < MAX_THREADS; t++) {
        if (!CPU_ISSET(cpu_of[t], &set)) {
            printf("openmp: FAIL: thread %d on core %d outside the job\n", t, cpu_of[t]);
            failures++;
        }
        for (int u = 0; u < t; u++)
            if (cpu_of[t] == cpu_of[u]) {
                printf("openmp: FAIL: threads %d and %d both on core %d\n", t, u, cpu_of[t]);
                failures++;
            }
    }
    printf("openmp: triad over %d elements on %d threads: %s\n", N, threads, failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
