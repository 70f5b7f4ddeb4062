/*
 * illegal_instruction: executes ud2. The kernel must end the job with SIGILL
 * (status 128 + 4 = 132) without harm to itself. Should ud2 return, the program says so and
 * exits with 1.
 */
#include <string.h>
#include <unistd.h>

static void say(const char *text) {
    if (write(2, text, strlen(text)) < 0) {
        return;
    }
}

int main(void) {
    say("illegal_instruction: executing ud2, expecting SIGILL\n");
    __asm__ volatile("ud2");
    say("illegal_instruction: FAIL 1: ud2 did not fault\n");
    return 1;
}
