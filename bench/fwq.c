/* FWQ (fixed work quanta): the same short loop, timed back to back many times on one core. A
 * quantum that took longer than the shortest one was interrupted: the excess is a detour, time
 * the operating system (or anything else) took from the job.
 *
 * Usage: fwq [SAMPLES [QUANTUM]]: SAMPLES quanta (default 40000) of QUANTUM instructions
 * (default 8192) each. The loop retires 2 instructions an iteration, so a quantum is exactly
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

int main(int argc, char **argv) {
    long samples = bench_arg(argc, argv, 1, 40000);
    long quantum = bench_arg(argc, argv, 2, 8192);
    uint64_t iterations = (uint64_t)quantum / 2;
    /* sample[0] is the set-up quantum, thrown away. */
    uint64_t *all = malloc((samples + 1) * sizeof *all);
    uint64_t (*detour)[2] = malloc(samples * sizeof *detour);
    if (!all || !detour) {
        fprintf(stderr, "fwq: cannot allocate %ld samples\n", samples);
        return 1;
    }
    /* Touch every page first: a page fault during the run is the program's doing, not noise. */
    bench_prefault(all, (samples + 1) * sizeof *all);
    bench_prefault(detour, samples * sizeof *detour);
    for (int warm = 0; warm < 100; warm++)
        warm_up(iterations);

    measure(all, (uint64_t)samples + 1, iterations);
    const uint64_t *sample = all + 1;

    uint64_t min = UINT64_MAX, total = 0;
    for (long i = 0; i < samples; i++) {
        total += sample[i];
        if (sample[i] < min)
            min = sample[i];
    }
    long detours = 0;
    for (long i = 0; i < samples; i++)
        if (sample[i] > min) {
            detour[detours][0] = (uint64_t)i;
            detour[detours][1] = sample[i] - min;
            detours++;
        }
    int parts = bench_print_pairs("fwq", "\"core\":0", "detours", (const uint64_t (*)[2])detour, detours);
    printf("BENCH {\"workload\":\"fwq\",\"core\":0,\"samples\":%ld,\"quantum\":%ld,\"min\":%llu,\"total\":%llu,"
           "\"detours\":%ld,\"parts\":%d}\n",
           samples, quantum, (unsigned long long)min, (unsigned long long)total, detours, parts);
    return 0;
}
