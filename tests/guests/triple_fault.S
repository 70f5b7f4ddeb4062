/* A PVH guest that triple faults on purpose: it loads an empty IDT and raises an exception. The
 * VM must end with "triple_fault" and nothing else on the node may notice. */
#include "pvh-entry.h"
_start:
    mov $msg, %esi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  lidt zero_idt
    int3

    .data
msg:        .asciz "triple fault guest: about to fault with no IDT\n"
    .balign 8
zero_idt:   .word 0
            .long 0
