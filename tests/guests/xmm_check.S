/* A PVH guest that looks at the floating-point state it finds at its first instruction: XMM0-7
 * (all a 32-bit guest can reach) must be zero, MXCSR 0x1f80 and the x87 control word 0x37f, the
 * state of a CPU just reset. A VM created on a core that ran a job must find no trace of the
 * job's registers (scenario vm-registers-scrubbed, after /bin/xmm_marker). Prints
 * "xmm_check: clean" and powers off, or names what it found and triple faults. */
#include "pvh-entry.h"
_start:
    mov $stack_top, %esp
    /* Nothing before this point touches the FPU. Enable SSE: CR0.EM off, CR0.MP on, CR4.OSFXSR
     * and OSXMMEXCPT on. */
    mov %cr0, %eax
    and $~(1 << 2), %eax
    or $(1 << 1), %eax
    mov %eax, %cr0
    mov %cr4, %eax
    or $((1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    movdqu %xmm0, xmms + 0
    movdqu %xmm1, xmms + 16
    movdqu %xmm2, xmms + 32
    movdqu %xmm3, xmms + 48
    movdqu %xmm4, xmms + 64
    movdqu %xmm5, xmms + 80
    movdqu %xmm6, xmms + 96
    movdqu %xmm7, xmms + 112
    stmxcsr mxcsr
    fnstcw fcw
    /* Any non-zero byte in the eight registers is a leftover. */
    mov $xmms, %esi
    mov $128, %ecx
1:  lodsb
    test %al, %al
    jnz dirty_xmm
    loop 1b
    cmpl $0x1f80, mxcsr
    jne dirty_mxcsr
    cmpw $0x37f, fcw
    jne dirty_fcw
    mov $clean, %esi
    call puts
    jmp poweroff

dirty_xmm:
    mov $found_xmm, %esi
    jmp fail
dirty_mxcsr:
    mov $found_mxcsr, %esi
    jmp fail
dirty_fcw:
    mov $found_fcw, %esi
    jmp fail

#include "console.h"

    .bss
    .balign 16
    .skip 4096
stack_top:
    .balign 16
xmms:   .skip 128
mxcsr:  .skip 4
fcw:    .skip 2

    .data
clean:       .asciz "xmm_check: clean\n"
found_xmm:   .asciz "xmm_check: XMM registers hold a previous owner's data\n"
found_mxcsr: .asciz "xmm_check: MXCSR is not the reset value\n"
found_fcw:   .asciz "xmm_check: the x87 control word is not the reset value\n"
