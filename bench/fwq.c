/* FWQ (fixed work quanta): the same short loop, timed back to back many times on one core. A
 * quantum that took longer than the shortest one was interrupted: the excess is a detour, time
 * the operating system (or anything else) took from the job.
 *
 * Usage: fwq [SAMPLES [QUANTUM [THREADS]]]: SAMPLES quanta (default 40000) of QUANTUM
 * instructions (default 8192) each, on each of THREADS threads (default 1) pinned to the first
 * THREADS CPUs the process may use, all measuring at once (series "core" 0, 1, ...: the
 * position, not the CPU number). The loop retires 2 instructions an iteration, so a quantum is exactly
 * QUANTUM instructions of work plus the timing's own dozen (lfence, rdtsc, the store): under
 * `-icount shift=0` a sample is an instruction count.
 *
 * The samples follow each other without a gap (the end of one is the start of the next), so
 * the detours add up to all the time taken away. Output, after the measurement:
 *   BENCH {"workload":"fwq","core":0,"part":P,"detours":[[INDEX,EXCESS],...]}   (the samples
 *        longer than the minimum: their index and how much longer, 16 a line)
 *   BENCH {"workload":"fwq","core":0,"samples":N,"quantum":Q,"min":M,"total":T,"detours":D,"parts":L}
 * Together they give every sample exactly: a sample is M plus its excess (0 if not listed). */
#define _GNU_SOURCE
#include "bench.h"

#include <pthread.h>
#include <sched.h>

/* Times `count` quanta back to back into sample[0..count): each is `iterations` turns of a
 * 2-instruction loop, then a time stamp. Written in assembly so that every quantum but the
 * first runs exactly the same instructions (sample[0], which also holds the set-up, is thrown
 * away by the caller). */
static void measure(uint64_t *sample, uint64_t count, uint64_t iterations) {
    __asm__ volatile("lfence\n\t"
                     "rdtsc\n\t"
                     "shl $32, %%rdx\n\t"
                     "or %%rdx, %%rax\n\t"
                     "mov %%rax, %%r8\n"
                     "2:\n\t"
                     "mov %[iterations], %%rcx\n"
                     "1:\n\t"
                     "dec %%rcx\n\t"
                     "jnz 1b\n\t"
                     "lfence\n\t"
                     "rdtsc\n\t"
                     "shl $32, %%rdx\n\t"
                     "or %%rdx, %%rax\n\t"
                     "mov %%rax, %%r9\n\t"
                     "sub %%r8, %%rax\n\t"
                     "mov %%rax, (%[sample])\n\t"
                     "mov %%r9, %%r8\n\t"
                     "add $8, %[sample]\n\t"
                     "dec %[count]\n\t"
                     "jnz 2b"
                     : [sample] "+r"(sample), [count] "+r"(count)
                     : [iterations] "r"(iterations)
                     : "rax", "rcx", "rdx", "r8", "r9", "cc", "memory");
}

/* Untimed turns of the same loop. */
static void warm_up(uint64_t iterations) {
    __asm__ volatile("1:\n\tdec %0\n\tjnz 1b" : "+r"(iterations)::"cc");
}

/* One core's measurement: its samples (sample[0], the set-up quantum, thrown away) and, after
 * `summarise`, its detours. */
struct core {
    long index;
    int cpu; /* -1: stay where it runs */
    long samples;
    uint64_t iterations;
    uint64_t *all;
    uint64_t (*detour)[2];
    pthread_barrier_t *start;
};

static void *run_core(void *arg) {
    struct core *core = arg;
    if (core->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(core->cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            fprintf(stderr, "fwq: core %ld stays unpinned (CPU %d refused)\n", core->index, core->cpu);
    }
    /* Touch every page first: a page fault during the run is the program's doing, not noise. */
    bench_prefault(core->all, (core->samples + 1) * sizeof *core->all);
    bench_prefault(core->detour, core->samples * sizeof *core->detour);
    for (int warm = 0; warm < 100; warm++)
        warm_up(core->iterations);
    if (core->start)
        pthread_barrier_wait(core->start);
    measure(core->all, (uint64_t)core->samples + 1, core->iterations);
    return NULL;
}

/* Prints one core's series (see the top of the file). */
static void summarise(struct core *core, long quantum) {
    const uint64_t *sample = core->all + 1;
    uint64_t min = UINT64_MAX, total = 0;
    for (long i = 0; i < core->samples; i++) {
        total += sample[i];
        if (sample[i] < min)
            min = sample[i];
    }
    long detours = 0;
    for (long i = 0; i < core->samples; i++)
        if (sample[i] > min) {
            core->detour[detours][0] = (uint64_t)i;
            core->detour[detours][1] = sample[i] - min;
            detours++;
        }
    char key[32];
    snprintf(key, sizeof key, "\"core\":%ld", core->index);
    int parts = bench_print_pairs("fwq", key, "detours", (const uint64_t (*)[2])core->detour, detours);
    printf("BENCH {\"workload\":\"fwq\",%s,\"samples\":%ld,\"quantum\":%ld,\"min\":%llu,\"total\":%llu,"
           "\"detours\":%ld,\"parts\":%d}\n",
           key, core->samples, quantum, (unsigned long long)min, (unsigned long long)total, detours, parts);
}

int main(int argc, char **argv) {
    long samples = bench_arg(argc, argv, 1, 40000);
    long quantum = bench_arg(argc, argv, 2, 8192);
    long threads = bench_arg(argc, argv, 3, 1);
    cpu_set_t allowed;
    if (threads > 1 && (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < threads)) {
        fprintf(stderr, "fwq: %ld threads want as many CPUs\n", threads);
        return 1;
    }
    struct core *cores = calloc(threads, sizeof *cores);
    pthread_t *ids = calloc(threads, sizeof *ids);
    pthread_barrier_t start;
    if (!cores || !ids || (threads > 1 && pthread_barrier_init(&start, NULL, threads) != 0)) {
        fprintf(stderr, "fwq: cannot set up %ld threads\n", threads);
        return 1;
    }
    for (long i = 0, cpu = 0; i < threads; i++) {
        while (threads > 1 && !CPU_ISSET(cpu, &allowed))
            cpu++;
        cores[i] = (struct core){.index = i,
                                 .cpu = threads > 1 ? (int)cpu++ : -1,
                                 .samples = samples,
                                 .iterations = (uint64_t)quantum / 2,
                                 .all = malloc((samples + 1) * sizeof(uint64_t)),
                                 .detour = malloc(samples * sizeof *cores[i].detour),
                                 .start = threads > 1 ? &start : NULL};
        if (!cores[i].all || !cores[i].detour) {
            fprintf(stderr, "fwq: cannot allocate %ld samples\n", samples);
            return 1;
        }
    }
    /* One thread measures in the main thread itself; more start together after a barrier. */
    if (threads == 1) {
        run_core(&cores[0]);
    } else {
        for (long i = 0; i < threads; i++)
            if (pthread_create(&ids[i], NULL, run_core, &cores[i]) != 0) {
                fprintf(stderr, "fwq: cannot start thread %ld\n", i);
                return 1;
            }
        for (long i = 0; i < threads; i++)
            pthread_join(ids[i], NULL);
    }
    for (long i = 0; i < threads; i++)
        summarise(&cores[i], quantum);
    return 0;
}
