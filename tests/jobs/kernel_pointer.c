/*
 * kernel_pointer: hands kernel addresses to write(2). The kernel must refuse each with EFAULT
 * (never read its own memory on the program's behalf, never fault itself). Exits 0 when both
 * calls return -1 with errno EFAULT; otherwise one line on stderr per failed check and the
 * code of the first:
 *   1 / 2  write from the first / second address did not return -1
 *   3 / 4  it returned -1 but errno is not EFAULT
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void say(const char *text) {
    if (write(2, text, strlen(text)) < 0) {
        return;
    }
}

/* Checks one address; returns 0 or the code of the failed check. */
static int probe(uintptr_t address, int wrong_result, int wrong_errno) {
    /* Through a volatile: the compiler must not reason about the constant pointer. */
    volatile uintptr_t opaque = address;
    char line[200];
    errno = 0;
    ssize_t result = write(1, (const void *)opaque, 16);
    int error = errno;
    if (result == -1 && error == EFAULT) {
        snprintf(line, sizeof line, "kernel_pointer: write(1, %#lx, 16) = -1 EFAULT, as expected\n",
                 (unsigned long)address);
        say(line);
        return 0;
    }
    int code = result != -1 ? wrong_result : wrong_errno;
    snprintf(line, sizeof line,
             "kernel_pointer: FAIL %d: write(1, %#lx, 16) returned %ld with errno %d (%s), expected -1 with EFAULT\n",
             code, (unsigned long)address, (long)result, error, strerror(error));
    say(line);
    return code;
}

int main(void) {
    /* The start of the higher half (the kernel's direct map) and the kernel image. */
    int first = probe(0xffff800000000000UL, 1, 3);
    int second = probe(0xffffffff80100000UL, 2, 4);
    return first != 0 ? first : second;
}
