/* Threads: the cost of creating and joining a thread, and of a futex round trip between two
 * threads, timed one by one with rdtsc. With one CPU (how `cargo xtask bench` runs it) both
 * include switching between the threads.
 *
 * Usage: threads [ITERATIONS] (default 1000) timings of each of
 *   create_join   pthread_create of a thread that returns at once, then pthread_join
 *   futex_round_trip   this thread sets a shared word and wakes its partner (FUTEX_WAKE), then
 *                 waits (FUTEX_WAIT) until the partner has set it back and woken it
 * Output, per series: the histogram of its timings, as the syscall program prints it:
 *   BENCH {"workload":"threads","call":C,"part":P,"histogram":[[TICKS,COUNT],...]}
 *   BENCH {"workload":"threads","call":C,"iterations":N,"parts":L} */
#define _GNU_SOURCE
#include "bench.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { WARM_UP = 10 };

static atomic_int word;
static long rounds;

static void futex_wait(atomic_int *address, int expected) {
    syscall(SYS_futex, address, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_int *address) {
    syscall(SYS_futex, address, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Waits until `word` is `wanted`, sleeping on the value it has meanwhile. */
static void await(int wanted) {
    for (;;) {
        int value = atomic_load(&word);
        if (value == wanted)
            return;
        futex_wait(&word, value);
    }
}

static void *nothing(void *arg) {
    return arg;
}

/* The other end of the round trips: answers each 1 with a 2. */
static void *partner(void *arg) {
    for (long i = 0; i < rounds; i++) {
        await(1);
        atomic_store(&word, 2);
        futex_wake(&word);
    }
    return arg;
}

int main(int argc, char **argv) {
    long iterations = bench_arg(argc, argv, 1, 1000);
    uint64_t *timing, (*histogram)[2];
    bench_alloc_timings("threads", iterations + WARM_UP, &timing, &histogram);

    for (long i = 0; i < iterations + WARM_UP; i++) {
        pthread_t thread;
        uint64_t start = bench_tsc();
        if (pthread_create(&thread, NULL, nothing, NULL) != 0 || pthread_join(thread, NULL) != 0) {
            fprintf(stderr, "threads: pthread_create or pthread_join failed\n");
            return 1;
        }
        timing[i] = bench_tsc() - start;
    }
    bench_print_histogram("threads", "create_join", timing + WARM_UP, histogram, iterations);

    rounds = iterations + WARM_UP;
    atomic_store(&word, 0);
    pthread_t other;
    if (pthread_create(&other, NULL, partner, NULL) != 0) {
        fprintf(stderr, "threads: pthread_create failed\n");
        return 1;
    }
    for (long i = 0; i < rounds; i++) {
        uint64_t start = bench_tsc();
        atomic_store(&word, 1);
        futex_wake(&word);
        await(2);
        timing[i] = bench_tsc() - start;
    }
    pthread_join(other, NULL);
    bench_print_histogram("threads", "futex_round_trip", timing + WARM_UP, histogram, iterations);
    return 0;
}
