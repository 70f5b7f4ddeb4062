/*
 * null_deref: writes through a NULL pointer. The kernel must end the job with SIGSEGV
 * (status 128 + 11 = 139) without harm to itself. Should the write return, the program
 * says so and exits with 1.
 */
#include <string.h>
#include <unistd.h>

static void say(const char *text) {
    if (write(2, text, strlen(text)) < 0) {
        return;
    }
}

int main(void) {
    say("null_deref: writing through NULL, expecting SIGSEGV\n");
    /* Both volatile: the compiler may neither assume the pointer is NULL nor drop the store. */
    volatile int *volatile pointer = NULL;
    *pointer = 42;
    say("null_deref: FAIL 1: writing through NULL did not fault\n");
    return 1;
}
