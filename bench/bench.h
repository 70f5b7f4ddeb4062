/* Shared helpers of the benchmark programs: the time-stamp counter and the machine-readable
 * output lines. Under QEMU with `-icount shift=0` rdtsc counts retired guest instructions, so
 * every number these programs print is in instructions there (in TSC ticks elsewhere).
 *
 * Every result is a line `BENCH {JSON}` on standard output. Long lists are split over several
 * lines (at most BENCH_CHUNK pairs each), each line carrying the workload's name and its part
 * number, so that no console line gets long; the xtask joins them. */
#ifndef MANUL_BENCH_H
#define MANUL_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BENCH_CHUNK = 16 };

/* The TSC after every earlier instruction has completed (lfence; rdtsc). */
static inline uint64_t bench_tsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

/* Writes every byte of `bytes` at `memory`, so that no page fault happens there later. (Not with
 * zeros: gcc turns malloc followed by memset(0) into calloc, which leaves fresh pages alone.) */
static inline void bench_prefault(void *memory, size_t bytes) {
    memset(memory, 0xa5, bytes);
}

/* Room for `count` timings and as many histogram pairs, written once (see bench_prefault);
 * exits with a message naming `program` when memory is short. */
static inline void bench_alloc_timings(const char *program, long count, uint64_t **timing,
                                       uint64_t (**histogram)[2]) {
    *timing = malloc(count * sizeof **timing);
    *histogram = malloc(count * sizeof **histogram);
    if (!*timing || !*histogram) {
        fprintf(stderr, "%s: cannot allocate %ld timings\n", program, count);
        exit(1);
    }
    bench_prefault(*timing, count * sizeof **timing);
    bench_prefault(*histogram, count * sizeof **histogram);
}

/* A number from a command-line argument, or `fallback` when absent; exits on garbage. */
static inline long bench_arg(int argc, char **argv, int index, long fallback) {
    if (index >= argc)
        return fallback;
    char *end;
    long value = strtol(argv[index], &end, 10);
    if (*end != '\0' || value <= 0) {
        fprintf(stderr, "%s: bad argument %s\n", argv[0], argv[index]);
        exit(2);
    }
    return value;
}

/* Prints `pairs` (count pairs of numbers) as lines
 * `BENCH {"workload":W,<key>,"part":P,"<field>":[[a,b],...]}`, BENCH_CHUNK pairs a line;
 * returns the number of lines. `key` is the JSON text identifying the series, e.g.
 * `"core":0`. */
static inline int bench_print_pairs(const char *workload, const char *key, const char *field,
                                    const uint64_t (*pairs)[2], long count) {
    int part = 0;
    for (long start = 0; start < count; start += BENCH_CHUNK, part++) {
        printf("BENCH {\"workload\":\"%s\",%s,\"part\":%d,\"%s\":[", workload, key, part, field);
        for (long i = start; i < count && i < start + BENCH_CHUNK; i++)
            printf("%s[%llu,%llu]", i == start ? "" : ",", (unsigned long long)pairs[i][0],
                   (unsigned long long)pairs[i][1]);
        printf("]}\n");
    }
    fflush(stdout);
    return part;
}

static inline int bench_compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts `count` timings of `call` and prints them as a histogram of [value, occurrences] pairs
 * (`histogram` is scratch space for `count` pairs), then the summary line
 * `BENCH {"workload":W,"call":C,"iterations":N,"parts":P}`. */
static inline void bench_print_histogram(const char *workload, const char *call, uint64_t *timing,
                                         uint64_t (*histogram)[2], long count) {
    qsort(timing, count, sizeof *timing, bench_compare_u64);
    long bins = 0;
    for (long i = 0; i < count; i++) {
        if (bins > 0 && histogram[bins - 1][0] == timing[i]) {
            histogram[bins - 1][1]++;
        } else {
            histogram[bins][0] = timing[i];
            histogram[bins][1] = 1;
            bins++;
        }
    }
    char key[64];
    snprintf(key, sizeof key, "\"call\":\"%s\"", call);
    int parts = bench_print_pairs(workload, key, "histogram", (const uint64_t (*)[2])histogram, bins);
    printf("BENCH {\"workload\":\"%s\",%s,\"iterations\":%ld,\"parts\":%d}\n", workload, key, count, parts);
    fflush(stdout);
}

#endif
