/* A PVH guest that looks at the registers it finds at its first instruction: XMM0-7 (all a
 * 32-bit guest can reach) must be zero, MXCSR 0x1f80 and the x87 control word 0x37f, the state
 * of a CPU just reset, the debug address registers DR0-3 zero, and PKRU zero where the CPU
 * has protection keys. A VM created on a core that
 * ran a job or another VM must find no trace of their registers (scenario vm-registers-scrubbed,
 * after /bin/xmm_marker). Prints "registers_check: clean", then leaves markers of its own in
 * XMM0-7, DR0-3 and PKRU for the next VM on its core to miss, and powers off; or names what it found
 * and triple faults. */
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
    mov %dr0, %eax
    mov %dr1, %ebx
    or %ebx, %eax
    mov %dr2, %ebx
    or %ebx, %eax
    mov %dr3, %ebx
    or %ebx, %eax
    jnz dirty_dr
    /* With protection keys (CPUID 7.0:ECX bit 3), PKRU must be zero too. */
    mov $7, %eax
    xor %ecx, %ecx
    cpuid
    and $(1 << 3), %ecx
    mov %ecx, pku
    jz 2f
    mov %cr4, %eax
    or $(1 << 22), %eax                 /* CR4.PKE */
    mov %eax, %cr4
    xor %ecx, %ecx
    rdpkru
    test %eax, %eax
    jnz dirty_pkru
2:  mov $clean, %esi
    call puts
    /* Markers for the next owner of this core to miss. */
    mov $0x5ca1ab1e, %eax
    mov %eax, %dr0
    mov %eax, %dr1
    mov %eax, %dr2
    mov %eax, %dr3
    movd %eax, %xmm0
    pshufd $0, %xmm0, %xmm0
    movdqa %xmm0, %xmm1
    movdqa %xmm0, %xmm7
    cmpl $0, pku
    je 3f
    xor %ecx, %ecx
    xor %edx, %edx
    wrpkru                              /* no effect here: no paging, no user mode */
3:  jmp poweroff

dirty_xmm:
    mov $found_xmm, %esi
    jmp fail
dirty_mxcsr:
    mov $found_mxcsr, %esi
    jmp fail
dirty_fcw:
    mov $found_fcw, %esi
    jmp fail
dirty_dr:
    mov $found_dr, %esi
    jmp fail
dirty_pkru:
    mov $found_pkru, %esi
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
    .balign 4
pku:    .skip 4

    .data
clean:       .asciz "registers_check: clean\n"
found_xmm:   .asciz "registers_check: XMM registers hold a previous owner's data\n"
found_mxcsr: .asciz "registers_check: MXCSR is not the reset value\n"
found_fcw:   .asciz "registers_check: the x87 control word is not the reset value\n"
found_dr:    .asciz "registers_check: DR0-3 hold a previous owner's addresses\n"
found_pkru:  .asciz "registers_check: PKRU holds a previous owner's keys\n"
