/*
 * wild_writes: a program gone wrong inside its own memory, for the enclave fault campaign. It
 * fills a fresh 32 MiB mapping and its own heap with pseudo-random bytes, scribbles over its
 * data and BSS (the C library's state included: stdio is unusable afterwards), then writes
 * random words at random addresses ever further up its stack, over its callers' frames, its
 * arguments and environment, until a write leaves the stack's mapping. The kernel must end it
 * with SIGSEGV (status 139), with no harm to itself or to any other enclave. Should the writes
 * never fault, it says so and exits with 1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char __data_start[], _end[];

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static void say(const char *text) {
    if (write(2, text, strlen(text)) < 0) {
        return;
    }
}

static void scribble(volatile uint64_t *words, size_t count) {
    for (size_t i = 0; i < count; i++) {
        words[i] = next();
    }
}

int main(void) {
    say("wild_writes: scribbling over a mapping, the heap, data, BSS and the stack\n");
    size_t mapping = 32u << 20;
    void *region = mmap(NULL, mapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region != MAP_FAILED) {
        scribble(region, mapping / 8);
    }
    void *heap = malloc(1 << 20);
    if (heap != NULL) {
        scribble(heap, (1 << 20) / 8);
    }
    /* Data and BSS, the state below included: from here on only write(2) and raw memory. */
    uint64_t saved = state;
    scribble((volatile uint64_t *)__data_start, (size_t)(_end - __data_start) / 8);
    state = saved | 1;
    /* Up the stack in random steps of up to 4 KiB: the first write past its top faults. */
    volatile uint64_t marker = 0;
    volatile uint64_t *p = &marker;
    for (;;) {
        p += 1 + next() % 512;
        *p = next();
        if ((uintptr_t)p > (uintptr_t)&marker + (64u << 20)) {
            break;
        }
    }
    say("wild_writes: FAIL 1: 64 MiB of stack writes did not fault\n");
    _exit(1);
}
