/* Leaves a marker in its floating-point registers and ends without touching them again: XMM0-15
 * hold "MANUL-XMM-MARKER" (YMM upper halves too where AVX is on, through VEX moves) and MXCSR
 * 0x9fc0 (other rounding, flush-to-zero), then exit_group is issued straight from the same asm
 * block. A VM created afterwards on the same core must find none of it (scenario
 * vm-registers-scrubbed, tests/guests/xmm_check.S). Exit status 0. */
#include <string.h>

static const char marker[16] __attribute__((aligned(16))) = "MANUL-XMM-MARKER";
static unsigned int mxcsr = 0x9fc0;

int main(void) {
    __asm__ volatile(
        "movdqa %0, %%xmm0\n\t"
        "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\tmovdqa %%xmm0, %%xmm3\n\t"
        "movdqa %%xmm0, %%xmm4\n\tmovdqa %%xmm0, %%xmm5\n\tmovdqa %%xmm0, %%xmm6\n\t"
        "movdqa %%xmm0, %%xmm7\n\tmovdqa %%xmm0, %%xmm8\n\tmovdqa %%xmm0, %%xmm9\n\t"
        "movdqa %%xmm0, %%xmm10\n\tmovdqa %%xmm0, %%xmm11\n\tmovdqa %%xmm0, %%xmm12\n\t"
        "movdqa %%xmm0, %%xmm13\n\tmovdqa %%xmm0, %%xmm14\n\tmovdqa %%xmm0, %%xmm15\n\t"
        "ldmxcsr %1\n\t"
        "mov $231, %%eax\n\t" /* exit_group(0) */
        "xor %%edi, %%edi\n\t"
        "syscall\n\t"
        :
        : "m"(marker), "m"(mxcsr)
        : "memory", "rax", "rdi", "rcx", "r11");
    return 1; /* not reached */
}
