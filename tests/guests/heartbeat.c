/*
 * heartbeat: the guest side of Manul's health monitor, a static program in the Linux guest's
 * initramfs. /init starts it when the guest command line has manul.heartbeat_ms=N (Manul adds
 * it, half the enclave's heartbeat period). It checks that it runs on Manul's VMM (CPUID leaf
 * 0x40000000 says "ManulVMM"), then makes the heartbeat hypercall (VMMCALL with RAX = 1; the
 * VMM answers 0 in RAX) every N ms, forever. VMMCALL works at any privilege level, so no guest
 * kernel module is needed. If the guest kernel stops scheduling it (a hang), the beats stop and
 * the host marks the enclave hung.
 */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    long period_ms = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    if (period_ms <= 0 || period_ms > 3600000) {
        fprintf(stderr, "usage: heartbeat MILLISECONDS (1 to 3600000)\n");
        return 2;
    }
    unsigned int max, sig[3];
    __cpuid(0x40000000, max, sig[0], sig[1], sig[2]);
    char name[13];
    memcpy(name, sig, 12);
    name[12] = '\0';
    if (strcmp(name, "ManulVMM    ") != 0) {
        fprintf(stderr, "heartbeat: not on Manul's VMM (hypervisor leaf says \"%s\")\n", name);
        return 1;
    }
    struct timespec pause = {period_ms / 1000, (period_ms % 1000) * 1000000};
    for (unsigned long beats = 0;; beats++) {
        unsigned long result;
        __asm__ volatile("vmmcall" : "=a"(result) : "a"(1UL) : "memory");
        if (result != 0) {
            fprintf(stderr, "heartbeat: the VMM answered %#lx to a heartbeat\n", result);
            return 1;
        }
        if (beats == 0) {
            printf("heartbeat: beating every %ld ms\n", period_ms);
            fflush(stdout);
        }
        nanosleep(&pause, NULL);
    }
}
