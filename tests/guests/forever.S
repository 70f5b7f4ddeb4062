/* A PVH guest that never ends by itself: it prints one line through COM1, then waits with
 * interrupts on for an interrupt nobody sends (HLT in a loop). It stays running until the host
 * stops it: the enclave scenarios stop, relaunch and watch it. */
#include "pvh-entry.h"
_start:
    mov $waiting, %esi
    mov $0x3f8, %dx
1:  lodsb                               /* the UART model's transmitter is always ready */
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  sti
    hlt
    jmp 2b

    .data
waiting:        .asciz "forever: waiting for the host to stop this guest\n"
