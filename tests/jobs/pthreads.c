/* Threads on Manul: one POSIX thread per job core, each checked to run on its own core; a mutex,
 * a condition variable and a barrier; then a futex stress (many threads contending for one
 * mutex, more threads than cores, so cores are shared); then the futex operations one by one
 * (WAIT's value check and timeout, CMP_REQUEUE's check, wake and move, bitsets, WAKE_OP); then
 * CHURN threads created and joined one after another, more than the machine could hold if an
 * ended thread kept its kernel memory.
 * Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                 \
    do {                                                 \
        if (!(cond)) {                                   \
            printf("pthreads: FAIL: " __VA_ARGS__);      \
            printf("\n");                                \
            failures++;                                  \
        }                                                \
    } while (0)

enum { MAX_THREADS = 64, STRESS_THREADS = 12, STRESS_ROUNDS = 20000 };

static pthread_barrier_t barrier;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int arrived, released;
static int cpu_of[MAX_THREADS];
static long counter;

static void *worker(void *arg) {
    long id = (long)arg;
    /* Wait until every thread has started, so they are all alive at once. */
    pthread_barrier_wait(&barrier);
    cpu_of[id] = sched_getcpu();
    pthread_mutex_lock(&lock);
    arrived++;
    pthread_cond_broadcast(&cond);
    while (!released)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return (void *)(id * 2);
}

static int fpu_errors;

enum { CHURN = 20000 };

static void *nothing(void *arg) {
    return arg;
}

static void *stress(void *arg) {
    /* Each thread keeps its own floating-point values in registers across yields and preemption:
     * they survive only if the kernel saves and restores every thread's FPU/SSE/AVX state. */
    double seed = (double)(long)arg + 0.25, acc = 0.0;
    for (int i = 0; i < STRESS_ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
        acc += seed;
        if (i % 1000 == 0)
            sched_yield();
    }
    if (acc != seed * STRESS_ROUNDS) {
        pthread_mutex_lock(&lock);
        fpu_errors++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static long futex(int *word, int op, int val, const struct timespec *timeout, int *word2, int val3) {
    return syscall(SYS_futex, word, op, val, timeout, word2, val3);
}

static int word_a, word_b;
static atomic_int futex_woken;

struct futex_wait {
    int *word;
    unsigned bitset;
};

/* Waits on its word while it holds 0 (with a bitset when it has one) and counts its wake-up. */
static void *futex_waiter(void *arg) {
    struct futex_wait *w = arg;
    long r = w->bitset ? futex(w->word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, w->bitset)
                       : futex(w->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    atomic_fetch_add(&futex_woken, 1);
    return (void *)r;
}

/* How many threads wait on `word`: a requeue of the word onto itself moves them all, changing
 * nothing, and returns their number. */
static long futex_waiting(int *word) {
    return futex(word, FUTEX_REQUEUE_PRIVATE, 0, (const struct timespec *)(long)INT_MAX, word, 0);
}

/* Waits (at most 5 s) until `n` threads wait on `word`. */
static int await_waiters(int *word, long n) {
    for (int i = 0; i < 5000 && futex_waiting(word) != n; i++)
        usleep(1000);
    return futex_waiting(word) == n;
}

/* Waits (at most 5 s) until `n` wake-ups were counted, then a little more for any extra one. */
static int await_woken(int n) {
    for (int i = 0; i < 5000 && atomic_load(&futex_woken) < n; i++)
        usleep(1000);
    usleep(20000);
    return atomic_load(&futex_woken);
}

static void futex_operations(void) {
    struct timespec brief = {0, 20 * 1000 * 1000};
    word_a = 1;
    CHECK(futex(&word_a, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0) == -1 && errno == EAGAIN, "WAIT on a changed word");
    word_a = 0;
    CHECK(futex(&word_a, FUTEX_WAIT_PRIVATE, 0, &brief, NULL, 0) == -1 && errno == ETIMEDOUT, "WAIT's timeout");

    enum { WAITERS = 4 };
    pthread_t t[WAITERS];
    struct futex_wait plain = {&word_a, 0};
    for (int i = 0; i < WAITERS; i++)
        CHECK(pthread_create(&t[i], NULL, futex_waiter, &plain) == 0, "futex waiter %d", i);
    CHECK(await_waiters(&word_a, WAITERS), "%ld of %d waiters on the word", futex_waiting(&word_a), WAITERS);
    CHECK(futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)(long)INT_MAX, &word_b, 7) == -1 &&
              errno == EAGAIN,
          "CMP_REQUEUE with a wrong value");
    long moved = futex(&word_a, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)(long)INT_MAX, &word_b, 0);
    CHECK(moved == WAITERS, "CMP_REQUEUE woke and moved %ld, expected %d", moved, WAITERS);
    CHECK(await_woken(1) == 1, "%d woken by CMP_REQUEUE's wake of 1", atomic_load(&futex_woken));
    CHECK(futex_waiting(&word_a) == 0 && futex_waiting(&word_b) == WAITERS - 1, "after the requeue: %ld and %ld waiting",
          futex_waiting(&word_a), futex_waiting(&word_b));
    CHECK(futex(&word_a, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == 0, "a wake of the emptied word woke someone");
    CHECK(futex(&word_b, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0) == WAITERS - 1, "the wake of the requeued");
    for (int i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&futex_woken) == WAITERS, "%d of %d waiters woke", atomic_load(&futex_woken), WAITERS);

    /* Bitsets: a wake for other bits leaves the waiter alone. */
    atomic_store(&futex_woken, 0);
    struct futex_wait bits = {&word_a, 0x1};
    CHECK(pthread_create(&t[0], NULL, futex_waiter, &bits) == 0, "bitset waiter");
    CHECK(await_waiters(&word_a, 1), "the bitset waiter does not wait");
    CHECK(futex(&word_a, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 0x2) == 0, "WAKE_BITSET 0x2 woke bitset 0x1");
    CHECK(futex(&word_a, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, NULL, NULL, 0x1) == 1, "WAKE_BITSET 0x1");
    pthread_join(t[0], NULL);

    /* WAKE_OP: sets the second word to 5 (it was 0, so the comparison "== 0" passes) and wakes
     * its waiter. */
    atomic_store(&futex_woken, 0);
    word_b = 0;
    struct futex_wait second = {&word_b, 0};
    CHECK(pthread_create(&t[0], NULL, futex_waiter, &second) == 0, "WAKE_OP waiter");
    CHECK(await_waiters(&word_b, 1), "the WAKE_OP waiter does not wait");
    long op = futex(&word_a, FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1L, &word_b,
                    FUTEX_OP(FUTEX_OP_SET, 5, FUTEX_OP_CMP_EQ, 0));
    CHECK(op == 1 && word_b == 5, "WAKE_OP woke %ld, second word %d", op, word_b);
    pthread_join(t[0], NULL);
    printf("pthreads: futex operations checked\n");
}

