/* The job's thread limit (job.threads, or the default share of kernel memory): threads that
 * wait on a condition variable are created until pthread_create fails, which must be EAGAIN
 * rather than the node running out of kernel memory; with argv[1] = N the job must have held
 * exactly N live threads (the main thread included) at that point. Once they have ended the
 * same number can be created again (their slots came back). Then, with argv[1] given (each fork
 * copies this process's memory, too slow for thousands), children that exit at once and are not
 * waited for are forked until fork fails: EAGAIN again, with the job's processes (the zombies and
 * this one) at the same limit, and forking works again once they are reaped.
 * Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MOST = 70000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int released;
static pthread_t threads[MOST];

static void *waiter(void *arg) {
    pthread_mutex_lock(&lock);
    while (!released)
        pthread_cond_wait(&go, &lock);
    pthread_mutex_unlock(&lock);
    return arg;
}

/* Creates waiting threads until that fails (its error in *error), then lets them end and joins
 * them; returns how many there were. */
static int fill(const pthread_attr_t *attr, int *error) {
    released = 0;
    int n = 0;
    *error = 0;
    for (; n < MOST; n++) {
        int e = pthread_create(&threads[n], attr, waiter, NULL);
        if (e != 0) {
            *error = e;
            break;
        }
    }
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return n;
}

int main(int argc, char **argv) {
    long expected = argc > 1 ? atol(argv[1]) : 0;
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 16 * 1024);
    int failures = 0, error;

    int first = fill(&small, &error);
    printf("thread_limit: %d live threads, then pthread_create failed with %s\n", first + 1, strerrorname_np(error));
    if (error != EAGAIN) {
        printf("thread_limit: FAIL: expected EAGAIN\n");
        failures++;
    }
    if (expected != 0 && first + 1 != expected) {
        printf("thread_limit: FAIL: expected the limit at %ld live threads\n", expected);
        failures++;
    }
    int second = fill(&small, &error);
    printf("thread_limit: again %d live threads once the first ones ended\n", second + 1);
    if (second != first || error != EAGAIN) {
        printf("thread_limit: FAIL: the slots did not come back (%d, then %d)\n", first, second);
        failures++;
    }
    int zombies = 0;
    for (; expected != 0 && zombies < MOST; zombies++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            error = errno;
            break;
        }
    }
    if (expected != 0) {
        printf("thread_limit: %d processes (%d unreaped children), then fork failed with %s\n", zombies + 1,
               zombies, strerrorname_np(error));
        if (error != EAGAIN || zombies + 1 != expected) {
            printf("thread_limit: FAIL: expected EAGAIN at the limit\n");
            failures++;
        }
    }
    int reaped = 0;
    while (wait(NULL) > 0)
        reaped++;
    pid_t again = fork();
    if (again == 0)
        _exit(0);
    if (reaped != zombies || again < 0 || waitpid(again, NULL, 0) != again) {
        printf("thread_limit: FAIL: reaped %d of %d, then fork gave %d\n", reaped, zombies, (int)again);
        failures++;
    }

    printf("thread_limit: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
