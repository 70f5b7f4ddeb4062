/* execve while other threads of the process run: three threads keep reading 1 MiB at a time
 * from /dev/zero into their memory (mostly inside the kernel, walking the old page tables), one
 * of them on the main thread's core (a job on three cores), then the main thread sleeps 200 ms
 * and runs `exec_threads --after` (this program again). The sleep must end within 5 s although
 * a thread on its core makes system calls back to back (a thread in the kernel is not preempted,
 * but gives way on its return to user mode). The kernel must end the other threads before it
 * frees the old address space (none may run on freed page tables), and the new program must
 * start alone: with --after, it creates and joins a thread and exits 0. Exit codes: 1 the execve
 * failed, 2 no thread after it, 3 the sleep took 5 s or more. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

/* Spends most of its time in the kernel on the old address space: reads of 1 MiB from
 * /dev/zero, copied into this process's memory piece by piece. */
static void *busy(void *arg) {
    enum { BYTES = 1 << 20 };
    unsigned char *buf = malloc(BYTES);
    int zero = open("/dev/zero", O_RDONLY);
    for (unsigned long i = 0;; i++) {
        if (read(zero, buf, BYTES) > 0)
            sink += buf[i % BYTES];
    }
    return arg;
}

static void *nothing(void *arg) {
    return arg;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--after") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) != 0) {
            printf("exec_threads: FAIL: no thread after execve\n");
            return 2;
        }
        pthread_join(t, NULL);
        printf("exec_threads: the new program runs alone\n");
        return 0;
    }
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, busy, NULL);
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    usleep(200 * 1000);
    clock_gettime(CLOCK_MONOTONIC, &after);
    long slept_ms = (after.tv_sec - before.tv_sec) * 1000 + (after.tv_nsec - before.tv_nsec) / 1000000;
    printf("exec_threads: a 200 ms sleep took %ld ms\n", slept_ms);
    if (slept_ms >= 5000) {
        printf("exec_threads: FAIL: the sleep took %ld ms beside a thread busy in the kernel\n", slept_ms);
        return 3;
    }
    fflush(stdout);
    char *args[] = {argv[0], "--after", NULL};
    execv("/proc/self/exe", args);
    perror("exec_threads: execv");
    return 1;
}
