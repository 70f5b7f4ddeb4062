/* A minimal PVH guest for Manul's VMM: 32-bit protected mode entry, no paging. It checks that
 * EBX points at a valid hvm_start_info, prints through the COM1 UART (port I/O), and powers off
 * through the ACPI PM1a control register. On a failed check it prints the reason and triple
 * faults, so the VM ends with "triple_fault" instead of "poweroff". */
#include "pvh-entry.h"
_start:
    mov $stack_top, %esp                /* PVH gives no stack */
    cmpl $0x336ec578, (%ebx)            /* start_info magic */
    jne bad_start_info
    mov $hello, %esi
    call puts
    /* String port I/O: four reads of the line status register with REP INSB (each must show the
     * transmitter empty), then a line written with REP OUTSB. */
    cld
    mov $lsr_samples, %edi
    mov $4, %ecx
    mov $0x3fd, %dx
    rep insb
    mov lsr_samples, %eax
    and $0x20202020, %eax
    cmp $0x20202020, %eax
    jne bad_string_io
    mov $string_line, %esi
    mov $string_line_end - string_line, %ecx
    mov $0x3f8, %dx
    rep outsb
    jmp poweroff

bad_string_io:
    mov $no_string_io, %esi
    jmp fail

bad_start_info:
    mov $no_start_info, %esi
    jmp fail

#include "console.h"

    .bss
    .balign 16
    .skip 4096
stack_top:

    .data
hello:          .asciz "hello from a PVH guest on the Manul VMM\n"
no_start_info:  .asciz "guest: EBX does not point at hvm_start_info\n"
no_string_io:   .asciz "guest: REP INSB read a wrong line status\n"
string_line:    .ascii "string port I/O (rep outsb) works\n"
string_line_end:
    .balign 4
lsr_samples:    .long 0