int main(void) {
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity");
    int cores = CPU_COUNT(&set);
    CHECK(cores >= 1 && cores <= MAX_THREADS, "core count %d", cores);
    printf("pthreads: %d cores in the job's affinity\n", cores);

    pthread_t threads[MAX_THREADS];
    pthread_barrier_init(&barrier, NULL, cores);
    for (long i = 0; i < cores; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)i) == 0, "pthread_create %ld", i);
    pthread_mutex_lock(&lock);
    while (arrived < cores)
        pthread_cond_wait(&cond, &lock);
    released = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (long i = 0; i < cores; i++) {
        void *result;
        CHECK(pthread_join(threads[i], &result) == 0, "pthread_join %ld", i);
        CHECK((long)result == i * 2, "thread %ld returned %ld", i, (long)result);
    }
    /* Space sharing: every thread on its own core, all of them in the affinity set. */
    for (int i = 0; i < cores; i++) {
        CHECK(CPU_ISSET(cpu_of[i], &set), "thread %d ran on core %d outside the job", i, cpu_of[i]);
        for (int j = 0; j < i; j++)
            CHECK(cpu_of[i] != cpu_of[j], "threads %d and %d shared core %d", i, j, cpu_of[i]);
    }
    printf("pthreads: %d threads on distinct cores\n", cores);

    /* sched_setaffinity within the job's cores moves the caller; outside them it is refused. */
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            last = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity to core %d", last);
    CHECK(sched_getcpu() == last, "still on core %d after moving to %d", sched_getcpu(), last);
    CPU_ZERO(&one);
    CPU_SET(0, &one); /* core 0 belongs to the kernel */
    CHECK(sched_setaffinity(0, sizeof one, &one) != 0, "moving to core 0 was allowed");
    CHECK(sched_setaffinity(0, sizeof set, &set) == 0, "restoring the affinity");

    pthread_t stressors[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++)
        CHECK(pthread_create(&stressors[i], NULL, stress, (void *)(long)i) == 0, "stress thread %d", i);
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(stressors[i], NULL);
    CHECK(counter == (long)STRESS_THREADS * STRESS_ROUNDS, "counter %ld, expected %ld", counter,
          (long)STRESS_THREADS * STRESS_ROUNDS);
    CHECK(fpu_errors == 0, "%d threads lost floating-point state", fpu_errors);
    printf("pthreads: futex stress with %d threads: counter %ld\n", STRESS_THREADS, counter);

    futex_operations();

    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 64 * 1024);
    int churned = 0;
    for (; churned < CHURN; churned++) {
        pthread_t t;
        void *result;
        if (pthread_create(&t, &small, nothing, (void *)(long)churned) != 0 || pthread_join(t, &result) != 0 ||
            result != (void *)(long)churned)
            break;
    }
    CHECK(churned == CHURN, "thread churn stopped after %d threads", churned);
    printf("pthreads: %d threads created and joined one after another\n", churned);

    printf("pthreads: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
