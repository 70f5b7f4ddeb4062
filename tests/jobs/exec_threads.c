/* execve while other threads of the process run: two threads keep reading 1 MiB at a time
 * from /dev/zero into their memory on other cores (mostly inside the kernel, walking the old
 * page tables; one thread a core, see the scenario), then the main thread runs `exec_threads --after` (this
 * program again). The kernel must end the other threads before it frees the old address space
 * (none may run on freed page tables), and the new program must start alone. Without an
 * argument: the threads and the execve; with --after: checks it is the process's only thread
 * (/proc/self has no task list here, so it creates and joins a thread and checks the tid order)
 * and exits 0. Exit codes: 1 the execve failed, 2 the thread could not be created. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, busy, NULL);
    usleep(200 * 1000);
    char *args[] = {argv[0], "--after", NULL};
    execv("/proc/self/exe", args);
    perror("exec_threads: execv");
    return 1;
}
