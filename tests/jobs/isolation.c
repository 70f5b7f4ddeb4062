/* Two jobs on disjoint cores: started as `isolation TOKEN`, each maps the same virtual address,
 * fills it with its own token, waits long enough for the other job to do the same, and checks
 * that its memory still holds only its own token, and that its cores are its own. Exits 0 when
 * every check passes. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SHARED_VA ((void *)0x300000000)
enum { BYTES = 4 << 20 };

int main(int argc, char **argv) {
    if (argc != 3) {
        printf("isolation: usage: isolation TOKEN OTHER-JOB-CORE\n");
        return 2;
    }
    unsigned char token = (unsigned char)argv[1][0];
    int other_core = atoi(argv[2]);
    unsigned char *p = mmap(SHARED_VA, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p != SHARED_VA) {
        printf("isolation: FAIL: mmap at %p\n", SHARED_VA);
        return 1;
    }
    for (int round = 0; round < 5; round++) {
        memset(p, token, BYTES);
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
        for (long i = 0; i < BYTES; i++)
            if (p[i] != token) {
                printf("isolation: FAIL: byte %ld is '%c', not my '%c'\n", i, p[i], token);
                return 1;
            }
    }
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    if (CPU_ISSET(other_core, &set)) {
        printf("isolation: FAIL: the other job's core %d is in my affinity\n", other_core);
        return 1;
    }
    printf("isolation: job '%c' on core %d kept its memory to itself\n", token, sched_getcpu());
    return 0;
}
