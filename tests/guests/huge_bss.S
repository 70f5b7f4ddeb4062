/* A PVH guest whose ELF header asks for 240 MiB of memory (a BSS that size) in a 256 MiB VM:
 * the VMM must zero it in guest RAM, not copy it through the host's heap (scenario
 * vm-huge-image, on a node too small for a 240 MiB heap block). It checks bytes at both ends
 * and in the middle of the BSS are zero, says so and powers off; a non-zero byte triple faults. */
#include "pvh-entry.h"
_start:
    mov $stack_top, %esp
    mov $big, %esi
    cmpb $0, (%esi)
    jne dirty
    cmpb $0, BIG / 2(%esi)
    jne dirty
    cmpb $0, BIG - 1(%esi)
    jne dirty
    mov $clean, %esi
    call puts
    jmp poweroff
dirty:
    mov $not_zero, %esi
    jmp fail

#include "console.h"

    .set BIG, 240 << 20
    .bss
    .balign 16
    .skip 4096
stack_top:
big:    .skip BIG

    .data
clean:    .asciz "huge_bss: 240 MiB of BSS loaded and zero\n"
not_zero: .asciz "huge_bss: the BSS is not zero\n"
