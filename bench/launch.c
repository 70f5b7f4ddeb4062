/* Job launch: how far the machine got before the program's first line ran. Under QEMU with
 * `-icount shift=0` the TSC starts at 0 at power-on and counts retired instructions, so the TSC
 * read first thing in main() is the whole way from power-on to the job: the kernel's boot, its
 * start-up of the program (and on Linux, init's shell starting it), and the C library's start-up.
 *
 * Usage: launch. Output:
 *   BENCH {"workload":"launch","tsc_at_main":T} */
#define _GNU_SOURCE
#include "bench.h"

int main(void) {
    uint64_t now = bench_tsc();
    printf("BENCH {\"workload\":\"launch\",\"tsc_at_main\":%llu}\n", (unsigned long long)now);
    return 0;
}
