/* What one VM exit costs, seen from inside the guest: instructions that a VMM must emulate,
 * timed one by one with rdtsc. Under icount the guest's TSC counts the instructions of the
 * whole machine, so a timing is the guest's instruction plus all the work the VMM does for it
 * (exit, handling, re-entry); on bare metal (a native system) these instructions exit nowhere.
 *
 * Usage: vmexit [ITERATIONS]: ITERATIONS (default 10000) timings of each of
 *   empty        nothing between the two time stamps: the timing's own cost
 *   cpuid        CPUID leaf 0 (every VMM intercepts CPUID)
 *   port_read    IN from the UART's line status register (port 0x3fd): a device emulated by
 *                the VMM (Manul: in its exit handler; KVM: in the launcher, in user space).
 *                Needs iopl(3); where the system refuses it (a Manul job) the call is left out
 * Output as `syscall`'s: for each call the histogram of its timings,
 *   BENCH {"workload":"vmexit","call":C,"part":P,"histogram":[[TICKS,COUNT],...]}
 *   BENCH {"workload":"vmexit","call":C,"iterations":N,"parts":L}
 * A call's cost is the median of its series minus the median of `empty`. */
#define _GNU_SOURCE
#include "bench.h"

#include <stdbool.h>
#include <sys/io.h>

enum { UART_LSR = 0x3fd };
enum Call { EMPTY, CPUID, PORT_READ, CALLS };
static const char *const NAMES[CALLS] = {"empty", "cpuid", "port_read"};

static void run(enum Call call, long iterations, uint64_t *timing) {
    for (long i = 0; i < iterations; i++) {
        uint64_t start = bench_tsc();
        switch (call) {
        case CPUID: {
            uint32_t a = 0, b, c = 0, d;
            __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d)::"memory");
            break;
        }
        case PORT_READ: {
            uint8_t value;
            __asm__ volatile("inb %w1, %b0" : "=a"(value) : "Nd"((uint16_t)UART_LSR) : "memory");
            break;
        }
        default:
            break;
        }
        timing[i] = bench_tsc() - start;
    }
}

int main(int argc, char **argv) {
    long iterations = bench_arg(argc, argv, 1, 10000);
    uint64_t *timing, (*histogram)[2];
    bench_alloc_timings("vmexit", iterations, &timing, &histogram);
    bool ports = iopl(3) == 0;
    if (!ports)
        printf("vmexit: no port access here (iopl refused): port_read left out\n");
    for (int call = 0; call < CALLS; call++) {
        if (call == PORT_READ && !ports)
            continue;
        run(call, iterations < 100 ? iterations : 100, timing); /* warm-up */
        run(call, iterations, timing);
        bench_print_histogram("vmexit", NAMES[call], timing, histogram, iterations);
    }
    return 0;
}
