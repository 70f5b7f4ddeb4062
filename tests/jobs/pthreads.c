/* Threads on Manul: one POSIX thread per job core, each checked to run on its own core; a mutex,
 * a condition variable and a barrier; then a futex stress (many threads contending for one
 * mutex, more threads than cores, so cores are shared); then CHURN threads created and joined one
 * after another, more than the machine could hold if an ended thread kept its kernel memory.
 * Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
