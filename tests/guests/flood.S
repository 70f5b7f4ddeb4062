/* A PVH guest that floods its console: 2 MiB through the UART with REP OUTSB (4 KiB per
 * instruction, lines of 64 bytes), never waiting for the transmitter, then "flood: done" and a
 * power-off. The VMM holds at most two lines of it; its UART refuses bytes while busy, the REP
 * runs again from where it stopped, and the guest only slows itself (scenario vm-console-flood,
 * beside a job). */
#include "pvh-entry.h"
_start:
    mov $stack_top, %esp
    /* Fill the 4 KiB buffer with lines of 63 'f' and a newline. */
    mov $buffer, %edi
    mov $64, %ebx
1:  mov $63, %ecx
    mov $'f', %al
    rep stosb
    movb $'\n', (%edi)
    inc %edi
    dec %ebx
    jnz 1b
    mov $512, %ebx                      /* 512 x 4 KiB = 2 MiB */
    mov $0x3f8, %dx
2:  mov $buffer, %esi
    mov $4096, %ecx
    rep outsb
    dec %ebx
    jnz 2b
    mov $done, %esi
    mov $done_end - done, %ecx
    rep outsb
    jmp poweroff

#include "console.h"

    .bss
    .balign 16
    .skip 4096
stack_top:
buffer: .skip 4096

    .data
done:   .ascii "flood: done\n"
done_end:
